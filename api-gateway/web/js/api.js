// The API client: the session's tokens (localStorage: every tab of the browser shares one
// session, and signing in or out in one tab does it in all), JSON calls that refresh an expired
// access token once (one refresh across all tabs), and the live stream (a ticket per
// connection, resumed from the last event seen).

const store = window.localStorage;
const KEY = "taskmesh.session";

export function session() {
  const raw = store.getItem(KEY);
  return raw ? JSON.parse(raw) : null;
}

function keep(tokens, user) {
  const previous = session() || {};
  store.setItem(KEY, JSON.stringify({ ...previous, ...tokens, ...(user ? { user } : {}) }));
  if (user) changed();
}

/** The signed-in person's account as it is now (when `user` is theirs). */
export function updateUser(user) {
  if (session()?.user?.id === user.id) keep({}, user);
}

/** Tells the views that the person signed in or out (`onSessionChange`). */
function changed() {
  window.dispatchEvent(new Event("taskmesh:session"));
}

export function onSessionChange(listener) {
  window.addEventListener("taskmesh:session", listener);
  return () => window.removeEventListener("taskmesh:session", listener);
}

/** Why this tab was signed out, when it was not the person's own doing here (shown once). */
let signedOutBecause = null;

export function takeSignOutReason() {
  const reason = signedOutBecause;
  signedOutBecause = null;
  return reason;
}

/** Ends the session in this browser (every tab); `reason` is shown on the sign-in page. */
export function signOut(reason = null) {
  signedOutBecause = reason;
  store.removeItem(KEY);
  stream.last = null;
  stream.close();
  changed();
}

/**
 * The Sign out button: every tab signs out at once (before the server hears, so the other tabs
 * say it was done in a tab and not that the session ended), then the session is ended on the
 * server with the tokens it had (refreshed once if the access token expired).
 */
export async function logOut() {
  const current = session();
  signOut();
  if (!current) return;
  const post = (path, headers, body) => fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  }).catch(() => null);
  const logout = (access) => post("/api/v1/auth/logout", { authorization: `Bearer ${access}` }, {});
  const answer = await logout(current.access_token);
  if (answer?.status !== 401 || !current.refresh_token) return;
  const renewed = await post("/api/v1/auth/refresh", {}, { refresh_token: current.refresh_token });
  if (renewed?.ok) await logout((await renewed.json()).access_token);
}

/**
 * Ends every session of this person, on every device (`POST /api/v1/auth/logout-all`), then
 * signs this browser out; the other devices' open pages drop to sign-in saying why.
 */
export async function logOutEverywhere() {
  await api("POST", "/api/v1/auth/logout-all").catch(() => {});
  signOut();
}

/** The session ended on the server (an API call answered 401, or the stream said so). */
export const SESSION_ENDED =
  "You were signed out: your session ended (signed out everywhere, a new password or role, or the account deactivated).";

// Another tab signed in, out, or as someone else: this one follows.
window.addEventListener("storage", (e) => {
  if (e.key !== KEY && e.key !== null) return;
  const before = e.oldValue ? JSON.parse(e.oldValue).user?.id : undefined;
  const now = session()?.user?.id;
  if (before === now) return; // only the tokens changed (a refresh)
  stream.last = null;
  if (now) stream.open();
  else {
    signedOutBecause = "You signed out in another tab.";
    stream.close();
  }
  changed();
});

/** An error answer: its problem document's `code` and `detail`. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

/** The refresh under way in this tab, if any: every call that meets an expired token waits on it. */
let refreshing = null;

/**
 * New tokens for a call that was refused with the access token `stale`. A refresh token works
 * once, and presenting a spent one ends the whole session (it means it leaked), so one tab
 * alone refreshes: the leader (it holds a Web Lock; when it closes, another tab takes it). The
 * other tabs ask it over a BroadcastChannel and get the tokens in its answer (what one tab
 * writes into localStorage reaches the others later, so another tab reading it at once could
 * still see the spent refresh token). Calls made at once share one refresh, and a call whose
 * token was already replaced just retries.
 */
function refresh(stale) {
  refreshing ??= (leader.is ? refreshHere(stale) : askLeader(stale)).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshHere(stale) {
  const current = session();
  if (!current?.refresh_token) return false;
  if (current.access_token !== stale) return true;
  const answer = await fetch("/api/v1/auth/refresh", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh_token }),
  });
  if (!answer.ok) return false;
  keep(await answer.json());
  return true;
}

const leader = { is: !navigator.locks || !window.BroadcastChannel, asked: new Map() };
const tabs = window.BroadcastChannel ? new BroadcastChannel("taskmesh.session") : null;
navigator.locks?.request("taskmesh.leader", () => {
  leader.is = true;
  // What this tab asked while it was not the leader, nobody else will answer now.
  for (const { stale, answered } of leader.asked.values()) refreshHere(stale).then(answered);
  return new Promise(() => {}); // held while this tab lives
});

/** Asks the leader for tokens newer than `stale`; false if it has none (or does not answer). */
function askLeader(stale) {
  const id = `${Date.now()}-${Math.random()}`;
  return new Promise((resolve) => {
    const answered = (ok) => {
      clearTimeout(timer);
      leader.asked.delete(id);
      resolve(ok);
    };
    const timer = setTimeout(() => answered(false), 10000);
    leader.asked.set(id, { stale, answered });
    tabs.postMessage({ ask: id, stale });
  });
}

tabs?.addEventListener("message", async ({ data }) => {
  if (data.ask && leader.is) {
    const ok = await refresh(data.stale);
    const { access_token, refresh_token } = session() || {};
    tabs.postMessage({ answer: data.ask, tokens: ok ? { access_token, refresh_token } : null });
  } else if (data.answer && leader.asked.has(data.answer)) {
    if (data.tokens) keep(data.tokens);
    leader.asked.get(data.answer).answered(!!data.tokens);
  }
});

/**
 * Calls the API; `body` is sent as JSON (or as is, for FormData); `options.headers` are added
 * (`{ "if-match": etag(task) }` for an edit that must not undo someone else's).
 */
export async function api(method, path, body, options = {}) {
  const headers = { ...options.headers };
  const token = session()?.access_token;
  if (token) headers.authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["content-type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const answer = await fetch(path, { method, headers, body: payload });
  if (answer.status === 401 && token && !options.retried && (await refresh(token))) {
    return api(method, path, body, { ...options, retried: true });
  }
  const text = await answer.text();
  const json = text ? safeJson(text) : null;
  if (!answer.ok) {
    if (answer.status === 401 && token && session()?.access_token === token) {
      signOut(SESSION_ENDED);
    }
    throw new ApiError(answer.status, json);
  }
  return json;
}

/** A task's ETag, as task-svc sends it: its version in quotes. */
export const etag = (task) => `"${task.version}"`;

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function signIn(email, password) {
  const tokens = await api("POST", "/api/v1/auth/login", { email, password });
  keep(tokens);
  const user = await api("GET", "/api/v1/users/me");
  keep({}, user);
  stream.open();
  return user;
}

export async function register(email, password, display_name) {
  await api("POST", "/api/v1/auth/register", { email, password, display_name });
  return signIn(email, password);
}

/**
 * Uploads `files` to a task with XMLHttpRequest, whose upload progress fetch cannot report;
 * `onProgress(fraction)` is called as bytes leave.
 */
export function upload(taskId, files, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", `/api/v1/tasks/${taskId}/attachments`);
    request.setRequestHeader("authorization", `Bearer ${session()?.access_token}`);
    request.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    request.onload = () => {
      const json = safeJson(request.responseText);
      if (request.status >= 200 && request.status < 300) resolve(json);
      else reject(new ApiError(request.status, json));
    };
    request.onerror = () => reject(new ApiError(0, { detail: "the upload was cut off" }));
    request.send(form);
  });
}

/**
 * The live stream: one EventSource per tab, opened with a fresh ticket each time (a ticket
 * works once, so the browser's own reconnect cannot be used) and resumed after the last event
 * seen. Views subscribe with `stream.on(listener)`; `listener(type, cloudEvent)`.
 */
export const stream = {
  source: null,
  last: null,
  listeners: new Set(),
  status: "closed",
  retry: null,
  on(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  },
  emit(type, event) {
    for (const listener of this.listeners) listener(type, event);
  },
  setStatus(status) {
    this.status = status;
    this.emit("status", { status });
  },
  async open() {
    this.close();
    if (!session()) return;
    try {
      const { ticket } = await api("POST", "/api/v1/events/ticket");
      const resume = this.last ? `&last_event_id=${encodeURIComponent(this.last)}` : "";
      const source = new EventSource(`/api/v1/events/stream?ticket=${encodeURIComponent(ticket)}${resume}`);
      this.source = source;
      source.addEventListener("ready", (e) => {
        if (e.lastEventId) this.last = e.lastEventId;
        this.setStatus("live");
      });
      source.addEventListener("reset", () => this.emit("reset", {}));
      // The session ended (signed out everywhere, deactivated, …): the gateway ends the stream.
      source.addEventListener("session_ended", () => signOut(SESSION_ENDED));
      for (const type of STREAM_TYPES) {
        source.addEventListener(type, (e) => {
          this.last = e.lastEventId || this.last;
          this.emit(type, JSON.parse(e.data));
        });
      }
      source.onerror = () => {
        source.close();
        this.setStatus("reconnecting");
        this.retry = setTimeout(() => this.open(), 2000);
      };
    } catch {
      this.setStatus("reconnecting");
      this.retry = setTimeout(() => this.open(), 5000);
    }
  },
  close() {
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
    this.setStatus("closed");
  },
};

export const STREAM_TYPES = [
  "task.created", "task.updated", "task.status_changed", "task.completed", "task.assigned",
  "task.deleted", "task.due_soon", "task.failed", "task.dead", "task.commented", "task.mentioned",
  "job.started", "job.progress",
  "job.finished", "media.uploaded", "media.processed", "media.deleted", "notification.created",
  "channel.joined", "workflow.created", "workflow.completed", "workflow.failed", "workflow.cancelled",
];

// The API client: tokens for this tab (sessionStorage: a new tab signs in again, and nothing
// outlives the browser session), JSON calls that refresh an expired access token once, and
// the live stream (a ticket per connection, resumed from the last event seen).

const store = window.sessionStorage;

export function session() {
  const raw = store.getItem("taskmesh.session");
  return raw ? JSON.parse(raw) : null;
}

function keep(tokens, user) {
  const previous = session() || {};
  store.setItem(
    "taskmesh.session",
    JSON.stringify({ ...previous, ...tokens, ...(user ? { user } : {}) }),
  );
  if (user) changed();
}

/** Tells the views that the person signed in or out (`onSessionChange`). */
function changed() {
  window.dispatchEvent(new Event("taskmesh:session"));
}

export function onSessionChange(listener) {
  window.addEventListener("taskmesh:session", listener);
  return () => window.removeEventListener("taskmesh:session", listener);
}

export function signOut() {
  store.removeItem("taskmesh.session");
  stream.close();
  changed();
}

/** An error answer: its problem document's `code` and `detail`. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code;
  }
}

/** The refresh under way, if any: every call that meets an expired access token waits on it. */
let refreshing = null;

/**
 * New tokens for a call that was refused with the access token `stale`. A refresh token works
 * once, and presenting a spent one ends the whole session (it means it leaked), so calls made
 * at once share one refresh, and a call whose token was already replaced just retries.
 */
function refresh(stale) {
  const current = session();
  if (!current?.refresh_token) return Promise.resolve(false);
  if (current.access_token !== stale) return Promise.resolve(true);
  refreshing ??= (async () => {
    const answer = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: current.refresh_token }),
    });
    if (!answer.ok) return false;
    keep(await answer.json());
    return true;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

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
    if (answer.status === 401 && token) {
      signOut();
      window.location.hash = "#/login";
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
  "task.deleted", "task.due_soon", "task.failed", "task.dead", "job.started", "job.progress",
  "job.finished", "media.uploaded", "media.processed", "media.deleted", "notification.created",
  "channel.joined", "workflow.created", "workflow.completed", "workflow.failed", "workflow.cancelled",
];

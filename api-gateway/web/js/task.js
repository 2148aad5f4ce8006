// One task's page: its fields (description as sanitised Markdown), every field editable with
// the version it was read at (a stale save is offered a reload or a merge), delete, subtasks,
// related tasks, a job's attempts and progress, attachments, comments and history, all live.

import { html, useEffect, useState } from "../vendor/htm-preact.js";
import { api, etag, session } from "./api.js";
import { Attachments } from "./files.js";
import { Comments } from "./comments.js";
import { History, STATUS_NAMES } from "./history.js";
import { LabelPicker } from "./labels.js";
import { Relations, Subtasks } from "./links.js";
import { Person, PersonPicker, nameOf, useNames } from "./persons.js";
import { RepeatPicker, inWords } from "./repeat.js";
import { PRIORITIES, STATUSES } from "./tasks.js";
import { useLoad, useStream, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

export function TaskPage({ id }) {
  const task = useLoad(() => api("GET", `/api/v1/tasks/${id}`), [id]);
  const history = useLoad(() => api("GET", `/api/v1/tasks/${id}/history`), [id]);
  usePageTitle(task.data?.title);
  useNames([task.data?.owner_id, task.data?.assignee_id]);
  useStream((type, event) => {
    if (type === "task.commented" || type === "task.mentioned") return; // the comments' own
    if (event?.subject === id || event?.data?.task_id === id) {
      task.reload();
      history.reload();
    }
  }, [id, task.reload, history.reload]);
  if (task.error) return html`<${Problem} error=${task.error} />`;
  if (!task.data) return html`<${Loading} what="the task" />`;
  const t = task.data;
  return html`<article aria-labelledby="task-title">
    <p><a href="#/tasks">← My tasks</a>${t.parent_id ? html` · subtask of <${ParentLink} id=${t.parent_id} />` : ""}</p>
    <h1 id="task-title">${t.title}</h1>
    <p><span class=${`status status-${t.status}`} data-status=${t.status}>${t.status}</span>
      <span class=${`priority priority-${t.priority}`}>${t.priority}</span>
      <span class="muted">(${t.priority_source})</span>
      ${t.due_at ? html` <span>due ${when(t.due_at)}</span>` : ""}
      ${t.recurrence ? html` <span data-repeats>repeats ${inWords(t.recurrence)}</span>` : ""}</p>
    <dl class="people">
      <dt>Owner</dt><dd><${Person} id=${t.owner_id} /></dd>
      <dt>Assignee</dt><dd>${t.assignee_id ? html`<${Person} id=${t.assignee_id} />` : "nobody"}</dd>
    </dl>
    <${Followers} task=${t} />
    ${t.description_html ? html`<div class="description" dangerouslySetInnerHTML=${{ __html: t.description_html }}></div>` : ""}
    <${EditTask} task=${t} onSaved=${task.reload} />
    <${Subtasks} task=${t} />
    <${Relations} task=${t} />
    ${t.job ? html`<${Job} task=${t} />` : ""}
    <${Attachments} taskId=${id} />
    <${Comments} taskId=${id} />
    <${History} task=${t} entries=${history.data?.items || []} />
    <${DeleteTask} task=${t} />
  </article>`;
}

/**
 * Who follows the task (hears of its moves): its owner, assignee and commenters by default;
 * **Follow** or **Unfollow** for me.
 */
function Followers({ task }) {
  const list = useLoad(() => api("GET", `/api/v1/tasks/${task.id}/watchers`), [task.id, task.version]);
  const action = useAction();
  const items = list.data?.items || [];
  useNames(items);
  if (!list.data) return "";
  const following = list.data.following;
  const choose = () => action.run(async () => {
    await api(following ? "DELETE" : "PUT", `/api/v1/tasks/${task.id}/watchers/me`);
    list.reload();
  });
  return html`<p class="followers" data-followers>Followers: ${items.length ? items.map((id) => nameOf(id)).join(", ") : "nobody"}${" "}
    <button type="button" class="link" onClick=${choose} disabled=${action.busy}
      aria-pressed=${following ? "true" : "false"}>${following ? "Unfollow" : "Follow"}</button>
    <${Problem} error=${action.error} /></p>`;
}

/** The parent task's title, as a link (or "a task" when it cannot be read). */
function ParentLink({ id }) {
  const parent = useLoad(() => api("GET", `/api/v1/tasks/${id}`), [id]);
  return html`<a href=${`#/tasks/${id}`}>${parent.data?.title || "its parent"}</a>`;
}

/** An ISO instant as a `datetime-local` value, in this browser's time zone. */
function local(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// The edit form: its fields, and what differs from the version it was filled from.
const formOf = (task) => ({
  title: task.title, description: task.description || "", priority: task.priority, due_at: local(task.due_at),
  channel_id: task.channel_id || "", assignee_id: task.assignee_id || "", tags: task.tags || [],
  recurrence: task.recurrence || "",
});

function changesFrom(form, base) {
  const was = formOf(base);
  const body = {};
  for (const field of ["title", "description", "priority"]) {
    if (form[field] !== was[field]) body[field] = form[field];
  }
  for (const field of ["assignee_id", "channel_id", "recurrence"]) {
    if (form[field] !== was[field]) body[field] = form[field] || null;
  }
  if (form.due_at !== was.due_at) body.due_at = form.due_at ? new Date(form.due_at).toISOString() : null;
  if (form.tags.join(",") !== was.tags.join(",")) body.tags = form.tags;
  return body;
}

/**
 * Editing one task. The form is filled from a version of the task (`base`) and saved with that
 * version's ETag (`If-Match`), so an edit made meanwhile by someone else is never undone: the
 * save answers 412 and the page offers to reload (drop mine) or merge (their changes, then
 * mine). A live change to the task refills the form while nothing is typed in it.
 */
function EditTask({ task, onSaved }) {
  const labels = useLoad(() => api("GET", "/api/v1/labels"));
  const channels = useLoad(() => api("GET", "/api/v1/channels"));
  const [base, setBase] = useState(task);
  const [form, setForm] = useState(formOf(task));
  const [conflict, setConflict] = useState(null);
  const action = useAction();
  const mine = changesFrom(form, base);
  const dirty = Object.keys(mine).length > 0;
  useEffect(() => {
    if (task.version !== base.version && !dirty && !conflict) {
      setBase(task);
      setForm(formOf(task));
    }
  }, [task.version]);
  const start = (latest) => {
    setBase(latest);
    setForm(formOf(latest));
    setConflict(null);
  };
  const send = (body, version) => action.run(async () => {
    try {
      const saved = await api("PATCH", `/api/v1/tasks/${task.id}`, body, { headers: { "if-match": etag(version) } });
      start(saved);
      onSaved();
    } catch (e) {
      if (e.status !== 412) throw e;
      setConflict({ latest: await api("GET", `/api/v1/tasks/${task.id}`), mine: body });
    }
  });
  const save = (e) => {
    e.preventDefault();
    if (dirty) send(mine, base);
  };
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  const setTo = (name) => (value) => setForm((f) => ({ ...f, [name]: value }));
  const mineChannels = channels.data?.items || [];
  return html`<section aria-labelledby="edit-title">
    <h2 id="edit-title">Change</h2>
    <form class="edit" onSubmit=${save}>
      <label>Title <input name="title" value=${form.title} maxlength="200" onInput=${set("title")} /></label>
      <label class="wide">Description (Markdown) <textarea name="description" rows="4" maxlength="10000"
        value=${form.description} onInput=${set("description")}></textarea></label>
      <label>Priority <select name="priority" value=${form.priority} onChange=${set("priority")}>
        ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}
      </select></label>
      <label>Due <input name="due_at" type="datetime-local" value=${form.due_at} onInput=${set("due_at")} /></label>
      <label>Channel <select name="channel_id" value=${form.channel_id} onChange=${set("channel_id")}>
        <option value="">none (personal)</option>
        ${mineChannels.map((c) => html`<option value=${c.id}>${c.name}</option>`)}
      </select></label>
      <${PersonPicker} label="Assignee" name="assignee" value=${form.assignee_id} onChange=${setTo("assignee_id")} />
      <${LabelPicker} labels=${labels.data?.items || []} channelId=${task.channel_id} value=${form.tags}
        onChange=${setTo("tags")} />
      ${task.job ? "" : html`<${RepeatPicker} value=${form.recurrence} due=${form.due_at} onChange=${setTo("recurrence")} />`}
      <button type="submit" disabled=${action.busy || !!conflict}>Save</button>
    </form>
    ${conflict ? html`<${Conflict} conflict=${conflict} base=${base}
      onReload=${() => start(conflict.latest)}
      onMerge=${() => send(conflict.mine, conflict.latest)} />` : ""}
    ${task.job ? "" : html`<div class="actions" role="group" aria-label="Status">
      ${STATUSES.filter((s) => s !== task.status).map((s) => html`
        <button type="button" disabled=${action.busy} onClick=${() => action.run(async () => {
          await api("PATCH", `/api/v1/tasks/${task.id}`, { status: s }, { headers: { "if-match": etag(task) } });
          onSaved();
        })}>${s === "done" ? "Complete" : `Move to ${s}`}</button>`)}
    </div>`}
    <${Problem} error=${action.error} />
  </section>`;
}

const FIELD_NAMES = { assignee_id: "assignee", channel_id: "channel", due_at: "due date", recurrence: "repeats" };

/** What someone else changed since the form was filled, and the two ways on. */
function Conflict({ conflict, base, onReload, onMerge }) {
  const { latest, mine } = conflict;
  const theirs = Object.keys(changesFrom(formOf(latest), base));
  const show = (field, v) => {
    if (v === null || v === "") return "nobody";
    if (field === "assignee_id") return nameOf(v);
    if (field === "recurrence") return inWords(v);
    if (field === "due_at") return when(v);
    if (field === "channel_id" || field === "description") return "changed";
    return `“${v}”`;
  };
  const name = (f) => FIELD_NAMES[f] || f;
  return html`<div class="conflict" role="alert">
    <p><b>This task changed since you opened it.</b> Nothing of yours was saved.</p>
    <ul>
      ${theirs.map((f) => html`<li>now: ${name(f)} ${show(f, latest[f] ?? null)}</li>`)}
      ${Object.entries(mine).map(([f, v]) => html`<li>yours: ${name(f)} ${show(f, v)}</li>`)}
    </ul>
    <button type="button" onClick=${onReload}>Reload (drop my changes)</button>
    <button type="button" onClick=${onMerge}>Merge (their changes, then mine)</button>
  </div>`;
}

/** Delete, asked twice; then back to the list. Offered to the task's owner and admins. */
function DeleteTask({ task }) {
  const user = session()?.user;
  const [asked, setAsked] = useState(false);
  const action = useAction();
  if (!user || (task.owner_id !== user.id && user.role !== "admin")) return "";
  const remove = () => action.run(async () => {
    await api("DELETE", `/api/v1/tasks/${task.id}`, undefined, { headers: { "if-match": etag(task) } });
    location.hash = "#/tasks";
  });
  return html`<section aria-labelledby="delete-title">
    <h2 id="delete-title">Delete</h2>
    ${asked ? html`<p role="alert">Delete “${task.title}” with its comments and attachments? This cannot be undone.</p>
      <button type="button" class="danger" onClick=${remove} disabled=${action.busy}>Delete for good</button>
      <button type="button" onClick=${() => setAsked(false)}>Keep it</button>`
      : html`<button type="button" onClick=${() => setAsked(true)}>Delete this task</button>`}
    <${Problem} error=${action.error} />
  </section>`;
}

const LIVE = ["pending", "scheduled", "queued", "running", "retrying"];

/** An instant to the millisecond, in this browser's time zone. */
function exact(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return `${d.toLocaleString()}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** How long from `from` to `to`: "1.234 s". */
const seconds = (from, to) => `${((new Date(to) - new Date(from)) / 1000).toFixed(3)} s`;

/** A JSON value, formatted, with a button that copies it. */
function JsonBlock({ label, value }) {
  const text = JSON.stringify(value, null, 2);
  const [copied, setCopied] = useState(false);
  const copy = () => navigator.clipboard?.writeText(text).then(() => setCopied(true), () => {});
  return html`<div class="json"><b>${label}</b> <button type="button" class="link" onClick=${copy}
      aria-label=${`Copy the ${label.toLowerCase()}`}>${copied ? "Copied" : "Copy"}</button>
    <pre tabindex="0" aria-label=${label}>${text}</pre></div>`;
}

function Job({ task }) {
  const attempts = useLoad(() => api("GET", `/api/v1/tasks/${task.id}/attempts`), [task.id]);
  const [progress, setProgress] = useState(task.job.progress || null);
  const action = useAction();
  useStream((type, event) => {
    if (event?.data?.task_id !== task.id) return;
    if (type === "job.progress") setProgress(event.data);
    if (type.startsWith("job.")) attempts.reload();
  }, [task.id, attempts.reload]);
  const job = task.job;
  // A finished job's bar is full; a live one's shows what its worker last reported.
  const percent = task.status === "completed" ? 100 : progress?.percent;
  const live = LIVE.includes(task.status);
  const waiting = ["scheduled", "retrying"].includes(task.status) && !job.cron;
  const admin = session()?.user?.role === "admin";
  return html`<section aria-labelledby="job-title">
    <h2 id="job-title">Job: ${job.kind} on ${job.pool}</h2>
    <p>State <b data-job-state=${task.status}>${task.status}</b>, attempt ${job.attempt} of ${job.max_attempts}
      ${job.started_at ? html` · started ${exact(job.started_at)}` : ""}${job.finished_at ? html` · finished ${exact(job.finished_at)}` : ""}
      ${job.started_at && job.finished_at ? ` · took ${seconds(job.started_at, job.finished_at)}` : ""}</p>
    ${percent != null ? html`<label>Progress <progress max="100" value=${percent}>${percent}%</progress> ${percent}% ${progress?.message || ""}</label>` : ""}
    <div class="actions">
      ${waiting ? html`<button type="button" disabled=${action.busy}
        onClick=${() => action.run(() => api("POST", `/api/v1/admin/jobs/${task.id}/retry`))}>Run now</button>` : ""}
      ${live ? html`<button type="button" onClick=${() => action.run(() => api("POST", `/api/v1/tasks/${task.id}/cancel`))}
        disabled=${action.busy}>Cancel job</button>` : ""}
      ${task.status === "dead" && admin ? html`<button type="button" disabled=${action.busy}
        onClick=${() => action.run(() => api("POST", "/api/v1/admin/jobs/dead/replay", { task_ids: [task.id] }))}>Replay</button>` : ""}
    </div>
    <${Problem} error=${action.error} />
    <${JsonBlock} label="Payload" value=${job.payload} />
    ${job.result != null ? html`<${JsonBlock} label="Result" value=${job.result} />` : ""}
    ${job.last_error ? html`<p>Last error: <code>${job.last_error}</code></p>` : ""}
    <table tabindex="0">
      <caption>Attempts</caption>
      <thead><tr><th scope="col">#</th><th scope="col">worker</th><th scope="col">started</th><th scope="col">ended</th><th scope="col">took</th><th scope="col">outcome</th><th scope="col">progress</th><th scope="col">error</th></tr></thead>
      <tbody>${(attempts.data?.items || []).map((a) => html`<tr>
        <td>${a.attempt}</td><td>${admin ? html`<a href=${`#/admin/workers/${encodeURIComponent(a.worker_id)}`}>${a.worker_id}</a>` : a.worker_id}</td><td>${exact(a.started_at)}</td><td>${exact(a.ended_at)}</td>
        <td>${a.started_at && a.ended_at ? seconds(a.started_at, a.ended_at) : ""}</td>
        <td>${a.outcome}</td><td>${a.progress?.percent != null ? `${a.progress.percent}%${a.progress.message ? ` ${a.progress.message}` : ""}` : ""}</td>
        <td>${a.error || ""}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

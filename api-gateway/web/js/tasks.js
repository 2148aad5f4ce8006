// People's views: my tasks (filters, create, live updates) and one task's page (edit, assign,
// complete, history, attachments with an upload progress bar, a job's attempts and progress).

import { html, useEffect, useState } from "../vendor/htm-preact.js";
import { api, etag, session } from "./api.js";
import { Attachments } from "./files.js";
import { Comments } from "./comments.js";
import { History } from "./history.js";
import { Chips, LabelManager, LabelPicker } from "./labels.js";
import { Person, PersonPicker, nameOf, useNames } from "./persons.js";
import { useLoad, useStream, useThrottled, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

const STATUSES = ["todo", "in_progress", "done", "cancelled"];
const PRIORITIES = ["low", "normal", "high", "urgent"];
/** Tasks a page of the list asks for; "Load more" asks for as many again. */
const PAGE = 100;

/**
 * The first `want` tasks of the list (`query`), in pages of the API's largest size: `items`, and
 * `next_cursor` when there are more.
 */
export async function listTasks(query, want) {
  let items = [];
  let cursor = null;
  do {
    const after = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
    const page = await api("GET", `/api/v1/tasks?limit=${PAGE}&${query}${after}`);
    items = items.concat(page.items);
    cursor = page.next_cursor || null;
  } while (cursor && items.length < want);
  return { items, next_cursor: cursor };
}

export function Tasks() {
  usePageTitle("My tasks");
  const [filters, setFilters] = useState({ status: "", priority: "", channel_id: "", tag: "", q: "" });
  const channels = useLoad(() => api("GET", "/api/v1/channels"));
  const labels = useLoad(() => api("GET", "/api/v1/labels"));
  const allLabels = labels.data?.items || [];
  const mine = channels.data?.items || [];
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  // How many tasks are shown: a page, and a page more for each "Load more" (a new filter starts
  // from one page again).
  const [shown, setShown] = useState({ query, want: PAGE });
  const want = shown.query === query ? shown.want : PAGE;
  const tasks = useLoad(() => listTasks(query, want), [query, want]);
  // A live refresh reloads what is shown, at most once a second (a burst of events costs a
  // request or two, not one each).
  const refresh = useThrottled(tasks.reload, 1000);
  useStream((type) => {
    if (type.startsWith("task.") || type === "reset") refresh();
  }, [refresh]);
  const set = (name) => (e) => setFilters({ ...filters, [name]: e.target.value });
  const items = tasks.data?.items || [];
  useNames(items.flatMap((t) => [t.owner_id, t.assignee_id]));
  return html`
    <section aria-labelledby="tasks-title">
      <h1 id="tasks-title">My tasks</h1>
      <${CreateTask} onCreated=${tasks.reload} channels=${mine} />
      <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
        <label>Status <select name="status" value=${filters.status} onChange=${set("status")}>
          <option value="">any</option>
          ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select></label>
        <label>Priority <select name="priority" value=${filters.priority} onChange=${set("priority")}>
          <option value="">any</option>
          ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}
        </select></label>
        <label>Channel <select name="channel_id" value=${filters.channel_id} onChange=${set("channel_id")}>
          <option value="">any</option>
          ${mine.map((c) => html`<option value=${c.id}>${c.name}</option>`)}
        </select></label>
        <label>Label <select name="tag" value=${filters.tag} onChange=${set("tag")}>
          <option value="">any</option>
          ${[...new Set(allLabels.map((l) => l.name))].map((n) => html`<option value=${n}>${n}</option>`)}
        </select></label>
        <label>Search <input name="q" type="search" value=${filters.q} onInput=${set("q")} /></label>
      </form>
      <${Problem} error=${tasks.error} />
      ${tasks.loading && !tasks.data ? html`<${Loading} what="tasks" />` : html`
        <ul class="tasks" aria-live="polite">
          ${items.map((t) => html`<${TaskRow} task=${t} channel=${mine.find((c) => c.id === t.channel_id)} labels=${allLabels} />`)}
        </ul>
        ${tasks.data && items.length === 0 ? html`<p class="muted">${query ? "No task matches." : "No tasks yet."}</p>` : ""}
        ${tasks.data?.next_cursor ? html`<p class="more"><span class="muted">${items.length} shown</span>
          <button type="button" onClick=${() => setShown({ query, want: items.length + PAGE })}
            disabled=${want > items.length}>Load more</button></p>` : ""}`}
      <${LabelManager} labels=${allLabels} channels=${mine} onChanged=${labels.reload} />
      <${CalendarFeed} />
    </section>`;
}

/**
 * The address of a calendar feed of my dated tasks, for any calendar app. It needs no password,
 * so a new one replaces it (the old stops working).
 */
function CalendarFeed() {
  const [url, setUrl] = useState(null);
  const action = useAction();
  const make = () => action.run(async () => setUrl((await api("POST", "/api/v1/calendar/feed")).url));
  return html`<details class="feed">
    <summary>Calendar feed</summary>
    <p class="muted">Your tasks with a due date, in any calendar app (subscribe by address). The
      address needs no password: keep it to yourself. A new address stops the old one.</p>
    <button type="button" onClick=${make} disabled=${action.busy}>${url ? "Get a new address" : "Get an address"}</button>
    ${url ? html`<label>Calendar address <input readonly value=${url} onFocus=${(e) => e.target.select()} /></label>` : ""}
    <${Problem} error=${action.error} />
  </details>`;
}

/** Whose a task is, in words: "mine", "mine · assigned to Bob", "from Ada", "Ada's · Bob". */
function whose(task) {
  const me = session()?.user?.id;
  const assignee = task.assignee_id && task.assignee_id !== task.owner_id ? task.assignee_id : null;
  if (task.owner_id === me) return assignee ? `mine · assigned to ${nameOf(assignee)}` : "mine";
  if (assignee === me) return `from ${nameOf(task.owner_id)}`;
  return `${nameOf(task.owner_id)}'s${assignee ? ` · assigned to ${nameOf(assignee)}` : ""}`;
}

function TaskRow({ task, channel, labels }) {
  const role = whose(task);
  return html`<li class="task" data-task=${task.id}>
    <a href=${`#/tasks/${task.id}`}>${task.title}</a>
    <span class=${`status status-${task.status}`} data-status=${task.status}>${task.status}</span>
    <span class=${`priority priority-${task.priority}`}>${task.priority}</span>
    <${Chips} tags=${task.tags} channelId=${task.channel_id} labels=${labels} />
    <span class="muted">${role}${channel ? ` · in ${channel.name}` : ""}${task.job ? ` · job ${task.job.kind}` : ""}${task.due_at ? ` · due ${when(task.due_at)}` : ""}</span>
  </li>`;
}

const EMPTY = { title: "", priority: "", assignee_id: "", due_at: "", channel_id: "" };

function CreateTask({ onCreated, channels }) {
  const [form, setForm] = useState(EMPTY);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    const body = { title: form.title };
    if (form.priority) body.priority = form.priority;
    if (form.due_at) body.due_at = new Date(form.due_at).toISOString();
    if (form.channel_id) body.channel_id = form.channel_id;
    if (form.assignee_id) body.assignee_id = form.assignee_id;
    if (await action.run(() => api("POST", "/api/v1/tasks", body))) {
      setForm(EMPTY);
      onCreated();
    }
  };
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  return html`<form class="create" onSubmit=${submit} aria-label="New task">
    <label>Title <input name="title" required maxlength="200" value=${form.title} onInput=${set("title")} /></label>
    <label>Priority <select name="priority" value=${form.priority} onChange=${set("priority")}>
      <option value="">predict</option>
      ${PRIORITIES.map((p) => html`<option value=${p}>${p}</option>`)}
    </select></label>
    <${PersonPicker} label="Assignee" name="assignee" value=${form.assignee_id}
      onChange=${(id) => setForm((f) => ({ ...f, assignee_id: id }))} />
    <label>Due <input name="due_at" type="datetime-local" value=${form.due_at} onInput=${set("due_at")} /></label>
    <label>Channel <select name="channel_id" value=${form.channel_id} onChange=${set("channel_id")}>
      <option value="">none (personal)</option>
      ${channels.map((c) => html`<option value=${c.id}>${c.name}</option>`)}
    </select></label>
    <button type="submit" disabled=${action.busy}>Create</button>
    <${Problem} error=${action.error} />
  </form>`;
}

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
    <p><a href="#/tasks">← My tasks</a></p>
    <h1 id="task-title">${t.title}</h1>
    <p><span class=${`status status-${t.status}`} data-status=${t.status}>${t.status}</span>
      <span class=${`priority priority-${t.priority}`}>${t.priority}</span>
      <span class="muted">(${t.priority_source})</span></p>
    <dl class="people">
      <dt>Owner</dt><dd><${Person} id=${t.owner_id} /></dd>
      <dt>Assignee</dt><dd>${t.assignee_id ? html`<${Person} id=${t.assignee_id} />` : "nobody"}</dd>
    </dl>
    ${t.description ? html`<p>${t.description}</p>` : ""}
    <${EditTask} task=${t} onSaved=${task.reload} />
    ${t.job ? html`<${Job} task=${t} />` : ""}
    <${Attachments} taskId=${id} />
    <${Comments} taskId=${id} />
    <${History} task=${t} entries=${history.data?.items || []} />
  </article>`;
}

// The edit form: its fields, and what differs from the version it was filled from.
const formOf = (task) => ({ title: task.title, assignee_id: task.assignee_id || "", tags: task.tags || [] });

function changesFrom(form, base) {
  const body = {};
  if (form.title !== base.title) body.title = form.title;
  const assignee = form.assignee_id || null;
  if (assignee !== (base.assignee_id || null)) body.assignee_id = assignee;
  if (form.tags.join(",") !== (base.tags || []).join(",")) body.tags = form.tags;
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
  return html`<section aria-labelledby="edit-title">
    <h2 id="edit-title">Change</h2>
    <form class="edit" onSubmit=${save}>
      <label>Title <input name="title" value=${form.title} onInput=${set("title")} /></label>
      <${PersonPicker} label="Assignee" name="assignee" value=${form.assignee_id}
        onChange=${(id) => setForm((f) => ({ ...f, assignee_id: id }))} />
      <${LabelPicker} labels=${labels.data?.items || []} channelId=${task.channel_id} value=${form.tags}
        onChange=${(tags) => setForm((f) => ({ ...f, tags }))} />
      <button type="submit" disabled=${action.busy || !!conflict}>Save</button>
    </form>
    ${conflict ? html`<${Conflict} conflict=${conflict} base=${base}
      onReload=${() => start(conflict.latest)}
      onMerge=${() => send(conflict.mine, conflict.latest)} />` : ""}
    <div class="actions" role="group" aria-label="Status">
      ${STATUSES.filter((s) => s !== task.status).map((s) => html`
        <button type="button" disabled=${action.busy} onClick=${() => action.run(async () => {
          await api("PATCH", `/api/v1/tasks/${task.id}`, { status: s }, { headers: { "if-match": etag(task) } });
          onSaved();
        })}>${s === "done" ? "Complete" : `Move to ${s}`}</button>`)}
    </div>
    <${Problem} error=${action.error} />
  </section>`;
}

/** What someone else changed since the form was filled, and the two ways on. */
function Conflict({ conflict, base, onReload, onMerge }) {
  const { latest, mine } = conflict;
  const theirs = Object.keys(changesFrom(formOf(latest), base));
  const show = (field, v) => (v === null || v === "" ? "nobody"
    : field === "assignee_id" ? nameOf(v) : `“${v}”`);
  return html`<div class="conflict" role="alert">
    <p><b>This task changed since you opened it.</b> Nothing of yours was saved.</p>
    <ul>
      ${theirs.map((f) => html`<li>now: ${f === "assignee_id" ? "assignee" : f} ${show(f, formOf(latest)[f])}</li>`)}
      ${Object.entries(mine).map(([f, v]) => html`<li>yours: ${f === "assignee_id" ? "assignee" : f} ${show(f, v)}</li>`)}
    </ul>
    <button type="button" onClick=${onReload}>Reload (drop my changes)</button>
    <button type="button" onClick=${onMerge}>Merge (their changes, then mine)</button>
  </div>`;
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
  const percent = progress?.percent;
  return html`<section aria-labelledby="job-title">
    <h2 id="job-title">Job: ${task.job.kind} on ${task.job.pool}</h2>
    <p>State <b data-job-state=${task.status}>${task.status}</b>, attempt ${task.job.attempt} of ${task.job.max_attempts}</p>
    ${percent != null ? html`<label>Progress <progress max="100" value=${percent}>${percent}%</progress> ${progress.message || ""}</label>` : ""}
    <button type="button" onClick=${() => action.run(() => api("POST", `/api/v1/tasks/${task.id}/cancel`))}
      disabled=${action.busy}>Cancel job</button>
    <${Problem} error=${action.error} />
    <table tabindex="0">
      <caption>Attempts</caption>
      <thead><tr><th scope="col">#</th><th scope="col">worker</th><th scope="col">started</th><th scope="col">ended</th><th scope="col">outcome</th><th scope="col">error</th></tr></thead>
      <tbody>${(attempts.data?.items || []).map((a) => html`<tr>
        <td>${a.attempt}</td><td>${a.worker_id}</td><td>${when(a.started_at)}</td><td>${when(a.ended_at)}</td>
        <td>${a.outcome}</td><td>${a.error || ""}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

// My tasks: the list (filters, search, paging, live updates) and the form that creates one. One
// task's page is in task.js.

import { html, useState } from "../vendor/htm-preact.js";
import { api, session } from "./api.js";
import { Chips, LabelManager } from "./labels.js";
import { PersonPicker, nameOf, useNames } from "./persons.js";
import { RepeatPicker, inWords } from "./repeat.js";
import { useLoad, useStream, useThrottled, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

export const STATUSES = ["todo", "in_progress", "done", "cancelled"];
export const PRIORITIES = ["low", "normal", "high", "urgent"];
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

/** The list's filters as the API reads them, and `due`, the choice its due dates came from. */
const NO_FILTERS = { status: "", priority: "", channel_id: "", tag: "", q: "", assignee_id: "", due: "",
  due_before: "", due_after: "", sort: "" };
const SORTS = { "": "newest first", created_at: "oldest first", due_at: "due date", "-priority": "priority" };
const DUES = { "": "any", past: "past due", today: "today", week: "in the next 7 days" };

/** The due-date bounds of a choice in `DUES`, fixed when it is made. */
function dueBounds(choice) {
  const now = new Date();
  const day = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const iso = (d) => d.toISOString();
  switch (choice) {
    case "past": return { due_before: iso(now), due_after: "" };
    case "today": return { due_after: iso(day), due_before: iso(new Date(day.getTime() + 86400000)) };
    case "week": return { due_after: iso(now), due_before: iso(new Date(now.getTime() + 7 * 86400000)) };
    default: return { due_before: "", due_after: "" };
  }
}

export function Tasks() {
  usePageTitle("My tasks");
  const [filters, setFilters] = useState(NO_FILTERS);
  const channels = useLoad(() => api("GET", "/api/v1/channels"));
  const labels = useLoad(() => api("GET", "/api/v1/labels"));
  const allLabels = labels.data?.items || [];
  const mine = channels.data?.items || [];
  const query = new URLSearchParams(Object.entries(filters).filter(([k, v]) => v && k !== "due")).toString();
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
        <label>Assignee <select name="assignee_id" value=${filters.assignee_id} onChange=${set("assignee_id")}>
          <option value="">anyone</option>
          <option value=${session()?.user?.id}>me</option>
        </select></label>
        <label>Due <select name="due" value=${filters.due}
          onChange=${(e) => setFilters({ ...filters, due: e.target.value, ...dueBounds(e.target.value) })}>
          ${Object.entries(DUES).map(([k, v]) => html`<option value=${k}>${v}</option>`)}
        </select></label>
        <label>Sort <select name="sort" value=${filters.sort} onChange=${set("sort")}>
          ${Object.entries(SORTS).map(([k, v]) => html`<option value=${k}>${v}</option>`)}
        </select></label>
        <label>Search <input name="q" type="search" value=${filters.q} onInput=${set("q")} /></label>
      </form>
      <${SavedViews} filters=${filters} onApply=${(saved) => setFilters({ ...NO_FILTERS, ...saved, ...dueBounds(saved.due) })} />
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
 * Saved views: the list's filters and sort under a name, kept in this browser for this person;
 * choosing one applies it (a due-date choice counts from the moment it is applied).
 */
function SavedViews({ filters, onApply }) {
  const key = `taskmesh.views.${session()?.user?.id}`;
  const [views, setViews] = useState(() => JSON.parse(localStorage.getItem(key) || "[]"));
  const [name, setName] = useState("");
  const keep = (next) => {
    localStorage.setItem(key, JSON.stringify(next));
    setViews(next);
  };
  const save = (e) => {
    e.preventDefault();
    const { due_before, due_after, ...chosen } = filters;
    keep([...views.filter((v) => v.name !== name.trim()), { name: name.trim(), filters: chosen }]);
    setName("");
  };
  return html`<div class="views">
    ${views.length ? html`<span role="group" aria-label="Saved views">Saved views:
      ${views.map((v) => html`<span class="view"><button type="button" class="link" onClick=${() => onApply(v.filters)}>${v.name}</button>
        <button type="button" class="link" aria-label=${`Forget the view ${v.name}`}
          onClick=${() => keep(views.filter((w) => w.name !== v.name))}>×</button></span>`)}</span>` : ""}
    <form class="inline" onSubmit=${save} aria-label="Save this view">
      <label>Save these filters as <input name="view" required maxlength="40" value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <button type="submit">Save view</button>
    </form>
  </div>`;
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
    <span class="muted">${role}${channel ? ` · in ${channel.name}` : ""}${task.job ? ` · job ${task.job.kind}` : ""}${task.due_at ? ` · due ${when(task.due_at)}` : ""}${task.recurrence ? ` · repeats ${inWords(task.recurrence)}` : ""}</span>
  </li>`;
}

const EMPTY = { title: "", priority: "", assignee_id: "", due_at: "", channel_id: "", recurrence: "" };

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
    if (form.recurrence) body.recurrence = form.recurrence;
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
    <${RepeatPicker} value=${form.recurrence} due=${form.due_at}
      onChange=${(rule) => setForm((f) => ({ ...f, recurrence: rule }))} />
    <button type="submit" disabled=${action.busy}>Create</button>
    <${Problem} error=${action.error} />
  </form>`;
}

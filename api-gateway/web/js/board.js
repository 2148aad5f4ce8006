// The board (`#/board`): my people's tasks (not jobs) in a column per status. A card moves by
// drag and drop, or with the keyboard through its "Move to" menu; either saves the status with
// the card's ETag, so a card changed meanwhile is refused (412) and the board reloads. Follows
// live changes, at most one reload a second.

import { html, useState } from "../vendor/htm-preact.js";
import { api, etag } from "./api.js";
import { STATUS_NAMES } from "./history.js";
import { Avatar, nameOf, useNames } from "./persons.js";
import { listTasks } from "./tasks.js";
import { useLoad, useStream, useThrottled, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

const COLUMNS = ["todo", "in_progress", "done", "cancelled"];
/** Where each status may move (the API's rule; the menu offers only these). */
const NEXT = { todo: ["in_progress", "done", "cancelled"], in_progress: ["todo", "done", "cancelled"], done: ["todo"], cancelled: ["todo"] };
/** Cards the board loads at most. */
const MOST = 500;

export function Board() {
  usePageTitle("Board");
  const channels = useLoad(() => api("GET", "/api/v1/channels"));
  const [channel, setChannel] = useState("");
  const query = channel ? `channel_id=${channel}` : "";
  const tasks = useLoad(() => listTasks(query, MOST), [query]);
  const refresh = useThrottled(tasks.reload, 1000);
  useStream((type) => {
    if (type.startsWith("task.") || type === "reset") refresh();
  }, [refresh]);
  const action = useAction();
  const [said, setSaid] = useState("");
  const [over, setOver] = useState(null);
  const items = (tasks.data?.items || []).filter((t) => !t.job);
  useNames(items.map((t) => t.assignee_id));
  const move = (task, to) => action.run(async () => {
    if (task.status === to) return;
    try {
      await api("PATCH", `/api/v1/tasks/${task.id}`, { status: to }, { headers: { "if-match": etag(task) } });
      setSaid(`“${task.title}” moved to ${STATUS_NAMES[to]}`);
    } finally {
      tasks.reload();
    }
  });
  const drop = (to) => (e) => {
    e.preventDefault();
    setOver(null);
    const task = items.find((t) => t.id === e.dataTransfer.getData("text/plain"));
    if (task) move(task, to);
  };
  return html`<section aria-labelledby="board-title">
    <h1 id="board-title">Board</h1>
    <form class="filters" onSubmit=${(e) => e.preventDefault()}>
      <label>Channel <select name="channel_id" value=${channel} onChange=${(e) => setChannel(e.target.value)}>
        <option value="">any</option>
        ${(channels.data?.items || []).map((c) => html`<option value=${c.id}>${c.name}</option>`)}
      </select></label>
    </form>
    <p class="visually-hidden" role="status" aria-live="polite">${said}</p>
    <${Problem} error=${action.error || tasks.error} />
    ${!tasks.data ? html`<${Loading} what="the board" />` : html`<div class="board">
      ${COLUMNS.map((status) => {
        const cards = items.filter((t) => t.status === status);
        return html`<section class=${`column${over === status ? " over" : ""}`} data-column=${status}
          aria-labelledby=${`col-${status}`}
          onDragOver=${(e) => { e.preventDefault(); setOver(status); }}
          onDragLeave=${() => setOver(null)} onDrop=${drop(status)}>
          <h2 id=${`col-${status}`}>${STATUS_NAMES[status]} <span class="muted">${cards.length}</span></h2>
          <ul>${cards.map((t) => html`<${Card} key=${t.id} task=${t} onMove=${move} busy=${action.busy} />`)}</ul>
        </section>`;
      })}
    </div>
    ${tasks.data.next_cursor ? html`<p class="muted">The board shows your newest ${MOST} tasks.</p>` : ""}`}
  </section>`;
}

function Card({ task, onMove, busy }) {
  const assignee = task.assignee_id ? nameOf(task.assignee_id) : null;
  return html`<li class="card" draggable="true" data-task=${task.id}
    onDragStart=${(e) => { e.dataTransfer.setData("text/plain", task.id); e.dataTransfer.effectAllowed = "move"; }}>
    <a href=${`#/tasks/${task.id}`}>${task.title}</a>
    <div class="card-meta">
      <span class=${`priority priority-${task.priority}`}>${task.priority}</span>
      ${task.due_at ? html`<span class="muted">due ${when(task.due_at)}</span>` : ""}
      ${assignee ? html`<span title=${`assigned to ${assignee}`}><${Avatar} name=${assignee} /><span class="visually-hidden">assigned to ${assignee}</span></span>` : ""}
    </div>
    <label class="move">Move to <select value="" disabled=${busy} aria-label=${`Move “${task.title}” to`}
      onChange=${(e) => e.target.value && onMove(task, e.target.value)}>
      <option value="">…</option>
      ${NEXT[task.status].map((s) => html`<option value=${s}>${STATUS_NAMES[s]}</option>`)}
    </select></label>
  </li>`;
}

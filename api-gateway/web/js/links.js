// A task's subtasks (with its progress, done of total, and a quick way to add one) and its
// relations to other tasks, each read in this task's words ("blocked by …"), with a search to
// add one and a button to remove each.

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { STATUS_NAMES } from "./history.js";
import { useLoad, useStream, Problem, useAction } from "./ui.js";

const RELATIONS = { blocks: "blocks", blocked_by: "blocked by", relates_to: "relates to",
  duplicates: "duplicates", duplicated_by: "duplicated by" };

/** Reloads `loads` when a task event names this task or one of `others`. */
function useLive(taskId, loads, others = []) {
  useStream((type, event) => {
    if (!type.startsWith("task.")) return;
    const id = event?.data?.task_id || event?.subject;
    if (id === taskId || others.includes(id) || event?.data?.parent_id === taskId) loads.forEach((l) => l.reload());
  }, [taskId, others.join(",")]);
}

export function Subtasks({ task }) {
  const children = useLoad(() => api("GET", `/api/v1/tasks/${task.id}/children`), [task.id]);
  const items = children.data?.items || [];
  useLive(task.id, [children], items.map((c) => c.id));
  const [title, setTitle] = useState("");
  const action = useAction();
  const add = async (e) => {
    e.preventDefault();
    const body = { title, parent_id: task.id };
    if (task.channel_id) body.channel_id = task.channel_id;
    if (await action.run(() => api("POST", "/api/v1/tasks", body))) {
      setTitle("");
      children.reload();
    }
  };
  const { done = 0, total = 0 } = children.data || {};
  return html`<section aria-labelledby="subtasks-title">
    <h2 id="subtasks-title">Subtasks</h2>
    ${total ? html`<p><label>Progress <progress max=${total} value=${done}></progress></label>
      <span data-progress>${done} of ${total} done</span></p>` : ""}
    <${Problem} error=${children.error} />
    <ul class="subtasks">
      ${items.map((c) => html`<li><a href=${`#/tasks/${c.id}`}>${c.title}</a>
        <span class=${`status status-${c.status}`}>${STATUS_NAMES[c.status] || c.status}</span></li>`)}
    </ul>
    <form class="inline" onSubmit=${add} aria-label="New subtask">
      <label>New subtask <input name="subtask" required maxlength="200" value=${title}
        onInput=${(e) => setTitle(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Add subtask</button>
    </form>
    <${Problem} error=${action.error} />
  </section>`;
}

export function Relations({ task }) {
  const list = useLoad(() => api("GET", `/api/v1/tasks/${task.id}/relations`), [task.id]);
  const items = list.data?.items || [];
  useLive(task.id, [list], items.map((r) => r.task_id));
  const action = useAction();
  const remove = (r) => action.run(async () => {
    await api("DELETE", `/api/v1/tasks/${task.id}/relations/${r.relation}/${r.task_id}`);
    list.reload();
  });
  return html`<section aria-labelledby="relations-title">
    <h2 id="relations-title">Related tasks</h2>
    <${Problem} error=${list.error} />
    <ul class="relations">
      ${items.map((r) => html`<li data-relation=${r.relation}>${RELATIONS[r.relation]}${" "}
        <a href=${`#/tasks/${r.task_id}`}>${r.title}</a>${" "}
        <span class=${`status status-${r.status}`}>${STATUS_NAMES[r.status] || r.status}</span>${" "}
        <button type="button" class="link" disabled=${action.busy} onClick=${() => remove(r)}
          aria-label=${`Remove: ${RELATIONS[r.relation]} ${r.title}`}>Remove</button></li>`)}
    </ul>
    ${list.data && items.length === 0 ? html`<p class="muted">No related tasks.</p>` : ""}
    <${Relate} task=${task} onAdded=${list.reload} />
    <${Problem} error=${action.error} />
  </section>`;
}

/** Finds a task by its words and relates this one to it. */
function Relate({ task, onAdded }) {
  const [relation, setRelation] = useState("blocks");
  const [words, setWords] = useState("");
  const [other, setOther] = useState("");
  const found = useLoad(async () => {
    if (words.trim().length < 2) return { items: [] };
    return api("GET", `/api/v1/tasks?limit=20&q=${encodeURIComponent(words.trim())}`);
  }, [words]);
  const matches = (found.data?.items || []).filter((t) => t.id !== task.id);
  const chosen = matches.some((t) => t.id === other) ? other : matches[0]?.id || "";
  const action = useAction();
  const add = async (e) => {
    e.preventDefault();
    if (!chosen) return;
    if (await action.run(() => api("POST", `/api/v1/tasks/${task.id}/relations`, { relation, task_id: chosen }))) {
      setWords("");
      onAdded();
    }
  };
  return html`<form class="inline" onSubmit=${add} aria-label="Relate to a task">
    <label>This task <select name="relation" value=${relation} onChange=${(e) => setRelation(e.target.value)}>
      ${Object.entries(RELATIONS).map(([k, v]) => html`<option value=${k}>${v}</option>`)}
    </select></label>
    <label>Find a task <input name="find" type="search" value=${words} onInput=${(e) => setWords(e.target.value)} /></label>
    <label>Task <select name="other" value=${chosen} onChange=${(e) => setOther(e.target.value)} disabled=${!matches.length}>
      ${matches.length ? matches.map((t) => html`<option value=${t.id}>${t.title}</option>`)
        : html`<option value="">${words.trim().length < 2 ? "type two letters" : "no match"}</option>`}
    </select></label>
    <button type="submit" disabled=${action.busy || !chosen}>Relate</button>
    <${Problem} error=${action.error} />
  </form>`;
}

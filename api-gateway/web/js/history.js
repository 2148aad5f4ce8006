// A task's history in words: who did what, as a sentence per change ("Ada moved it to Done and
// assigned it to Bob"), names for every person in it.

import { html } from "../vendor/htm-preact.js";
import { session } from "./api.js";
import { Avatar, nameOf, useNames } from "./persons.js";
import { inWords } from "./repeat.js";
import { when } from "./ui.js";

const NIL = "00000000-0000-0000-0000-000000000000";

export const STATUS_NAMES = { todo: "To do", in_progress: "In progress", done: "Done", cancelled: "Cancelled" };

/** Who made a change: `You`, `Taskmesh` (the system), or their name. */
function actorOf(entry) {
  if (entry.actor_id === session()?.user?.id) return "You";
  if (entry.actor_id === NIL) return "Taskmesh";
  return entry.actor_name || nameOf(entry.actor_id);
}

/** "a", "a and b", "a, b and c". */
function joined(parts) {
  if (parts.length < 2) return parts.join("");
  return `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`;
}

/** What one field's change did, as the end of a sentence. */
function phrase(field, { from, to }) {
  switch (field) {
    case "status": return `moved it to ${STATUS_NAMES[to] || to}`;
    case "title": return `renamed it to “${to}”`;
    case "description": return to ? "changed the description" : "removed the description";
    case "priority": return `set the priority to ${to}`;
    case "due_at": return to ? `set the due date to ${when(to)}` : "removed the due date";
    case "assignee_id": {
      if (!to) return `unassigned ${from === session()?.user?.id ? "you" : nameOf(from)}`;
      return `assigned it to ${to === session()?.user?.id ? "you" : nameOf(to)}`;
    }
    case "tags": return to?.length ? `set the tags to ${to.join(", ")}` : "removed the tags";
    case "channel_id": return to ? "moved it to another channel" : "made it personal (no channel)";
    case "parent_id": return to ? "made it a subtask" : "made it a task of its own";
    case "recurrence": return to ? `set it to repeat ${inWords(to)}` : "stopped it repeating";
    default: return `changed ${field}`;
  }
}

/** One entry as a sentence. */
export function sentence(entry) {
  const changes = Object.entries(entry.changes || {});
  const what = changes.length ? joined(changes.map(([f, c]) => phrase(f, c))) : "changed it";
  return `${actorOf(entry)} ${what}`;
}

/** A task's creation and its recorded changes, oldest first. */
export function History({ task, entries }) {
  const people = entries.flatMap((h) => [h.actor_id, h.changes?.assignee_id?.from, h.changes?.assignee_id?.to]);
  useNames([task.owner_id, ...people]);
  const created = nameOf(task.owner_id);
  return html`<section aria-labelledby="history-title">
    <h2 id="history-title">History</h2>
    <ol class="history">
      <li><${Avatar} name=${created} /> ${created} created it <time datetime=${task.created_at}>${when(task.created_at)}</time></li>
      ${entries.map((h) => html`<li><${Avatar} name=${actorOf(h)} /> ${sentence(h)}
        <time datetime=${h.at}>${when(h.at)}</time></li>`)}
    </ol>
  </section>`;
}

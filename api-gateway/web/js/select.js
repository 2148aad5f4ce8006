// Picking jobs to act on together (the Jobs and Dead jobs pages): a selection of the rows shown,
// and one action on all of it, asked first with how many it is about and told after with what
// it did (`POST /api/v1/admin/jobs/bulk`).

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";

export const BULK = {
  retry_now: { button: "Run selected now", verb: "Run now", done: "ran now" },
  cancel: { button: "Cancel selected", verb: "Cancel", done: "cancelled" },
  replay: { button: "Replay selected", verb: "Replay", done: "replayed" },
  delete: { button: "Delete selected", verb: "Delete", done: "deleted", danger: true },
};

/** "1 job", "3 jobs". */
export const jobs = (n) => `${n} job${n === 1 ? "" : "s"}`;

/** The ids picked among `shown` (a row no longer shown is no longer picked). */
export function useSelection(shown) {
  const [picked, setPicked] = useState(() => new Set());
  const ids = shown.filter((id) => picked.has(id));
  const toggle = (id, on) => setPicked((before) => {
    const after = new Set(before);
    if (on) after.add(id);
    else after.delete(id);
    return after;
  });
  return {
    ids,
    has: (id) => picked.has(id),
    toggle,
    all: (on) => setPicked(new Set(on ? shown : [])),
    clear: () => setPicked(new Set()),
  };
}

/**
 * Runs `action` on `ids` once the person confirmed it ("Replay 3 jobs?"); resolves to the
 * sentence saying what it did, or null when they said no.
 */
export async function runBulk(action, ids) {
  const { verb, done } = BULK[action];
  const warning = action === "delete" ? " A deleted job and its task cannot be brought back." : "";
  if (!window.confirm(`${verb} ${jobs(ids.length)}?${warning}`)) return null;
  const answer = await api("POST", "/api/v1/admin/jobs/bulk", { action, task_ids: ids });
  const skipped = answer.skipped ? `; ${jobs(answer.skipped)} skipped (their state does not allow it)` : "";
  return `${jobs(answer.done)} ${done}${skipped}.`;
}

/** The selection's count and the `actions` that apply to it. */
export function BulkBar({ selection, actions, busy, onAction }) {
  const n = selection.ids.length;
  return html`<div class="actions bulk" role="group" aria-label="Selected jobs">
    <span aria-live="polite">${n} selected</span>
    ${actions.map((a) => html`<button type="button" class=${BULK[a].danger ? "danger" : ""}
      disabled=${!n || busy} onClick=${() => onAction(a)}>${BULK[a].button}</button>`)}
    ${n ? html`<button type="button" class="link" onClick=${selection.clear}>Clear selection</button>` : ""}
  </div>`;
}

/** The header cell that picks (or unpicks) every row shown. */
export function PickAll({ selection, shown }) {
  const all = shown.length > 0 && selection.ids.length === shown.length;
  return html`<th scope="col"><input type="checkbox" aria-label="Select every job shown" checked=${all}
    disabled=${!shown.length} onChange=${(e) => selection.all(e.target.checked)} /></th>`;
}

/** A row's cell that picks it. */
export function Pick({ selection, id, title }) {
  return html`<td><input type="checkbox" aria-label=${`Select ${title}`} checked=${selection.has(id)}
    onChange=${(e) => selection.toggle(id, e.target.checked)} /></td>`;
}

// The operators' cron templates (`#/admin/cron`): every live template with its schedule, next
// ticks and last runs; its schedule edited in place (a wrong expression is refused with the
// reason, and the form keeps it); Pause and Resume (asked first: a paused template skips its
// ticks) and Run now, each saying what it did.

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

export function CronTemplates() {
  usePageTitle("Cron templates");
  const list = useLoad(() => api("GET", "/api/v1/admin/cron"));
  useStream((type) => (type.startsWith("task.") || type.startsWith("job.")) && list.reload(), [list.reload]);
  const [said, setSaid] = useState("");
  const action = useAction();
  const act = (t, verb) => action.run(async () => {
    if (verb !== "run" && !window.confirm(`${verb === "pause" ? "Pause" : "Resume"} “${t.title}” (${t.cron})?`)) return;
    const answer = await api("POST", `/api/v1/admin/cron/${t.task_id}/${verb}`);
    setSaid(verb === "run" ? `“${t.title}” ran now: task ${answer.id}.`
      : `“${t.title}” is ${verb === "pause" ? "paused: no tick runs until it is resumed" : "running again from its next tick"}.`);
    list.reload();
  });
  const [editing, setEditing] = useState(null);
  const [draft, setDraft] = useState("");
  const save = (e, t) => {
    e.preventDefault();
    const cron = draft.trim();
    action.run(async () => {
      const answer = await api("PATCH", `/api/v1/admin/cron/${t.task_id}`, { cron });
      setEditing(null);
      const next = answer.next_ticks[0] ? `: next tick ${when(answer.next_ticks[0])}` : "";
      setSaid(`“${t.title}” now runs on ${answer.cron}${next}.`);
      list.reload();
    });
  };
  const items = list.data?.items || [];
  return html`<section aria-labelledby="cron-title">
    <h1 id="cron-title">Cron templates</h1>
    <p role="status" class="muted">${said}</p>
    <${Problem} error=${list.error || action.error} />
    ${!list.data ? html`<${Loading} what="cron templates" />` : html`<table tabindex="0">
      <caption>Live templates, the next due first</caption>
      <thead><tr><th scope="col">template</th><th scope="col">schedule</th><th scope="col">next ticks</th>
        <th scope="col">last runs</th><th scope="col">runs</th><th scope="col">actions</th></tr></thead>
      <tbody>${items.map((t) => html`<tr data-template=${t.task_id}>
        <th scope="row"><a href=${`#/tasks/${t.task_id}`}>${t.title}</a><br /><span class="muted">${t.kind} on ${t.pool}</span></th>
        <td>${editing === t.task_id ? html`<form class="inline" onSubmit=${(e) => save(e, t)}>
            <input name="cron" maxlength="100" required value=${draft} onInput=${(e) => setDraft(e.target.value)}
              aria-label=${`Schedule of ${t.title}`} />
            <button type="submit" disabled=${action.busy}>Save</button>
            <button type="button" class="link" onClick=${() => setEditing(null)}>Cancel</button></form>`
          : html`<code>${t.cron}</code> <button type="button" class="link" onClick=${() => { action.clear(); setDraft(t.cron); setEditing(t.task_id); }}
            aria-label=${`Edit the schedule of ${t.title}`}>Edit</button>`}</td>
        <td>${t.paused_at ? html`<span class="state state-dead">paused</span> since ${when(t.paused_at)}`
          : t.next_ticks.map((at) => html`<div>${when(at)}</div>`)}</td>
        <td>${t.last_runs.map((r) => html`<div><a href=${`#/tasks/${r.task_id}`}>${when(r.scheduled_for)}</a> ${r.status}</div>`)}</td>
        <td>${t.runs}</td>
        <td><button type="button" disabled=${action.busy} onClick=${() => act(t, t.paused_at ? "resume" : "pause")}
            aria-label=${`${t.paused_at ? "Resume" : "Pause"} ${t.title}`}>${t.paused_at ? "Resume" : "Pause"}</button>
          <button type="button" disabled=${action.busy} onClick=${() => act(t, "run")}
            aria-label=${`Run now: ${t.title}`}>Run now</button></td></tr>`)}</tbody>
    </table>
    ${items.length === 0 ? html`<p class="muted">No cron templates.</p>` : ""}`}
  </section>`;
}

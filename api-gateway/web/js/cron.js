// The operators' cron templates (`#/admin/cron`): every live template with its schedule, next
// ticks and last runs; Pause and Resume (asked first: a paused template skips its ticks) and
// Run now, each saying what it did.

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
        <td><code>${t.cron}</code></td>
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

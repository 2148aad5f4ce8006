// The operators' job browser (`#/admin/jobs`): jobs by state (tabs), found by kind, pool and
// payload content (a JSON object the payload contains), newest first, a page at a time; each row
// links to its task's page, and a job waiting for its time or its retry can be run now (a cron
// template's runs come from the Cron page). Live: a job event reloads it (at
// most once a second).

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, useThrottled, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

const STATES = ["", "scheduled", "queued", "running", "retrying", "dead", "completed", "cancelled", "pending"];
const PAGE = 50;

/** `{items, next_before}` of the jobs `query` selects, the first `pages` pages. */
async function search(query, pages) {
  let items = [];
  let before = null;
  for (let page = 0; page < pages; page += 1) {
    const after = before ? `&before=${before}` : "";
    const answer = await api("GET", `/api/v1/admin/jobs?limit=${PAGE}&${query}${after}`);
    items = items.concat(answer.items);
    before = answer.next_before || null;
    if (!before) break;
  }
  return { items, next_before: before };
}

export function Jobs() {
  usePageTitle("Jobs");
  const [filters, setFilters] = useState({ state: "", kind: "", pool: "", payload: "" });
  const [typed, setTyped] = useState({ kind: "", pool: "", payload: "" });
  const [pages, setPages] = useState(1);
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  const list = useLoad(() => search(query, pages), [query, pages]);
  const refresh = useThrottled(list.reload, 1000);
  useStream((type) => (type.startsWith("job.") || type.startsWith("task.")) && refresh(), [refresh]);
  const action = useAction();
  const [said, setSaid] = useState("");
  const retry = (job) => action.run(async () => {
    await api("POST", `/api/v1/admin/jobs/${job.task_id}/retry`);
    setSaid(`“${job.title}” was handed to its pool now.`);
    list.reload();
  });
  const apply = (e) => {
    e.preventDefault();
    setPages(1);
    setFilters({ ...filters, ...typed });
  };
  const set = (name) => (e) => setTyped({ ...typed, [name]: e.target.value });
  const items = list.data?.items || [];
  return html`<section aria-labelledby="jobs-title">
    <h1 id="jobs-title">Jobs</h1>
    <div class="tabs" role="group" aria-label="State">
      ${STATES.map((s) => html`<button type="button" aria-pressed=${filters.state === s ? "true" : "false"}
        onClick=${() => { setPages(1); setFilters({ ...filters, state: s }); }}>${s || "all"}</button>`)}
    </div>
    <form class="filters" role="search" onSubmit=${apply} aria-label="Find jobs">
      <label>Kind <input name="kind" maxlength="100" value=${typed.kind} onInput=${set("kind")} /></label>
      <label>Pool <input name="pool" maxlength="100" value=${typed.pool} onInput=${set("pool")} /></label>
      <label>Payload contains (JSON) <input name="payload" maxlength="1024" placeholder='{"customer": "acme"}'
        value=${typed.payload} onInput=${set("payload")} /></label>
      <button type="submit">Find</button>
    </form>
    <p role="status" class="muted">${said}</p>
    <${Problem} error=${list.error || action.error} />
    ${!list.data ? html`<${Loading} what="jobs" />` : html`<table tabindex="0">
      <caption>${items.length} job${items.length === 1 ? "" : "s"}, newest first</caption>
      <thead><tr><th scope="col">job</th><th scope="col">state</th><th scope="col">pool</th><th scope="col">attempts</th>
        <th scope="col">created</th><th scope="col">payload</th><th scope="col">last error</th><th scope="col">actions</th></tr></thead>
      <tbody>${items.map((j) => html`<tr data-job=${j.task_id}>
        <th scope="row"><a href=${`#/tasks/${j.task_id}`}>${j.title}</a><br /><span class="muted">${j.kind}</span></th>
        <td><span class=${`status status-${j.status}`}>${j.status}</span></td><td>${j.pool}</td>
        <td>${j.attempt} of ${j.max_attempts}</td><td>${when(j.created_at)}</td>
        <td><code class="payload">${JSON.stringify(j.payload).slice(0, 120)}</code></td>
        <td>${j.last_error || ""}</td>
        <td>${j.status === "retrying" || (j.status === "scheduled" && j.run_at) ? html`<button type="button" disabled=${action.busy}
          onClick=${() => retry(j)} aria-label=${`Run now: ${j.title}`}>Run now</button>` : ""}</td></tr>`)}</tbody>
    </table>
    ${list.data.next_before ? html`<p class="more"><button type="button" onClick=${() => setPages(pages + 1)}>Load more</button></p>` : ""}`}
  </section>`;
}

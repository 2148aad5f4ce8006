// The operators' job browser (`#/admin/jobs`, its filters may follow: `#/admin/jobs?pool=default&
// state=queued`, as the pools page links): jobs by state (tabs with counts), found by kind,
// pool, owner, payload content (a JSON object the payload contains), error text and creation
// time, newest or oldest first, a page at a time. Each row links to its task's page; rows picked
// are run now, cancelled, replayed or deleted together after a confirmation that says how many.
// Live: a job event reloads the list and the counts (at most once a second).

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, useThrottled, Problem, Loading, when, duration, useAction, usePageTitle } from "./ui.js";
import { useSelection, runBulk, BulkBar, PickAll, Pick } from "./select.js";

const STATES = ["scheduled", "queued", "running", "retrying", "dead", "completed", "cancelled", "pending"];
const PAGE = 50;
const BLANK = { state: "", kind: "", pool: "", owner: "", payload: "", error: "", created_after: "", created_before: "", sort: "newest" };
const TEXT = ["kind", "pool", "payload", "error", "created_after", "created_before", "sort"];

/** The API's query for `filters` (a local date-time as an instant), without `leave`. */
function queryOf(filters, leave = []) {
  const entries = Object.entries(filters)
    .filter(([k, v]) => v && !leave.includes(k) && !(k === "sort" && v === "newest"))
    .map(([k, v]) => [k, k.startsWith("created_") ? new Date(v).toISOString() : v]);
  return new URLSearchParams(entries).toString();
}

/** `{items, next}` of the jobs `query` selects, the first `pages` pages. */
async function search(query, oldest, pages) {
  let items = [];
  let cursor = null;
  for (let page = 0; page < pages; page += 1) {
    const at = cursor ? `&${oldest ? "after" : "before"}=${cursor}` : "";
    const answer = await api("GET", `/api/v1/admin/jobs?limit=${PAGE}&${query}${at}`);
    items = items.concat(answer.items);
    cursor = (oldest ? answer.next_after : answer.next_before) || null;
    if (!cursor) break;
  }
  return { items, next: cursor };
}

export function Jobs({ initial = "" }) {
  usePageTitle("Jobs");
  const given = Object.fromEntries(new URLSearchParams(initial));
  const start = Object.fromEntries(Object.keys(BLANK).map((k) => [k, given[k] ?? BLANK[k]]));
  const [filters, setFilters] = useState(start);
  const [typed, setTyped] = useState(start);
  const [ownerName, setOwnerName] = useState(given.owner_name || "");
  const [pages, setPages] = useState(1);
  const query = queryOf(filters);
  const oldest = filters.sort === "oldest";
  const list = useLoad(() => search(query, oldest, pages), [query, pages]);
  const counts = useLoad(() => api("GET", `/api/v1/admin/jobs/counts?${queryOf(filters, ["state", "sort"])}`), [query]);
  const reload = () => { list.reload(); counts.reload(); };
  const refresh = useThrottled(reload, 1000);
  useStream((type) => (type.startsWith("job.") || type.startsWith("task.")) && refresh(), [refresh]);
  const items = list.data?.items || [];
  const selection = useSelection(items.map((j) => j.task_id));
  const action = useAction();
  const [said, setSaid] = useState("");
  const bulk = (name) => action.run(async () => {
    const sentence = await runBulk(name, selection.ids);
    if (!sentence) return;
    setSaid(sentence);
    selection.clear();
    reload();
  });
  const change = (next) => { setPages(1); selection.clear(); setFilters(next); };
  const apply = (e) => {
    e.preventDefault();
    change({ ...filters, ...Object.fromEntries(TEXT.map((k) => [k, typed[k]])) });
  };
  const set = (name) => (e) => setTyped({ ...typed, [name]: e.target.value });
  const byOwner = (j) => { setOwnerName(j.owner_name || "this person"); change({ ...filters, owner: j.owner_id }); };
  const total = counts.data ? Object.values(counts.data.counts).reduce((a, b) => a + b, 0) : null;
  const tab = (state, count) => html`<button type="button" aria-pressed=${filters.state === state ? "true" : "false"}
    onClick=${() => change({ ...filters, state })}>${state || "all"}${count != null ? html` <span class="count">${count}</span>` : ""}</button>`;
  return html`<section aria-labelledby="jobs-title">
    <h1 id="jobs-title">Jobs</h1>
    <div class="tabs" role="group" aria-label="State">
      ${tab("", total)}${STATES.map((s) => tab(s, counts.data?.counts[s]))}
    </div>
    <form class="filters" role="search" onSubmit=${apply} aria-label="Find jobs">
      <label>Kind <input name="kind" maxlength="100" value=${typed.kind} onInput=${set("kind")} /></label>
      <label>Pool <input name="pool" maxlength="100" value=${typed.pool} onInput=${set("pool")} /></label>
      <label>Payload contains (JSON) <input name="payload" maxlength="1024" placeholder='{"customer": "acme"}'
        value=${typed.payload} onInput=${set("payload")} /></label>
      <label>Error contains <input name="error" maxlength="200" value=${typed.error} onInput=${set("error")} /></label>
      <label>Created from <input type="datetime-local" name="created_after" value=${typed.created_after} onInput=${set("created_after")} /></label>
      <label>Created before <input type="datetime-local" name="created_before" value=${typed.created_before} onInput=${set("created_before")} /></label>
      <label>Order <select name="sort" value=${typed.sort} onChange=${set("sort")}>
        <option value="newest">newest first</option><option value="oldest">oldest first</option></select></label>
      <button type="submit">Find</button>
    </form>
    ${filters.owner ? html`<p>Only jobs of <b>${ownerName || "one person"}</b>
      <button type="button" class="link" onClick=${() => change({ ...filters, owner: "" })}>Any owner</button></p>` : ""}
    <${BulkBar} selection=${selection} actions=${["retry_now", "cancel", "replay", "delete"]} busy=${action.busy} onAction=${bulk} />
    <p role="status" class="muted">${said}</p>
    <${Problem} error=${list.error || counts.error || action.error} />
    ${!list.data ? html`<${Loading} what="jobs" />` : html`<table tabindex="0">
      <caption>${items.length} job${items.length === 1 ? "" : "s"}, ${oldest ? "oldest" : "newest"} first</caption>
      <thead><tr><${PickAll} selection=${selection} shown=${items} /><th scope="col">job</th><th scope="col">state</th>
        <th scope="col">pool</th><th scope="col">priority</th><th scope="col">attempts</th><th scope="col">owner</th>
        <th scope="col">created</th><th scope="col">took</th><th scope="col">payload</th><th scope="col">last error</th></tr></thead>
      <tbody>${items.map((j) => html`<tr data-job=${j.task_id}>
        <${Pick} selection=${selection} id=${j.task_id} title=${j.title} />
        <th scope="row"><a href=${`#/tasks/${j.task_id}`}>${j.title}</a><br /><span class="muted">${j.kind}</span></th>
        <td><span class=${`status status-${j.status}`}>${j.status}</span></td><td>${j.pool}</td><td>${j.priority}</td>
        <td>${j.attempt} of ${j.max_attempts}</td>
        <td><button type="button" class="link" onClick=${() => byOwner(j)}
          aria-label=${`Only the jobs of ${j.owner_name || "this person"}`}>${j.owner_name || "this person"}</button></td>
        <td>${when(j.created_at)}</td><td>${duration(j.duration_ms)}</td>
        <td><code class="payload">${JSON.stringify(j.payload).slice(0, 120)}</code></td>
        <td>${j.last_error || ""}</td></tr>`)}</tbody>
    </table>
    ${list.data.next ? html`<p class="more"><button type="button" onClick=${() => setPages(pages + 1)}>Load more</button></p>` : ""}`}
  </section>`;
}

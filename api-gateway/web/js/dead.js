// The dead jobs (`#/admin/dead`): found by pool, kind and error text; each one's error and
// payload, replayed or deleted (asked first) one at a time or picked and replayed or deleted together; Replay
// all and Purge all. Every action that changes them asks first, saying how many, and says
// what it did. Live: a job dying or completing reloads the list.

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";
import { useSelection, runBulk, BulkBar, jobs } from "./select.js";

const BLANK = { pool: "", kind: "", error: "" };

export function DeadJobs() {
  usePageTitle("Dead jobs");
  const [filters, setFilters] = useState(BLANK);
  const [typed, setTyped] = useState(BLANK);
  const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
  const dead = useLoad(() => api("GET", `/api/v1/admin/jobs/dead?limit=200&${query}`), [query]);
  useStream((type) => (type === "task.dead" || type === "task.completed") && dead.reload(), [dead.reload]);
  const items = dead.data?.items || [];
  const selection = useSelection(items.map((j) => j.task_id));
  const action = useAction();
  const [said, setSaid] = useState("");
  const done = (sentence) => {
    if (!sentence) return;
    setSaid(sentence);
    selection.clear();
    dead.reload();
  };
  const bulk = (name, ids = selection.ids) => action.run(async () => done(await runBulk(name, ids)));
  // Replay all and Purge all are about every dead job of the pool filtered (or all pools), not
  // only those listed: the count asked comes from the server's list of them.
  const everything = (verb) => action.run(async () => {
    const pool = filters.pool ? { pool: filters.pool } : {};
    const all = await api("GET", `/api/v1/admin/jobs/dead?limit=1000${filters.pool ? `&pool=${encodeURIComponent(filters.pool)}` : ""}`);
    const n = all.items.length;
    const where = filters.pool ? ` of pool ${filters.pool}` : "";
    const question = verb === "replay"
      ? `Replay all ${jobs(n)}${where}? Each is queued again with a fresh budget of attempts.`
      : `Purge all ${jobs(n)}${where} from the dead list? Their tasks stay, dead.`;
    if (!n || !window.confirm(question)) return;
    const answer = verb === "replay"
      ? await api("POST", "/api/v1/admin/jobs/dead/replay", pool)
      : await api("DELETE", "/api/v1/admin/jobs/dead", pool);
    done(`${jobs(answer.count)} ${verb === "replay" ? "replayed" : "purged"}.`);
  });
  // One replay asks nothing (it takes nothing away) and says what it did.
  const replay = (j) => action.run(async () => {
    const answer = await api("POST", "/api/v1/admin/jobs/dead/replay", { task_ids: [j.task_id] });
    done(answer.count ? `“${j.title}” replayed.` : `“${j.title}” was not replayed.`);
  });
  const remove = (j) => action.run(async () => {
    if (!window.confirm(`Delete “${j.title}”? The job and its task cannot be brought back.`)) return;
    await api("DELETE", `/api/v1/admin/jobs/${j.task_id}`);
    done(`“${j.title}” deleted.`);
  });
  const set = (name) => (e) => setTyped({ ...typed, [name]: e.target.value });
  const apply = (e) => {
    e.preventDefault();
    selection.clear();
    setFilters(typed);
  };
  return html`<section aria-labelledby="dead-title">
    <h1 id="dead-title">Dead jobs</h1>
    <form class="filters" role="search" onSubmit=${apply} aria-label="Find dead jobs">
      <label>Pool <input name="pool" maxlength="100" value=${typed.pool} onInput=${set("pool")} /></label>
      <label>Kind <input name="kind" maxlength="100" value=${typed.kind} onInput=${set("kind")} /></label>
      <label>Error contains <input name="error" maxlength="200" value=${typed.error} onInput=${set("error")} /></label>
      <button type="submit">Find</button>
    </form>
    <div class="actions">
      <button type="button" onClick=${() => everything("replay")} disabled=${!items.length || action.busy}>Replay all</button>
      <button type="button" class="danger" onClick=${() => everything("purge")} disabled=${!items.length || action.busy}>Purge all</button>
    </div>
    <${BulkBar} selection=${selection} actions=${["replay", "delete"]} busy=${action.busy} onAction=${(name) => bulk(name)} />
    <p role="status" class="muted">${said}</p>
    <${Problem} error=${action.error || dead.error} />
    ${!dead.data ? html`<${Loading} what="dead jobs" />` : items.length === 0 ? html`<p class="muted">No dead jobs${query ? " match" : ""}.</p>` : html`
    <p><label class="check"><input type="checkbox" checked=${selection.ids.length === items.length}
      onChange=${(e) => selection.all(e.target.checked)} /> Select every dead job shown (${items.length})</label></p>
    <ul class="dead">${items.map((j) => html`<li data-task=${j.task_id}>
      <input type="checkbox" aria-label=${`Select ${j.title}`} checked=${selection.has(j.task_id)}
        onChange=${(e) => selection.toggle(j.task_id, e.target.checked)} />
      <details>
        <summary><b>${j.title}</b> <span class="muted">${j.kind} on ${j.pool} · ${j.attempt}/${j.max_attempts} attempts · died ${when(j.died_at)}</span></summary>
        <p class="error">${j.last_error || "no error recorded"}</p>
        <${Payload} id=${j.task_id} />
      </details>
      <button type="button" onClick=${() => replay(j)} disabled=${action.busy}
        aria-label=${`Replay ${j.title}`}>Replay</button>
      <button type="button" class="danger" onClick=${() => remove(j)} disabled=${action.busy}
        aria-label=${`Delete ${j.title}`}>Delete</button>
      <a href=${`#/tasks/${j.task_id}`}>Open</a>
    </li>`)}</ul>`}
  </section>`;
}

function Payload({ id }) {
  const task = useLoad(() => api("GET", `/api/v1/tasks/${id}`), [id]);
  if (!task.data) return html`<${Problem} error=${task.error} />`;
  return html`<pre class="payload" aria-label="payload">${JSON.stringify(task.data.job?.payload, null, 2)}</pre>`;
}

// The operators' views: pools (depth, dead letters) with the last hour's charts, dead jobs
// (inspect, replay one or all, purge), workers and users.

import { html, useEffect, useRef } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

/** Reloads `load` every `ms` while shown, and on the events named. */
function useLive(load, ms, types = []) {
  useEffect(() => {
    const timer = setInterval(load.reload, ms);
    return () => clearInterval(timer);
  }, [load.reload]);
  useStream((type) => types.some((t) => type.startsWith(t)) && load.reload(), [load.reload]);
}

export function Pools() {
  usePageTitle("Queues and pools");
  const pools = useLoad(() => api("GET", "/api/v1/admin/pools"));
  const activity = useLoad(() => api("GET", "/api/v1/admin/jobs/activity?minutes=60"));
  useLive(pools, 5000, ["task.", "job."]);
  useLive(activity, 15000);
  const action = useAction();
  const toggle = (p) => action.run(async () => {
    await api("POST", `/api/v1/admin/pools/${encodeURIComponent(p.pool)}/${p.paused ? "resume" : "pause"}`);
    pools.reload();
  });
  return html`<section aria-labelledby="pools-title">
    <h1 id="pools-title">Queues and pools</h1>
    <${Problem} error=${pools.error || action.error} />
    ${!pools.data ? html`<${Loading} what="pools" />` : html`<table>
      <caption>Jobs by pool (cron templates not counted)</caption>
      <thead><tr><th scope="col">pool</th><th scope="col">waiting</th><th scope="col">queued</th><th scope="col">running</th><th scope="col">dead</th><th scope="col">completed (1 h)</th><th scope="col">workers take jobs</th></tr></thead>
      <tbody>${pools.data.items.map((p) => html`<tr data-pool=${p.pool}>
        <th scope="row">${p.pool}</th><td>${p.waiting}</td><td>${p.queued}</td><td>${p.running}</td>
        <td>${p.dead ? html`<a href="#/admin/dead">${p.dead}</a>` : 0}</td><td>${p.completed_last_hour}</td>
        <td>${p.paused ? html`<span class="state state-dead">paused</span> ` : "yes "}
          <button type="button" onClick=${() => toggle(p)} disabled=${action.busy}
            aria-label=${`${p.paused ? "Resume" : "Pause"} pool ${p.pool}`}>${p.paused ? "Resume" : "Pause"}</button></td></tr>`)}</tbody>
    </table>`}
    <h2>The last hour</h2>
    <${Problem} error=${activity.error} />
    ${activity.data ? html`<div class="charts">
      <${Chart} title="Runs per minute" minutes=${activity.data.minutes}
        series=${[["succeeded", "completed", "#2b8a3e", 0], ["failed", "failed", "#c92a2a", 0]]} />
      <${Chart} title="Run time (seconds)" minutes=${activity.data.minutes}
        series=${[["p50_secs", "median", "#1864ab", null], ["p95_secs", "95th percentile", "#e67700", null]]} />
    </div>` : ""}
  </section>`;
}

/**
 * A uPlot line chart of `series` ([field, label, colour, empty]) over the last hour, one point
 * a minute; a minute without runs counts `empty` (0 for counts, a gap for run times).
 */
function Chart({ title, minutes, series }) {
  const box = useRef(null);
  useEffect(() => {
    const now = Math.floor(Date.now() / 60000) * 60;
    const x = Array.from({ length: 60 }, (_, i) => now - (59 - i) * 60);
    const byMinute = new Map(minutes.map((m) => [Date.parse(m.minute) / 1000, m]));
    const data = [x, ...series.map(([field, , , empty]) => x.map((t) => byMinute.get(t)?.[field] ?? empty))];
    const width = Math.min(560, box.current.clientWidth || 560);
    const plot = new window.uPlot({
      title, width, height: 220,
      scales: { x: { time: true, range: [x[0], x[59]] } },
      // Points too: a run time seen in one minute only is a point, not a line.
      series: [{}, ...series.map(([, label, stroke]) => ({ label, stroke, width: 2, points: { show: true, size: 5 } }))],
    }, data, box.current);
    return () => plot.destroy();
  }, [minutes]);
  return html`<figure class="chart" ref=${box} aria-label=${title}>
    ${minutes.length === 0 ? html`<figcaption class="muted">${title}: no runs ended in the last hour</figcaption>` : ""}
  </figure>`;
}

export function DeadJobs() {
  usePageTitle("Dead jobs");
  const dead = useLoad(() => api("GET", "/api/v1/admin/jobs/dead?limit=200"));
  const action = useAction();
  useStream((type) => (type === "task.dead" || type === "task.completed") && dead.reload(), [dead.reload]);
  const act = (method, path, body) => action.run(async () => {
    await api(method, path, body);
    dead.reload();
  });
  const items = dead.data?.items || [];
  return html`<section aria-labelledby="dead-title">
    <h1 id="dead-title">Dead jobs</h1>
    <div class="actions">
      <button type="button" onClick=${() => act("POST", "/api/v1/admin/jobs/dead/replay", {})} disabled=${!items.length || action.busy}>Replay all</button>
      <button type="button" class="danger" onClick=${() => confirm("Purge every dead job from the list?") && act("DELETE", "/api/v1/admin/jobs/dead", {})} disabled=${!items.length || action.busy}>Purge all</button>
    </div>
    <${Problem} error=${action.error || dead.error} />
    ${!dead.data ? html`<${Loading} what="dead jobs" />` : items.length === 0 ? html`<p class="muted">No dead jobs.</p>` : html`
    <ul class="dead">${items.map((j) => html`<li data-task=${j.task_id}>
      <details>
        <summary><b>${j.title}</b> <span class="muted">${j.kind} on ${j.pool} · ${j.attempt}/${j.max_attempts} attempts · died ${when(j.died_at)}</span></summary>
        <p class="error">${j.last_error || "no error recorded"}</p>
        <${Payload} id=${j.task_id} />
      </details>
      <button type="button" onClick=${() => act("POST", "/api/v1/admin/jobs/dead/replay", { task_ids: [j.task_id] })} disabled=${action.busy}
        aria-label=${`Replay ${j.title}`}>Replay</button>
      <a href=${`#/tasks/${j.task_id}`}>Open</a>
    </li>`)}</ul>`}
  </section>`;
}

function Payload({ id }) {
  const task = useLoad(() => api("GET", `/api/v1/tasks/${id}`), [id]);
  if (!task.data) return html`<${Problem} error=${task.error} />`;
  return html`<pre class="payload" aria-label="payload">${JSON.stringify(task.data.job?.payload, null, 2)}</pre>`;
}

// Its table has nothing to focus inside and scrolls sideways on a phone: it takes the focus
// itself, so the keyboard can scroll it.
export function Workers() {
  usePageTitle("Workers");
  const workers = useLoad(() => api("GET", "/api/v1/workers"));
  useLive(workers, 5000);
  return html`<section aria-labelledby="workers-title">
    <h1 id="workers-title">Workers</h1>
    <${Problem} error=${workers.error} />
    ${!workers.data ? html`<${Loading} what="workers" />` : html`<table tabindex="0">
      <caption>Workers seen in the last hour</caption>
      <thead><tr><th scope="col">worker</th><th scope="col">state</th><th scope="col">pools</th><th scope="col">in flight</th><th scope="col">processed</th><th scope="col">failed</th><th scope="col">host</th></tr></thead>
      <tbody>${workers.data.items.map((w) => html`<tr>
        <th scope="row">${w.id}</th><td><span class=${`state state-${w.state}`}>${w.state}</span></td>
        <td>${w.details.pools ?? ""}</td><td>${w.details.in_flight ?? ""}</td>
        <td>${w.details.processed ?? ""}</td><td>${w.details.failed ?? ""}</td><td>${w.details.host ?? ""}</td></tr>`)}</tbody>
    </table>`}
  </section>`;
}

export function Users() {
  usePageTitle("Users");
  const users = useLoad(() => api("GET", "/api/v1/users?limit=100"));
  const action = useAction();
  const change = (id, body) => action.run(async () => {
    await api("PATCH", `/api/v1/users/${id}`, body);
    users.reload();
  });
  return html`<section aria-labelledby="users-title">
    <h1 id="users-title">Users</h1>
    <${Problem} error=${action.error || users.error} />
    ${!users.data ? html`<${Loading} what="users" />` : html`<table>
      <caption>Accounts</caption>
      <thead><tr><th scope="col">email</th><th scope="col">name</th><th scope="col">role</th><th scope="col">active</th><th scope="col">id</th></tr></thead>
      <tbody>${users.data.items.map((u) => html`<tr>
        <th scope="row">${u.email}</th><td>${u.display_name}</td>
        <td><select aria-label=${`Role of ${u.email}`} value=${u.role} onChange=${(e) => change(u.id, { role: e.target.value })}>
          ${["admin", "member", "worker"].map((r) => html`<option value=${r}>${r}</option>`)}</select></td>
        <td><input type="checkbox" aria-label=${`${u.email} is active`} checked=${u.active}
          onChange=${(e) => change(u.id, { active: e.target.checked })} /></td>
        <td><code>${u.id}</code></td></tr>`)}</tbody>
    </table>`}
  </section>`;
}

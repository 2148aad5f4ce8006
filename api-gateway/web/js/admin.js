// The operators' views: pools (depth, dead letters, each number a link to those jobs) with
// their throughput and latency over the last hour and day and the last hour's charts; workers,
// each with a page of its runs in flight; users (role changes and deactivation asked first).
// Dead jobs have their own page (dead.js).

import { html, useEffect, useRef, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, Problem, Loading, when, duration, useAction, usePageTitle } from "./ui.js";

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
  const throughput = useLoad(() => api("GET", "/api/v1/admin/pools/throughput"));
  useLive(pools, 5000, ["task.", "job."]);
  useLive(activity, 15000);
  useLive(throughput, 15000);
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
        <th scope="row"><a href=${jobsOf(p.pool)}>${p.pool}</a></th><td>${p.waiting}</td>
        <td>${p.queued ? html`<a href=${jobsOf(p.pool, "queued")}>${p.queued}</a>` : 0}</td>
        <td>${p.running ? html`<a href=${jobsOf(p.pool, "running")}>${p.running}</a>` : 0}</td>
        <td>${p.dead ? html`<a href=${jobsOf(p.pool, "dead")}>${p.dead}</a>` : 0}</td><td>${p.completed_last_hour}</td>
        <td>${p.paused ? html`<span class="state state-dead">paused</span> ` : "yes "}
          <button type="button" onClick=${() => toggle(p)} disabled=${action.busy}
            aria-label=${`${p.paused ? "Resume" : "Pause"} pool ${p.pool}`}>${p.paused ? "Resume" : "Pause"}</button></td></tr>`)}</tbody>
    </table>`}
    <h2>Throughput and latency</h2>
    <${Problem} error=${throughput.error} />
    ${throughput.data ? html`<${Throughput} items=${throughput.data.items} />` : ""}
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

/** The Jobs page showing `pool`'s jobs (in `state`, if given). */
const jobsOf = (pool, state) => `#/admin/jobs?pool=${encodeURIComponent(pool)}${state ? `&state=${state}` : ""}`;

/** Seconds as a table shows them: "0.042 s", or a dash when no run ended. */
const secs = (value) => (value == null ? "–" : `${value.toFixed(3)} s`);

/** Each pool's runs over the last hour and day: per minute, failures, run time and wait. */
function Throughput({ items }) {
  if (!items.length) return html`<p class="muted">No run ended in the last day.</p>`;
  return html`<table tabindex="0">
    <caption>Runs that ended, by pool (run time and wait: median / 95th percentile)</caption>
    <thead><tr><th scope="col">pool</th><th scope="col">over the last</th><th scope="col">succeeded</th><th scope="col">failed</th>
      <th scope="col">per minute</th><th scope="col">run time</th><th scope="col">wait to start</th></tr></thead>
    <tbody>${items.map((w) => html`<tr data-throughput=${`${w.pool}-${w.window}`}>
      <th scope="row"><a href=${jobsOf(w.pool)}>${w.pool}</a></th><td>${w.window}</td><td>${w.succeeded}</td>
      <td>${w.failed ? html`<a href=${jobsOf(w.pool, "dead")}>${w.failed}</a>` : 0}</td>
      <td>${((w.succeeded + w.failed) / (w.window === "hour" ? 60 : 1440)).toFixed(2)}</td>
      <td>${secs(w.p50_secs)} / ${secs(w.p95_secs)}</td><td>${secs(w.wait_p50_secs)} / ${secs(w.wait_p95_secs)}</td></tr>`)}</tbody>
  </table>`;
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
        <th scope="row"><a href=${`#/admin/workers/${encodeURIComponent(w.id)}`}>${w.id}</a></th><td><span class=${`state state-${w.state}`}>${w.state}</span></td>
        <td>${w.details.pools ?? ""}</td><td>${w.details.in_flight ?? ""}</td>
        <td>${w.details.processed ?? ""}</td><td>${w.details.failed ?? ""}</td><td>${w.details.host ?? ""}</td></tr>`)}</tbody>
    </table>`}
  </section>`;
}

export function Users() {
  usePageTitle("Users");
  const users = useLoad(() => api("GET", "/api/v1/users?limit=100"));
  const action = useAction();
  const [said, setSaid] = useState("");
  // Asked first, saying what it does; a "no" puts the control back as it was.
  const change = (u, body, e) => action.run(async () => {
    const question = body.role
      ? `Make ${u.email} ${body.role === "admin" ? "an admin" : `a ${body.role}`}?`
      : body.active ? `Reactivate ${u.email}? They can sign in again.`
        : `Deactivate ${u.email}? They are signed out everywhere and cannot sign in.`;
    if (!window.confirm(question)) {
      if (body.role) e.target.value = u.role;
      else e.target.checked = u.active;
      return;
    }
    await api("PATCH", `/api/v1/users/${u.id}`, body);
    setSaid(body.role ? `${u.email} is now ${body.role === "admin" ? "an admin" : `a ${body.role}`}.`
      : `${u.email} is ${body.active ? "active again" : "deactivated"}.`);
    users.reload();
  });
  return html`<section aria-labelledby="users-title">
    <h1 id="users-title">Users</h1>
    <p role="status" class="muted">${said}</p>
    <${Problem} error=${action.error || users.error} />
    ${!users.data ? html`<${Loading} what="users" />` : html`<table>
      <caption>Accounts</caption>
      <thead><tr><th scope="col">email</th><th scope="col">name</th><th scope="col">role</th><th scope="col">active</th><th scope="col">id</th></tr></thead>
      <tbody>${users.data.items.map((u) => html`<tr>
        <th scope="row">${u.email}</th><td>${u.display_name}</td>
        <td><select aria-label=${`Role of ${u.email}`} value=${u.role} onChange=${(e) => change(u, { role: e.target.value }, e)}>
          ${["admin", "member", "worker"].map((r) => html`<option value=${r}>${r}</option>`)}</select></td>
        <td><input type="checkbox" aria-label=${`${u.email} is active`} checked=${u.active}
          onChange=${(e) => change(u, { active: e.target.checked }, e)} /></td>
        <td><code>${u.id}</code></td></tr>`)}</tbody>
    </table>`}
  </section>`;
}

/** A worker (`#/admin/workers/{id}`): its heartbeat, its runs in flight and its latest ones. */
export function WorkerPage({ id }) {
  usePageTitle(`Worker ${id}`);
  const worker = useLoad(() => api("GET", `/api/v1/workers/${encodeURIComponent(id)}`), [id]);
  useLive(worker, 5000, ["job."]);
  const w = worker.data;
  const runs = (caption, items) => (!items.length ? html`<p class="muted">${caption}: none.</p>` : html`<table tabindex="0">
    <caption>${caption}</caption>
    <thead><tr><th scope="col">job</th><th scope="col">pool</th><th scope="col">attempt</th><th scope="col">started</th>
      <th scope="col">took</th><th scope="col">outcome</th><th scope="col">error</th></tr></thead>
    <tbody>${items.map((r) => html`<tr data-run=${r.run_id}>
      <th scope="row"><a href=${`#/tasks/${r.task_id}`}>${r.title}</a><br /><span class="muted">${r.kind}</span></th>
      <td>${r.pool}</td><td>${r.attempt}</td><td>${when(r.started_at)}</td>
      <td>${r.started_at ? duration((r.ended_at ? Date.parse(r.ended_at) : Date.now()) - Date.parse(r.started_at)) : ""}</td>
      <td>${r.outcome}</td><td>${r.error || ""}</td></tr>`)}</tbody>
  </table>`);
  return html`<section aria-labelledby="worker-title">
    <h1 id="worker-title">Worker ${id}</h1>
    <p><a href="#/admin/workers">All workers</a></p>
    <${Problem} error=${worker.error} />
    ${!w ? html`<${Loading} what="the worker" />` : html`
      <p>${w.worker ? html`<span class=${`state state-${w.worker.state}`}>${w.worker.state}</span>${
        ` · pools ${w.worker.details.pools ?? ""} · host ${w.worker.details.host ?? ""} · processed ${
          w.worker.details.processed ?? 0}, failed ${w.worker.details.failed ?? 0}`}`
        : "No heartbeat in the last hour."}</p>
      ${runs("In flight", w.in_flight)}
      ${runs("Its latest runs (last day)", w.recent)}`}
  </section>`;
}

// Workflows (`#/workflows`, `#/workflows/<id>`): yours, and one drawn as a graph of its steps
// (columns by depth: a step stands right of everything it needs) whose states change live,
// with Cancel and Retry.

import { html, useEffect } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, useThrottled, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

/**
 * Reloads `load` (at most once a second) on the live events `relevant(type, event)` picks, and
 * every 2 s while `live`.
 */
function useFollow(load, live, relevant) {
  const reload = useThrottled(load.reload, 1000);
  useStream((type, event) => (type === "reset" || relevant(type, event)) && reload(), [reload, relevant]);
  useEffect(() => {
    if (!live) return undefined;
    const timer = setInterval(load.reload, 2000);
    return () => clearInterval(timer);
  }, [load.reload, live]);
}

export function Workflows() {
  usePageTitle("Workflows");
  const list = useLoad(() => api("GET", "/api/v1/workflows?limit=50"));
  useFollow(list, false, (type) => type.startsWith("workflow."));
  return html`<section aria-labelledby="workflows-title">
    <h1 id="workflows-title">Workflows</h1>
    <p class="muted">Create them with <code>POST /api/v1/workflows</code>; each step is a job.</p>
    <${Problem} error=${list.error} />
    ${!list.data ? html`<${Loading} what="workflows" />` : !list.data.items.length
      ? html`<p class="muted">No workflows yet.</p>`
      : html`<ul class="tasks">${list.data.items.map((w) => html`<li class="task">
          <a href=${`#/workflows/${w.id}`}>${w.title}</a>
          <span class=${`status status-${w.status}`}>${w.status}</span>
          <span class="muted">${when(w.created_at)}</span></li>`)}</ul>`}
  </section>`;
}

/** Each step's column: 0 for a step that needs nothing, else one more than its deepest need. */
function depths(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const depth = new Map();
  const of = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    const needs = byId.get(id)?.needs || [];
    const d = needs.length ? 1 + Math.max(...needs.map((n) => of(n, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  steps.forEach((s) => of(s.id));
  return depth;
}

const NODE = { w: 150, h: 44, gapX: 60, gapY: 18 };

function Graph({ steps }) {
  if (!steps.length) return null;
  const depth = depths(steps);
  const rows = new Map();
  const place = new Map();
  for (const s of steps) {
    const col = depth.get(s.id);
    const row = rows.get(col) || 0;
    rows.set(col, row + 1);
    place.set(s.id, { x: 10 + col * (NODE.w + NODE.gapX), y: 10 + row * (NODE.h + NODE.gapY) });
  }
  const width = 20 + (Math.max(...depth.values()) + 1) * (NODE.w + NODE.gapX);
  const height = 20 + Math.max(...rows.values()) * (NODE.h + NODE.gapY);
  return html`<svg class="graph" role="img" aria-label="The workflow's steps and what each needs"
      width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`}>
    ${steps.flatMap((s) => s.needs.map((n) => {
      const from = place.get(n), to = place.get(s.id);
      return from && to ? html`<line class="edge" x1=${from.x + NODE.w} y1=${from.y + NODE.h / 2}
        x2=${to.x} y2=${to.y + NODE.h / 2} />` : "";
    }))}
    ${steps.map((s) => {
      const p = place.get(s.id);
      return html`<g class=${`node node-${s.status}`} data-step=${s.id} data-status=${s.status}
          transform=${`translate(${p.x},${p.y})`}>
        <title>${s.id}: ${s.status}${s.error ? ` (${s.error})` : ""}</title>
        <rect width=${NODE.w} height=${NODE.h} rx="6" />
        <text x="8" y="18">${s.id.length > 18 ? `${s.id.slice(0, 17)}…` : s.id}</text>
        <text x="8" y="35" class="node-status">${s.status}${s.attempts > 1 ? ` · ${s.attempts} runs` : ""}</text>
      </g>`;
    })}
  </svg>`;
}

export function WorkflowPage({ id }) {
  const workflow = useLoad(() => api("GET", `/api/v1/workflows/${encodeURIComponent(id)}`), [id]);
  const w = workflow.data;
  usePageTitle(w?.title);
  // This workflow's events, and its steps' tasks' changes (not their progress ticks).
  const steps = new Set((w?.steps || []).map((s) => s.task_id));
  const relevant = (type, event) => type.startsWith("workflow.")
    ? event.data?.workflow_id === id
    : /^(task|job)\./.test(type) && type !== "job.progress" && steps.has(event.data?.task_id);
  useFollow(workflow, w?.status === "running", relevant);
  const action = useAction();
  const act = (verb) => action.run(async () => {
    await api("POST", `/api/v1/workflows/${encodeURIComponent(id)}/${verb}`);
    workflow.reload();
  });
  if (!w) return workflow.error ? html`<${Problem} error=${workflow.error} />` : html`<${Loading} what="the workflow" />`;
  return html`<section aria-labelledby="workflow-title">
    <h1 id="workflow-title">${w.title}</h1>
    <p>Status: <span id="workflow-status" class=${`status status-${w.status}`}>${w.status}</span>
      <span class="muted"> created ${when(w.created_at)}</span></p>
    <p>${w.status === "running" ? html`<button type="button" onClick=${() => act("cancel")} disabled=${action.busy}>Cancel</button>` : ""}
      ${w.status === "failed" || w.status === "cancelled" ? html`<button type="button" onClick=${() => act("retry")} disabled=${action.busy}>Retry</button>` : ""}</p>
    <${Problem} error=${action.error || workflow.error} />
    <div class="graph-box"><${Graph} steps=${w.steps} /></div>
    <table>
      <caption>Steps, in the order sent</caption>
      <thead><tr><th scope="col">step</th><th scope="col">needs</th><th scope="col">status</th><th scope="col">runs</th><th scope="col">error</th></tr></thead>
      <tbody>${w.steps.map((s) => html`<tr>
        <th scope="row"><a href=${`#/tasks/${s.task_id}`}>${s.id}</a></th><td>${s.needs.join(", ")}</td>
        <td><span class=${`status status-${s.status}`}>${s.status}</span></td><td>${s.attempts}</td>
        <td class="error">${s.error || ""}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

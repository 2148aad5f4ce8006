// Your per-key limits (`#/limits`): each key's settings, its jobs in flight and waiting, and how
// long the oldest has waited; refreshed every 2 seconds and on task events (at most once a second).

import { html, useEffect } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, useThrottled, Problem, Loading, usePageTitle } from "./ui.js";

/** "12 s", "3 min": how long ago `since` was. */
function waited(since) {
  if (!since) return "";
  const secs = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  return secs < 120 ? `${secs} s` : `${Math.round(secs / 60)} min`;
}

export function Limits() {
  usePageTitle("Limits");
  const limits = useLoad(() => api("GET", "/api/v1/limits"));
  useEffect(() => {
    const timer = setInterval(limits.reload, 2000);
    return () => clearInterval(timer);
  }, [limits.reload]);
  const reload = useThrottled(limits.reload, 1000);
  useStream((type) => (type.startsWith("task.") || type === "reset") && reload(), [reload]);
  return html`<section aria-labelledby="limits-title">
    <h1 id="limits-title">Limits</h1>
    <p class="muted">Jobs with a <code>limit</code> share it by key: a key never runs more than its
      concurrency at once nor starts more than its rate; the others wait without holding a worker.</p>
    <${Problem} error=${limits.error} />
    ${!limits.data ? html`<${Loading} what="limits" />` : !limits.data.items.length
      ? html`<p class="muted">No job of yours has a limit yet.</p>`
      : html`<table tabindex="0">
      <caption>Your limit keys</caption>
      <thead><tr><th scope="col">key</th><th scope="col">concurrency</th><th scope="col">per second</th>
        <th scope="col">in flight</th><th scope="col">waiting</th><th scope="col">oldest waiting for</th></tr></thead>
      <tbody>${limits.data.items.map((k) => html`<tr data-key=${k.key}>
        <th scope="row">${k.key}</th><td>${k.concurrency ?? "any"}</td><td>${k.per_second ?? "any"}</td>
        <td class="in-flight">${k.in_flight}</td><td class="waiting">${k.waiting}</td>
        <td>${waited(k.waiting_since)}</td></tr>`)}</tbody>
    </table>`}
  </section>`;
}

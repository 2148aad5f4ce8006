// Webhooks (`#/webhooks`): my endpoints (add one: its address and kinds; its signing secret is
// shown once), each with its deliveries (state, attempts, the last answer's status), and ways to
// send it a test, turn it off and on, get a new secret, or delete it.

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { useLoad, useStream, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

export function Webhooks() {
  usePageTitle("Webhooks");
  const list = useLoad(() => api("GET", "/api/v1/webhooks"));
  const kinds = useLoad(() => api("GET", "/api/v1/notifications/preferences"));
  const [secret, setSecret] = useState(null);
  const action = useAction();
  const run = (work) => action.run(async () => {
    const answer = await work();
    if (answer?.secret) setSecret({ url: answer.url, secret: answer.secret });
    list.reload();
  });
  return html`<section aria-labelledby="webhooks-title">
    <h1 id="webhooks-title">Webhooks</h1>
    <p class="muted">Taskmesh POSTs your notifications of the kinds you choose to your address,
      signed (Standard Webhooks: <code>webhook-id</code>, <code>webhook-timestamp</code>,
      <code>webhook-signature</code> with your secret), retrying for up to a day.</p>
    ${kinds.data ? html`<${AddEndpoint} kinds=${kinds.data.preferences.map((p) => p.kind)} onAdd=${(body) => run(() => api("POST", "/api/v1/webhooks", body))} busy=${action.busy} />` : ""}
    ${secret ? html`<div class="notice" role="status">
      <p>The signing secret of ${secret.url}, shown only now: keep it with your receiver.</p>
      <label>Secret <input readonly value=${secret.secret} onFocus=${(e) => e.target.select()} /></label>
      <button type="button" class="link" onClick=${() => setSecret(null)}>Done</button></div>` : ""}
    <${Problem} error=${action.error || list.error} />
    ${!list.data ? html`<${Loading} what="webhooks" />` : html`<ul class="endpoints">
      ${list.data.items.map((e) => html`<${Endpoint} key=${e.id} endpoint=${e} run=${run} busy=${action.busy} />`)}
    </ul>
    ${list.data.items.length === 0 ? html`<p class="muted">No webhooks yet.</p>` : ""}`}
  </section>`;
}

function AddEndpoint({ kinds, onAdd, busy }) {
  const [url, setUrl] = useState("");
  const [chosen, setChosen] = useState(["task.assigned"]);
  const toggle = (kind) => (e) => setChosen(e.target.checked ? [...chosen, kind] : chosen.filter((k) => k !== kind));
  const submit = (e) => {
    e.preventDefault();
    onAdd({ url, event_types: chosen });
  };
  return html`<form class="add-endpoint" onSubmit=${submit} aria-label="New webhook">
    <label>Address <input name="url" type="url" required maxlength="2000" placeholder="https://example.com/hooks/taskmesh"
      value=${url} onInput=${(e) => setUrl(e.target.value)} /></label>
    <fieldset class="labels"><legend>Kinds</legend>
      ${kinds.map((k) => html`<label class="check"><input type="checkbox" checked=${chosen.includes(k)} onChange=${toggle(k)} /> ${k}</label>`)}
    </fieldset>
    <button type="submit" disabled=${busy || chosen.length === 0}>Add webhook</button>
  </form>`;
}

function Endpoint({ endpoint: e, run, busy }) {
  const path = `/api/v1/webhooks/${e.id}`;
  const [tested, setTested] = useState(0);
  return html`<li class="endpoint" data-endpoint=${e.id}>
    <p><b>${e.url}</b> ${e.enabled ? html`<span class="state state-alive">on</span>`
      : html`<span class="state state-dead">off</span> <span class="muted">${e.disabled_reason || ""}</span>`}</p>
    <p class="muted">${e.event_types.join(", ")}${e.failing_since ? ` · failing since ${when(e.failing_since)}` : ""}</p>
    <div class="actions">
      <button type="button" disabled=${busy || !e.enabled} onClick=${() => run(async () => {
        await api("POST", `${path}/test`);
        setTested((n) => n + 1);
      })}>Send a test</button>
      <button type="button" disabled=${busy} onClick=${() => run(() => api("PATCH", path, { enabled: !e.enabled }))}>${e.enabled ? "Turn off" : "Turn on"}</button>
      <button type="button" disabled=${busy} onClick=${() => run(() => api("POST", `${path}/rotate-secret`))}>New secret</button>
      <button type="button" class="danger" disabled=${busy} onClick=${() => window.confirm(`Delete the webhook ${e.url}?`) && run(() => api("DELETE", path))}>Delete</button>
    </div>
    ${tested ? html`<p role="status" class="muted">A test is on its way: it shows under Deliveries as
      <code>webhook.test</code>.</p>` : ""}
    <details open=${tested > 0}><summary>Deliveries</summary><${Deliveries} path=${path} tested=${tested} /></details>
  </li>`;
}

function Deliveries({ path, tested }) {
  const list = useLoad(() => api("GET", `${path}/deliveries?limit=20`), [path, tested]);
  useStream((type) => type === "notification.created" && list.reload(), [list.reload]);
  if (!list.data) return html`<${Problem} error=${list.error} />`;
  return html`<button type="button" class="link" onClick=${list.reload}>Refresh</button>
    <table tabindex="0"><caption>The newest deliveries</caption>
    <thead><tr><th scope="col">kind</th><th scope="col">state</th><th scope="col">attempts</th><th scope="col">last answer</th><th scope="col">when</th></tr></thead>
    <tbody>${list.data.items.map((d) => html`<tr data-delivery=${d.id}><td>${d.event_type}</td><td>${d.state}</td><td>${d.attempts}</td>
      <td>${d.last_status ?? "–"}</td><td>${when(d.updated_at)}</td></tr>`)}</tbody></table>
    ${list.data.items.length === 0 ? html`<p class="muted">Nothing sent yet.</p>` : ""}`;
}

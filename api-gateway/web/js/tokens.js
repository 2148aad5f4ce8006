// Tokens (`#/tokens`): my personal access tokens for programs (make one: a name, its scopes, how
// many days; the token is shown once), each with its scopes, last use and expiry, and a way to
// revoke it; for an admin, everyone's tokens too, each revocable.

import { html, useState } from "../vendor/htm-preact.js";
import { api, session } from "./api.js";
import { useLoad, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

const SCOPES = [
  ["tasks:read", "read tasks, channels, files"],
  ["tasks:write", "change tasks, comments, channels"],
  ["jobs:write", "create, cancel and retry jobs"],
  ["notifications:read", "read notifications and webhooks"],
  ["notifications:write", "mark read, change webhooks"],
];

export function Tokens() {
  usePageTitle("Tokens");
  const admin = session().user.role === "admin";
  const mine = useLoad(() => api("GET", "/api/v1/tokens"));
  const everyone = useLoad(() => (admin ? api("GET", "/api/v1/admin/tokens") : Promise.resolve(null)));
  const [made, setMade] = useState(null);
  const action = useAction();
  const run = (work) => action.run(async () => {
    const answer = await work();
    if (answer?.token) setMade(answer);
    mine.reload();
    everyone.reload();
  });
  return html`<section aria-labelledby="tokens-title">
    <h1 id="tokens-title">Tokens</h1>
    <p class="muted">A personal access token lets a program (a CI job, a script) use the API as you,
      limited to the scopes you choose: send it as <code>Authorization: Bearer tmk_…</code>.
      Revoking one stops it at once.</p>
    <${NewToken} admin=${admin} busy=${action.busy} onMake=${(body) => run(() => api("POST", "/api/v1/tokens", body))} />
    ${made ? html`<div class="notice" role="status" id="new-token">
      <p>The token <b>${made.name}</b>, shown only now: copy it to where the program keeps secrets.</p>
      <label>Token <input readonly value=${made.token} onFocus=${(e) => e.target.select()} /></label>
      <button type="button" class="link" onClick=${() => setMade(null)}>Done</button></div>` : ""}
    <${Problem} error=${action.error || mine.error} />
    ${!mine.data ? html`<${Loading} what="tokens" />`
      : html`<${TokenTable} caption="Your tokens" items=${mine.data} busy=${action.busy}
          onRevoke=${(t) => run(() => api("DELETE", `/api/v1/tokens/${t.id}`))} />`}
    ${admin && everyone.data ? html`<h2>Everyone's tokens</h2>
      <${TokenTable} caption="Every unrevoked token" items=${everyone.data} owners=${true} busy=${action.busy}
        onRevoke=${(t) => run(() => api("DELETE", `/api/v1/admin/tokens/${t.id}`))} />` : ""}
  </section>`;
}

function NewToken({ admin, busy, onMake }) {
  const [name, setName] = useState("");
  const [days, setDays] = useState(30);
  const [chosen, setChosen] = useState(["tasks:read"]);
  const scopes = admin ? [...SCOPES, ["admin", "the admin routes"]] : SCOPES;
  const toggle = (scope) => (e) => setChosen(e.target.checked ? [...chosen, scope] : chosen.filter((s) => s !== scope));
  const submit = (e) => {
    e.preventDefault();
    onMake({ name, scopes: chosen, expires_in_days: Number(days) });
  };
  return html`<form class="new-token" onSubmit=${submit} aria-label="New token">
    <label>Name <input name="name" required maxlength="100" placeholder="ci deploys" value=${name} onInput=${(e) => setName(e.target.value)} /></label>
    <label>Days <input name="days" type="number" min="1" max="366" required value=${days} onInput=${(e) => setDays(e.target.value)} /></label>
    <fieldset class="labels"><legend>Scopes</legend>
      ${scopes.map(([s, what]) => html`<label class="check" title=${what}><input type="checkbox" name=${s} checked=${chosen.includes(s)} onChange=${toggle(s)} /> ${s}</label>`)}
    </fieldset>
    <button type="submit" disabled=${busy || chosen.length === 0}>Make token</button>
  </form>`;
}

function TokenTable({ caption, items, owners, busy, onRevoke }) {
  if (items.length === 0) return html`<p class="muted">No tokens.</p>`;
  return html`<table tabindex="0"><caption>${caption}</caption>
    <thead><tr><th scope="col">name</th>${owners ? html`<th scope="col">owner</th>` : ""}<th scope="col">scopes</th>
      <th scope="col">last used</th><th scope="col">expires</th><th scope="col">revoke</th></tr></thead>
    <tbody>${items.map((t) => html`<tr data-token=${t.id}><td>${t.name}</td>${owners ? html`<td><code>${t.user_id}</code></td>` : ""}
      <td>${t.scopes.join(", ")}</td><td>${t.last_used_at ? when(t.last_used_at) : "never"}</td><td>${when(t.expires_at)}</td>
      <td><button type="button" class="danger" disabled=${busy}
        onClick=${() => window.confirm(`Revoke the token ${t.name}? Programs using it stop at once.`) && onRevoke(t)}>Revoke</button></td></tr>`)}
    </tbody></table>`;
}

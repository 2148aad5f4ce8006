// The dashboard: sign-in, the navigation with a live unread badge, and a view per route
// (`#/tasks`, `#/tasks/<id>`, `#/board`, `#/calendar`, `#/channels`, `#/notifications`, `#/workflows`, `#/workflows/<id>`,
// `#/limits`, `#/tokens`, `#/profile`, `#/admin/...`), and the pages a mailed link opens
// (`/verify-email?token=…`, `/reset-password?token=…`).

import { html, render, useEffect, useState } from "../vendor/htm-preact.js";
import { api, session, signIn, register, logOut, logOutEverywhere, stream, onSessionChange, takeSignOutReason } from "./api.js";
import { Problem, useAction, useStream } from "./ui.js";
import { Tasks } from "./tasks.js";
import { TaskPage } from "./task.js";
import { Board } from "./board.js";
import { Calendar } from "./calendar.js";
import { Webhooks } from "./webhooks.js";
import { Tokens } from "./tokens.js";
import { Channels, Notifications } from "./people.js";
import { Pools, Workers, WorkerPage, Users } from "./admin.js";
import { DeadJobs } from "./dead.js";
import { Limits } from "./limits.js";
import { CronTemplates } from "./cron.js";
import { Jobs } from "./jobs.js";
import { Workflows, WorkflowPage } from "./workflows.js";
import { VerifyEmail, UnverifiedBanner } from "./verify.js";
import { ForgotPassword, Profile, ResetPassword } from "./account.js";

function useRoute() {
  const [hash, setHash] = useState(window.location.hash || "#/tasks");
  useEffect(() => {
    const changed = () => setHash(window.location.hash || "#/tasks");
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  // A view's filters may follow its path (`#/admin/jobs?pool=default&state=dead`).
  return hash.slice(1).split("?")[0].split("/").filter(Boolean);
}

function SignIn() {
  const [form, setForm] = useState({ email: "", password: "", display_name: "" });
  const [creating, setCreating] = useState(false);
  const [forgot, setForgot] = useState(false);
  const [reason] = useState(takeSignOutReason);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    const ok = await action.run(() => creating
      ? register(form.email, form.password, form.display_name)
      : signIn(form.email, form.password));
    // Signed in, the App shows the route asked for (it listens for the session's change), or
    // the tasks when the address was the sign-in page.
    if (ok && (window.location.hash || "").startsWith("#/login")) window.location.hash = "#/tasks";
  };
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  if (forgot) {
    return html`<main id="main" class="signin"><h1>Taskmesh</h1>
      <${ForgotPassword} onBack=${() => setForgot(false)} /></main>`;
  }
  return html`<main id="main" class="signin">
    <h1>Taskmesh</h1>
    ${reason && !action.error ? html`<p class="notice" role="status" id="signed-out">${reason}</p>` : ""}
    <form onSubmit=${submit} aria-label=${creating ? "Create an account" : "Sign in"}>
      <label>Email <input name="email" type="email" autocomplete="username" required value=${form.email} onInput=${set("email")} /></label>
      <label>Password <input name="password" type="password" autocomplete=${creating ? "new-password" : "current-password"} required minlength=${creating ? 10 : 1} value=${form.password} onInput=${set("password")} /></label>
      ${creating ? html`<label>Name <input name="display_name" required maxlength="100" value=${form.display_name} onInput=${set("display_name")} /></label>` : ""}
      <button type="submit" disabled=${action.busy}>${creating ? "Create account" : "Sign in"}</button>
      <${Problem} error=${action.error} />
    </form>
    <button type="button" class="link" onClick=${() => {
      setCreating(!creating);
      action.clear(); // an error of the other form is not this one's
    }}>
      ${creating ? "I have an account" : "Create an account"}</button>
    ${creating ? "" : html` <button type="button" class="link" onClick=${() => setForgot(true)}>Forgot your password?</button>`}
  </main>`;
}

function UnreadBadge() {
  const [count, setCount] = useState(0);
  const load = () => api("GET", "/api/v1/notifications/unread-count").then((r) => setCount(r.count ?? r.unread ?? 0)).catch(() => {});
  useEffect(load, []);
  useStream((type) => (type === "notification.created" || type === "reset") && load(), []);
  useEffect(() => {
    window.addEventListener("taskmesh:read", load);
    return () => window.removeEventListener("taskmesh:read", load);
  }, []);
  return count ? html`<span class="badge" id="unread-badge" aria-label=${`${count} unread`}>${count}</span>` : "";
}

function LiveStatus() {
  const [status, setStatus] = useState(stream.status);
  useStream((type, event) => type === "status" && setStatus(event.status), []);
  return html`<span class=${`live live-${status}`} role="status" aria-live="polite">${status === "live" ? "live" : status}</span>`;
}

function Shell({ route }) {
  const user = session().user;
  const admin = user.role === "admin";
  const link = (href, label, extra = "") => html`<a href=${href}
    aria-current=${window.location.hash.startsWith(href) ? "page" : undefined}>${label}${extra}</a>`;
  const [page, arg] = route[0] === "admin" ? [`admin/${route[1]}`, route[2]] : [route[0], route[1]];
  const query = window.location.hash.split("?")[1] || "";
  const view = {
    // Keyed by the task, so another task's page is a new page: no form, data or edit of the
    // one before carries over to it.
    tasks: arg ? html`<${TaskPage} key=${arg} id=${arg} />` : html`<${Tasks} />`,
    board: html`<${Board} />`,
    calendar: html`<${Calendar} />`,
    webhooks: html`<${Webhooks} />`,
    tokens: html`<${Tokens} />`,
    channels: html`<${Channels} />`,
    notifications: html`<${Notifications} />`,
    limits: html`<${Limits} />`,
    profile: html`<${Profile} />`,
    workflows: arg ? html`<${WorkflowPage} key=${arg} id=${arg} />` : html`<${Workflows} />`,
    "admin/pools": html`<${Pools} />`,
    "admin/dead": html`<${DeadJobs} />`,
    "admin/workers": arg ? html`<${WorkerPage} key=${arg} id=${decodeURIComponent(arg)} />` : html`<${Workers} />`,
    "admin/users": html`<${Users} />`,
    "admin/cron": html`<${CronTemplates} />`,
    "admin/jobs": html`<${Jobs} key=${query} initial=${query} />`,
  }[page] || html`<${Tasks} />`;
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header>
      <nav aria-label="Main">
        <b class="brand">Taskmesh</b>
        ${link("#/tasks", "Tasks")}
        ${link("#/board", "Board")}
        ${link("#/channels", "Channels")}
        ${link("#/calendar", "Calendar")}
        ${link("#/notifications", "Notifications", html` <${UnreadBadge} />`)}
        ${link("#/workflows", "Workflows")}
        ${link("#/webhooks", "Webhooks")}
        ${link("#/tokens", "Tokens")}
        ${link("#/limits", "Limits")}
        ${admin ? html`${link("#/admin/pools", "Pools")} ${link("#/admin/dead", "Dead jobs")}
          ${link("#/admin/workers", "Workers")} ${link("#/admin/users", "Users")}
          ${link("#/admin/jobs", "Jobs")} ${link("#/admin/cron", "Cron")}` : ""}
      </nav>
      <div class="me"><${LiveStatus} /> <a href="#/profile" title="Your profile">${user.display_name} (${user.role})</a>
        <button type="button" onClick=${logOut}>Sign out</button></div>
    </header>
    <${UnverifiedBanner} />
    <main id="main" tabindex="-1">${view}</main>
    <footer class="muted">${`Signed in as ${user.display_name}${user.email ? ` (${user.email})` : ""} · `}<button type="button" class="link" onClick=${logOutEverywhere}>Sign out everywhere</button></footer>`;
}

function App() {
  const route = useRoute();
  // Signing in or out re-renders the App whatever the address (from `/` or `#/tasks` the
  // address does not change, so the route alone would not).
  const [, setSessions] = useState(0);
  useEffect(() => onSessionChange(() => setSessions((n) => n + 1)), []);
  if (window.location.pathname === "/verify-email") return html`<${VerifyEmail} />`;
  if (window.location.pathname === "/reset-password") return html`<${ResetPassword} />`;
  if (!session()?.user || route[0] === "login") return html`<${SignIn} />`;
  return html`<${Shell} route=${route} />`;
}

if (session()?.user) stream.open();
render(html`<${App} />`, document.getElementById("app"));

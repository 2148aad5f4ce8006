// My account: a forgotten password (asked for from the sign-in page, set on the page the mailed
// link opens, `/reset-password?token=…`) and my profile (`#/profile`): my name, my address
// (changed once the new one opens its link) and my password.

import { html, useEffect, useState } from "../vendor/htm-preact.js";
import { api, session, updateUser } from "./api.js";
import { Problem, useAction, usePageTitle } from "./ui.js";

/** On the sign-in page: an address to mail a reset link to. */
export function ForgotPassword({ onBack }) {
  const [email, setEmail] = useState("");
  const [sent, setSent] = useState(false);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    if (await action.run(() => api("POST", "/api/v1/auth/password-reset", { email }))) setSent(true);
  };
  return html`<div>
    <form onSubmit=${submit} aria-label="Reset my password">
      <label>Email <input name="email" type="email" autocomplete="username" required value=${email}
        onInput=${(e) => setEmail(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Mail me a link</button>
      <${Problem} error=${action.error} />
    </form>
    ${sent ? html`<p role="status" id="reset-sent">If an account has ${email}, a link to choose a new password is
      on its way. It works once, for an hour.</p>` : ""}
    <button type="button" class="link" onClick=${onBack}>Back to sign in</button>
  </div>`;
}

/** The page a reset link opens: a new password, then sign in with it. */
export function ResetPassword() {
  const [token] = useState(() => new URLSearchParams(window.location.search).get("token") || "");
  useEffect(() => window.history.replaceState(null, "", "/reset-password"), []);
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    const body = { token, new_password: password };
    if (await action.run(() => api("POST", "/api/v1/auth/password-reset/confirm", body))) setDone(true);
  };
  return html`<main id="main" class="signin">
    <h1>Taskmesh</h1>
    ${done ? html`<p role="status" id="reset-done">Your new password is set, and every session was signed out.</p>
      <p><a href="/#/login">Sign in</a></p>`
      : html`<form onSubmit=${submit} aria-label="Choose a new password">
        <label>New password (at least 10 characters) <input name="new_password" type="password" autocomplete="new-password"
          required minlength="10" value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
        <button type="submit" disabled=${action.busy}>Set my password</button>
        <${Problem} error=${action.error} />
      </form>`}
  </main>`;
}

/** My name, address and password. */
export function Profile() {
  usePageTitle("Profile");
  const user = session().user;
  return html`<section aria-labelledby="profile-title">
    <h1 id="profile-title">Profile</h1>
    <${Name} user=${user} />
    <${Address} user=${user} />
    <${Password} />
  </section>`;
}

function Name({ user }) {
  const [name, setName] = useState(user.display_name);
  const [saved, setSaved] = useState(false);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    const saved = await action.run(async () => updateUser(await api("PATCH", "/api/v1/users/me", { display_name: name })));
    setSaved(saved);
  };
  return html`<form onSubmit=${submit} aria-label="Name">
    <label>Name <input name="display_name" required maxlength="100" value=${name}
      onInput=${(e) => { setName(e.target.value); setSaved(false); }} /></label>
    <button type="submit" disabled=${action.busy}>Save name</button>
    ${saved ? html`<span role="status">Saved.</span>` : ""}
    <${Problem} error=${action.error} />
  </form>`;
}

function Address({ user }) {
  const [form, setForm] = useState({ email: "", password: "" });
  const [sent, setSent] = useState(null);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    if (await action.run(() => api("POST", "/api/v1/users/me/email", form))) {
      setSent(form.email);
      setForm({ email: "", password: "" });
    }
  };
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  return html`<form onSubmit=${submit} aria-label="Email address">
    <p>Your address: <b>${user.email}</b>${user.email_verified ? " (confirmed)" : " (not confirmed yet)"}</p>
    <label>New address <input name="new_email" type="email" required maxlength="254" value=${form.email} onInput=${set("email")} /></label>
    <label>Your password <input name="password" type="password" autocomplete="current-password" required value=${form.password} onInput=${set("password")} /></label>
    <button type="submit" disabled=${action.busy}>Change address</button>
    ${sent ? html`<p role="status" id="email-sent">A link is on its way to ${sent}. Your address stays ${user.email} until you open it.</p>` : ""}
    <${Problem} error=${action.error} />
  </form>`;
}

function Password() {
  const [form, setForm] = useState({ current_password: "", new_password: "" });
  const [saved, setSaved] = useState(false);
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    if (await action.run(() => api("POST", "/api/v1/users/me/password", form))) {
      setSaved(true);
      setForm({ current_password: "", new_password: "" });
    }
  };
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  return html`<form onSubmit=${submit} aria-label="Password">
    <label>Current password <input name="current_password" type="password" autocomplete="current-password" required value=${form.current_password} onInput=${set("current_password")} /></label>
    <label>New password <input name="new_password" type="password" autocomplete="new-password" required minlength="10" value=${form.new_password} onInput=${set("new_password")} /></label>
    <button type="submit" disabled=${action.busy}>Change password</button>
    ${saved ? html`<span role="status">Changed: your other sessions were signed out.</span>` : ""}
    <${Problem} error=${action.error} />
  </form>`;
}

// Email verification: the page a mailed link opens (`/verify-email?token=…`), and the banner
// that asks a signed-in person with an unconfirmed address to confirm it.

import { html, useEffect, useState } from "../vendor/htm-preact.js";
import { api, session, updateUser } from "./api.js";
import { Problem, useAction } from "./ui.js";

/**
 * Reads the link's token once, takes it out of the address bar and history, and spends it. The
 * platform's first admin address also needs the account's password: the page asks for it.
 */
export function VerifyEmail() {
  const [token] = useState(() => new URLSearchParams(window.location.search).get("token") || "");
  const [verified, setVerified] = useState(null);
  const [password, setPassword] = useState("");
  const action = useAction();
  const spend = (body) => action.run(async () => {
    const user = await api("POST", "/api/v1/auth/verify-email", body);
    setVerified(user);
    updateUser(user);
  });
  useEffect(() => {
    window.history.replaceState(null, "", "/verify-email");
    spend({ token });
  }, []);
  const needsPassword = !verified && ["password_required", "wrong_password"].includes(action.error?.code);
  const confirm = (e) => {
    e.preventDefault();
    spend({ token, password });
  };
  return html`<main id="main" class="signin">
    <h1>Taskmesh</h1>
    ${verified
      ? html`<p role="status" id="verified">Your address <b>${verified.email}</b> is confirmed: Taskmesh can mail you now.${verified.role === "admin" ? " This account is the platform's admin." : ""}</p>`
      : action.busy ? html`<p class="muted" aria-live="polite">Confirming your address…</p>` : ""}
    ${needsPassword ? html`<form onSubmit=${confirm} aria-label="Confirm with the account's password">
      <label>This address is the platform's first admin: the account's password
        <input name="password" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Confirm</button>
    </form>` : ""}
    <${Problem} error=${action.error} />
    <p><a href="/#/tasks">Continue to Taskmesh</a></p>
  </main>`;
}

/** Shown while the signed-in person's address is unconfirmed: a way to get a new link. */
export function UnverifiedBanner() {
  const user = session()?.user;
  const [sent, setSent] = useState(false);
  const action = useAction();
  if (!user || user.email_verified !== false) return "";
  const resend = () => action.run(async () => {
    await api("POST", "/api/v1/users/me/verify-email");
    setSent(true);
  });
  return html`<p class="banner" role="status" id="unverified">
    Confirm ${user.email}: Taskmesh mails you nothing until you open the link we sent.
    ${sent ? " A new link is on its way." : html` <button type="button" class="link" disabled=${action.busy} onClick=${resend}>Send a new link</button>`}
    <${Problem} error=${action.error} />
  </p>`;
}

// Sessions in the dashboard, in headless Chromium against the running platform (issue 28's
// defects 6 and 7):
//   1. a sign-in error does not stay on the page after switching to "Create an account";
//   2. every tab of a browser shares one session: a new tab is signed in, signing out in one
//      signs out the others (saying why), signing in again follows, and calls made at once in
//      two tabs with an expired access token refresh it once between them (a refresh token
//      works once: a second refresh would end the session);
//   3. signing out everywhere drops another device's open page to sign-in, saying why;
//   4. a deactivated person's open page drops to the sign-in page with the reason, at once.
// Ada and Bob have accounts; the admin's access token and Bob's user id are given.
// Usage: node sessions.mjs <gateway URL> <password> <admin token> <bob's user id>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args } from "./chromium.mjs";
import { caller, expect } from "./api.mjs";

const [base, password, admin, bobId] =
  args("sessions.mjs", ["gateway URL", "password", "admin token", "bob id"]);


const call = caller(base);
const browser = await launch();

async function tab(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${base}/#/tasks`);
  return page;
}

async function signIn(page, email, secret) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}

const tasksShown = (page) => page.getByRole("heading", { name: "My tasks" }).waitFor();
const signInShown = (page) => page.getByRole("button", { name: "Sign in" }).waitFor();

try {
  // 1. A wrong password's error, then "Create an account": the new form has no error.
  const ada = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const first = await tab(ada);
  await signIn(first, "ada@example.com", "not the password");
  await first.getByRole("alert").waitFor();
  await first.getByRole("button", { name: "Create an account" }).click();
  await first.getByRole("button", { name: "Create account" }).waitFor();
  expect("alerts on the sign-up form", await first.getByRole("alert").count(), 0);
  await first.getByRole("button", { name: "I have an account" }).click();
  console.log("ok a sign-in error does not stay on the sign-up form");

  // 2. Signed in in one tab, a new tab is signed in too.
  await signIn(first, "ada@example.com", password);
  await tasksShown(first);
  const second = await tab(ada);
  await tasksShown(second);
  await second.locator(".live-live").waitFor();
  console.log("ok a new tab shares the session");

  // Two tabs meet an expired access token at once: one refresh between them.
  const expire = () => {
    const session = JSON.parse(localStorage.getItem("taskmesh.session"));
    localStorage.setItem("taskmesh.session", JSON.stringify({ ...session, access_token: "expired" }));
  };
  const calls = async () => {
    const { api } = await import("/ui/js/api.js");
    const paths = ["/api/v1/users/me", "/api/v1/tasks", "/api/v1/channels"];
    const settled = await Promise.allSettled(paths.map((path) => api("GET", path)));
    return settled.map((s) => s.status === "fulfilled" ? s.status : `${s.reason.status} ${s.reason.message}`);
  };
  await first.evaluate(expire);
  const answers = await Promise.all([first.evaluate(calls), second.evaluate(calls)]);
  expect("calls in two tabs with an expired token", answers.flat(), Array(6).fill("fulfilled"));
  const token = await first.evaluate(() => JSON.parse(localStorage.getItem("taskmesh.session")).access_token);
  expect("the refreshed token's person", (await call(token, "GET", "/api/v1/users/me")).email, "ada@example.com");
  console.log("ok two tabs meeting an expired token refresh it once and stay signed in");

  // Signing out in one tab signs out the other, which says why; signing in again follows.
  await second.getByRole("button", { name: "Sign out", exact: true }).click();
  await signInShown(second);
  await signInShown(first);
  await first.getByText("You signed out in another tab.").waitFor();
  await signIn(first, "ada@example.com", password);
  await tasksShown(first);
  await tasksShown(second);
  console.log("ok signing out and in again in one tab does it in every tab");

  // 3. Sign out everywhere: another device's open page drops to sign-in and says why.
  const device = await tab(await browser.newContext({ viewport: { width: 1000, height: 700 } }));
  await signIn(device, "ada@example.com", password);
  await tasksShown(device);
  await device.locator(".live-live").waitFor();
  await first.getByRole("button", { name: "Sign out everywhere" }).click();
  await signInShown(first);
  await signInShown(device);
  const why = await device.locator("#signed-out").textContent();
  if (!why.includes("signed out everywhere")) throw new Error(`the other device says: ${why}`);
  console.log("ok signing out everywhere signs out another device's open page, saying why");

  // 4. Bob's page is open and live when an admin deactivates him.
  const bob = await tab(await browser.newContext({ viewport: { width: 1000, height: 700 } }));
  await signIn(bob, "bob@example.com", password);
  await tasksShown(bob);
  await bob.locator(".live-live").waitFor();
  await call(admin, "PATCH", `/api/v1/users/${bobId}`, { active: false });
  await signInShown(bob);
  const notice = await bob.locator("#signed-out").textContent();
  if (!notice.includes("deactivated")) throw new Error(`the sign-in page says: ${notice}`);
  console.log("ok a deactivated person's open page drops to sign-in and says why");
  console.log("ok sessions: every step passed");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

// The dashboard's first minute and its edits, in headless Chromium against the running platform:
//   1. signing up from `/` and signing in from `/#/tasks` both land on the tasks (no address
//      change is needed for the page to notice);
//   2. going from one task's page to another's by the address bar, Back or Forward never saves
//      one task's form onto the other;
//   3. a form filled before someone else's edit is saved with its ETag (If-Match): the stale
//      save is refused (412) and nothing is undone; the page offers to reload or to merge;
//   4. calls made at once with an expired access token refresh it once: a refresh token works
//      once (presenting it twice ends the session), so a page whose calls each refreshed would
//      sign the person out.
// Ada and Bob have accounts; Bob is assignable. Every outcome is checked through the API too.
// Usage: node editing.mjs <gateway URL> <password> <bob's user id>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, pick, chosen } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, bobId] = process.argv.slice(2);
if (!bobId) {
  console.error("usage: node editing.mjs <gateway URL> <password> <bob id>");
  process.exit(2);
}
const LIVE = 15000;

const call = caller(base);


const browser = await launch();

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  return page;
}

try {
  const ada = await accessToken(base, "ada@example.com", password);

  // 1. Sign up from `/`: the tasks show, with no message and no second try.
  const newcomer = await newPage();
  await newcomer.goto(`${base}/`);
  await newcomer.getByRole("button", { name: "Create an account" }).click();
  await newcomer.getByLabel("Email").fill("newcomer@example.com");
  await newcomer.getByLabel("Password").fill(password);
  await newcomer.getByLabel("Name").fill("Newcomer");
  await newcomer.getByRole("button", { name: "Create account" }).click();
  await newcomer.getByRole("heading", { name: "My tasks" }).waitFor({ timeout: 10000 });
  console.log("ok signing up from / shows the tasks");
  // Sign in from `/#/tasks`.
  const page = await newPage();
  await page.goto(`${base}/#/tasks`);
  await page.getByLabel("Email").fill("ada@example.com");
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My tasks" }).waitFor({ timeout: 10000 });
  await page.locator(".live-live").waitFor();
  console.log("ok signing in from /#/tasks shows the tasks");

  // 2. Task X is assigned to Bob, task Y to nobody. From X's page to Y's by the address bar.
  const x = await call(ada, "POST", "/api/v1/tasks", { title: "Task X for Bob", assignee_id: bobId });
  const y = await call(ada, "POST", "/api/v1/tasks", { title: "Task Y for nobody" });
  const form = page.locator("form.edit");
  await page.goto(`${base}/#/tasks/${x.id}`);
  await page.getByRole("heading", { name: x.title }).waitFor();
  expect("X's assignee field", await chosen(form, "assignee"), bobId);
  await page.goto(`${base}/#/tasks/${y.id}`); // the address bar: the same document
  await page.getByRole("heading", { name: y.title }).waitFor();
  expect("Y's title field", await form.getByLabel("Title").inputValue(), y.title);
  expect("Y's assignee field", await chosen(form, "assignee"), "");
  await form.getByRole("button", { name: "Save" }).click();
  await form.getByLabel("Title").fill("Task Y renamed");
  await form.getByRole("button", { name: "Save" }).click();
  await page.getByRole("heading", { name: "Task Y renamed" }).waitFor({ timeout: LIVE });
  let saved = await call(ada, "GET", `/api/v1/tasks/${y.id}`);
  expect("Y after its save", [saved.title, saved.assignee_id], ["Task Y renamed", null]);
  saved = await call(ada, "GET", `/api/v1/tasks/${x.id}`);
  expect("X after Y's save", [saved.title, saved.assignee_id], [x.title, bobId]);
  // Back to X and Forward to Y: each form holds its own task.
  await page.goBack();
  await page.getByRole("heading", { name: x.title }).waitFor();
  expect("X's title field after Back", await form.getByLabel("Title").inputValue(), x.title);
  expect("X's assignee field after Back", await chosen(form, "assignee"), bobId);
  await page.goForward();
  await page.getByRole("heading", { name: "Task Y renamed" }).waitFor();
  await form.getByRole("button", { name: "Save" }).click();
  expect("Y's title field after Forward", await form.getByLabel("Title").inputValue(), "Task Y renamed");
  expect("Y's assignee field after Forward", await chosen(form, "assignee"), "");
  saved = await call(ada, "GET", `/api/v1/tasks/${y.id}`);
  expect("Y after Back, Forward and Save", [saved.title, saved.assignee_id], ["Task Y renamed", null]);
  console.log("ok the address bar, Back and Forward never save one task's form onto another");

  // 3. Ada types a title; meanwhile the task is renamed elsewhere (the page shows it live).
  const conflict = page.locator(".conflict");
  await form.getByLabel("Title").fill("Ada's title");
  await call(ada, "PATCH", `/api/v1/tasks/${y.id}`, { title: "Renamed elsewhere" });
  await page.getByRole("heading", { name: "Renamed elsewhere" }).waitFor({ timeout: LIVE });
  expect("the typed title, kept", await form.getByLabel("Title").inputValue(), "Ada's title");
  await form.getByRole("button", { name: "Save" }).click();
  await conflict.getByText("This task changed since you opened it").waitFor();
  saved = await call(ada, "GET", `/api/v1/tasks/${y.id}`);
  expect("Y after the stale save", saved.title, "Renamed elsewhere");
  await conflict.getByRole("button", { name: /^Reload/ }).click();
  await conflict.waitFor({ state: "detached" });
  expect("the title field after Reload", await form.getByLabel("Title").inputValue(), "Renamed elsewhere");
  console.log("ok a stale save is refused (412) and undoes nothing; Reload shows the latest");

  // Merge: Ada assigns Bob on a stale form; theirs (the title) and hers (the assignee) both stay.
  await pick(form, "Assignee", "bob@example.com", "Bob");
  await call(ada, "PATCH", `/api/v1/tasks/${y.id}`, { title: "Renamed again" });
  await page.getByRole("heading", { name: "Renamed again" }).waitFor({ timeout: LIVE });
  await form.getByRole("button", { name: "Save" }).click();
  await conflict.getByRole("button", { name: /^Merge/ }).click();
  await conflict.waitFor({ state: "detached" });
  saved = await call(ada, "GET", `/api/v1/tasks/${y.id}`);
  expect("Y after Merge", [saved.title, saved.assignee_id], ["Renamed again", bobId]);
  expect("the title field after Merge", await form.getByLabel("Title").inputValue(), "Renamed again");
  console.log("ok Merge keeps their change and saves mine");

  // An untouched form follows live changes, so its next save starts from the latest.
  await call(ada, "PATCH", `/api/v1/tasks/${y.id}`, { title: "Renamed a third time" });
  await page.getByRole("heading", { name: "Renamed a third time" }).waitFor({ timeout: LIVE });
  await page.waitForFunction(() => document.querySelector("form.edit input[name=title]")?.value === "Renamed a third time");
  console.log("ok an untouched form follows live changes");

  // 4. The access token expires (here: is made unusable) while the page makes calls at once.
  const answers = await page.evaluate(async () => {
    const session = JSON.parse(localStorage.getItem("taskmesh.session"));
    localStorage.setItem("taskmesh.session", JSON.stringify({ ...session, access_token: "expired" }));
    const { api } = await import("/ui/js/api.js");
    const calls = ["/api/v1/users/me", "/api/v1/tasks", "/api/v1/channels", "/api/v1/notifications"];
    const settled = await Promise.allSettled(calls.map((path) => api("GET", path)));
    return settled.map((s) => s.status);
  });
  expect("the calls made at once", answers, ["fulfilled", "fulfilled", "fulfilled", "fulfilled"]);
  const after = await page.evaluate(() => JSON.parse(localStorage.getItem("taskmesh.session")));
  const me = await call(after.access_token, "GET", "/api/v1/users/me");
  expect("still signed in as", me.email, "ada@example.com");
  console.log("ok calls made at once with an expired token refresh it once and stay signed in");
  console.log("ok editing: every step passed");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

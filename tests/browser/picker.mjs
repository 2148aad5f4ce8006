// People by name in the dashboard, in headless Chromium against the running platform (issue
// 28: people, by name):
//   1. the person picker finds a channel mate by part of a name and anyone by exact email, and
//      says when nobody is found; a person is chosen with the keyboard;
//   2. the list names the assignee ("mine · assigned to Bob Stone"), and Bob's page the owner
//      ("from Ada Lovelace");
//   3. the task page names owner and assignee, and its history says who did what in words
//      ("Bob Stone moved it to In progress", "You assigned it to Zed Ward");
//   4. no page shows a user id.
// Ada, Bob and Zed have accounts; Ada and Bob share no channel yet, Zed never does.
// Usage: node picker.mjs <gateway URL> <password> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn, chosen, pick } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, shots] = args("picker.mjs", ["gateway URL", "password", "screenshot dir"]);
const call = caller(base);
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const browser = await launch();

/** The page's visible text has no user id (a task's id in a link's address is fine). */
async function noIds(page, where) {
  const text = await page.locator("body").innerText();
  const found = text.match(UUID);
  if (found) throw new Error(`${where} shows an id: ${found[0]}`);
}

try {
  const [ada, bob] = await Promise.all(["ada", "bob"].map((n) => accessToken(base, `${n}@example.com`, password)));
  const bobId = (await call(bob, "GET", "/api/v1/users/me")).id;
  const channel = await call(ada, "POST", "/api/v1/channels", { name: "Team" });
  await call(bob, "POST", "/api/v1/channels/join", { code: channel.join_code });

  // 1. The picker: part of a name finds the channel mate, not Zed; Zed's whole address does.
  const page = await signedIn(browser, base, "#/tasks", "ada@example.com", password);
  await page.locator(".live-live").waitFor();
  const form = page.getByRole("form", { name: "New task" });
  const box = form.getByRole("combobox", { name: "Assignee" });
  await box.fill("zed");
  await form.getByText("Nobody by that name shares a channel with you").waitFor();
  await box.fill("zed@example.com");
  await form.getByRole("option", { name: "Zed Ward", exact: true }).waitFor();
  await box.fill("sto");
  await form.getByRole("option", { name: "Bob Stone", exact: true }).waitFor();
  const options = form.getByRole("listbox", { name: "Assignee" }).getByRole("option");
  expect("the options for sto", await options.allTextContents(), ["BS Bob Stone"]);
  await page.screenshot({ path: `${shots}/picker.png` });
  await box.press("ArrowDown");
  await box.press("Enter");
  expect("the assignee chosen by keyboard", await chosen(form, "assignee"), bobId);
  await form.getByLabel("Title").fill("Plan the offsite");
  await form.getByRole("button", { name: "Create" }).click();
  console.log("ok the picker finds a channel mate by name and anyone by whole email");

  // 2. The list names the assignee; Bob's page names the owner.
  const row = page.locator("li.task", { hasText: "Plan the offsite" });
  await row.getByText("mine · assigned to Bob Stone").waitFor();
  await noIds(page, "Ada's list");
  const bobs = await signedIn(browser, base, "#/tasks", "bob@example.com", password);
  await bobs.locator("li.task", { hasText: "Plan the offsite" }).getByText("from Ada Lovelace").waitFor();
  await noIds(bobs, "Bob's list");
  console.log("ok the lists name the assignee and the owner");

  // 3. Bob starts it; Ada's task page names both, and its history says who did what.
  const task = (await call(ada, "GET", `/api/v1/tasks?q=${encodeURIComponent("Plan the offsite")}`)).items[0];
  await call(bob, "PATCH", `/api/v1/tasks/${task.id}`, { status: "in_progress" });
  await row.getByRole("link", { name: "Plan the offsite" }).click();
  await page.getByRole("heading", { name: "Plan the offsite" }).waitFor();
  const people = page.locator("dl.people");
  await people.getByText("Bob Stone").waitFor();
  const history = page.locator("ol.history");
  await history.getByText("Bob Stone moved it to In progress").waitFor();
  const edit = page.locator("form.edit");
  await pick(edit, "Assignee", "zed@example.com", "Zed Ward");
  await edit.getByRole("button", { name: "Save" }).click();
  await history.getByText("You assigned it to Zed Ward").waitFor();
  await people.getByText("Zed Ward").waitFor();
  const sentences = await history.locator("li").evaluateAll((lis) => lis.map((li) => [...li.childNodes]
    .filter((n) => n.nodeName !== "TIME").map((n) => n.textContent).join("").replace(/\s+/g, " ").trim()));
  expect("the history", sentences,
    ["Y You created it", "BS Bob Stone moved it to In progress", "Y You assigned it to Zed Ward"]);
  await noIds(page, "the task page");
  await page.screenshot({ path: `${shots}/task-people.png`, fullPage: true });
  console.log("ok the task page names owner and assignee and its history is in words");
  console.log("ok picker: every step passed");
} finally {
  await browser.close();
}

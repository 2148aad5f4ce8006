// A task's page in the dashboard, in headless Chromium against the running platform (issue
// 28: a complete task page, subtasks, relations, recurrence):
//   1. description (Markdown), priority, due date, channel and "repeats" are edited and saved:
//      the API has them, the description shows rendered (bold, a list) and the rule in words;
//   1b. the owner is shown following, and unfollows and follows again;
//   2. a subtask added on the page is listed with the progress "0 of 1 done", and completing it
//      elsewhere turns that into "1 of 1 done" live;
//   3. a task found by its words is related ("blocks"); the other task's page reads "blocked by"
//      and removes it, and the first page no longer lists it;
//   4. completing the recurring task creates the next one, due a week later;
//   5. Delete, confirmed, deletes the task and returns to the list.
// Ada has an account and no tasks.
// Usage: node taskpage.mjs <gateway URL> <password> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, shots] = args("taskpage.mjs", ["gateway URL", "password", "screenshot dir"]);
const call = caller(base);
const browser = await launch();
try {
  const ada = await accessToken(base, "ada@example.com", password);
  const home = await call(ada, "POST", "/api/v1/channels", { name: "Home" });
  const move = await call(ada, "POST", "/api/v1/tasks", { title: "Move house" });
  const van = await call(ada, "POST", "/api/v1/tasks", { title: "Book a van" });
  const page = await signedIn(browser, base, `#/tasks/${move.id}`, "ada@example.com", password);
  await page.getByRole("heading", { name: "Move house" }).waitFor();
  await page.locator(".live-live").waitFor();

  // 1. Edit every field and save.
  const form = page.locator("form.edit");
  await form.getByLabel("Description (Markdown)").fill("A **big** day:\n\n- boxes\n- keys");
  await form.getByLabel("Priority").selectOption("urgent");
  await form.getByLabel("Due").fill("2031-03-03T09:00"); // a Monday
  await form.getByLabel("Channel").selectOption({ label: "Home" });
  await form.getByLabel("Repeats").selectOption({ label: "every week on Monday" });
  await form.getByRole("button", { name: "Save" }).click();
  await page.locator(".description strong", { hasText: "big" }).waitFor();
  expect("the rendered list", await page.locator(".description li").allTextContents(), ["boxes", "keys"]);
  expect("the rule in words", await page.locator("[data-repeats]").textContent(), "repeats every week on Monday");
  const saved = await call(ada, "GET", `/api/v1/tasks/${move.id}`);
  expect("the saved fields", [saved.description, saved.priority, saved.channel_id, saved.recurrence],
    ["A **big** day:\n\n- boxes\n- keys", "urgent", home.id, "FREQ=WEEKLY;BYDAY=MO"]);
  expect("the due date's day", new Date(saved.due_at).getDay(), 1);
  console.log("ok description, priority, due date, channel and repeats are saved; Markdown and the rule shown");

  // 1b. Followers: the owner follows by default, and unfollows.
  const followers = page.locator("[data-followers]");
  await followers.getByText("You").waitFor();
  await followers.getByRole("button", { name: "Unfollow" }).click();
  await followers.getByRole("button", { name: "Follow", exact: true }).waitFor();
  expect("the followers", (await call(ada, "GET", `/api/v1/tasks/${move.id}/watchers`)).items, []);
  await followers.getByRole("button", { name: "Follow", exact: true }).click();
  await followers.getByRole("button", { name: "Unfollow" }).waitFor();
  console.log("ok the owner follows by default, unfollows and follows again");

  // 2. A subtask, and its progress live.
  const subtasks = page.getByRole("form", { name: "New subtask" });
  await subtasks.getByLabel("New subtask").fill("Pack boxes");
  await subtasks.getByRole("button", { name: "Add subtask" }).click();
  await page.locator("[data-progress]", { hasText: "0 of 1 done" }).waitFor();
  const children = await call(ada, "GET", `/api/v1/tasks/${move.id}/children`);
  expect("the subtask", children.items.map((t) => [t.title, t.channel_id]), [["Pack boxes", home.id]]);
  await call(ada, "PATCH", `/api/v1/tasks/${children.items[0].id}`, { status: "done" });
  await page.locator("[data-progress]", { hasText: "1 of 1 done" }).waitFor();
  console.log("ok a subtask is added, and its completion elsewhere shows as 1 of 1 done live");

  // 3. Relate by search; the other side reads it and removes it.
  const relate = page.getByRole("form", { name: "Relate to a task" });
  await relate.getByLabel("This task").selectOption("blocks");
  await relate.getByLabel("Find a task").fill("van");
  await relate.locator("select[name=other] option", { hasText: "Book a van" }).waitFor({ state: "attached" });
  await relate.getByRole("button", { name: "Relate" }).click();
  await page.locator("li[data-relation=blocks]", { hasText: "Book a van" }).waitFor();
  await page.screenshot({ path: `${shots}/task-links.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}/task-links-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1000, height: 700 });
  await page.locator("li[data-relation=blocks]").getByRole("link").click();
  await page.getByRole("heading", { name: "Book a van" }).waitFor();
  const back = page.locator("li[data-relation=blocked_by]", { hasText: "Move house" });
  await back.getByRole("button", { name: "Remove: blocked by Move house" }).click();
  await page.getByText("No related tasks.").waitFor();
  expect("Move house's relations", (await call(ada, "GET", `/api/v1/tasks/${move.id}/relations`)).items, []);
  console.log("ok a related task reads \"blocked by\" and removes the relation for both");

  // 4. Complete the recurring task: the next one is due a week later.
  await page.goto(`${base}/#/tasks/${move.id}`);
  await page.getByRole("heading", { name: "Move house" }).waitFor();
  await page.getByRole("group", { name: "Status" }).getByRole("button", { name: "Complete" }).click();
  await page.locator("[data-status=done]").first().waitFor();
  const open = (await call(ada, "GET", "/api/v1/tasks?status=todo&q=move")).items;
  expect("the next task", open.map((t) => [t.title, t.recurrence, (new Date(t.due_at) - new Date(saved.due_at)) / 86400000]),
    [["Move house", "FREQ=WEEKLY;BYDAY=MO", 7]]);
  console.log("ok completing it created the next one, due a week later");

  // 5. Delete the next one, confirmed.
  await page.goto(`${base}/#/tasks/${open[0].id}`);
  await page.getByRole("heading", { name: "Move house" }).waitFor();
  await page.getByRole("button", { name: "Delete this task" }).click();
  await page.getByRole("button", { name: "Delete for good" }).click();
  await page.getByRole("heading", { name: "My tasks" }).waitFor();
  const gone = await fetch(`${base}/api/v1/tasks/${open[0].id}`, { headers: { authorization: `Bearer ${ada}` } });
  expect("the deleted task", gone.status, 404);
  console.log("ok Delete, confirmed, deletes the task and returns to the list");
  console.log("ok taskpage: every step passed");
} finally {
  await browser.close();
}

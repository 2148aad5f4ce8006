// Comments in the dashboard, two people side by side on one task, in headless Chromium against
// the running platform (issue 28: comments):
//   1. Ada's comment appears on Bob's open page without a reload, its Markdown rendered, and a
//      live region says who commented;
//   2. it names Bob (`@Bob Stone`): Bob's unread count goes up live and the notification reads
//      "Ada Lovelace mentioned you on “Fix the roof”";
//   3. only Ada may edit or delete it; her edit and her delete show on Bob's page live.
// Ada and Bob share a channel; the task is in it.
// Usage: node comments.mjs <gateway URL> <password> <task id> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, taskId, shots] = args("comments.mjs", ["gateway URL", "password", "task id", "screenshot dir"]);
const call = caller(base);
const browser = await launch();

async function onTask(email) {
  const page = await signedIn(browser, base, `#/tasks/${taskId}`, email, password);
  await page.getByRole("heading", { name: "Fix the roof" }).waitFor();
  await page.locator(".live-live").waitFor();
  await page.getByText("No comments yet.").waitFor();
  return page;
}

const unread = async (page) => Number((await page.locator("#unread-badge").textContent({ timeout: 1000 }).catch(() => "0")) || 0);

try {
  const bobToken = await accessToken(base, "bob@example.com", password);
  const [ada, bob] = [await onTask("ada@example.com"), await onTask("bob@example.com")];
  const before = await unread(bob);

  // 1. Ada comments; Bob's page shows it, rendered, and announces it.
  const form = ada.getByRole("form", { name: "New comment" });
  // "@" and the start of a name suggests people; Enter puts the whole name in.
  const box = form.getByLabel("Comment");
  await box.fill("Can you check the **gutter**, @Bo");
  await form.getByRole("listbox", { name: "People to mention" }).getByRole("option", { name: "Bob Stone" }).waitFor();
  await box.press("Enter");
  expect("the box after choosing", await box.inputValue(), "Can you check the **gutter**, @Bob Stone ");
  await box.press("End");
  await box.pressSequentially("please?");
  await form.getByRole("button", { name: "Comment" }).click();
  const bobsComment = bob.locator("li.comment", { hasText: "Can you check the gutter" });
  await bobsComment.waitFor();
  expect("the bold word", await bobsComment.locator(".comment-body strong").textContent(), "gutter");
  expect("its author", await bobsComment.locator("b").first().textContent(), "Ada Lovelace");
  await bob.getByRole("status").filter({ hasText: "Ada Lovelace commented" }).waitFor({ state: "attached" });
  expect("the comment box after sending", await form.getByLabel("Comment").inputValue(), "");
  console.log("ok a comment appears live on the other person's page, rendered and announced");

  // 2. The mention reaches Bob live.
  await bob.waitForFunction((n) => Number(document.querySelector("#unread-badge")?.textContent || 0) > n, before);
  const told = (await call(bobToken, "GET", "/api/v1/notifications")).items.find((n) => n.kind === "task.mentioned");
  expect("Bob's notification", told?.title, "Ada Lovelace mentioned you on “Fix the roof”");
  console.log("ok the mention raises Bob's unread count live and reads as a sentence");

  // 3. Bob cannot edit or delete it; Ada edits, then deletes, and Bob's page follows.
  expect("Bob's buttons on Ada's comment", await bobsComment.getByRole("button").count(), 0);
  const adas = ada.locator("li.comment", { hasText: "Can you check the gutter" });
  await ada.screenshot({ path: `${shots}/comments.png`, fullPage: true });
  await adas.getByRole("button", { name: "Edit" }).click();
  const editing = ada.getByRole("form", { name: "Edit comment" });
  await editing.getByLabel("Your comment").fill("Checked: the gutter is fine.");
  await editing.getByRole("button", { name: "Save comment" }).click();
  const edited = bob.locator("li.comment", { hasText: "Checked: the gutter is fine." });
  await edited.getByText("(edited)").waitFor();
  ada.once("dialog", (dialog) => dialog.accept());
  await ada.locator("li.comment", { hasText: "Checked" }).getByRole("button", { name: "Delete" }).click();
  await edited.waitFor({ state: "detached" });
  await bob.getByText("No comments yet.").waitFor();
  console.log("ok only the author edits and deletes, and both show live");
  console.log("ok comments: every step passed");
} finally {
  await browser.close();
}

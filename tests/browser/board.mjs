// The board, in headless Chromium against the running platform (issue 28: views, a board):
//   1. my tasks in a column per status, with counts;
//   2. a card dragged to another column moves there (the API says so too);
//   3. the keyboard alternative: a card's "Move to" menu moves it;
//   4. a move the state machine forbids (Done straight to In progress) is refused with the
//      reason, and the card stays;
//   5. a change made elsewhere moves its card live.
// Ada has an account and no tasks.
// Usage: node board.mjs <gateway URL> <password> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, shots] = args("board.mjs", ["gateway URL", "password", "screenshot dir"]);
const call = caller(base);
const browser = await launch();
try {
  const ada = await accessToken(base, "ada@example.com", password);
  const made = {};
  for (const [title, priority] of [["Paint the fence", "high"], ["Order tiles", "normal"], ["Sweep the yard", "low"]]) {
    made[title] = await call(ada, "POST", "/api/v1/tasks", { title, priority });
  }
  await call(ada, "PATCH", `/api/v1/tasks/${made["Sweep the yard"].id}`, { status: "done" });
  const page = await signedIn(browser, base, "#/board", "ada@example.com", password);
  await page.locator(".live-live").waitFor();
  const column = (status) => page.locator(`[data-column=${status}]`);
  const card = (title) => page.locator("li.card", { hasText: title });
  const titles = async (status) => (await column(status).locator("li.card a").allTextContents()).sort();
  await card("Sweep the yard").waitFor();
  expect("To do", await titles("todo"), ["Order tiles", "Paint the fence"]);
  expect("Done", await titles("done"), ["Sweep the yard"]);
  expect("the To do heading", (await column("todo").locator("h2").textContent()).replace(/\s+/g, " "), "To do 2");
  console.log("ok the board shows a column per status with counts");

  // 2. Drag and drop.
  await card("Paint the fence").dragTo(column("in_progress"));
  await column("in_progress").locator("li.card", { hasText: "Paint the fence" }).waitFor();
  let task = await call(ada, "GET", `/api/v1/tasks/${made["Paint the fence"].id}`);
  expect("the dragged card's status", task.status, "in_progress");
  console.log("ok a dragged card moves, and its task's status with it");

  // 3. The keyboard: the card's menu.
  const menu = card("Order tiles").getByRole("combobox", { name: "Move “Order tiles” to" });
  await menu.focus();
  await menu.selectOption({ label: "Done" });
  await column("done").locator("li.card", { hasText: "Order tiles" }).waitFor();
  await page.getByRole("status").filter({ hasText: "“Order tiles” moved to Done" }).waitFor({ state: "attached" });
  console.log("ok the Move to menu moves a card without a mouse, and says so");

  // 4. Done → In progress is not a move the state machine allows.
  await card("Sweep the yard").dragTo(column("in_progress"));
  const alert = page.getByRole("alert");
  await alert.waitFor();
  const reason = await alert.textContent();
  if (!/todo/.test(reason)) throw new Error(`the refusal reads: ${reason}`);
  await column("done").locator("li.card", { hasText: "Sweep the yard" }).waitFor();
  task = await call(ada, "GET", `/api/v1/tasks/${made["Sweep the yard"].id}`);
  expect("the refused card's status", task.status, "done");
  console.log("ok a forbidden move is refused with the allowed ones named, and the card stays");

  // 5. Live: reopened elsewhere, the card comes back to To do.
  await call(ada, "PATCH", `/api/v1/tasks/${made["Sweep the yard"].id}`, { status: "todo" });
  await column("todo").locator("li.card", { hasText: "Sweep the yard" }).waitFor();
  console.log("ok a change made elsewhere moves its card live");
  await page.screenshot({ path: `${shots}/board.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: `${shots}/board-phone.png`, fullPage: true });
  console.log("ok board: every step passed");
} finally {
  await browser.close();
}

// The dashboard in headless Chromium against the running platform, as three people in three
// browser contexts: Ada assigns a task to Bob and Bob's open page shows it without a reload;
// Bob completes it and Ada's page shows that; Ada uploads a file and sees its progress bar
// reach 100 %; the admin replays a dead job from the dead-jobs page and sees it complete.
// Screenshots of each main page go to <screenshot dir>.
// Usage: node dashboard.mjs <gateway URL> <password> <bob's user id> <dead job title> <file> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, pick } from "./chromium.mjs";

const [base, password, bobId, deadTitle, file, shots] = process.argv.slice(2);
if (!shots) {
  console.error("usage: node dashboard.mjs <gateway URL> <password> <bob id> <dead job title> <file> <screenshot dir>");
  process.exit(2);
}
// Live updates must arrive within this long; no reload, no polling of the list.
const LIVE = 15000;

const browser = await launch();

async function signedIn(email) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => console.error(`${email}: page error: ${e.message}`));
  await page.goto(`${base}/#/login`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My tasks" }).waitFor();
  // The stream is open ("live") before anything is expected to arrive on it.
  await page.locator(".live-live").waitFor();
  return page;
}

const shot = (page, name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

try {
  const bob = await signedIn("bob@example.com");
  const ada = await signedIn("ada@example.com");

  // Ada assigns a task to Bob; Bob's open page shows it without a reload.
  const title = "Review the quarterly report";
  const create = ada.getByRole("form", { name: "New task" });
  await create.getByLabel("Title").fill(title);
  await create.getByLabel("Priority").selectOption("high");
  await pick(create, "Assignee", "bob@example.com", "Bob");
  await create.getByRole("button", { name: "Create" }).click();
  const bobsRow = bob.locator("li.task", { hasText: title });
  await bobsRow.waitFor({ timeout: LIVE });
  console.log("ok bob's page shows the task ada assigned, without a reload");
  await shot(bob, "tasks");

  // Bob completes it; Ada's list shows the change without a reload.
  await bobsRow.getByRole("link", { name: title }).click();
  await bob.getByRole("heading", { name: title }).waitFor();
  await bob.getByRole("button", { name: "Complete" }).click();
  await bob.locator('#task-title ~ p [data-status="done"]').waitFor({ timeout: LIVE });
  await ada.locator("li.task", { hasText: title }).locator('[data-status="done"]').waitFor({ timeout: LIVE });
  console.log("ok ada's page shows bob completed it, without a reload");

  // Ada uploads a file on the task's page: the progress bar shows and reaches 100 %.
  await ada.locator("li.task", { hasText: title }).getByRole("link", { name: title }).click();
  await ada.getByRole("heading", { name: title }).waitFor();
  await ada.getByLabel("File").setInputFiles(file);
  await ada.getByRole("button", { name: "Upload" }).click();
  const bar = ada.locator("#upload-progress");
  await bar.waitFor();
  await ada.waitForFunction(() => document.querySelector("#upload-progress")?.value === 100);
  await ada.locator("#files-title ~ ul li").first().waitFor({ timeout: LIVE });
  console.log("ok the upload showed its progress bar up to 100 % and the file is listed");
  await shot(ada, "task");

  await ada.goto(`${base}/#/channels`);
  await ada.getByRole("form", { name: "New channel" }).getByLabel("Name").fill("Operations");
  await ada.getByRole("button", { name: "Create channel" }).click();
  await ada.getByRole("rowheader", { name: "Operations" }).waitFor();
  await shot(ada, "channels");
  await bob.goto(`${base}/#/notifications`);
  await bob.getByRole("heading", { name: "Notifications" }).waitFor();
  await bob.locator("#unread-badge").waitFor({ timeout: LIVE });
  await shot(bob, "notifications");
  // A notification links to its task, and following it marks it read.
  const assigned = (state) => bob.locator(`ul.notifications li${state}`, { hasText: `assigned you “${title}”` });
  await assigned("").getByRole("link").click();
  await bob.getByRole("heading", { name: title }).waitFor();
  await bob.goBack();
  await assigned(".read").waitFor();
  console.log("ok a notification links to its task, and following it marks it read");

  // The admin replays the dead job from the dead-jobs page and sees it complete.
  const admin = await signedIn("admin@example.com");
  await admin.goto(`${base}/#/admin/dead`);
  const dead = admin.locator("ul.dead > li", { hasText: deadTitle });
  await dead.waitFor();
  await dead.locator("summary").click();
  await dead.locator("pre.payload").waitFor();
  await shot(admin, "dead-jobs");
  await dead.getByRole("button", { name: `Replay ${deadTitle}` }).click();
  await dead.waitFor({ state: "detached", timeout: LIVE });
  await admin.getByRole("link", { name: "Tasks", exact: true }).click();
  await admin.locator("li.task", { hasText: deadTitle }).locator('[data-status="completed"]')
    .waitFor({ timeout: LIVE });
  console.log("ok the admin replayed the dead job and saw it complete");

  await admin.goto(`${base}/#/admin/pools`);
  await admin.locator("tr[data-pool]").first().waitFor();
  await admin.locator(".chart .uplot").first().waitFor();
  await shot(admin, "pools");
  await admin.goto(`${base}/#/admin/workers`);
  await admin.getByRole("heading", { name: "Workers" }).waitFor();
  await admin.locator("tbody tr").first().waitFor();
  await shot(admin, "workers");
  await admin.goto(`${base}/#/admin/users`);
  await admin.locator("th", { hasText: "bob@example.com" }).waitFor();
  await shot(admin, "users");

  // The keyboard alone: the first Tab reaches the skip link, Enter moves to the content, and
  // Tab goes on through the navigation's links.
  await bob.goto(`${base}/#/tasks`);
  await bob.reload(); // a page just loaded (navigating moves the focus to the view's heading)
  await bob.locator("li.task").first().waitFor();
  await bob.keyboard.press("Tab");
  const skip = await bob.evaluate(() => document.activeElement?.textContent);
  if (skip !== "Skip to content") throw new Error(`the first Tab reached ${skip}`);
  await bob.keyboard.press("Enter");
  const main = await bob.evaluate(() => document.activeElement?.id);
  if (main !== "main") throw new Error(`Enter on the skip link focused ${main}`);
  await bob.reload(); // focus starts from the top again
  await bob.locator("li.task").first().waitFor();
  for (const key of ["Tab", "Tab", "Tab", "Tab", "Enter"]) await bob.keyboard.press(key); // skip link, Tasks, Board, Channels
  await bob.getByRole("heading", { name: "Channels" }).waitFor();
  console.log("ok the pages work from the keyboard");

  // Phone width: the task list still reads.
  await bob.setViewportSize({ width: 390, height: 800 });
  await bob.goto(`${base}/#/tasks`);
  await bob.locator("li.task").first().waitFor();
  await shot(bob, "tasks-phone");
  console.log("ok screenshots written");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

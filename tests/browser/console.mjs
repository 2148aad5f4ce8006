// The operator's job console, in headless Chromium against the running platform (issue 29):
//   1. an admin sees the Jobs page's counts by state, finds a job by its payload's content,
//      opens it, runs it now and sees it complete live (its payload and result shown);
//   2. on the Cron page, edits a template's schedule, then pauses it (after a confirmation)
//      and sees it paused, its next ticks gone; the API says no tick of it is due;
//   3. on the Dead jobs page, picks three dead jobs and replays them after a confirmation that
//      says "3 jobs"; they leave the dead list and complete;
//   4. opens a worker's page from the Workers page;
//   5. a member reaching any of the console's pages is refused (403 from the API, shown on the
//      page), and the navigation offers them none.
// The admin has a job waiting until 2031 ("Acme report", payload {"customer": "acme-42"}), a
// cron template ("Nightly") and three dead jobs ("Export 1" to "Export 3") that succeed when
// replayed; Ada is a member.
// Usage: node console.mjs <gateway URL> <admin email> <password> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, adminEmail, password, shots] = args("console.mjs", ["gateway URL", "admin email", "password", "screenshot dir"]);
const call = caller(base);
const browser = await launch();
try {
  const admin = await accessToken(base, adminEmail, password);
  const page = await signedIn(browser, base, "#/admin/jobs", adminEmail, password);
  await page.getByRole("heading", { name: "Jobs" }).waitFor();
  await page.locator(".live-live").waitFor();

  // 1. Counts by state; find by payload, open, run now, completed live.
  await page.getByRole("group", { name: "State" }).getByRole("button", { name: "dead 3" }).waitFor();
  await page.getByRole("group", { name: "State" }).getByRole("button", { name: "scheduled 3" }).waitFor();
  const find = page.getByRole("search", { name: "Find jobs" });
  await find.getByLabel("Payload contains (JSON)").fill('{"customer": "acme-42"}');
  await find.getByRole("button", { name: "Find" }).click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("tr[data-job] th a")].map((a) => a.textContent);
    return rows.length === 1 && rows[0] === "Acme report";
  });
  await page.screenshot({ path: `${shots}/jobs.png`, fullPage: true });
  await page.locator("tr[data-job] th a").click();
  await page.getByRole("heading", { name: "Acme report" }).waitFor();
  expect("the payload shown", JSON.parse(await page.getByLabel("Payload", { exact: true }).textContent()), { customer: "acme-42" });
  await page.getByRole("button", { name: "Run now" }).click();
  await page.locator("[data-job-state=completed]").waitFor();
  await page.getByLabel("Result", { exact: true }).waitFor();
  await page.screenshot({ path: `${shots}/job.png`, fullPage: true });
  console.log("ok a job found by its payload is run now from its page and completes live");

  // 2. Edit a cron template's schedule, then pause it.
  await page.getByRole("link", { name: "Cron" }).click();
  await page.getByRole("heading", { name: "Cron templates" }).waitFor();
  await page.getByRole("button", { name: "Edit the schedule of Nightly" }).click();
  const schedule = page.getByLabel("Schedule of Nightly");
  await schedule.fill("61 * * * *");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("alert").filter({ hasText: "cron expression" }).waitFor();
  expect("the refused schedule kept in the form", await schedule.inputValue(), "61 * * * *");
  await schedule.fill("30 4 * * *");
  await page.getByRole("button", { name: "Save" }).click();
  await page.getByRole("status").filter({ hasText: "now runs on 30 4 * * *" }).waitFor();
  await page.locator("tr[data-template]", { hasText: "Nightly" }).locator("code", { hasText: "30 4 * * *" }).waitFor();
  console.log("ok a cron template's schedule is edited, a wrong one refused with the reason");
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "Pause Nightly" }).click();
  await page.getByRole("status").filter({ hasText: "is paused" }).waitFor();
  await page.locator("tr[data-template]", { hasText: "Nightly" }).getByText("paused").first().waitFor();
  await page.screenshot({ path: `${shots}/cron.png`, fullPage: true });
  const nightly = (await call(admin, "GET", "/api/v1/admin/cron")).items.find((t) => t.title === "Nightly");
  expect("the paused template", [nightly.paused_at !== null, nightly.next_ticks], [true, []]);
  console.log("ok a cron template is paused after a confirmation, its next ticks gone");

  // 3. Bulk-replay three dead jobs after a confirmation that says how many.
  await page.getByRole("link", { name: "Dead jobs" }).click();
  await page.getByRole("heading", { name: "Dead jobs" }).waitFor();
  await page.locator("ul.dead > li").nth(2).waitFor();
  await page.getByLabel("Select every dead job shown (3)").check();
  await page.getByRole("group", { name: "Selected jobs" }).getByText("3 selected").waitFor();
  await page.screenshot({ path: `${shots}/dead-jobs-selected.png`, fullPage: true });
  let asked = null;
  page.once("dialog", (dialog) => { asked = dialog.message(); dialog.accept(); });
  await page.getByRole("button", { name: "Replay selected" }).click();
  await page.getByRole("status").filter({ hasText: "3 jobs replayed" }).waitFor();
  expect("the confirmation", asked, "Replay 3 jobs?");
  await page.getByText("No dead jobs.").waitFor();
  await page.getByRole("link", { name: "Jobs", exact: true }).click();
  await page.getByRole("group", { name: "State" }).getByRole("button", { name: "completed 4" }).waitFor();
  console.log("ok three dead jobs are replayed together after a confirmation naming 3, and complete");

  // 4. A worker's page.
  await page.getByRole("link", { name: "Workers" }).click();
  await page.getByRole("heading", { name: "Workers" }).waitFor();
  await page.locator("tbody tr th a").first().click();
  await page.getByRole("heading", { name: /^Worker / }).waitFor();
  await page.getByText("In flight: none.").waitFor();
  await page.locator("tr[data-run]").first().waitFor();
  await page.screenshot({ path: `${shots}/worker.png`, fullPage: true });
  console.log("ok a worker's page shows its runs");

  // 5. A member is refused every page of the console, and is offered none.
  const member = await signedIn(browser, base, "#/admin/jobs", "ada@example.com", password);
  const memberToken = await accessToken(base, "ada@example.com", password);
  for (const [hash, heading, path] of [["#/admin/jobs", "Jobs", "/api/v1/admin/jobs"],
    ["#/admin/cron", "Cron templates", "/api/v1/admin/cron"], ["#/admin/dead", "Dead jobs", "/api/v1/admin/jobs/dead"],
    ["#/admin/pools", "Queues and pools", "/api/v1/admin/pools"], ["#/admin/workers", "Workers", "/api/v1/workers"]]) {
    await member.goto(`${base}/${hash}`);
    await member.getByRole("heading", { name: heading, exact: true }).waitFor();
    await member.getByRole("alert").filter({ hasText: /admin/i }).first().waitFor();
    const refused = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${memberToken}` } });
    expect(`the member's answer for ${path}`, refused.status, 403);
  }
  const offered = await member.getByRole("navigation", { name: "Main" }).getByRole("link").allTextContents();
  for (const name of ["Jobs", "Cron", "Dead jobs", "Pools", "Workers", "Users"]) {
    if (offered.includes(name)) throw new Error(`a member is offered ${name}: ${offered}`);
  }
  console.log("ok a member is refused the console's pages and offered none");
  console.log("ok console: every step passed");
} finally {
  await browser.close();
}

// The operator's job console, in headless Chromium against the running platform (issue 29):
//   1. an admin finds a job by its payload's content on the Jobs page, opens it, runs it now
//      and sees it complete live (its payload and result shown);
//   2. on the Cron page, pauses a template (after a confirmation) and sees it paused, its next
//      ticks gone; the API says no tick of it is due;
//   3. a member reaching the Jobs page is refused (403 from the API, shown on the page).
// The admin has a job waiting until 2031 ("Acme report", payload {"customer": "acme-42"}) and a
// cron template ("Nightly"); Ada is a member.
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

  // 1. Find by payload, open, run now, completed live.
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

  // 2. Pause a cron template.
  await page.getByRole("link", { name: "Cron" }).click();
  await page.getByRole("heading", { name: "Cron templates" }).waitFor();
  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: "Pause Nightly" }).click();
  await page.getByRole("status").filter({ hasText: "is paused" }).waitFor();
  await page.locator("tr[data-template]", { hasText: "Nightly" }).getByText("paused").first().waitFor();
  await page.screenshot({ path: `${shots}/cron.png`, fullPage: true });
  const nightly = (await call(admin, "GET", "/api/v1/admin/cron")).items.find((t) => t.title === "Nightly");
  expect("the paused template", [nightly.paused_at !== null, nightly.next_ticks], [true, []]);
  console.log("ok a cron template is paused after a confirmation, its next ticks gone");

  // 3. A member is refused.
  const member = await signedIn(browser, base, "#/admin/jobs", "ada@example.com", password);
  await member.getByRole("heading", { name: "Jobs" }).waitFor();
  await member.getByRole("alert").filter({ hasText: /admin/i }).waitFor();
  const refused = await fetch(`${base}/api/v1/admin/jobs`, { headers: { authorization: `Bearer ${await accessToken(base, "ada@example.com", password)}` } });
  expect("the member's answer", refused.status, 403);
  console.log("ok a member is refused the console");
  console.log("ok console: every step passed");
} finally {
  await browser.close();
}

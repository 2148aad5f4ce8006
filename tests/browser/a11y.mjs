// axe-core on every page of the dashboard, at desktop and phone width, in headless Chromium
// against the running platform (issue 28: 0 serious or critical violations): the sign-in page,
// the verification page, and signed in as an admin every view (a task's page and a workflow's
// page and a worker's page included). Prints each page's count and fails on any serious or critical violation,
// naming the rule and the elements.
// Usage: node a11y.mjs <gateway URL> <admin email> <password> <task id> <workflow id>
import { createRequire } from "node:module";
import { launch, args } from "./chromium.mjs";
import { caller, accessToken } from "./api.mjs";

const [base, email, password, taskId, workflowId] =
  args("a11y.mjs", ["gateway URL", "admin email", "password", "task id", "workflow id"]);
const axe = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const WIDTHS = { desktop: { width: 1200, height: 800 }, phone: { width: 390, height: 844 } };
const VIEWS = ["#/tasks", `#/tasks/${taskId}`, "#/board", "#/calendar", "#/channels", "#/notifications", "#/webhooks", "#/tokens", "#/workflows",
  `#/workflows/${workflowId}`, "#/limits", "#/profile", "#/admin/pools", "#/admin/dead", "#/admin/workers",
  "#/admin/users", "#/admin/cron", "#/admin/jobs"];

/** The serious and critical violations on `page` as it is now, described. */
async function audit(page) {
  await page.addScriptTag({ path: axe });
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return violations.map((v) => ({
    impact: v.impact,
    text: `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`,
  }));
}

/** Waits until the view shows its heading and has nothing left loading. */
async function settled(page) {
  await page.locator("main h1").first().waitFor();
  await page.waitForFunction(() => !/Loading /.test(document.querySelector("main")?.textContent || ""));
}

// A worker's page too (the in-process worker's).
const workers = await caller(base)(await accessToken(base, email, password), "GET", "/api/v1/workers");
const worker = workers.items[0]?.id;
if (!worker) throw new Error("no worker to audit the page of");
VIEWS.push(`#/admin/workers/${encodeURIComponent(worker)}`);

const browser = await launch();
let failed = 0;
const report = (width, where, found) => {
  const bad = found.filter((v) => v.impact === "serious" || v.impact === "critical");
  failed += bad.length;
  console.log(`${bad.length ? "FAILED" : "ok"} a11y ${width} ${where}: ${bad.length} serious or critical, ${found.length - bad.length} other`);
  for (const v of bad) console.log(`  ${v.text}`);
};
try {
  for (const [width, viewport] of Object.entries(WIDTHS)) {
    // axe is added as a script: the dashboard's Content Security Policy would refuse it.
    const context = await browser.newContext({ viewport, bypassCSP: true });
    const page = await context.newPage();
    page.setDefaultTimeout(20000);
    page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    await page.goto(`${base}/verify-email?token=not-a-token`);
    await page.getByRole("alert").waitFor();
    report(width, "/verify-email", await audit(page));
    await page.goto(`${base}/reset-password?token=not-a-token`);
    await page.getByRole("button", { name: "Set my password" }).waitFor();
    report(width, "/reset-password", await audit(page));
    await page.goto(`${base}/#/tasks`);
    await page.getByRole("button", { name: "Forgot your password?" }).click();
    await page.getByRole("button", { name: "Mail me a link" }).waitFor();
    report(width, "forgot password", await audit(page));
    await page.getByRole("button", { name: "Back to sign in" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    report(width, "sign-in", await audit(page));
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill(password);
    await page.getByRole("button", { name: "Sign in" }).click();
    for (const view of VIEWS) {
      await page.goto(`${base}/${view}`);
      await settled(page);
      const where = view.replace(taskId, "<task>").replace(workflowId, "<workflow>")
        .replace(encodeURIComponent(worker), "<worker>");
      report(width, where, await audit(page));
    }
    await context.close();
  }
  if (failed) throw new Error(`${failed} serious or critical violations`);
  console.log("ok a11y: every page passed");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

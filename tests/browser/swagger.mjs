// Swagger UI, in headless Chromium, against the running platform: load /docs, Authorize with a
// bearer token, then "Try it out" on GET /api/v1/users/me and on GET /api/v1/tasks (its filters
// left empty: Swagger UI refuses to run an operation whose required parameters are empty) and
// read the status Swagger shows for each.
// Usage: node swagger.mjs <gateway base URL> <access token>
// Prints "<path> status <code>" per operation and "status 200" when both answered 200; exits 0
// only then.
import { launch } from "./chromium.mjs";

const [base, token] = process.argv.slice(2);
if (!base || !token) {
  console.error("usage: node swagger.mjs <gateway base URL> <access token>");
  process.exit(2);
}

const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  // The page runs under its Content Security Policy: anything it refuses fails the test.
  const refused = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) refused.push(message.text());
  });
  await page.goto(`${base}/docs/`);
  // The operation list is rendered from /openapi.json.
  await page.locator(".opblock-get").first().waitFor();

  await page.locator("button.authorize").first().click();
  const modal = page.locator(".modal-ux");
  await modal.locator("input").first().fill(token);
  await modal.locator("button.authorize").click();
  await modal.locator("button.btn-done, button.close-modal").first().click();

  const codes = [];
  for (const path of ["/api/v1/users/me", "/api/v1/tasks"]) {
    codes.push(await tryOut(page, path));
    console.log(`${path} status ${codes.at(-1)}`);
  }
  if (refused.length) {
    console.error(`refused by the Content Security Policy:\n${refused.join("\n")}`);
    process.exit(1);
  }
  const ok = codes.every((code) => code === "200");
  if (ok) console.log("status 200");
  process.exit(ok ? 0 : 1);
} catch (err) {
  console.error(`browser test failed: ${err.message}`);
  if (process.env.SCREENSHOT) await browser.contexts()[0]?.pages()[0]?.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  process.exit(1);
} finally {
  await browser.close();
}

// Opens GET `path`, runs it ("Try it out", then "Execute") and returns the status shown.
async function tryOut(page, path) {
  const summary = page.locator(`.opblock-summary-path[data-path="${path}"]`);
  const operation = page.locator(".opblock-get").filter({ has: summary }).first();
  await operation.locator(".opblock-summary").click();
  // The section animates open; a click during the animation can be lost, so try again until
  // the Execute button shows.
  const execute = operation.locator("button.execute");
  for (let attempt = 0; attempt < 10 && !(await execute.isVisible()); attempt++) {
    await operation.locator("button.try-out__btn").click();
    await execute.waitFor({ timeout: 1000 }).catch(() => {});
  }
  await execute.click();
  const status = operation.locator(".live-responses-table tr.response .response-col_status").first();
  await status.waitFor({ timeout: 5000 }).catch(() => {});
  if (!(await status.isVisible())) {
    // Not run: Swagger UI marks the parameters it wants filled.
    const invalid = await operation.locator(".parameters .invalid, .parameters input.invalid").count();
    return `not run (${invalid} parameters it wants filled)`;
  }
  return (await status.innerText()).trim();
}

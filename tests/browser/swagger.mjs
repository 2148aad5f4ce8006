// Swagger UI, in headless Chromium, against the running platform: load /docs, Authorize with a
// bearer token, then "Try it out" on GET /api/v1/users/me and read the status Swagger shows.
// Usage: node swagger.mjs <gateway base URL> <access token>
// Prints "status <code>" and exits 0 only when the call answered 200.
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
  const operation = page.locator(".opblock-get", { hasText: "/api/v1/users/me" }).first();
  await operation.waitFor();

  await page.locator("button.authorize").first().click();
  const modal = page.locator(".modal-ux");
  await modal.locator("input").first().fill(token);
  await modal.locator("button.authorize").click();
  await modal.locator("button.btn-done, button.close-modal").first().click();

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
  await status.waitFor();
  const code = (await status.innerText()).trim();
  if (refused.length) {
    console.error(`refused by the Content Security Policy:\n${refused.join("\n")}`);
    process.exit(1);
  }
  console.log(`status ${code}`);
  process.exit(code === "200" ? 0 : 1);
} catch (err) {
  console.error(`browser test failed: ${err.message}`);
  if (process.env.SCREENSHOT) await browser.contexts()[0]?.pages()[0]?.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  process.exit(1);
} finally {
  await browser.close();
}

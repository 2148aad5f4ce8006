// The Limits page (`#/limits`) in headless Chromium against the running platform: a member
// signed in sees their key with jobs waiting, and the page follows the key live until every
// job has run (nothing in flight, nothing waiting).
// Usage: node limits.mjs <gateway URL> <password> <email> <key>
// Prints "ok limits: ..." and exits 0 only when every step passed.
import { launch } from "./chromium.mjs";

const [base, password, email, key] = process.argv.slice(2);
if (!key) {
  console.error("usage: node limits.mjs <gateway URL> <password> <email> <key>");
  process.exit(2);
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${base}/#/limits`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  const row = page.locator(`tr[data-key="${key}"]`);
  await row.waitFor();
  const waiting = Number(await row.locator(".waiting").textContent());
  const inFlight = Number(await row.locator(".in-flight").textContent());
  if (!(waiting >= 1 && inFlight === 1)) {
    throw new Error(`the key shows ${inFlight} in flight and ${waiting} waiting, not 1 and some`);
  }
  // Nothing reloaded by hand: the page follows the key until its jobs have all run.
  await row.locator(".waiting", { hasText: /^0$/ }).waitFor();
  await row.locator(".in-flight", { hasText: /^0$/ }).waitFor();
  console.log(`ok limits: ${key} showed 1 in flight and ${waiting} waiting, then drained live`);
} finally {
  await browser.close();
}

// The Limits page (`#/limits`) in headless Chromium against the running platform: a member
// signed in sees their key with jobs waiting, and the page follows the key live until every
// job has run (nothing in flight, nothing waiting).
// Usage: node limits.mjs <gateway URL> <password> <email> <key>
// Prints "ok limits: ..." and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";

const [base, password, email, key] = args("limits.mjs", ["gateway URL", "password", "email", "key"]);
const browser = await launch();
try {
  const page = await signedIn(browser, base, `#/limits`, email, password);
  const row = page.locator(`tr[data-key="${key}"]`);
  // One in flight, some waiting (the page may first show a moment between two jobs).
  await row.locator(".in-flight", { hasText: /^1$/ }).waitFor();
  await row.locator(".waiting", { hasText: /^[1-9]/ }).waitFor();
  const waiting = Number(await row.locator(".waiting").textContent());
  // Nothing reloaded by hand: the page follows the key until its jobs have all run.
  await row.locator(".waiting", { hasText: /^0$/ }).waitFor({ timeout: 60000 });
  await row.locator(".in-flight", { hasText: /^0$/ }).waitFor({ timeout: 60000 });
  console.log(`ok limits: ${key} showed 1 in flight and ${waiting} waiting, then drained live`);
} finally {
  await browser.close();
}

// The link a new account's address is mailed, opened in headless Chromium against the running
// platform:
//   1. a member's link confirms the address, and the token leaves the address bar at once;
//   2. the bootstrap admin's link asks for the account's password; a wrong one is refused and
//      keeps the link, the right one confirms the address and makes the account admin;
//   3. a person whose address is unconfirmed sees a banner offering a new link (within a minute
//      of the last one, the page shows why none is sent).
// Usage: node verify.mjs <gateway URL> <member token> <admin token> <password> <unverified email>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch } from "./chromium.mjs";
import { expect } from "./api.mjs";

const [base, memberToken, adminToken, password, unverified] = process.argv.slice(2);
if (!unverified) {
  console.error("usage: node verify.mjs <gateway URL> <member token> <admin token> <password> <unverified email>");
  process.exit(2);
}


const browser = await launch();

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  return page;
}

try {
  // 1. A member's link: confirmed, and the token is out of the address bar.
  const member = await newPage();
  await member.goto(`${base}/verify-email?token=${memberToken}`);
  const confirmed = await member.locator("#verified").textContent();
  if (!confirmed.includes("is confirmed")) throw new Error(`the page says: ${confirmed}`);
  expect("the address bar", new URL(member.url()).search, "");
  console.log("ok a member's link confirms the address and leaves the address bar");

  // 2. The bootstrap admin's link needs the account's password.
  const admin = await newPage();
  await admin.goto(`${base}/verify-email?token=${adminToken}`);
  const field = admin.locator('input[name="password"]');
  await field.fill("not the password at all");
  await admin.getByRole("button", { name: "Confirm" }).click();
  await admin.locator(".problem code", { hasText: "wrong_password" }).waitFor();
  await field.fill(password);
  await admin.getByRole("button", { name: "Confirm" }).click();
  const made = await admin.locator("#verified").textContent();
  if (!made.includes("admin")) throw new Error(`the page says: ${made}`);
  console.log("ok the bootstrap admin's link asks for the password, refuses a wrong one, and makes the account admin");

  // 3. Signed in with an unconfirmed address: the banner, and why no new link goes yet.
  const page = await newPage();
  await page.goto(`${base}/`);
  await page.getByLabel("Email").fill(unverified);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#unverified").waitFor();
  await page.getByRole("button", { name: "Send a new link" }).click();
  await page.locator("#unverified .problem code", { hasText: "too_soon" }).waitFor();
  console.log("ok an unconfirmed address shows the banner, and a new link within a minute is refused with the reason");
  console.log("ok verify: every step passed");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

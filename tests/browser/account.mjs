// My account in the dashboard, in headless Chromium against the running platform (issue 28:
// account basics):
//   1. "Forgot your password?" on the sign-in page takes an address and says a link is on its
//      way (the same whether an account has it);
//   2. the mailed link's page sets a new password, and signing in with it works;
//   3. the profile page changes my name (the header shows it), asks for a new address (mine
//      stays until the new one opens its link) and changes my password.
// Ada has an account; the reset link mailed to her is given.
// Usage: node account.mjs <gateway URL> <password> <reset link>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, link] = args("account.mjs", ["gateway URL", "password", "reset link"]);
const call = caller(base);
const browser = await launch();
try {
  // 1. Ask for a link from the sign-in page.
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${base}/`);
  await page.getByRole("button", { name: "Forgot your password?" }).click();
  const forgot = page.getByRole("form", { name: "Reset my password" });
  await forgot.getByLabel("Email").fill("ada@example.com");
  await forgot.getByRole("button", { name: "Mail me a link" }).click();
  await page.locator("#reset-sent").waitFor();
  console.log("ok the sign-in page asks for a reset link");

  // 2. The link's page sets a new password; the token leaves the address bar.
  await page.goto(link.replace(/^https?:\/\/[^/]+/, base));
  await page.getByRole("button", { name: "Set my password" }).waitFor();
  await page.waitForFunction(() => window.location.search === "");
  const fresh = "a fresh long passphrase";
  await page.locator("input[name=new_password]").fill(fresh);
  await page.getByRole("button", { name: "Set my password" }).click();
  await page.locator("#reset-done").waitFor();
  await page.getByRole("link", { name: "Sign in" }).click();
  await page.getByLabel("Email").fill("ada@example.com");
  await page.getByLabel("Password").fill(fresh);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "My tasks" }).waitFor();
  console.log("ok the mailed link sets a new password, and it signs in");
  await context.close();

  // 3. The profile: name, address, password.
  const me = await signedIn(browser, base, "#/profile", "ada@example.com", fresh);
  await me.getByRole("heading", { name: "Profile" }).waitFor();
  const name = me.getByRole("form", { name: "Name" });
  await name.getByLabel("Name").fill("Ada King");
  await name.getByRole("button", { name: "Save name" }).click();
  await me.getByRole("link", { name: "Ada King (member)" }).waitFor();
  const address = me.getByRole("form", { name: "Email address" });
  await address.getByLabel("New address").fill("ada@king.example.com");
  await address.getByLabel("Your password").fill(fresh);
  await address.getByRole("button", { name: "Change address" }).click();
  await me.locator("#email-sent").waitFor();
  const token = await accessToken(base, "ada@example.com", fresh);
  const profile = await call(token, "GET", "/api/v1/users/me");
  expect("the profile", [profile.display_name, profile.email], ["Ada King", "ada@example.com"]);
  const change = me.getByRole("form", { name: "Password" });
  await change.getByLabel("Current password").fill(fresh);
  await change.getByLabel("New password").fill(password);
  await change.getByRole("button", { name: "Change password" }).click();
  await change.getByText("Changed").waitFor();
  await accessToken(base, "ada@example.com", password);
  console.log("ok the profile changes the name, asks for a new address and changes the password");
  console.log("ok account: every step passed");
} finally {
  await browser.close();
}

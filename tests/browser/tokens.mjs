// The Tokens page (`#/tokens`) in headless Chromium against the running platform:
//   1. a member makes a token with two scopes; it is shown once, and works from outside the
//      browser (a program's request with it reads the tasks);
//   2. the table lists it with its scopes, never used, then used once the program ran;
//   3. Revoke (confirmed) removes it, and the program's next request is refused (401).
// Usage: node tokens.mjs <gateway URL> <password> <email>
// Prints "ok tokens: every step passed" and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";

const [base, password, email] = args("tokens.mjs", ["gateway URL", "password", "email"]);
const asProgram = (token) => fetch(`${base}/api/v1/tasks`, { headers: { authorization: `Bearer ${token}` } });
const browser = await launch();
try {
  const page = await signedIn(browser, base, "#/tokens", email, password);
  const form = page.getByRole("form", { name: "New token" });
  await form.getByLabel("Name").fill("ci deploys");
  await form.getByLabel("Days").fill("7");
  await form.getByRole("checkbox", { name: "jobs:write" }).check();
  await form.getByRole("button", { name: "Make token" }).click();
  const shown = page.locator("#new-token input");
  await shown.waitFor();
  const token = await shown.inputValue();
  if (!/^tmk_[A-Za-z0-9_-]{43}$/.test(token)) throw new Error(`not a token: ${token}`);
  const row = page.locator("tr", { hasText: "ci deploys" });
  await row.locator("td", { hasText: "tasks:read, jobs:write" }).waitFor();
  await row.locator("td", { hasText: /^never$/ }).waitFor();
  const used = await asProgram(token);
  if (used.status !== 200) throw new Error(`the program's request: ${used.status}`);
  // Once dismissed, the token is nowhere on the page.
  await page.getByRole("button", { name: "Done" }).click();
  if ((await page.content()).includes(token)) throw new Error("the token is still on the page");
  await page.reload();
  await row.waitFor();
  if ((await row.locator("td").nth(2).textContent()) === "never") throw new Error("its use is not shown");
  page.once("dialog", (dialog) => dialog.accept());
  await row.getByRole("button", { name: "Revoke" }).click();
  await page.getByText("No tokens.").waitFor();
  const refused = await asProgram(token);
  if (refused.status !== 401) throw new Error(`a revoked token's request: ${refused.status}`);
  console.log("ok tokens: every step passed");
} finally {
  await browser.close();
}

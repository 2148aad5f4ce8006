// Where notifications go, in headless Chromium against the running platform (issue 28: an
// SMS number in the preferences, a page to add and test webhooks):
//   1. an SMS number saved on the notifications page is unverified until the code texted to it
//      (received here by a stand-in SMS provider) is entered;
//   2. a webhook added on its page shows its secret once; Bob assigning Ada a task delivers
//      task.assigned to it (received here, signed), and its deliveries list says delivered 2xx;
//   3. "Send a test" delivers a signed webhook.test to it, listed under its deliveries;
//   4. turning it off shows it off.
// Ada and Bob have accounts; Bob can assign Ada. This script serves the SMS provider and the
// webhook receiver on the two ports given (the platform was configured with them).
// Usage: node webhooks.mjs <gateway URL> <password> <sms port> <receiver port>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import http from "node:http";
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, smsPort, hookPort] = args("webhooks.mjs", ["gateway URL", "password", "sms port", "receiver port"]);
const call = caller(base);
const texts = [];
const hooks = [];
/** A server on `port` that keeps each request's headers and body, and answers `status`. */
function serve(port, kept, status, answer) {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      kept.push({ url: req.url, headers: req.headers, body });
      res.writeHead(status, { "content-type": "application/json" });
      res.end(answer);
    });
  });
  return new Promise((resolve) => server.listen(Number(port), "127.0.0.1", () => resolve(server)));
}
/** Waits for `find()` to return something, for up to 30 s. */
async function until(what, find) {
  for (let i = 0; i < 300; i++) {
    const found = find();
    if (found) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never happened: ${what}`);
}

const servers = [await serve(smsPort, texts, 201, '{"sid":"SM1"}'), await serve(hookPort, hooks, 204, "")];
const browser = await launch();
try {
  const [ada, bob] = await Promise.all(["ada", "bob"].map((n) => accessToken(base, `${n}@example.com`, password)));
  const adaId = (await call(ada, "GET", "/api/v1/users/me")).id;
  const page = await signedIn(browser, base, "#/notifications", "ada@example.com", password);
  await page.locator(".live-live").waitFor();

  // 1. The SMS number, then its code.
  const number = "+15551234567";
  await page.getByRole("form", { name: "SMS number" }).getByLabel(/^Number/).fill(number);
  await page.getByRole("button", { name: "Save number" }).click();
  await page.locator("#sms-state", { hasText: "not verified" }).waitFor();
  const text = await until("the code's text", () => texts.find((t) => new URLSearchParams(t.body).get("To") === number));
  const code = new URLSearchParams(text.body).get("Body").match(/\d{4,}/)[0];
  await page.getByRole("form", { name: "Verify the number" }).getByLabel("Code").fill(code);
  await page.getByRole("button", { name: "Verify" }).click();
  await page.locator("#sms-state", { hasText: "verified" }).filter({ hasNotText: "not verified" }).waitFor();
  console.log("ok an SMS number is verified with the code texted to it");

  // 2. A webhook: added, its secret shown once, a delivery received and listed.
  await page.getByRole("link", { name: "Webhooks" }).click();
  const form = page.getByRole("form", { name: "New webhook" });
  await form.getByLabel("Address").fill(`http://127.0.0.1:${hookPort}/hooks/taskmesh`);
  await form.getByRole("button", { name: "Add webhook" }).click();
  const secret = await page.getByLabel("Secret").inputValue();
  if (!secret.startsWith("whsec_")) throw new Error(`the secret reads ${secret}`);
  await call(bob, "POST", "/api/v1/tasks", { title: "Check the webhook", assignee_id: adaId });
  const hook = await until("the delivery", () => hooks.find((h) => h.body.includes("Check the webhook")));
  expect("the delivery's kind", JSON.parse(hook.body).type, "task.assigned");
  if (!hook.headers["webhook-signature"]?.startsWith("v1,")) throw new Error("an unsigned delivery");
  const endpoint = page.locator("li.endpoint");
  await endpoint.locator("summary", { hasText: "Deliveries" }).click();
  await page.waitForFunction(async () => {
    const row = document.querySelector("li.endpoint tr[data-delivery]");
    if (!row) document.querySelector("li.endpoint button.link")?.click();
    return row && /succeeded|delivered/.test(row.textContent) && /20\d/.test(row.textContent);
  }, null, { polling: 500, timeout: 30000 });
  console.log("ok a webhook added on its page shows its secret once and lists its signed delivery");

  // 3. A test, received signed and listed.
  await endpoint.getByRole("button", { name: "Send a test" }).click();
  const test = await until("the test delivery", () => hooks.find((h) => JSON.parse(h.body).type === "webhook.test"));
  if (!test.headers["webhook-signature"]?.startsWith("v1,")) throw new Error("an unsigned test");
  await endpoint.locator("tr[data-delivery]", { hasText: "webhook.test" }).waitFor();
  console.log("ok Send a test delivers a signed webhook.test, listed under the deliveries");

  // 4. Off.
  await endpoint.getByRole("button", { name: "Turn off" }).click();
  await endpoint.locator(".state", { hasText: "off" }).waitFor();
  console.log("ok a webhook is turned off from its page");
  console.log("ok webhooks: every step passed");
} finally {
  await browser.close();
  servers.forEach((s) => s.close());
}

// Channels in the dashboard, in headless Chromium against the running platform (issue 28:
// channels in the UI):
//   1. Ada creates a channel; its members show by name, and Bob joining shows live;
//   2. a task created in the channel from the tasks page is Bob's to see, and the channel
//      filter shows the channel's tasks only;
//   3. the owner gets a new join code and removes Bob, who then cannot see the channel.
// Ada and Bob have accounts.
// Usage: node channels.mjs <gateway URL> <password>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password] = args("channels.mjs", ["gateway URL", "password"]);
const call = caller(base);
const browser = await launch();
try {
  const bob = await accessToken(base, "bob@example.com", password);
  const page = await signedIn(browser, base, "#/channels", "ada@example.com", password);
  await page.locator(".live-live").waitFor();
  await page.getByRole("form", { name: "New channel" }).getByLabel("Name").fill("Operations");
  await page.getByRole("button", { name: "Create channel" }).click();
  const row = page.locator("tr", { has: page.getByRole("rowheader", { name: "Operations" }) });
  const code = await row.locator("code").textContent();
  await row.locator("summary").click();
  const members = page.getByRole("list", { name: "Members of Operations" });
  await members.getByText("owner").waitFor();
  const joined = await call(bob, "POST", "/api/v1/channels/join", { code });
  await members.locator("li", { hasText: "Bob" }).waitFor();
  expect("the members, in order", (await members.locator("li").allTextContents()).map((t) => t.replace(/\s+/g, " ").trim()),
    ["A Ada owner", "B Bob Remove"]);
  console.log("ok a channel's members show by name, and a join shows live");

  await page.getByRole("link", { name: "Tasks", exact: true }).click();
  const form = page.getByRole("form", { name: "New task" });
  await form.getByLabel("Title").fill("Rotate the on-call");
  await form.getByLabel("Channel").selectOption({ label: "Operations" });
  await form.getByRole("button", { name: "Create" }).click();
  await page.locator("li.task", { hasText: "Rotate the on-call" }).waitFor(); // the form is reset
  await form.getByLabel("Title").fill("Personal errand");
  await form.getByRole("button", { name: "Create" }).click();
  await page.locator("li.task", { hasText: "Personal errand" }).waitFor();
  await page.locator("li.task", { hasText: "Rotate the on-call" }).getByText("in Operations").waitFor();
  await page.getByRole("search").getByLabel("Channel").selectOption({ label: "Operations" });
  await page.waitForFunction(() => document.querySelectorAll("ul.tasks > li").length === 1);
  expect("the filtered list", await page.locator("li.task a").allTextContents(), ["Rotate the on-call"]);
  const bobs = await call(bob, "GET", `/api/v1/tasks?channel_id=${joined.id}`);
  expect("what Bob sees in the channel", bobs.items.map((t) => t.title), ["Rotate the on-call"]);
  console.log("ok a task created in a channel is shared with it, and the channel filter shows only its tasks");

  await page.getByRole("link", { name: "Channels" }).click();
  await row.getByRole("button", { name: "New join code for Operations" }).click();
  await page.waitForFunction((old) => {
    const cell = [...document.querySelectorAll("tr")].find((tr) => tr.textContent.includes("Operations"));
    const now = cell?.querySelector("code")?.textContent;
    return now && now !== old;
  }, code);
  await row.locator("summary").click();
  await members.getByRole("button", { name: "Remove Bob from Operations" }).click();
  await members.locator("li", { hasText: "Bob" }).waitFor({ state: "detached" });
  const gone = await fetch(`${base}/api/v1/channels/${joined.id}/members`, { headers: { authorization: `Bearer ${bob}` } });
  expect("Bob asking for the channel's members after his removal", gone.status, 404);
  console.log("ok the owner renews the code and removes a member, who no longer sees the channel");
  console.log("ok channels: every step passed");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

// Labels in the dashboard, in headless Chromium against the running platform (issue 28:
// labels):
//   1. a label added under Labels (a name and a colour) is listed;
//   2. ticked on a task's page and saved, the task carries it (the API says so) and the list
//      shows it as a chip in its colour;
//   3. the list's Label filter shows that label's tasks only.
// Ada has an account and no tasks.
// Usage: node labels.mjs <gateway URL> <password>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password] = args("labels.mjs", ["gateway URL", "password"]);
const call = caller(base);
const browser = await launch();
try {
  const ada = await accessToken(base, "ada@example.com", password);
  const roof = await call(ada, "POST", "/api/v1/tasks", { title: "Fix the roof" });
  await call(ada, "POST", "/api/v1/tasks", { title: "Sweep the yard" });
  const page = await signedIn(browser, base, "#/tasks", "ada@example.com", password);
  await page.locator(".live-live").waitFor();

  // 1. Add a label.
  await page.getByText("Labels", { exact: true }).click();
  const form = page.getByRole("form", { name: "New label" });
  await form.getByLabel("Label").fill("roof");
  await form.getByLabel("Colour").fill("#cc0000");
  await form.getByRole("button", { name: "Add label" }).click();
  await page.locator("ul.label-list [data-label=roof]").waitFor();
  console.log("ok a label is added with its colour");

  // 2. Tick it on the task's page and save.
  await page.locator("li.task", { hasText: "Fix the roof" }).getByRole("link").click();
  await page.getByRole("heading", { name: "Fix the roof" }).waitFor();
  await page.getByRole("group", { name: "Labels" }).getByRole("checkbox").check();
  await page.locator("form.edit").getByRole("button", { name: "Save" }).click();
  await page.waitForFunction(async (id) => {
    const { api } = await import("/ui/js/api.js");
    return (await api("GET", `/api/v1/tasks/${id}`)).tags.includes("roof");
  }, roof.id);
  expect("the task's tags", (await call(ada, "GET", `/api/v1/tasks/${roof.id}`)).tags, ["roof"]);
  await page.getByRole("link", { name: "← My tasks" }).click();
  const chip = page.locator("li.task", { hasText: "Fix the roof" }).locator("[data-label=roof]");
  await chip.waitFor();
  expect("the chip's colour", await chip.evaluate((e) => getComputedStyle(e).backgroundColor), "rgb(204, 0, 0)");
  console.log("ok a task carries the label, shown as a chip in its colour");

  // 3. Filter by it.
  await page.getByRole("search").getByLabel("Label").selectOption("roof");
  await page.waitForFunction(() => document.querySelectorAll("ul.tasks > li").length === 1);
  expect("the filtered list", await page.locator("ul.tasks > li a").allTextContents(), ["Fix the roof"]);
  console.log("ok the Label filter shows that label's tasks");
  console.log("ok labels: every step passed");
} finally {
  await browser.close();
}

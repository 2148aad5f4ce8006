// A workflow's page (`#/workflows/<id>`) in headless Chromium against the running platform: its
// steps drawn as a graph that changes live (a running step, then the cancel), Cancel, then
// Retry running it to completion, with nothing reloaded by hand.
// Usage: node workflows.mjs <gateway URL> <password> <email> <workflow id>
// Prints "ok workflows: ..." and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";

const [base, password, email, id] = args("workflows.mjs", ["gateway URL", "password", "email", "workflow id"]);
const browser = await launch();
try {
  const page = await signedIn(browser, base, `#/workflows/${id}`, email, password);
  const node = (step, status) => page.locator(`g.node[data-step="${step}"][data-status="${status}"]`);
  const status = page.locator("#workflow-status");
  // The graph: three steps; the first done, the second running, the third waiting for it.
  await node("fetch", "completed").waitFor();
  await node("slow", "running").waitFor();
  await node("report", "waiting").waitFor();
  if ((await page.locator("svg.graph line.edge").count()) !== 2) throw new Error("the graph has not two edges");
  console.log("ok workflows: the graph shows fetch completed, slow running, report waiting");
  await page.getByRole("button", { name: "Cancel" }).click();
  await status.filter({ hasText: /^cancelled$/ }).waitFor();
  await node("slow", "cancelled").waitFor();
  console.log("ok workflows: Cancel stops the running step");
  await page.getByRole("button", { name: "Retry" }).click();
  await node("slow", "running").waitFor();
  await status.filter({ hasText: /^completed$/ }).waitFor({ timeout: 90000 });
  await node("report", "completed").waitFor();
  await node("fetch", "completed").waitFor();
  console.log("ok workflows: Retry runs again what did not succeed, live to completed");
} finally {
  await browser.close();
}

// A task's attachments in the dashboard, in headless Chromium against the running platform
// (issue 28: attachments show thumbnails, download and delete, sizes in KB/MB):
//   1. an image and a text file uploaded from the task's page are listed with their sizes in
//      KB; the image's thumbnail shows once media-svc made it;
//   2. Download saves the very bytes uploaded;
//   3. Delete (confirmed) removes the file, and the API no longer has it.
// Ada owns the task.
// Usage: node attachments.mjs <gateway URL> <password> <task id> <png file> <text file>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, taskId, png, text] =
  args("attachments.mjs", ["gateway URL", "password", "task id", "png file", "text file"]);
const call = caller(base);
const browser = await launch();
try {
  const ada = await accessToken(base, "ada@example.com", password);
  const page = await signedIn(browser, base, `#/tasks/${taskId}`, "ada@example.com", password);
  await page.getByRole("heading", { name: "Attachments" }).waitFor();
  await page.getByLabel("File").setInputFiles([png, text]);
  await page.getByRole("button", { name: "Upload" }).click();
  const row = (file) => page.locator("li.file", { hasText: basename(file) });
  const [pngBytes, textBytes] = [(await readFile(png)).length, (await readFile(text)).length];
  const kb = (bytes) => `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
  await row(text).getByText(kb(textBytes)).waitFor();
  await row(png).getByText(kb(pngBytes)).waitFor();
  // The thumbnail comes with media.processed; it is an image the browser could decode.
  await page.waitForFunction((name) => {
    const img = [...document.querySelectorAll("li.file")].find((li) => li.textContent.includes(name))
      ?.querySelector("img.thumb");
    return img?.complete && img.naturalWidth > 0;
  }, basename(png)).catch(async (e) => {
    console.error(await page.locator("ul.files").innerHTML());
    console.error(JSON.stringify(await call(ada, "GET", `/api/v1/tasks/${taskId}/attachments`)));
    throw e;
  });
  console.log(`ok both files listed with their sizes (${kb(textBytes)}, ${kb(pngBytes)}) and the image's thumbnail shows`);

  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: `Download ${basename(text)}` }).click(),
  ]);
  const saved = await readFile(await download.path());
  expect("the downloaded bytes", saved.equals(await readFile(text)), true);
  expect("the downloaded name", download.suggestedFilename(), basename(text));
  console.log("ok Download saves the bytes uploaded");

  page.once("dialog", (dialog) => dialog.accept());
  await page.getByRole("button", { name: `Delete ${basename(png)}` }).click();
  await row(png).waitFor({ state: "detached" });
  const left = await call(ada, "GET", `/api/v1/tasks/${taskId}/attachments`);
  expect("files left", left.items.map((f) => f.filename), [basename(text)]);
  console.log("ok Delete removes the file");
  console.log("ok attachments: every step passed");
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

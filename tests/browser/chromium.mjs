// Debian's chromium, headless, as every browser test here launches it (no browser download:
// playwright-core drives the system's /usr/bin/chromium, or $CHROMIUM).
import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

/**
 * The arguments after the script's name, or the usage on stderr and exit 2 when fewer than
 * `names` are given.
 */
export function args(script, names) {
  const given = process.argv.slice(2);
  if (given.length < names.length) {
    console.error(`usage: node ${script} ${names.map((n) => `<${n}>`).join(" ")}`);
    process.exit(2);
  }
  return given;
}

/** A new page of `browser` signed in as `email` from `${base}/${hash}`, which it lands on. */
export async function signedIn(browser, base, hash, email, password) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${base}/${hash}`);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  return page;
}

/**
 * Chooses a person in the person picker labelled `label` within `scope`: types `typed` (part of
 * a name, or a whole email) and clicks the option named `name`.
 */
export async function pick(scope, label, typed, name) {
  await scope.getByRole("combobox", { name: label }).fill(typed);
  await scope.getByRole("option", { name, exact: true }).click();
}

/** The id of the person chosen in the picker named `picker` within `scope` ("" for nobody). */
export async function chosen(scope, picker) {
  return (await scope.locator(`[data-picker=${picker}]`).getAttribute("data-chosen")) || "";
}

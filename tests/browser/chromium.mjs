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

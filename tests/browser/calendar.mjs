// The calendar, in headless Chromium against the running platform (issue 28: views, a
// calendar of due dates):
//   1. this month's tasks on their due day, a task of next month not among them;
//   2. Next month shows next month's, Previous comes back;
//   3. a task given a due date elsewhere appears on its day live.
// Ada has an account and no tasks. The browser's time zone is the machine's (UTC here): each
// due time is noon UTC, on the same day anywhere from UTC-11 to UTC+11.
// Usage: node calendar.mjs <gateway URL> <password> <screenshot dir>
// Prints one "ok ..." line per step and exits 0 only when every step passed.
import { launch, args, signedIn } from "./chromium.mjs";
import { caller, accessToken, expect } from "./api.mjs";

const [base, password, shots] = args("calendar.mjs", ["gateway URL", "password", "screenshot dir"]);
const call = caller(base);
const browser = await launch();
const noon = (year, month, day) => new Date(Date.UTC(year, month, day, 12)).toISOString();
try {
  const ada = await accessToken(base, "ada@example.com", password);
  const now = new Date();
  const [y, m] = [now.getUTCFullYear(), now.getUTCMonth()];
  const key = (iso) => iso.slice(0, 10);
  const thisMonth = noon(y, m, 15);
  const nextMonth = noon(y, m + 1, 3);
  await call(ada, "POST", "/api/v1/tasks", { title: "Pay the rent", due_at: thisMonth });
  await call(ada, "POST", "/api/v1/tasks", { title: "Renew the lease", due_at: nextMonth });
  await call(ada, "POST", "/api/v1/tasks", { title: "Someday" });
  const page = await signedIn(browser, base, "#/calendar", "ada@example.com", password);
  await page.locator(".live-live").waitFor();
  const day = (iso) => page.locator(`td[data-day="${key(iso)}"]`);
  await day(thisMonth).getByRole("link", { name: "Pay the rent" }).waitFor();
  expect("this month's tasks", await page.locator("table.calendar a").allTextContents(), ["Pay the rent"]);
  console.log("ok this month's task is on its due day");

  await page.getByRole("button", { name: "Next month" }).click();
  await day(nextMonth).getByRole("link", { name: "Renew the lease" }).waitFor();
  await page.getByRole("button", { name: "Previous month" }).click();
  await day(thisMonth).getByRole("link", { name: "Pay the rent" }).waitFor();
  console.log("ok Next and Previous month move the calendar");

  const later = noon(y, m, 20);
  await call(ada, "POST", "/api/v1/tasks", { title: "Water the plants", due_at: later });
  await day(later).getByRole("link", { name: "Water the plants" }).waitFor();
  console.log("ok a task due this month appears on its day live");
  await page.screenshot({ path: `${shots}/calendar.png`, fullPage: true });
  console.log("ok calendar: every step passed");
} finally {
  await browser.close();
}

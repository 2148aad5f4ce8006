// The calendar (`#/calendar`): a month of my tasks by due date (in this browser's time zone),
// a week per row starting Monday; Previous and Next month; each task links to its page. Loads
// the month's tasks with the API's due date filters; follows live changes.

import { html, useState } from "../vendor/htm-preact.js";
import { listTasks } from "./tasks.js";
import { useLoad, useStream, useThrottled, Problem, Loading, usePageTitle } from "./ui.js";

const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/** `YYYY-MM-DD` of `date` in local time. */
const dayKey = (date) => `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;

export function Calendar() {
  usePageTitle("Calendar");
  const now = new Date();
  const [month, setMonth] = useState(new Date(now.getFullYear(), now.getMonth(), 1));
  const start = month;
  const end = new Date(month.getFullYear(), month.getMonth() + 1, 1);
  const query = `due_after=${encodeURIComponent(new Date(start - 1).toISOString())}&due_before=${encodeURIComponent(end.toISOString())}&sort=due_at`;
  const tasks = useLoad(() => listTasks(query, 1000), [query]);
  const refresh = useThrottled(tasks.reload, 1000);
  useStream((type) => (type.startsWith("task.") || type === "reset") && refresh(), [refresh]);
  const byDay = new Map();
  for (const t of tasks.data?.items || []) {
    const key = dayKey(new Date(t.due_at));
    byDay.set(key, [...(byDay.get(key) || []), t]);
  }
  // The weeks shown: from the Monday on or before the 1st to the Sunday on or after the last.
  const first = new Date(start);
  first.setDate(1 - ((start.getDay() + 6) % 7));
  const weeks = [];
  for (let day = new Date(first); day < end || day.getDay() !== 1; day.setDate(day.getDate() + 1)) {
    if (day.getDay() === 1) weeks.push([]);
    weeks[weeks.length - 1].push(new Date(day));
  }
  const title = month.toLocaleDateString(undefined, { month: "long", year: "numeric" });
  const shift = (n) => setMonth(new Date(month.getFullYear(), month.getMonth() + n, 1));
  const today = dayKey(now);
  return html`<section aria-labelledby="calendar-title">
    <h1 id="calendar-title">Calendar</h1>
    <p class="actions"><button type="button" onClick=${() => shift(-1)}>Previous month</button>
      <button type="button" onClick=${() => shift(1)}>Next month</button></p>
    <${Problem} error=${tasks.error} />
    ${!tasks.data ? html`<${Loading} what="the calendar" />` : html`<table class="calendar">
      <caption>${title}: tasks by due date</caption>
      <thead><tr>${DAYS.map((d) => html`<th scope="col">${d}</th>`)}</tr></thead>
      <tbody>${weeks.map((week) => html`<tr>${week.map((day) => {
        const key = dayKey(day);
        const due = byDay.get(key) || [];
        const other = day.getMonth() !== month.getMonth();
        return html`<td class=${`${other ? "other" : ""}${key === today ? " today" : ""}`} data-day=${key}>
          <span class="date">${day.getDate()}</span>
          <ul>${due.map((t) => html`<li><a href=${`#/tasks/${t.id}`} class=${`status-${t.status}`}>${t.title}</a></li>`)}</ul>
        </td>`;
      })}</tr>`)}</tbody>
    </table>`}
  </section>`;
}

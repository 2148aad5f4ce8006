// Recurring tasks: a task's `recurrence` (an RFC 5545 RRULE such as `FREQ=WEEKLY;BYDAY=MO`) in
// words, and a picker of the usual ones (or any rule typed in).

import { html } from "../vendor/htm-preact.js";

const UNITS = { DAILY: "day", WEEKLY: "week", MONTHLY: "month", YEARLY: "year", HOURLY: "hour" };
const DAYS = { MO: "Monday", TU: "Tuesday", WE: "Wednesday", TH: "Thursday", FR: "Friday", SA: "Saturday", SU: "Sunday" };

function joined(parts) {
  if (parts.length < 2) return parts.join("");
  return `${parts.slice(0, -1).join(", ")} and ${parts[parts.length - 1]}`;
}

/** A rule in words: "every week on Monday", "every 2 days, 3 more times"; the rule itself when unusual. */
export function inWords(rule) {
  if (!rule) return "";
  const parts = Object.fromEntries(rule.split(";").map((p) => p.split("=")));
  const unit = UNITS[parts.FREQ];
  if (!unit) return rule;
  const every = Number(parts.INTERVAL || 1);
  let words = every === 1 ? `every ${unit}` : `every ${every} ${unit}s`;
  if (parts.BYDAY) {
    const days = parts.BYDAY.split(",");
    words = days.join(",") === "MO,TU,WE,TH,FR" && every === 1 ? "every weekday"
      : `${words} on ${joined(days.map((d) => DAYS[d.slice(-2)] || d))}`;
  }
  if (parts.BYMONTHDAY) words += ` on day ${parts.BYMONTHDAY.split(",").join(", ")}`;
  const known = ["FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "COUNT", "UNTIL", "WKST"];
  if (Object.keys(parts).some((k) => !known.includes(k))) return rule;
  if (parts.COUNT) words += parts.COUNT === "1" ? ", this is the last time" : `, ${parts.COUNT} times in all`;
  if (parts.UNTIL) {
    const u = parts.UNTIL;
    const until = new Date(`${u.slice(0, 4)}-${u.slice(4, 6)}-${u.slice(6, 8)}T00:00:00Z`);
    if (!Number.isNaN(until.getTime())) words += `, until ${until.toLocaleDateString()}`;
  }
  return words;
}

/** The usual rules, given the weekday of the due date (`MO` when there is none). */
function presets(due) {
  const day = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"][due ? new Date(due).getDay() : 1];
  return ["FREQ=DAILY", "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", `FREQ=WEEKLY;BYDAY=${day}`,
    `FREQ=WEEKLY;INTERVAL=2;BYDAY=${day}`, "FREQ=MONTHLY", "FREQ=YEARLY"];
}

/** Repeats: none, a usual rule, or one typed in (checked by the API when saved). */
export function RepeatPicker({ value, due, onChange }) {
  const usual = presets(due);
  const custom = value && !usual.includes(value);
  const choose = (e) => onChange(e.target.value === "custom" ? (value || "FREQ=WEEKLY") : e.target.value);
  return html`<span class="repeat">
    <label>Repeats <select name="repeat" value=${custom ? "custom" : value || ""} onChange=${choose}>
      <option value="">never</option>
      ${usual.map((rule) => html`<option value=${rule}>${inWords(rule)}</option>`)}
      <option value="custom">custom rule…</option>
    </select></label>
    ${custom ? html`<label>Rule (RFC 5545) <input name="recurrence" value=${value} maxlength="200"
      onInput=${(e) => onChange(e.target.value.trim())} /></label>
      <span class="muted">${inWords(value)}</span>` : ""}
  </span>`;
}

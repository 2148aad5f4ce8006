// Labels: a tag's colour, mine or a channel's. Chips show a task's tags in their label's colour
// (the task's channel's label first, then mine); a picker sets a task's labels; a manager adds
// and deletes them.

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { Problem, useAction } from "./ui.js";

/** The label named `name` for a task in `channelId`: the channel's, else mine, else none. */
export function labelOf(labels, name, channelId) {
  const named = labels.filter((l) => l.name === name);
  return named.find((l) => channelId && l.channel_id === channelId) || named.find((l) => !l.channel_id) || null;
}

/** Black or white, whichever reads better on `hex`. */
function ink(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#1d2125" : "#fff";
}

/** A task's tags as chips, coloured by their labels. */
export function Chips({ tags, channelId, labels }) {
  if (!tags?.length) return "";
  return html`<span class="chips">${tags.map((tag) => {
    const label = labelOf(labels, tag, channelId);
    const style = label ? `background:${label.color};color:${ink(label.color)};border-color:${label.color}` : "";
    return html`<span class="chip" style=${style} data-label=${tag}>${tag}</span>`;
  })}</span>`;
}

/** The labels a task may carry (mine and its channel's, each name once), ticked as `value`. */
export function LabelPicker({ labels, channelId, value, onChange }) {
  const names = [...new Set(labels.filter((l) => !l.channel_id || l.channel_id === channelId).map((l) => l.name).concat(value))].sort();
  if (names.length === 0) return html`<p class="muted">No labels yet: add some under Labels on the task list.</p>`;
  const toggle = (name) => (e) => onChange(e.target.checked ? [...value, name].sort() : value.filter((v) => v !== name));
  return html`<fieldset class="labels"><legend>Labels</legend>
    ${names.map((name) => html`<label class="check"><input type="checkbox" checked=${value.includes(name)} onChange=${toggle(name)} />
      <${Chips} tags=${[name]} channelId=${channelId} labels=${labels} /></label>`)}
  </fieldset>`;
}

/** My labels and my channels': add (a name, a colour, whose), delete. */
export function LabelManager({ labels, channels, onChanged }) {
  const [form, setForm] = useState({ name: "", color: "#0b5cad", channel_id: "" });
  const action = useAction();
  const set = (name) => (e) => setForm({ ...form, [name]: e.target.value });
  const create = async (e) => {
    e.preventDefault();
    const body = { name: form.name, color: form.color };
    if (form.channel_id) body.channel_id = form.channel_id;
    if (await action.run(() => api("POST", "/api/v1/labels", body))) {
      setForm({ ...form, name: "" });
      onChanged();
    }
  };
  const remove = (label) => action.run(async () => {
    await api("DELETE", `/api/v1/labels/${label.id}`);
    onChanged();
  });
  const whose = (label) => (label.channel_id ? channels.find((c) => c.id === label.channel_id)?.name || "a channel" : "mine");
  return html`<details class="label-manager">
    <summary>Labels</summary>
    <ul class="label-list">${labels.map((l) => html`<li><${Chips} tags=${[l.name]} channelId=${l.channel_id} labels=${[l]} />
      <span class="muted">${whose(l)}</span>
      <button type="button" class="link" aria-label=${`Delete label ${l.name} (${whose(l)})`} onClick=${() => remove(l)}>Delete</button></li>`)}</ul>
    <form class="inline" onSubmit=${create} aria-label="New label">
      <label>Label <input name="name" required maxlength="40" value=${form.name} onInput=${set("name")} /></label>
      <label>Colour <input name="color" type="color" value=${form.color} onInput=${set("color")} /></label>
      <label>For <select name="channel_id" value=${form.channel_id} onChange=${set("channel_id")}>
        <option value="">me</option>
        ${channels.map((c) => html`<option value=${c.id}>${c.name} (its members)</option>`)}
      </select></label>
      <button type="submit" disabled=${action.busy}>Add label</button>
    </form>
    <${Problem} error=${action.error} />
  </details>`;
}

// People by name: names for the ids the API answers (owner, assignee, history), asked for in
// batches and kept for the page's life, and a person picker that searches by name (people who
// share a channel with me) or by exact email (anyone).

import { html, useEffect, useRef, useState } from "../vendor/htm-preact.js";
import { api, session } from "./api.js";

/** Names known so far: id → { display_name, active }, or null for someone I may not see. */
const known = new Map();
/** Ids asked for and not answered yet, and who waits for the next batch. */
const pending = new Set();
let listeners = new Set();
let timer = null;

/** Asks for the names of the pending ids, 100 at a time (the API's most). */
async function fetchPending() {
  timer = null;
  const ids = [...pending];
  pending.clear();
  for (let i = 0; i < ids.length; i += 100) {
    const batch = ids.slice(i, i + 100);
    try {
      const { items } = await api("GET", `/api/v1/people?ids=${batch.join(",")}`);
      batch.forEach((id) => known.set(id, null));
      items.forEach((p) => known.set(p.id, p));
    } catch {
      // Unknown for now: asked again by the next view that needs them.
    }
  }
  listeners.forEach((listener) => listener());
}

/** Remembers a person met elsewhere (a search's answer, a channel's members). */
export function remember(person) {
  known.set(person.id, person);
}

/**
 * The names of `ids` (nulls and duplicates allowed): a function from id to a person's name
 * (`You` for me, `Someone` for a person I may not see). The view re-renders when names arrive.
 */
export function useNames(ids) {
  const [, setTick] = useState(0);
  const wanted = [...new Set(ids.filter(Boolean))].filter((id) => !known.has(id));
  useEffect(() => {
    const listener = () => setTick((n) => n + 1);
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, []);
  useEffect(() => {
    if (wanted.length === 0) return;
    wanted.forEach((id) => pending.add(id));
    if (!timer) timer = setTimeout(fetchPending, 0);
  }, [wanted.join(",")]);
  return (id) => nameOf(id);
}

/** A known person's name, `You` for me, `Someone` while unknown or not mine to see. */
export function nameOf(id) {
  if (!id) return "nobody";
  if (id === session()?.user?.id) return "You";
  return known.get(id)?.display_name || "Someone";
}

/** A person's initials in a circle (a picture of nobody in particular, never fetched). */
export function Avatar({ name }) {
  const initials = (name || "?").split(/\s+/).filter(Boolean).slice(0, 2).map((w) => [...w][0].toUpperCase()).join("");
  return html`<span class="avatar" aria-hidden="true">${initials || "?"}</span>`;
}

/** A person as shown anywhere: initials and name. */
export function Person({ id, name }) {
  const shown = name ?? nameOf(id);
  return html`<span class="person" data-person=${id}><${Avatar} name=${shown} /> ${shown}</span>`;
}

/**
 * Choosing a person (WAI-ARIA combobox): type part of a name, or a whole email, then pick with
 * the arrow keys and Enter, or the mouse. `value` is the chosen id (or ""), `onChange` gets an
 * id (or "" when cleared).
 */
export function PersonPicker({ label, name, value, onChange }) {
  const [text, setText] = useState("");
  const [found, setFound] = useState({ q: "", items: [], error: null });
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const ask = useRef(null);
  const input = useRef(null);
  // Typed text not yet chosen from the list stops the form's submission (nobody is assigned
  // by a half-typed name).
  useEffect(() => {
    input.current?.setCustomValidity(text.trim() ? "Choose someone from the list, or clear the text" : "");
  }, [text]);
  const listId = `${name}-options`;
  useNames([value]);
  useEffect(() => {
    const q = text.trim();
    clearTimeout(ask.current);
    if (!q) return setFound({ q: "", items: [], error: null });
    ask.current = setTimeout(async () => {
      try {
        const { items } = await api("GET", `/api/v1/users/search?q=${encodeURIComponent(q)}`);
        items.forEach(remember);
        setFound((f) => (text.trim() === q ? { q, items, error: null } : f));
        setActive(0);
      } catch (error) {
        setFound({ q, items: [], error });
      }
    }, 150);
    return () => clearTimeout(ask.current);
  }, [text]);
  const choose = (person) => {
    onChange(person.id);
    setText("");
    setOpen(false);
  };
  const items = found.items;
  const keys = (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      setOpen(true);
      const step = e.key === "ArrowDown" ? 1 : -1;
      setActive((i) => (items.length ? (i + step + items.length) % items.length : 0));
    } else if (e.key === "Enter" && open && items[active]) {
      e.preventDefault();
      choose(items[active]);
    } else if (e.key === "Escape") {
      setOpen(false);
    }
  };
  const showList = open && text.trim() !== "";
  const status = !text.trim() ? "" : found.q !== text.trim() ? "Searching…"
    : found.error ? found.error.message
    : items.length === 0 ? (text.includes("@") ? "Nobody has this address (type all of it)." : "Nobody by that name shares a channel with you; type their whole email to find anyone.")
    : `${items.length} ${items.length === 1 ? "person" : "people"} found`;
  return html`<div class="picker" data-picker=${name} data-chosen=${value || ""}>
    <label for=${`${name}-input`}>${label}</label>
    ${value ? html`<span class="chosen"><${Person} id=${value} />
      <button type="button" class="link" aria-label=${`Clear ${label.toLowerCase()}`} onClick=${() => onChange("")}>Clear</button></span>` : ""}
    <input ref=${input} id=${`${name}-input`} name=${name} role="combobox" autocomplete="off" value=${text}
      placeholder=${value ? "Change: name or email" : "Name or email"}
      aria-expanded=${showList ? "true" : "false"} aria-controls=${listId} aria-autocomplete="list"
      aria-activedescendant=${showList && items[active] ? `${listId}-${active}` : undefined}
      onInput=${(e) => { setText(e.target.value); setOpen(true); }} onKeyDown=${keys}
      onBlur=${() => setTimeout(() => setOpen(false), 150)} />
    <ul id=${listId} role="listbox" aria-label=${label} class="options" hidden=${!showList || items.length === 0}>
      ${items.map((p, i) => html`<li id=${`${listId}-${i}`} role="option" aria-selected=${i === active ? "true" : "false"}
        onMouseDown=${(e) => { e.preventDefault(); choose(p); }}><${Person} id=${p.id} name=${p.display_name} /></li>`)}
    </ul>
    <span class="muted" role="status">${showList ? status : ""}</span>
  </div>`;
}

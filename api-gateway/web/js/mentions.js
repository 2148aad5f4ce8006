// @mention suggestions in a comment box: typing `@` and the start of a name lists the people it
// could be (the person search); the arrow keys and Enter (or Tab, or a click) put `@Their Name`
// in the text. What notifies is the name in the saved text, as the API reads it.

import { html, useEffect, useRef, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { remember } from "./persons.js";

/** The `@…` being typed just before the caret: its start and the words after `@`. */
function typedMention(text, caret) {
  const match = /(?:^|\s)@([\p{L}\p{N}][\p{L}\p{N} .'-]{0,40})$/u.exec(text.slice(0, caret));
  return match ? { start: caret - match[1].length - 1, q: match[1] } : null;
}

/**
 * Suggestions for the textarea `ref` whose text is `text` (`setText` changes it): returns the
 * listbox to render under it and the key handler to give it.
 */
export function useMentions(ref, text, setText, name) {
  const [typed, setTyped] = useState(null);
  const [items, setItems] = useState([]);
  const [active, setActive] = useState(0);
  const wait = useRef(null);
  useEffect(() => {
    const el = ref.current;
    const found = el ? typedMention(text, el.selectionStart) : null;
    setTyped(found);
    clearTimeout(wait.current);
    if (!found) return setItems([]);
    wait.current = setTimeout(async () => {
      try {
        const answer = await api("GET", `/api/v1/users/search?q=${encodeURIComponent(found.q.trim())}`);
        answer.items.forEach(remember);
        setItems(answer.items.slice(0, 8));
        setActive(0);
      } catch {
        setItems([]);
      }
    }, 150);
    return () => clearTimeout(wait.current);
  }, [text]);
  const open = typed && items.length > 0;
  const choose = (person) => {
    const el = ref.current;
    const end = el.selectionStart;
    const next = `${text.slice(0, typed.start)}@${person.display_name} ${text.slice(end)}`;
    setText(next);
    setItems([]);
    const caret = typed.start + person.display_name.length + 2;
    requestAnimationFrame(() => el.setSelectionRange(caret, caret));
  };
  const onKeyDown = (e) => {
    if (!open) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const step = e.key === "ArrowDown" ? 1 : -1;
      setActive((i) => (i + step + items.length) % items.length);
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      choose(items[active]);
    } else if (e.key === "Escape") {
      setItems([]);
    }
  };
  const listId = `${name}-mentions`;
  const aria = { "aria-autocomplete": "list", "aria-controls": listId,
    "aria-activedescendant": open ? `${listId}-${active}` : undefined };
  const list = html`<ul id=${listId} role="listbox" aria-label="People to mention" class="options" hidden=${!open}>
    ${(open ? items : []).map((p, i) => html`<li id=${`${listId}-${i}`} role="option" aria-selected=${i === active ? "true" : "false"}
      onMouseDown=${(e) => { e.preventDefault(); choose(p); }}>${p.display_name}</li>`)}
  </ul>`;
  return { list, onKeyDown, aria };
}

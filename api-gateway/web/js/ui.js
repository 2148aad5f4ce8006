// Small shared pieces of the views: loading data, live refresh, errors, dates.

import { html, useEffect, useState, useCallback, useRef } from "../vendor/htm-preact.js";
import { stream } from "./api.js";

/** Loads `load()` now and whenever `deps` change; `reload` loads again. */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const reload = useCallback(() => {
    load()
      .then((data) => setState({ data, error: null, loading: false }))
      .catch((error) => setState((s) => ({ ...s, error, loading: false })));
  }, deps);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

/** Calls `onEvent(type, event)` for every live event while the view is shown. */
export function useStream(onEvent, deps = []) {
  useEffect(() => stream.on(onEvent), deps);
}

export function Problem({ error }) {
  if (!error) return null;
  return html`<p class="problem" role="alert">${error.message}${error.code ? html` <code>${error.code}</code>` : ""}</p>`;
}

export function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function Loading({ what }) {
  return html`<p class="muted" aria-live="polite">Loading ${what}…</p>`;
}

/** Runs `action()`, showing its error if it fails; resolves to whether it succeeded. */
export function useAction() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (action) => {
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run };
}

/**
 * `reload`, at most once every `ms`: a call within that time runs once at its end (a busy
 * stream asks for one reload a second, not one per event).
 */
export function useThrottled(reload, ms) {
  const state = useRef({ timer: null, last: 0 });
  useEffect(() => () => clearTimeout(state.current.timer), []);
  return useCallback(() => {
    const s = state.current;
    const wait = s.last + ms - Date.now();
    if (wait <= 0) {
      s.last = Date.now();
      reload();
    } else if (!s.timer) {
      s.timer = setTimeout(() => {
        s.timer = null;
        s.last = Date.now();
        reload();
      }, wait);
    }
  }, [reload, ms]);
}


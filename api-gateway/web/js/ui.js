// Small shared pieces of the views: loading data, live refresh, errors, dates.

import { html, useEffect, useState, useCallback, useMemo, useRef } from "../vendor/htm-preact.js";
import { stream } from "./api.js";

/**
 * Loads `load(previous)` now and whenever `deps` change; `reload` loads again. Loads run one at
 * a time: a `reload` asked while one runs runs once after it (a burst of live events costs two
 * requests, not one each), and only the loads of the latest `deps` are shown (an answer for an
 * earlier search that arrives late never replaces a later one's). `previous` is the data shown.
 */
export function useLoad(load, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const run = useMemo(() => ({ current: true, busy: false, again: false, data: null }), deps);
  useEffect(() => () => { run.current = false; }, [run]);
  const reload = useCallback(() => {
    if (run.busy) {
      run.again = true;
      return;
    }
    run.busy = true;
    load(run.data)
      .then((data) => {
        run.data = data;
        if (run.current) setState({ data, error: null, loading: false });
      })
      .catch((error) => run.current && setState((s) => ({ ...s, error, loading: false })))
      .finally(() => {
        run.busy = false;
        if (run.again && run.current) {
          run.again = false;
          reload();
        }
      });
  }, [run]);
  useEffect(reload, [reload]);
  return { ...state, reload };
}

/** Whether the person moved from one view to another since the page loaded. */
let navigated = false;
window.addEventListener("hashchange", () => {
  navigated = true;
});

/**
 * The view's name in the browser's tab and history (`<title> · Taskmesh`). The first time it is
 * known in a view reached by navigating, focus moves to the view's heading, so that a screen
 * reader announces the new view and the keyboard starts from it (a page just loaded keeps the
 * browser's start, where the first Tab reaches the skip link).
 */
export function usePageTitle(title) {
  const focused = useRef(false);
  useEffect(() => {
    if (!title) return;
    document.title = `${title} · Taskmesh`;
    if (focused.current || !navigated) return;
    focused.current = true;
    const heading = document.querySelector("main h1");
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }, [title]);
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

/** A size in bytes as people read it: 812 bytes, 4.2 KB, 1.3 MB, 2.1 GB (of 1,024). */
export function size(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A run's length as people read it: 812 ms, 4.2 s, 3 min 12 s. */
export function duration(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
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
  return { error, busy, run, clear: () => setError(null) };
}

/**
 * `reload`, at most once every `ms`: a call within that time runs once at its end (a busy
 * stream asks for one reload a second, not one per event), with the `reload` of then (a view
 * whose filters changed meanwhile reloads what it shows now).
 */
export function useThrottled(reload, ms) {
  const state = useRef({ timer: null, last: 0, reload });
  state.current.reload = reload;
  useEffect(() => () => clearTimeout(state.current.timer), []);
  return useCallback(() => {
    const s = state.current;
    const wait = s.last + ms - Date.now();
    if (wait <= 0) {
      s.last = Date.now();
      s.reload();
    } else if (!s.timer) {
      s.timer = setTimeout(() => {
        s.timer = null;
        s.last = Date.now();
        s.reload();
      }, wait);
    }
  }, [ms]);
}

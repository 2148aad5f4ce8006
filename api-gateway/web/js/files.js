// A task's attachments: upload with a progress bar, and each file with its thumbnail, its size
// in KB or MB, a download and a delete. Images and downloads are fetched through signed links
// (`GET /api/v1/media/{id}/link`): an <img> or a download cannot send the bearer token.

import { html, useEffect, useState } from "../vendor/htm-preact.js";
import { api, upload } from "./api.js";
import { useLoad, useStream, Problem, useAction, size } from "./ui.js";

export function Attachments({ taskId }) {
  const files = useLoad(() => api("GET", `/api/v1/tasks/${taskId}/attachments`), [taskId]);
  const [progress, setProgress] = useState(null);
  const action = useAction();
  useStream((type, event) => {
    if (type.startsWith("media.") && event?.data?.task_id === taskId) files.reload();
  }, [taskId, files.reload]);
  const send = async (e) => {
    e.preventDefault();
    const input = e.target.elements.file;
    if (!input.files.length) return;
    setProgress(0);
    const ok = await action.run(() => upload(taskId, [...input.files], setProgress));
    if (ok) {
      setProgress(1);
      input.value = "";
      files.reload();
    }
  };
  const percent = Math.round((progress ?? 0) * 100);
  return html`<section aria-labelledby="files-title">
    <h2 id="files-title">Attachments</h2>
    <form onSubmit=${send}>
      <label>File <input type="file" name="file" multiple /></label>
      <button type="submit" disabled=${action.busy}>Upload</button>
      ${progress != null ? html`<label class="upload">Upload progress
        <progress id="upload-progress" max="100" value=${percent}>${percent}%</progress>
        <span>${percent}%</span></label>` : ""}
    </form>
    <${Problem} error=${action.error} />
    <ul class="files">${(files.data?.items || []).map((f) => html`<${File} key=${f.id} file=${f} onDeleted=${files.reload} />`)}</ul>
  </section>`;
}

/**
 * A signed URL of `file` (its `variant`, if given) that works without a token for a while, on
 * this page's origin (the link names the platform's public address, which a page reached by
 * another address could not load under its Content Security Policy).
 */
async function link(file, variant) {
  const query = variant ? `?variant=${encodeURIComponent(variant)}` : "";
  const { url } = await api("GET", `/api/v1/media/${file.id}/link${query}`);
  const signed = new URL(url, window.location.origin);
  return `${signed.pathname}${signed.search}`;
}

function File({ file, onDeleted }) {
  const thumb = file.thumbnails?.[0];
  const [src, setSrc] = useState(null);
  const action = useAction();
  useEffect(() => {
    if (thumb) link(file, thumb.variant).then(setSrc).catch(() => setSrc(null));
  }, [file.id, thumb?.variant]);
  const download = () => action.run(async () => {
    const a = document.createElement("a");
    a.href = await link(file);
    a.download = file.filename;
    a.click();
  });
  const remove = () => {
    if (!window.confirm(`Delete ${file.filename}? This cannot be undone.`)) return;
    action.run(async () => {
      await api("DELETE", `/api/v1/media/${file.id}`);
      onDeleted();
    });
  };
  return html`<li class="file" data-file=${file.id}>
    ${src ? html`<img class="thumb" src=${src} alt=${`${file.filename}, thumbnail`} />`
      : html`<span class="thumb" aria-hidden="true"></span>`}
    <span class="name">${file.filename}</span>
    <span class="muted">${file.content_type}, ${size(file.size_bytes)}</span>
    <button type="button" onClick=${download} disabled=${action.busy}
      aria-label=${`Download ${file.filename}`}>Download</button>
    <button type="button" class="danger" onClick=${remove} disabled=${action.busy}
      aria-label=${`Delete ${file.filename}`}>Delete</button>
    <${Problem} error=${action.error} />
  </li>`;
}

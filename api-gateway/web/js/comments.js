// A task's comments: Markdown (shown as the HTML the API rendered and sanitised), live as others
// write, edit or delete them; my own can be edited and deleted. `@` and a name tells that person
// if they can see the task.

import { html, useRef, useState } from "../vendor/htm-preact.js";
import { useMentions } from "./mentions.js";
import { api, session } from "./api.js";
import { Avatar, nameOf } from "./persons.js";
import { useLoad, useStream, Problem, when, useAction } from "./ui.js";

export function Comments({ taskId }) {
  const list = useLoad(() => api("GET", `/api/v1/tasks/${taskId}/comments`), [taskId]);
  const [said, setSaid] = useState("");
  const me = session()?.user?.id;
  useStream((type, event) => {
    if (type !== "task.commented" || event?.data?.task_id !== taskId) return;
    list.reload();
    const { author_id: author, change } = event.data;
    if (author !== me) {
      const verb = { created: "commented", edited: "edited a comment", deleted: "deleted a comment" }[change] || "commented";
      setSaid(`${nameOf(author)} ${verb}`);
    }
  }, [taskId, list.reload]);
  const items = list.data?.items || [];
  return html`<section aria-labelledby="comments-title">
    <h2 id="comments-title">Comments</h2>
    <p class="visually-hidden" role="status" aria-live="polite">${said}</p>
    <${Problem} error=${list.error} />
    <ol class="comments">
      ${items.map((c) => html`<${CommentItem} key=${c.id} comment=${c} mine=${c.author_id === me} onChanged=${list.reload} />`)}
    </ol>
    ${list.data && items.length === 0 ? html`<p class="muted">No comments yet.</p>` : ""}
    <${Write} taskId=${taskId} onSaved=${list.reload} />
  </section>`;
}

function CommentItem({ comment, mine, onChanged }) {
  const [editing, setEditing] = useState(false);
  const action = useAction();
  const author = mine ? "You" : comment.author_name || nameOf(comment.author_id);
  const path = `/api/v1/tasks/${comment.task_id}/comments/${comment.id}`;
  const remove = () => action.run(async () => {
    if (!window.confirm("Delete this comment?")) return;
    await api("DELETE", path);
    onChanged();
  });
  return html`<li class="comment" data-comment=${comment.id}>
    <div class="comment-head"><${Avatar} name=${author} /> <b>${author}</b>
      <time datetime=${comment.created_at}>${when(comment.created_at)}</time>
      ${comment.edited_at ? html`<span class="muted">(edited)</span>` : ""}
      ${mine && !editing ? html`<button type="button" class="link" onClick=${() => setEditing(true)}>Edit</button>
        <button type="button" class="link" onClick=${remove} disabled=${action.busy}>Delete</button>` : ""}</div>
    ${editing ? html`<${Write} taskId=${comment.task_id} comment=${comment}
        onSaved=${() => { setEditing(false); onChanged(); }} onCancel=${() => setEditing(false)} />`
      : html`<div class="comment-body" dangerouslySetInnerHTML=${{ __html: comment.body_html }} />`}
    <${Problem} error=${action.error} />
  </li>`;
}

/** A new comment, or (with `comment`) an edit of mine. */
function Write({ taskId, comment, onSaved, onCancel }) {
  const [body, setBody] = useState(comment?.body || "");
  const box = useRef(null);
  const mentions = useMentions(box, body, setBody, comment ? `edit-${comment.id}` : "new-comment");
  const action = useAction();
  const submit = async (e) => {
    e.preventDefault();
    const ok = await action.run(() => (comment
      ? api("PATCH", `/api/v1/tasks/${taskId}/comments/${comment.id}`, { body })
      : api("POST", `/api/v1/tasks/${taskId}/comments`, { body })));
    if (ok) {
      if (!comment) setBody("");
      onSaved();
    }
  };
  const label = comment ? "Edit comment" : "New comment";
  return html`<form class="comment-form" onSubmit=${submit} aria-label=${label}>
    <label>${comment ? "Your comment" : "Comment"} <textarea ref=${box} name="body" rows="3" required maxlength="10000"
      ...${mentions.aria} value=${body} onInput=${(e) => setBody(e.target.value)} onKeyDown=${mentions.onKeyDown}></textarea></label>
    <div class="picker">${mentions.list}</div>
    <span class="muted">Markdown; <code>@</code> and a name tells someone who can see this task.</span>
    <button type="submit" disabled=${action.busy}>${comment ? "Save comment" : "Comment"}</button>
    ${onCancel ? html`<button type="button" class="link" onClick=${onCancel}>Cancel</button>` : ""}
    <${Problem} error=${action.error} />
  </form>`;
}

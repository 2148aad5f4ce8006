// People's other views: channels (create, join by code, leave; their members by name, and for
// the owner a new code and removing a member) and notifications (the list, read, preferences).

import { html, useState } from "../vendor/htm-preact.js";
import { api } from "./api.js";
import { Avatar, remember } from "./persons.js";
import { useLoad, useStream, Problem, Loading, when, useAction, usePageTitle } from "./ui.js";

export function Channels() {
  usePageTitle("Channels");
  const channels = useLoad(() => api("GET", "/api/v1/channels"));
  const [name, setName] = useState("");
  const [code, setCode] = useState("");
  const action = useAction();
  useStream((type) => type === "channel.joined" && channels.reload(), [channels.reload]);
  const create = async (e) => {
    e.preventDefault();
    if (await action.run(() => api("POST", "/api/v1/channels", { name }))) {
      setName("");
      channels.reload();
    }
  };
  const join = async (e) => {
    e.preventDefault();
    if (await action.run(() => api("POST", "/api/v1/channels/join", { code }))) {
      setCode("");
      channels.reload();
    }
  };
  return html`<section aria-labelledby="channels-title">
    <h1 id="channels-title">Channels</h1>
    <form class="inline" onSubmit=${create} aria-label="New channel">
      <label>Name <input name="name" required maxlength="100" value=${name} onInput=${(e) => setName(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Create channel</button>
    </form>
    <form class="inline" onSubmit=${join} aria-label="Join a channel">
      <label>Join code <input name="code" required maxlength="64" value=${code} onInput=${(e) => setCode(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Join</button>
    </form>
    <${Problem} error=${action.error || channels.error} />
    ${!channels.data ? html`<${Loading} what="channels" />` : html`<table>
      <caption>Your channels</caption>
      <thead><tr><th scope="col">name</th><th scope="col">members</th><th scope="col">join code</th><th scope="col"></th></tr></thead>
      <tbody>${channels.data.items.map((c) => html`<tr data-channel=${c.id}>
        <th scope="row">${c.name}</th>
        <td><${Members} channel=${c} onChanged=${channels.reload} /></td>
        <td>${c.join_code ? html`<code>${c.join_code}</code>
          <button type="button" aria-label=${`New join code for ${c.name}`} onClick=${() => action.run(async () => {
            await api("POST", `/api/v1/channels/${c.id}/rotate-code`);
            channels.reload();
          })}>New code</button>` : ""}</td>
        <td>${c.join_code ? "" : html`<button type="button" aria-label=${`Leave ${c.name}`} onClick=${() => action.run(async () => {
          await api("POST", `/api/v1/channels/${c.id}/leave`);
          channels.reload();
        })}>Leave</button>`}</td></tr>`)}</tbody>
    </table>`}
  </section>`;
}

/**
 * A channel's members by name, shown on demand; its owner may remove the others. Follows joins
 * live while open.
 */
function Members({ channel, onChanged }) {
  const [open, setOpen] = useState(false);
  return html`<details onToggle=${(e) => setOpen(e.target.open)}>
    <summary>${channel.members} ${channel.members === 1 ? "member" : "members"}</summary>
    ${open ? html`<${MemberList} channel=${channel} onChanged=${onChanged} />` : ""}
  </details>`;
}

function MemberList({ channel, onChanged }) {
  const members = useLoad(async () => {
    const list = await api("GET", `/api/v1/channels/${channel.id}/members`);
    list.items.filter((m) => m.display_name)
      .forEach((m) => remember({ id: m.user_id, display_name: m.display_name, active: true }));
    return list;
  }, [channel.id]);
  const action = useAction();
  useStream((type, event) => type === "channel.joined" && event?.data?.channel_id === channel.id
    && members.reload(), [channel.id, members.reload]);
  const mine = !!channel.join_code; // only the owner is shown the code
  const remove = (m) => action.run(async () => {
    await api("DELETE", `/api/v1/channels/${channel.id}/members/${m.user_id}`);
    members.reload();
    onChanged();
  });
  return html`<${Problem} error=${action.error || members.error} />
    <ul class="members" aria-label=${`Members of ${channel.name}`}>
      ${(members.data?.items || []).map((m) => html`<li>
        <${Avatar} name=${m.display_name} /> ${m.display_name || "(unknown yet)"}
        ${m.owner ? html` <span class="muted">owner</span>` : ""}
        ${mine && !m.owner ? html` <button type="button" class="link" aria-label=${`Remove ${m.display_name} from ${channel.name}`}
          onClick=${() => remove(m)} disabled=${action.busy}>Remove</button>` : ""}
      </li>`)}
    </ul>`;
}

/** The dashboard's page of what a notification is about: its task's, or its workflow's. */
function pageOf(notification) {
  const { kind, subject } = notification;
  if (!subject) return null;
  if (/^(task|job)\./.test(kind)) return `#/tasks/${subject}`;
  if (kind.startsWith("workflow.")) return `#/workflows/${subject}`;
  if (kind.startsWith("channel.")) return "#/channels";
  return null;
}

export function Notifications() {
  usePageTitle("Notifications");
  const list = useLoad(() => api("GET", "/api/v1/notifications?limit=50"));
  const action = useAction();
  useStream((type) => type === "notification.created" && list.reload(), [list.reload]);
  const read = (id) => action.run(async () => {
    await api("POST", `/api/v1/notifications/${id}/read`);
    window.dispatchEvent(new Event("taskmesh:read"));
    list.reload();
  });
  // Following a notification marks it read first, so the list shows it read on the way back.
  const follow = async (e, n) => {
    e.preventDefault();
    if (!n.read_at) await read(n.id);
    window.location.hash = pageOf(n);
  };
  return html`<section aria-labelledby="notifications-title">
    <h1 id="notifications-title">Notifications</h1>
    <button type="button" onClick=${() => action.run(async () => {
      await api("POST", "/api/v1/notifications/read-all");
      window.dispatchEvent(new Event("taskmesh:read"));
      list.reload();
    })}>Mark all read</button>
    <${Problem} error=${action.error || list.error} />
    ${!list.data ? html`<${Loading} what="notifications" />` : html`<ul class="notifications">
      ${list.data.items.map((n) => html`<li class=${n.read_at ? "read" : "unread"}>
        ${pageOf(n) ? html`<a href=${pageOf(n)} onClick=${(e) => follow(e, n)}><b>${n.title}</b></a>`
          : html`<b>${n.title}</b>`}
        <span class="muted">${when(n.created_at)}</span>
        ${n.body ? html`<p>${n.body}</p>` : ""}
        ${n.read_at ? "" : html`<button type="button" onClick=${() => read(n.id)}>Mark read</button>`}
      </li>`)}
    </ul>`}
    <${Preferences} />
  </section>`;
}

const CHANNELS = ["in_app", "email", "webhook", "sms"];

function Preferences() {
  const prefs = useLoad(() => api("GET", "/api/v1/notifications/preferences"));
  const action = useAction();
  if (!prefs.data) return html`<${Problem} error=${prefs.error} />`;
  const toggle = (kind, channel) => (e) => action.run(async () => {
    const update = { preferences: [{ kind, [channel]: e.target.checked }] };
    await api("PUT", "/api/v1/notifications/preferences", update);
    prefs.reload();
  });
  return html`<section aria-labelledby="prefs-title">
    <h2 id="prefs-title">Preferences</h2>
    <table>
      <caption>Which channels tell you about what</caption>
      <thead><tr><th scope="col">kind</th>${CHANNELS.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
      <tbody>${prefs.data.preferences.map((p) => html`<tr><th scope="row">${p.kind}</th>
        ${CHANNELS.map((c) => html`<td><input type="checkbox" aria-label=${`${p.kind} by ${c}`}
          checked=${p[c]} onChange=${toggle(p.kind, c)} /></td>`)}</tr>`)}</tbody>
    </table>
    <${Problem} error=${action.error} />
    <${SmsNumber} prefs=${prefs.data} onChanged=${prefs.reload} />
  </section>`;
}

/** The number texts go to: set or remove it, and verify it with the code texted to it. */
function SmsNumber({ prefs, onChanged }) {
  const [number, setNumber] = useState(prefs.sms_number || "");
  const [code, setCode] = useState("");
  const action = useAction();
  const save = (e) => {
    e.preventDefault();
    action.run(async () => {
      await api("PUT", "/api/v1/notifications/preferences", { sms_number: number.trim() });
      onChanged();
    });
  };
  const verify = (e) => {
    e.preventDefault();
    action.run(async () => {
      await api("POST", "/api/v1/notifications/sms-number/verify", { code: code.trim() });
      setCode("");
      onChanged();
    });
  };
  return html`<section aria-labelledby="sms-title">
    <h3 id="sms-title">SMS number</h3>
    <form class="inline" onSubmit=${save} aria-label="SMS number">
      <label>Number (with country code, like +15551234567) <input name="sms_number" type="tel" maxlength="16"
        value=${number} onInput=${(e) => setNumber(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Save number</button>
    </form>
    ${prefs.sms_number ? html`<p id="sms-state">${prefs.sms_number_verified
      ? html`<span class="state state-alive">verified</span> Texts go to ${prefs.sms_number}.`
      : html`<span class="state state-dead">not verified</span> Enter the code texted to ${prefs.sms_number}; no text is sent until then.`}</p>` : ""}
    ${prefs.sms_number && !prefs.sms_number_verified ? html`<form class="inline" onSubmit=${verify} aria-label="Verify the number">
      <label>Code <input name="code" inputmode="numeric" maxlength="10" value=${code} onInput=${(e) => setCode(e.target.value)} /></label>
      <button type="submit" disabled=${action.busy}>Verify</button>
      <button type="button" class="link" disabled=${action.busy} onClick=${() => action.run(() => api("POST", "/api/v1/notifications/sms-number/code"))}>Text me a new code</button>
    </form>` : ""}
    <${Problem} error=${action.error} />
  </section>`;
}

// The admin view (/admin): this node's live figures over the WebSocket (`admin_watch` →
// `admin_stats` every second), the busiest rooms with their members, the banned users, and the
// actions an administrator takes: close a user's connections, ban or unban them server-wide,
// delete a message. Everything shown comes from the server as text (textContent only).

import { Connection } from "/assets/client.js";
import { api, fetchSession, guestMark } from "/assets/common.js";

const $ = (id) => document.getElementById(id);

const ui = {
  loading: $("loading"),
  refused: $("refused"),
  refusedText: $("refused-text"),
  admin: $("admin"),
  status: $("status"),
  connections: $("fig-connections"),
  rooms: $("fig-rooms"),
  members: $("fig-members"),
  messages: $("fig-messages"),
  deliveries: $("fig-deliveries"),
  p99: $("fig-p99"),
  disconnects: $("disconnects"),
  rateLimited: $("rate-limited"),
  busiest: $("busiest"),
  busiestEmpty: $("busiest-empty"),
  banned: $("banned"),
  bannedEmpty: $("banned-empty"),
  result: $("action-result"),
  userForm: $("user-form"),
  userKey: $("user-key"),
  messageForm: $("message-form"),
  messageRoom: $("message-room"),
  messageSeq: $("message-seq"),
};

let me = null;
/** What the lists were last built from: rebuilt only when it changes, so focus stays put. */
const shown = { rooms: "", banned: "", disconnects: "", rateLimited: "" };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function setStatus(state, text) {
  ui.status.hidden = false;
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function refuse(text) {
  conn.stop();
  ui.loading.hidden = true;
  ui.admin.hidden = true;
  ui.refused.hidden = false;
  ui.refusedText.textContent = text;
}

const rate = (value) => (value >= 100 ? Math.round(value).toLocaleString() : value.toFixed(1));

function renderFigures(stats) {
  ui.connections.textContent = stats.connections.toLocaleString();
  ui.rooms.textContent = stats.rooms_active.toLocaleString();
  ui.members.textContent = stats.members_online.toLocaleString();
  ui.messages.textContent = rate(stats.messages_per_s);
  ui.deliveries.textContent = rate(stats.deliveries_per_s);
  ui.p99.textContent = stats.delivery_p99_ms === null ? "–" : `≤ ${stats.delivery_p99_ms} ms`;
  renderCounts(ui.disconnects, "disconnects", stats.disconnects, "None yet");
  renderCounts(ui.rateLimited, "rateLimited", stats.rate_limited, "None yet");
}

function renderCounts(tbody, key, counts, emptyText) {
  const entries = Object.entries(counts).filter(([, count]) => count > 0);
  const fingerprint = JSON.stringify(entries);
  if (fingerprint === shown[key]) return;
  shown[key] = fingerprint;
  tbody.replaceChildren();
  if (entries.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: "2", class: "muted" }, emptyText)));
    return;
  }
  for (const [name, count] of entries) {
    tbody.append(el("tr", {}, el("th", { scope: "row" }, name), el("td", { class: "num" }, count.toLocaleString())));
  }
}

function userLabel(user) {
  const label = el("span", { class: "admin-user" }, el("span", { dir: "auto" }, user.name));
  if (user.guest) label.append(" ", guestMark());
  if (user.username) label.append(" ", el("span", { class: "username" }, `@${user.username}`));
  return label;
}

function actionButton(text, label, onClick, extraClass = "ghost") {
  const button = el("button", { type: "button", class: `btn small ${extraClass}`, "aria-label": label }, text);
  button.addEventListener("click", () => onClick(button));
  return button;
}

function renderRooms(rooms) {
  const fingerprint = JSON.stringify(rooms);
  if (fingerprint === shown.rooms) return;
  shown.rooms = fingerprint;
  ui.busiest.replaceChildren();
  ui.busiestEmpty.hidden = rooms.length > 0;
  for (const room of rooms) {
    const heading = el(
      "h3",
      {},
      el("a", { href: `/chat/${encodeURIComponent(room.name)}/` }, `#${room.name}`),
      " ",
      el("span", { class: "muted small" }, `${room.online} online${room.visibility === "private" ? " · private" : ""}`),
    );
    const members = el("ul", { class: "admin-members", "aria-label": `Members of #${room.name}` });
    for (const user of room.members) {
      const item = el("li", {}, userLabel(user));
      if (!me || user.id !== me.id) {
        item.append(
          actionButton("Close connections", `Close connections of ${user.name}`, () => act("disconnect", user.id, user.name)),
          actionButton("Ban", `Ban ${user.name} from the server`, () => act("ban", user.id, user.name), "ghost danger"),
        );
      }
      members.append(item);
    }
    const item = el("li", { class: "admin-room" }, heading, members);
    if (room.more_members) item.append(el("p", { class: "muted small" }, `and ${room.online - room.members.length} more`));
    ui.busiest.append(item);
  }
}

function renderBanned(banned) {
  const fingerprint = JSON.stringify(banned);
  if (fingerprint === shown.banned) return;
  shown.banned = fingerprint;
  ui.banned.replaceChildren();
  ui.bannedEmpty.hidden = banned.length > 0;
  for (const user of banned) {
    ui.banned.append(
      el("li", {}, userLabel(user), actionButton("Lift ban", `Lift ban for ${user.name}`, () => act("unban", user.id, user.name))),
    );
  }
}

function render(stats) {
  ui.loading.hidden = true;
  ui.admin.hidden = false;
  renderFigures(stats);
  renderRooms(stats.busiest_rooms);
  renderBanned(stats.banned);
}

function say(text, failed = false) {
  ui.result.hidden = false;
  ui.result.classList.toggle("error", failed);
  ui.result.textContent = text;
}

const DONE = {
  disconnect: (name) => `Closed ${name}'s connections.`,
  ban: (name) => `${name} is banned from the server; their sessions ended.`,
  unban: (name) => `${name} may sign in again.`,
};

async function act(action, key, name = key) {
  const path = `/api/admin/users/${encodeURIComponent(key)}/${action === "disconnect" ? "disconnect" : "ban"}`;
  if (action === "ban" && !confirm(`Ban ${name} from the whole server? Their sessions end at once.`)) return;
  try {
    await api(action === "unban" ? "DELETE" : "POST", path);
    say(DONE[action](name));
  } catch (e) {
    say(e.message, true);
  }
}

function wireForms() {
  ui.userForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = ui.userKey.value.trim();
    if (key === "") {
      say("Enter a username or a user id.", true);
      ui.userKey.focus();
      return;
    }
    act(event.submitter?.value ?? "disconnect", key);
  });
  ui.messageForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const room = ui.messageRoom.value.trim().replace(/^#/, "");
    const seq = Number(ui.messageSeq.value);
    if (room === "" || !Number.isInteger(seq) || seq < 1) {
      say("Enter the room's name and the message's seq (a whole number from 1).", true);
      return;
    }
    try {
      await api("DELETE", `/api/rooms/${encodeURIComponent(room)}/messages/${seq}`);
      say(`Deleted message ${seq} of #${room}.`);
    } catch (e) {
      say(e.message, true);
    }
  });
}

const conn = new Connection({
  onConnecting() {
    setStatus("connecting", "Connecting…");
  },
  onFrame(frame) {
    if (frame.type === "hello") {
      conn.send({ type: "admin_watch" });
    } else if (frame.type === "admin_stats") {
      conn.resetBackoff();
      setStatus("connected", "Live");
      render(frame);
    } else if (frame.type === "error" && frame.code === "forbidden") {
      refuse("This page is for server administrators.");
    }
  },
  onClose({ stopped }) {
    if (!stopped) setStatus("reconnecting", "Reconnecting…");
  },
});

async function start() {
  try {
    me = await fetchSession();
  } catch (e) {
    ui.loading.textContent = e.message;
    setTimeout(start, 2000);
    return;
  }
  if (me === null) {
    refuse("Sign in with an administrator's account to see this page.");
    return;
  }
  if (me.admin !== true) {
    refuse("This page is for server administrators.");
    return;
  }
  wireForms();
  conn.start();
}

start();

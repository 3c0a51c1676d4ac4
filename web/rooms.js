// Rooms beyond "open one by name": the room, moderation and direct-message routes of the HTTP
// API (docs/protocol.md, "Rooms, roles and direct messages"), who may do what in a room (the
// server's rules, mirrored only to decide which buttons to show: the server still decides), and
// the lobby's parts of it: the "Create a room" form, the lock on private rooms and the list of
// direct messages.

import { ApiError, api, avatar, guestMark, roomProblem } from "/assets/common.js";

/** Room names starting with this are direct-message rooms (made by `POST /api/dm/{user}`). */
export const DIRECT_PREFIX = "dm-";
const MAX_TOPIC_CHARS = 256;

export function isDirectRoom(name) {
  return name.startsWith(DIRECT_PREFIX);
}

const path = (room) => `/api/rooms/${encodeURIComponent(room)}`;
const userPath = (room, kind, user) => `${path(room)}/${kind}/${encodeURIComponent(user)}`;

// ---- the API ----------------------------------------------------------------------------------

export async function createRoom(name, visibility, topic) {
  const body = { name, visibility };
  if (topic) body.topic = topic;
  return (await api("POST", "/api/rooms", body)).room;
}

/** `{name, visibility, topic, owner, members, member_count, role}`; `not_found` when hidden. */
export async function roomDetails(room) {
  return (await api("GET", path(room))).room;
}

export async function setTopic(room, topic) {
  return (await api("PATCH", path(room), { topic })).room;
}

/** `user` is a username or a user id (guests have only ids). */
export async function addMember(room, user) {
  return (await api("PUT", userPath(room, "members", user))).member;
}

export async function removeMember(room, user) {
  await api("DELETE", userPath(room, "members", user));
}

export async function ban(room, user) {
  await api("PUT", userPath(room, "bans", user));
}

export async function unban(room, user) {
  await api("DELETE", userPath(room, "bans", user));
}

export async function setRole(room, user, role) {
  return (await api("PUT", userPath(room, "roles", user), { role })).member;
}

/** The direct-message room with `user` (a username or an account's id), made on first ask. */
export async function openDirect(user) {
  return (await api("POST", `/api/dm/${encodeURIComponent(user)}`)).room;
}

/** `[{name, with: {id, name, username, guest}}]`, most recently active first. */
export async function directRooms() {
  return (await api("GET", "/api/dm")).rooms;
}

export function roomUrl(name) {
  return `/chat/${encodeURIComponent(name)}/`;
}

/** What to tell people about a failed room request. */
export function roomErrorMessage(e) {
  if (!(e instanceof ApiError)) return "Something went wrong. Please try again.";
  switch (e.code) {
    case "account_required":
      return "This needs an account. Create one (or sign in) first.";
    case "not_found":
      return e.message === "no such user" ? "There is no account with that username." : "That room does not exist, or you cannot see it.";
    case "unauthenticated":
      return "You were signed out. Please sign in again.";
    case "rate_limited": {
      const seconds = Math.max(1, Math.ceil((e.retryAfterMs ?? 1000) / 1000));
      return `Too many requests. Please wait ${seconds} second${seconds === 1 ? "" : "s"} and try again.`;
    }
    default:
      // forbidden, bad_request, offline, …: the server's message says what is wrong.
      return e.message.replace(/^./, (c) => c.toUpperCase()).replace(/\.?$/, ".");
  }
}

// ---- who may do what (docs/protocol.md, the roles table) ------------------------------------

/** Ranks as the server orders them: an administrator stands above moderators, below the owner. */
const RANK = { none: 0, member: 1, moderator: 2, admin: 3, owner: 4 };

/** The caller's say in `room` (a `GET /api/rooms/{name}` answer); `admin` from the session. */
export function callerRank(room, admin) {
  const own = RANK[room.role] ?? RANK.none;
  if (!admin) return own;
  // Administrators moderate every room and stand in for the owner of an ownerless one.
  return Math.max(own, room.owner ? RANK.admin : RANK.owner);
}

export const may = {
  /** Set the topic, add members, kick, ban, lift bans. */
  moderate: (rank) => rank >= RANK.moderator,
  /** Give roles, the owner's included (handing the room over). */
  setRoles: (rank) => rank >= RANK.owner,
  /** Kick or ban `target` (`{id, role}`): only someone of a lower rank, never yourself. */
  remove: (rank, target, meId) =>
    target.id !== meId && rank >= RANK.moderator && (RANK[target.role] ?? RANK.none) < rank,
};

// ---- small DOM helpers ------------------------------------------------------------------------

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** The lock shown beside a private room's name: an image with a name, for screen readers. */
export function lockIcon() {
  return el("span", { class: "lock-icon", role: "img", "aria-label": "private", title: "Private: only its members can see and open it" });
}

/** `@username`, or the guest mark, beside a name. */
export function whoMark(user) {
  return user.guest === false && user.username ? el("span", { class: "username" }, `@${user.username}`) : guestMark();
}

// ---- the lobby --------------------------------------------------------------------------------

/** Gives a lobby row its lock when the room is private (and takes it away when not). */
export function markPrivate(li, isPrivate) {
  const lock = li.querySelector(".lock-icon");
  if (isPrivate && !lock) li.querySelector(".room-name")?.after(lockIcon());
  else if (!isPrivate && lock) lock.remove();
  li.classList.toggle("private", isPrivate);
}

const $ = (id) => document.getElementById(id);

/**
 * Wires the lobby's "Create a room" form. `currentUser()` tells who is signed in (guests may
 * create public rooms only).
 */
export function bindCreateRoom(currentUser) {
  const toggle = $("create-room-toggle");
  const section = $("create-room");
  const form = $("create-room-form");
  const name = $("create-room-name");
  const topic = $("create-room-topic");
  const privateBox = $("create-room-private");
  const error = $("create-room-error");
  const exists = $("create-room-exists");
  const submit = $("create-room-submit");

  const setOpen = (open) => {
    section.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) name.focus();
  };
  const clear = () => {
    error.hidden = true;
    error.textContent = "";
    exists.hidden = true;
    exists.replaceChildren();
    name.removeAttribute("aria-invalid");
    topic.removeAttribute("aria-invalid");
  };
  const show = (input, message) => {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  toggle.addEventListener("click", () => setOpen(section.hidden));
  $("create-room-cancel").addEventListener("click", () => {
    form.reset();
    clear();
    setOpen(false);
    toggle.focus();
  });
  form.addEventListener("input", clear);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const roomName = name.value.trim().replace(/^#/, "");
    const problem = roomProblem(roomName);
    if (problem) return show(name, problem);
    if (isDirectRoom(roomName)) return show(name, `Room names starting with “${DIRECT_PREFIX}” are kept for direct messages.`);
    const topicText = topic.value.trim();
    if ([...topicText].length > MAX_TOPIC_CHARS) return show(topic, `A topic can be at most ${MAX_TOPIC_CHARS} characters.`);
    const visibility = privateBox.checked && !privateBox.disabled ? "private" : "public";
    submit.disabled = true;
    try {
      await createRoom(roomName, visibility, topicText);
      location.assign(roomUrl(roomName));
    } catch (e) {
      if (e.code === "room_exists") {
        show(name, `A room called #${roomName} exists already. Pick another name.`);
        offerToOpen(exists, roomName);
      } else if (e.code === "account_required") {
        show(privateBox, "Private rooms need an account: create one or sign in, or make the room public.");
      } else {
        show(e.code === "bad_request" && /topic/i.test(e.message) ? topic : name, roomErrorMessage(e));
      }
    } finally {
      submit.disabled = false;
    }
  });
  updateCreateRoom(currentUser());
}

/** A room that exists: offer to open it when the caller may see it (public, or theirs). */
async function offerToOpen(exists, roomName) {
  try {
    const room = await roomDetails(roomName);
    const link = el("a", { href: roomUrl(roomName), id: "create-room-open" }, `Open #${room.name}`);
    exists.replaceChildren(link, room.visibility === "public" ? " (a public room)" : " (a private room you are in)");
    exists.hidden = false;
  } catch {
    // hidden from us (someone else's private room): saying nothing more is the point
  }
}

/** Guests may not make private rooms: the switch is off and says why. */
export function updateCreateRoom(user) {
  const privateBox = $("create-room-private");
  const hint = $("create-room-private-hint");
  const guest = !user || user.guest !== false;
  privateBox.disabled = guest;
  if (guest) privateBox.checked = false;
  hint.textContent = guest
    ? "Private rooms need an account, so you can be told apart from someone who picks your name. Create an account to make one."
    : "Only the people you add can see it in their lobby, open it and read it.";
}

/** Shows the caller's direct-message rooms in the lobby (accounts only; guests have none). */
export async function showDirectMessages(user) {
  const section = $("dms");
  const list = $("dm-list");
  const empty = $("dm-empty");
  const error = $("dm-error");
  if (!user || user.guest !== false) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  let rooms;
  try {
    rooms = await directRooms();
    error.hidden = true;
  } catch (e) {
    error.textContent = roomErrorMessage(e);
    error.hidden = false;
    return;
  }
  list.replaceChildren(
    ...rooms.map((dm) => {
      const other = dm.with ?? { id: dm.name, name: "?" };
      const a = el(
        "a",
        { href: roomUrl(dm.name) },
        avatar(other, "small"),
        el("span", { class: "room-name", dir: "auto" }, other.name),
        " ",
        whoMark(other),
      );
      return el("li", { "data-room": dm.name }, a);
    }),
  );
  empty.hidden = rooms.length > 0;
}

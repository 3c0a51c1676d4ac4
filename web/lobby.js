// The lobby: sign in (as a guest with a name, or with an account), see the rooms with their
// live online counts, open or create a room, and (accounts) see your direct messages. The room
// creation form and the direct-message list live in rooms.js.
//
// Unread and mention counts come only with snapshots (docs/protocol.md, `rooms`), so the lobby
// asks for a fresh snapshot when something suggests they moved: a live update (someone came or
// went, usually around talking), a `read_marker` (read in another tab), the tab coming back into
// view, and every half minute while it is in view. A snapshot with counts costs the server a few
// queries per room read, so they are spaced: at least 2 s apart, and 5 s after the one before
// when only a live update (which may be anyone coming or going anywhere) asked for it.

import {
  bindLoginForm,
  bindSignupForm,
  closeAccountPanel,
  errorMessage,
  openAccountPanel,
  sessionAfterRevocation,
  signOut,
} from "/assets/account.js";
import { BANNED, CLOSED_BY_ADMIN, Connection, SESSION_REVOKED } from "/assets/client.js";
import { avatar, bindNameForm, fetchSession, roomProblem } from "/assets/common.js";
import { bindCreateRoom, isDirectRoom, markPrivate, showDirectMessages, updateCreateRoom } from "/assets/rooms.js";
import { countsLabel, showCountsInTitle } from "/assets/unread.js";

const $ = (id) => document.getElementById(id);

const ui = {
  loading: $("loading"),
  signin: $("signin"),
  signinHeading: $("signin-heading"),
  signinLede: $("signin-lede"),
  signedOut: $("signed-out"),
  nameForm: $("name-form"),
  nameInput: $("name"),
  nameCancel: $("name-cancel"),
  lobby: $("lobby"),
  meName: $("me-name"),
  meAvatar: $("me-avatar"),
  meUsername: $("me-username"),
  meGuest: $("me-guest"),
  changeName: $("change-name"),
  accountOpen: $("account-open"),
  signOut: $("sign-out"),
  signOutError: $("sign-out-error"),
  upgrade: $("upgrade"),
  createAccount: $("create-account"),
  auth: $("auth"),
  authChoicesLabel: $("auth-choices-label"),
  showLogin: $("show-login"),
  showSignup: $("show-signup"),
  loginSection: $("login-section"),
  loginForm: $("login-form"),
  signupSection: $("signup-section"),
  signupForm: $("signup-form"),
  signupNameHint: $("signup-name-hint"),
  roomForm: $("room-form"),
  roomInput: $("room-name"),
  roomError: $("room-error"),
  rooms: $("rooms"),
  roomsEmpty: $("rooms-empty"),
  status: $("status"),
};

let me = null;
/** name -> online count; the order of the list is computed from it. */
const rooms = new Map();
/**
 * name -> position in the last snapshot. The server ranks rooms so that made-up ones never push
 * out a conversation (docs/protocol.md, `rooms`); re-sorting by online count here would undo
 * that. Rooms first seen in updates come after the snapshot's, busiest first.
 */
const snapshotRank = new Map();
/** Rooms the last snapshot marked private (the user's own; updates never name them). */
const privateRooms = new Set();
let haveSnapshot = false;
let everConnected = false;
/** name -> {unread, mentions} from the last snapshot, for rooms the user has a read marker in. */
const counts = new Map();
/** The least time between two snapshots asked for, and after one asked for by a live update. */
const REFRESH_GAP_MS = 2000;
const REFRESH_AFTER_UPDATE_MS = 5000;
const REFRESH_EVERY_MS = 30000;
/** When the last snapshot was asked for, and the timer of the next one. */
const refresh = { askedAt: -Infinity, timer: null, due: 0 };

const conn = new Connection({
  onConnecting() {
    if (!everConnected) setStatus("connecting");
  },
  onFrame(frame) {
    if (frame.type === "hello") {
      askForRooms();
    } else if (frame.type === "read_marker") {
      refreshSoon();
    } else if (frame.type === "rooms" && Array.isArray(frame.rooms)) {
      applyRooms(frame.rooms, frame.full === true);
      if (!frame.full) refreshSoon(REFRESH_AFTER_UPDATE_MS);
      if (frame.full) {
        // Direct messages are not in live updates either: refresh them with each snapshot.
        showDirectMessages(me).then(countDirectMessages);
        everConnected = true;
        conn.resetBackoff();
        setStatus("connected");
      }
    }
  },
  async onClose({ code, hadHello, stopped }) {
    setStatus(everConnected ? "reconnecting" : "connecting");
    if (stopped) return;
    if (code === SESSION_REVOKED || code === BANNED) {
      // A ban ended the session too: the sign-in card comes back, and signing in says why.
      await sessionEnded();
    } else if (code === CLOSED_BY_ADMIN) {
      conn.stop();
      ui.status.dataset.state = "closed";
      ui.status.textContent = "Disconnected by an administrator. Reload to reconnect.";
    } else if (!hadHello) {
      // The upgrade may have been refused because the session is gone (401); a browser cannot
      // see the status of a failed upgrade, so ask the HTTP API.
      try {
        if ((await fetchSession()) === null) signedOut();
      } catch {
        // server unreachable: keep retrying
      }
    }
  },
});

/**
 * The server closed the socket because its session ended (4003). Signing in or registering
 * here or in another tab does that too, and then the cookie names the new session: carry on
 * with it. Otherwise this browser was signed out (from another device, or a password change).
 */
async function sessionEnded() {
  let user;
  try {
    user = await sessionAfterRevocation();
  } catch {
    conn.scheduleReconnect(); // unreachable: the next attempt asks again
    return;
  }
  if (user === null) {
    signedOut();
  } else {
    showLobby(user);
    conn.reconnectNow();
  }
}

function signedOut() {
  conn.stop();
  closeAccountPanel();
  me = null;
  showDirectMessages(null);
  showSignIn("signed-out");
}

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.status.textContent =
    state === "connected" ? "Connected" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

function askForRooms() {
  clearTimeout(refresh.timer);
  refresh.timer = null;
  if (conn.send({ type: "rooms" })) refresh.askedAt = performance.now();
}

/** Asks for a snapshot (for its counts) `gap` ms after the last one, or now if that has passed. */
function refreshSoon(gap = REFRESH_GAP_MS) {
  const now = performance.now();
  const due = Math.max(now, refresh.askedAt + gap);
  if (refresh.timer !== null && refresh.due <= due) return;
  clearTimeout(refresh.timer);
  refresh.due = due;
  refresh.timer = setTimeout(askForRooms, due - now);
}

function applyRooms(list, full) {
  if (full) {
    rooms.clear();
    snapshotRank.clear();
    privateRooms.clear();
    counts.clear();
    for (const room of list) {
      if (room && typeof room.name === "string" && Number.isInteger(room.unread)) {
        counts.set(room.name, { unread: room.unread, mentions: Number.isInteger(room.mentions) ? room.mentions : 0 });
      }
    }
    list.forEach((room, index) => {
      if (room && typeof room.name === "string") snapshotRank.set(room.name, index);
    });
    haveSnapshot = true;
  }
  for (const room of list) {
    // Direct messages have a list of their own.
    if (room && typeof room.name === "string" && Number.isInteger(room.online) && !isDirectRoom(room.name)) {
      rooms.set(room.name, room.online);
      if (full && room.visibility === "private") privateRooms.add(room.name);
    }
  }
  renderRooms();
}

function renderRooms() {
  // The server's ranking, then busiest first, then by name; re-rendering keeps each item's
  // element so focus survives.
  const rank = (name) => snapshotRank.get(name) ?? Number.MAX_SAFE_INTEGER;
  const sorted = [...rooms.entries()].sort(
    (a, b) => rank(a[0]) - rank(b[0]) || b[1] - a[1] || a[0].localeCompare(b[0]),
  );
  const existing = new Map();
  for (const li of ui.rooms.children) existing.set(li.dataset.room, li);
  const focused = document.activeElement;
  sorted.forEach(([name, online], index) => {
    let li = existing.get(name);
    if (!li) {
      li = document.createElement("li");
      li.dataset.room = name;
      const a = document.createElement("a");
      a.href = `/chat/${encodeURIComponent(name)}/`;
      const hash = document.createElement("span");
      hash.className = "hash";
      hash.setAttribute("aria-hidden", "true");
      hash.textContent = "#";
      const label = document.createElement("span");
      label.className = "room-name";
      label.textContent = name;
      const count = document.createElement("span");
      count.className = "count";
      a.append(hash, label, count);
      addBadgeSlots(a);
      li.append(a);
    }
    existing.delete(name);
    const count = li.querySelector(".count");
    li.dataset.online = String(online);
    count.textContent = `${online} online`;
    li.classList.toggle("idle", online === 0);
    showCounts(li, counts.get(name));
    markPrivate(li, privateRooms.has(name));
    if (ui.rooms.children[index] !== li) ui.rooms.insertBefore(li, ui.rooms.children[index] ?? null);
  });
  for (const li of existing.values()) li.remove();
  if (focused && focused !== document.activeElement && document.contains(focused)) focused.focus();
  ui.roomsEmpty.hidden = sorted.length > 0;
  let unread = 0;
  let mentioned = 0;
  for (const count of counts.values()) {
    unread += count.unread;
    mentioned += count.mentions;
  }
  showCountsInTitle(unread, mentioned);
}

/** The unread badge and the distinct mention badge of a room, and the words for both. */
function showCounts(li, count) {
  const unread = count ? count.unread : 0;
  const mentioned = count ? count.mentions : 0;
  const badges = li.querySelector(".badges");
  const parts = [];
  if (unread > 0) parts.push(badge("unread-badge", String(unread)));
  if (mentioned > 0) parts.push(badge("mention-badge", `@${mentioned}`));
  badges.replaceChildren(...parts);
  const label = countsLabel(unread, mentioned);
  li.querySelector(".counts-label").textContent = label ? `, ${label}` : "";
  li.classList.toggle("unread", unread > 0);
  li.dataset.unread = String(unread);
  li.dataset.mentions = String(mentioned);
}

/** Room for the badges and their words at the end of a lobby link. */
function addBadgeSlots(a) {
  const badges = document.createElement("span");
  badges.className = "badges";
  badges.setAttribute("aria-hidden", "true");
  const said = document.createElement("span");
  said.className = "visually-hidden counts-label";
  a.append(badges, said);
}

/** The direct messages list (drawn by rooms.js) gets the same badges as the rooms. */
function countDirectMessages() {
  for (const li of document.querySelectorAll("#dm-list li[data-room]")) {
    const a = li.querySelector("a");
    if (!a) continue;
    if (!a.querySelector(".badges")) addBadgeSlots(a);
    showCounts(li, counts.get(li.dataset.room));
  }
}

function badge(kind, text) {
  const span = document.createElement("span");
  span.className = `badge ${kind}`;
  span.textContent = text;
  return span;
}

async function loadRoomsOverHttp() {
  // A quick first paint; the WebSocket snapshot replaces it and wins any race.
  try {
    const response = await fetch("/api/rooms", { headers: { accept: "application/json" } });
    if (!response.ok || haveSnapshot) return;
    const body = await response.json();
    if (!haveSnapshot && Array.isArray(body.rooms)) {
      applyRooms(body.rooms, true);
      haveSnapshot = false;
    }
  } catch {
    // the WebSocket will bring the list
  }
}

/**
 * Shows the sign-in card. `mode`: "start" (no session), "signed-out" (the same, saying the
 * session ended), "rename" (change the display name), "upgrade" (a guest creates an account).
 */
function showSignIn(mode) {
  const signedIn = mode === "rename" || mode === "upgrade";
  ui.loading.hidden = true;
  ui.signin.hidden = false;
  ui.lobby.hidden = !signedIn;
  ui.status.hidden = !signedIn;
  ui.signedOut.hidden = mode !== "signed-out";
  ui.nameCancel.hidden = !signedIn;
  ui.nameForm.hidden = mode === "upgrade";
  ui.auth.hidden = mode === "rename";
  ui.signinHeading.textContent =
    mode === "rename" ? "Change your display name" : mode === "upgrade" ? "Keep your name with an account" : "Choose a display name";
  ui.signinLede.textContent =
    mode === "upgrade"
      ? "Creating an account keeps your id, your name and your messages."
      : "This is how others will see you. You can change it at any time.";
  ui.authChoicesLabel.textContent = mode === "upgrade" ? "With an account:" : "Or with an account:";
  ui.signupNameHint.textContent =
    mode === "upgrade" && me ? `Leave empty to keep “${me.name}”.` : "Leave empty to use your username.";
  if (mode === "upgrade") {
    showAuth("signup");
  } else {
    showAuth(null);
    if (mode === "rename" && me) ui.nameInput.value = me.name;
    ui.nameInput.focus();
    if (mode === "rename") ui.nameInput.select();
  }
}

/** Opens the sign-in or the sign-up form ("login", "signup"), or neither (null). */
function showAuth(which) {
  for (const [name, button, section] of [
    ["login", ui.showLogin, ui.loginSection],
    ["signup", ui.showSignup, ui.signupSection],
  ]) {
    section.hidden = name !== which;
    button.setAttribute("aria-expanded", String(name === which));
  }
  const section = which === "login" ? ui.loginSection : which === "signup" ? ui.signupSection : null;
  section?.querySelector("input").focus();
}

function showLobby(user) {
  const first = me === null;
  me = user;
  ui.loading.hidden = true;
  ui.signin.hidden = true;
  ui.signedOut.hidden = true;
  ui.lobby.hidden = false;
  ui.meName.textContent = user.name;
  ui.meAvatar.replaceChildren(avatar(user, "large"));
  ui.meUsername.hidden = user.guest !== false || !user.username;
  ui.meUsername.textContent = user.username ? `@${user.username}` : "";
  ui.meGuest.hidden = user.guest === false;
  ui.upgrade.hidden = user.guest === false;
  ui.signOutError.hidden = true;
  updateCreateRoom(user);
  if (first) {
    loadRoomsOverHttp();
  } else {
    showDirectMessages(user);
  }
  ui.status.hidden = false;
  if (conn.stopped) conn.start();
}

bindNameForm(ui.nameForm, (user) => {
  const wasSignedIn = me !== null;
  showLobby(user);
  if (wasSignedIn) ui.changeName.focus();
  else ui.roomInput.focus();
});

/** Signed in or registered: the old session (if any) ended, and its socket closes with 4003. */
function signedIn(user, form) {
  form.reset();
  showAuth(null);
  showLobby(user);
  ui.roomInput.focus();
}

bindLoginForm(ui.loginForm, (user) => signedIn(user, ui.loginForm));
bindSignupForm(ui.signupForm, (user) => signedIn(user, ui.signupForm));
ui.showLogin.addEventListener("click", () => showAuth(ui.showLogin.getAttribute("aria-expanded") === "true" ? null : "login"));
ui.showSignup.addEventListener("click", () => showAuth(ui.showSignup.getAttribute("aria-expanded") === "true" ? null : "signup"));

ui.changeName.addEventListener("click", () => showSignIn("rename"));
ui.createAccount.addEventListener("click", () => showSignIn("upgrade"));
ui.nameCancel.addEventListener("click", () => {
  const upgrading = ui.nameForm.hidden;
  ui.signin.hidden = true;
  (upgrading ? ui.createAccount : ui.changeName).focus();
});
ui.accountOpen.addEventListener("click", () =>
  openAccountPanel({
    onUserChanged: (user) => showLobby(user),
    onCreateAccount: () => showSignIn("upgrade"),
  }),
);
ui.signOut.addEventListener("click", async () => {
  ui.signOut.disabled = true;
  conn.stop();
  try {
    await signOut();
    me = null;
    showSignIn("start");
  } catch (e) {
    ui.signOutError.textContent = errorMessage(e);
    ui.signOutError.hidden = false;
    conn.start();
  } finally {
    ui.signOut.disabled = false;
  }
});

bindCreateRoom(() => me);

// Counts come with snapshots only: refresh them when the lobby is looked at again, and now and
// then while it is.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && me !== null) refreshSoon();
});
setInterval(() => {
  if (document.visibilityState === "visible" && me !== null) refreshSoon();
}, REFRESH_EVERY_MS);

ui.roomInput.addEventListener("input", () => {
  ui.roomError.hidden = true;
  ui.roomInput.removeAttribute("aria-invalid");
});

ui.roomForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = ui.roomInput.value.trim().replace(/^#/, "");
  const problem = roomProblem(name);
  if (problem) {
    ui.roomError.textContent = problem;
    ui.roomError.hidden = false;
    ui.roomInput.setAttribute("aria-invalid", "true");
    ui.roomInput.focus();
    return;
  }
  location.assign(`/chat/${encodeURIComponent(name)}/`);
});

async function boot() {
  let delay = 500;
  for (;;) {
    try {
      const user = await fetchSession();
      if (user) showLobby(user);
      else showSignIn("start");
      followHash(user);
      return;
    } catch (e) {
      ui.loading.textContent = e.message;
      await new Promise((resolve) => setTimeout(resolve, delay * Math.random() + delay / 2));
      delay = Math.min(delay * 2, 8000);
    }
  }
}

/** `/#sign-in` and `/#create-account` (links from a room page) open those forms. */
function followHash(user) {
  const hash = location.hash;
  if (hash !== "#sign-in" && hash !== "#create-account") return;
  history.replaceState(null, "", location.pathname + location.search);
  if (user === null) showAuth(hash === "#sign-in" ? "login" : "signup");
  else if (user.guest && hash === "#create-account") showSignIn("upgrade");
}

boot();

// The lobby: sign in, see the rooms with their live online counts, open a room.

import { Connection } from "/assets/client.js";
import { avatar, bindNameForm, fetchSession, roomProblem } from "/assets/common.js";

const $ = (id) => document.getElementById(id);

const ui = {
  loading: $("loading"),
  signin: $("signin"),
  nameForm: $("name-form"),
  nameInput: $("name"),
  nameCancel: $("name-cancel"),
  lobby: $("lobby"),
  meName: $("me-name"),
  meAvatar: $("me-avatar"),
  changeName: $("change-name"),
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
let haveSnapshot = false;
let everConnected = false;

const conn = new Connection({
  onConnecting() {
    if (!everConnected) setStatus("connecting");
  },
  onFrame(frame) {
    if (frame.type === "hello") {
      conn.send({ type: "rooms" });
    } else if (frame.type === "rooms" && Array.isArray(frame.rooms)) {
      applyRooms(frame.rooms, frame.full === true);
      if (frame.full) {
        everConnected = true;
        conn.resetBackoff();
        setStatus("connected");
      }
    }
  },
  async onClose({ hadHello, stopped }) {
    setStatus(everConnected ? "reconnecting" : "connecting");
    if (!hadHello && !stopped) {
      // The upgrade may have been refused because the session is gone (401); a browser cannot
      // see the status of a failed upgrade, so ask the HTTP API.
      try {
        if ((await fetchSession()) === null) {
          conn.stop();
          showSignIn(false);
        }
      } catch {
        // server unreachable: keep retrying
      }
    }
  },
});

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.status.textContent =
    state === "connected" ? "Connected" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
}

function applyRooms(list, full) {
  if (full) {
    rooms.clear();
    snapshotRank.clear();
    list.forEach((room, index) => {
      if (room && typeof room.name === "string") snapshotRank.set(room.name, index);
    });
    haveSnapshot = true;
  }
  for (const room of list) {
    if (room && typeof room.name === "string" && Number.isInteger(room.online)) {
      rooms.set(room.name, room.online);
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
      li.append(a);
    }
    existing.delete(name);
    const count = li.querySelector(".count");
    li.dataset.online = String(online);
    count.textContent = `${online} online`;
    li.classList.toggle("idle", online === 0);
    if (ui.rooms.children[index] !== li) ui.rooms.insertBefore(li, ui.rooms.children[index] ?? null);
  });
  for (const li of existing.values()) li.remove();
  if (focused && focused !== document.activeElement && document.contains(focused)) focused.focus();
  ui.roomsEmpty.hidden = sorted.length > 0;
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

function showSignIn(changing) {
  ui.loading.hidden = true;
  ui.signin.hidden = false;
  ui.lobby.hidden = changing ? false : true;
  ui.nameCancel.hidden = !changing;
  ui.signin.querySelector("h2").textContent = changing ? "Change your display name" : "Choose a display name";
  if (changing && me) ui.nameInput.value = me.name;
  ui.nameInput.focus();
  if (changing) ui.nameInput.select();
}

function showLobby(user) {
  const first = me === null;
  me = user;
  ui.loading.hidden = true;
  ui.signin.hidden = true;
  ui.lobby.hidden = false;
  ui.meName.textContent = user.name;
  ui.meAvatar.replaceChildren(avatar(user, "large"));
  if (first) {
    loadRoomsOverHttp();
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

ui.changeName.addEventListener("click", () => showSignIn(true));
ui.nameCancel.addEventListener("click", () => {
  ui.signin.hidden = true;
  ui.changeName.focus();
});

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
      else showSignIn(false);
      return;
    } catch (e) {
      ui.loading.textContent = e.message;
      await new Promise((resolve) => setTimeout(resolve, delay * Math.random() + delay / 2));
      delay = Math.min(delay * 2, 8000);
    }
  }
}

boot();

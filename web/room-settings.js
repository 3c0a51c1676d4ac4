// The room page's view of a room's rules: its topic (and, for a direct message, the other
// person's name) in the header, the room settings panel (a modal dialog: topic, visibility,
// members with their roles, and the moderation each caller's role allows), the "Message"
// action beside people in the members panel, and the notice shown when the user may not be in
// the room (removed, banned, or refused at `join`). chat.js calls in here; it keeps the
// connection and the conversation.

import { avatar, fetchSession, nameKey } from "/assets/common.js";
import {
  addMember,
  ban,
  callerRank,
  el,
  isDirectRoom,
  lockIcon,
  may,
  openDirect,
  removeMember,
  roomDetails,
  roomErrorMessage,
  roomUrl,
  setRole,
  setTopic,
  unban,
  whoMark,
} from "/assets/rooms.js";

const $ = (id) => document.getElementById(id);

const ROLE_LABELS = { owner: "Owner", moderator: "Moderator", member: "Member" };

/** Set by `initRoomPage`: the room's name, and getters for chat.js's user and online members. */
const page = { room: "", me: () => null, online: () => [], excluded: false };
/** The open settings dialog, if any. */
let panel = null;

/**
 * Wires the header's settings button. `options.me()` is the signed-in user (`{id, name,
 * guest}`), `options.online()` the people in the room now (the members panel's list),
 * `options.onRole(role)` hears the caller's stored role in the room whenever it is read.
 */
export function initRoomPage(options) {
  page.room = options.room;
  page.me = options.me;
  page.online = options.online;
  page.onRole = options.onRole ?? (() => {});
  $("room-settings-open").addEventListener("click", () => openRoomSettings());
}

// ---- the header -------------------------------------------------------------------------------

/**
 * Shows the room's topic under its name, and a direct message's other person as its title.
 * A room the caller may not see (404) shows neither; the join answers for it.
 */
export async function refreshRoomHeader(known) {
  let room = known;
  if (!room) {
    try {
      room = await roomDetails(page.room);
    } catch {
      return;
    }
  }
  page.onRole(room.role ?? null);
  const topic = $("room-topic");
  if (isDirectRoom(room.name)) {
    const me = page.me();
    const other = room.members.find((m) => !me || m.id !== me.id) ?? room.members[0];
    if (other) {
      $("room-name-label").textContent = other.name;
      $("room-title").classList.add("direct");
      document.title = `${other.name} · confab`;
      const composer = $("composer");
      composer.placeholder = `Message ${other.name}`;
      $("composer-label").textContent = `Message ${other.name}`;
      topic.textContent = other.username ? `Direct messages with @${other.username}` : "Direct messages";
      topic.hidden = false;
    }
    return;
  }
  topic.textContent = room.topic ?? "";
  topic.title = room.topic ?? "";
  topic.hidden = !room.topic;
  const title = $("room-title");
  if (room.visibility === "private" && !title.querySelector(".lock-icon")) title.append(lockIcon());
}

// ---- removed, banned, refused -------------------------------------------------------------------

const EXCLUDED = {
  kicked: "You were removed from this room.",
  banned: "You were banned from this room.",
  forbidden: "You can’t join this room (it is private, or you are banned).",
  server_banned: "You are banned from this server.",
  disconnected: "An administrator closed your connection. Reload the page to reconnect.",
};

/**
 * The user may not be in the room (chat.js stopped the connection): says why, closes the
 * composer and the settings. Nothing rejoins by itself; a reload tries again.
 */
export function showExcluded(reason) {
  page.excluded = true;
  panel?.dialog.close();
  $("room-closed-text").textContent = EXCLUDED[reason] ?? EXCLUDED.forbidden;
  $("room-closed").hidden = false;
  $("room-closed").dataset.reason = reason;
  const composer = $("composer");
  composer.disabled = true;
  composer.placeholder = "You are not in this room";
  $("send").disabled = true;
  $("composer-form").classList.add("closed");
  $("room-settings-open").hidden = true;
}

// ---- the members panel --------------------------------------------------------------------------

/**
 * What the members panel offers beside `user`: "Message" (a direct message) between two
 * accounts, not to yourself, and not inside a direct message already.
 */
export function memberActions(user) {
  const me = page.me();
  if (!me || me.guest !== false || user.guest !== false || user.id === me.id || isDirectRoom(page.room) || page.excluded) {
    return [];
  }
  const button = el("button", { type: "button", class: "btn ghost small member-message", "aria-label": `Message ${user.name}` }, "Message");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const dm = await openDirect(user.id);
      location.assign(roomUrl(dm.name));
    } catch (e) {
      button.disabled = false;
      button.title = roomErrorMessage(e);
      button.textContent = "Message failed: retry";
    }
  });
  return [button];
}

// ---- the settings panel ---------------------------------------------------------------------------

/** Opens the room settings dialog (like the account panel: modal, focus returns on close). */
export async function openRoomSettings() {
  panel?.dialog.remove();
  const dialog = el("dialog", { id: "room-dialog", class: "account-dialog room-dialog", "aria-labelledby": "room-dialog-heading" });
  const close = el("button", { type: "button", class: "btn ghost small", "aria-label": "Close the room settings" }, "✕");
  close.addEventListener("click", () => dialog.close());
  const body = el("div", { class: "account-body" }, el("p", { class: "muted" }, "Loading…"));
  // One live region for the whole panel, kept across re-renders so every change is announced.
  const status = el("p", { id: "room-settings-status", class: "room-settings-status", role: "status", hidden: true });
  dialog.append(el("div", { class: "dialog-head" }, el("h2", { id: "room-dialog-heading" }, "Room settings"), close), status, body);
  const opener = document.activeElement;
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (panel?.dialog === dialog) panel = null;
    if (opener && document.contains(opener) && !opener.closest("[hidden]")) opener.focus();
  });
  document.body.append(dialog);
  panel = { dialog, body, status };
  dialog.showModal();
  await reload();
}

/** Loads the room and the caller afresh and renders the panel; `focusSelector` regains focus. */
async function reload(focusSelector) {
  if (!panel) return;
  const { body } = panel;
  let room;
  let user;
  try {
    [room, user] = await Promise.all([roomDetails(page.room), fetchSession()]);
  } catch (e) {
    body.replaceChildren(el("p", { class: "error", role: "alert" }, roomErrorMessage(e)));
    return;
  }
  if (!panel || panel.body !== body) return;
  refreshRoomHeader(room);
  render(body, room, user);
  const target = focusSelector ? body.querySelector(focusSelector) : null;
  if (target) target.focus();
}

/**
 * Runs a change, says how it went in the panel's live region, and on success shows the room
 * afresh (focus goes to `focusSelector`, or the members heading). Returns whether it worked.
 */
async function act(button, change, done, focusSelector) {
  const current = panel;
  button.disabled = true;
  try {
    await change();
  } catch (e) {
    if (panel !== current) return false;
    say(roomErrorMessage(e), true);
    button.disabled = false;
    return false;
  }
  if (panel !== current) return true;
  say(done, false);
  await reload(focusSelector ?? "#room-members-heading");
  return true;
}

function say(text, isError) {
  const { status } = panel;
  status.textContent = text;
  status.className = `room-settings-status ${isError ? "error" : "done"}`;
  status.hidden = false;
}

function render(body, room, user) {
  const admin = user?.admin === true;
  const meId = user?.id ?? page.me()?.id;
  const rank = callerRank(room, admin);
  const direct = isDirectRoom(room.name);
  const sections = [];

  // What the room is.
  const about = el("dl", { class: "room-facts" });
  const visibility = room.visibility === "private"
    ? el("dd", {}, lockIcon(), direct ? " Private: a direct message, only the two of you read it" : " Private: only its members can see it, open it and read it")
    : el("dd", {}, "Public: anyone can open it and read it");
  about.append(el("dt", {}, "Room"), el("dd", { class: "room-fact-name" }, `#${room.name}`), el("dt", {}, "Visibility"), visibility);
  if (room.owner) about.append(el("dt", {}, "Owner"), el("dd", { dir: "auto" }, room.owner.name));
  const yourRole = room.role ? ROLE_LABELS[room.role] : "No role";
  about.append(el("dt", {}, "Your role"), el("dd", { id: "room-your-role" }, admin ? `${yourRole} (server administrator)` : yourRole));
  sections.push(about);

  // The topic.
  if (!direct) sections.push(topicSection(room, rank));

  // Members, with what the caller may do to each.
  sections.push(membersSection(room, rank, meId, direct));

  if (may.moderate(rank) && !direct) sections.push(addSection(room));
  body.replaceChildren(...sections);
}

function topicSection(room, rank) {
  const section = el("section", { class: "account-section", "aria-labelledby": "room-topic-heading" }, el("h3", { id: "room-topic-heading" }, "Topic"));
  if (!may.moderate(rank)) {
    section.append(el("p", { id: "room-topic-text", dir: "auto", class: room.topic ? "" : "muted" }, room.topic || "No topic."));
    return section;
  }
  const input = el("input", { type: "text", id: "room-topic-input", name: "topic", maxLength: 256, value: room.topic ?? "", autocomplete: "off" });
  input.setAttribute("aria-labelledby", "room-topic-heading");
  input.setAttribute("aria-describedby", "room-topic-hint");
  const save = el("button", { type: "submit", id: "room-topic-save", class: "btn primary" }, "Save");
  const form = el(
    "form",
    { id: "room-topic-form", class: "account-form", noValidate: true },
    el("div", { class: "field" }, el("div", { class: "field-row" }, input, save), el("p", { id: "room-topic-hint", class: "hint" }, "Up to 256 characters, shown under the room’s name. Empty for none.")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(save, () => setTopic(room.name, input.value.trim()), "Topic saved.", "#room-topic-input");
  });
  section.append(form);
  return section;
}

function membersSection(room, rank, meId, direct) {
  // The stored members (owner, moderators, members), then anyone here now without a role.
  const people = room.members.map((m) => ({ ...m }));
  const listed = new Set(people.map((m) => m.id));
  const visitors = page
    .online()
    .filter((u) => u && u.id && !listed.has(u.id))
    .map((u) => ({ ...u, role: null }))
    .sort((a, b) => nameKey(a.name).localeCompare(nameKey(b.name)));
  const list = el("ul", { id: "room-members", class: "session-list room-members", "aria-labelledby": "room-members-heading" });
  for (const person of [...people, ...visitors]) list.append(memberRow(room, person, rank, meId, direct));
  const count = room.member_count > room.members.length ? ` (first ${room.members.length} of ${room.member_count})` : "";
  const heading = el("h3", { id: "room-members-heading", tabIndex: -1 }, `Members${count}`);
  const section = el("section", { class: "account-section", "aria-labelledby": "room-members-heading" }, heading, list);
  if (visitors.length > 0) section.append(el("p", { class: "hint" }, "“Here now” are people in this public room without a role."));
  return section;
}

function memberRow(room, person, rank, meId, direct) {
  const li = el("li", { "data-user-id": person.id });
  if (person.username) li.dataset.username = person.username;
  const who = el(
    "div",
    { class: "session-what" },
    el("span", {}, el("strong", { class: "member-name", dir: "auto" }, person.name), " ", whoMark(person), person.id === meId ? el("span", { class: "you" }, " (you)") : ""),
  );
  li.append(avatar(person, "small"), who, el("span", { class: `role-pill pill role-${person.role ?? "none"}` }, person.role ? ROLE_LABELS[person.role] : "Here now"));
  const label = person.name;
  const actions = el("div", { class: "member-actions" });
  const confirmRow = el("div", { class: "confirm-row", hidden: true });

  if (may.setRoles(rank) && person.role !== "owner" && !direct) {
    const select = el(
      "select",
      { class: "role-select", "aria-label": `Role of ${label}` },
      ...["member", "moderator", "owner"].map((role) => el("option", { value: role, selected: role === (person.role ?? "member") }, ROLE_LABELS[role])),
    );
    const set = el("button", { type: "button", class: "btn ghost small set-role" }, "Set role");
    set.setAttribute("aria-label", `Set the role of ${label}`);
    set.addEventListener("click", () => {
      const role = select.value;
      if (role === "owner") {
        // Handing the room over cannot be undone by the one who does it: ask first.
        const youBecome = room.owner && room.owner.id === meId ? " You will become a moderator." : "";
        const yes = el("button", { type: "button", class: "btn primary small confirm-owner" }, "Hand over");
        const no = el("button", { type: "button", class: "btn ghost small" }, "Cancel");
        yes.addEventListener("click", () => act(yes, () => setRole(room.name, person.id, "owner"), `${label} is now the owner.`));
        no.addEventListener("click", () => {
          confirmRow.hidden = true;
          confirmRow.replaceChildren();
          set.focus();
        });
        confirmRow.replaceChildren(el("p", { role: "alert" }, `Make ${label} the owner of #${room.name}?${youBecome}`), yes, no);
        confirmRow.hidden = false;
        no.focus();
        return;
      }
      act(set, () => setRole(room.name, person.id, role), `${label} is now ${role === "moderator" ? "a moderator" : "a member"}.`);
    });
    actions.append(select, set);
  }
  if (person.role === null && may.moderate(rank)) {
    const add = el("button", { type: "button", class: "btn ghost small add-member", "aria-label": `Add ${label} as a member` }, "Add");
    add.addEventListener("click", () => act(add, () => addMember(room.name, person.id), `${label} is now a member.`));
    actions.append(add);
  }
  if (may.remove(rank, person, meId)) {
    const kick = el("button", { type: "button", class: "btn ghost small kick", "aria-label": `Remove ${label} from the room` }, "Remove");
    kick.addEventListener("click", () =>
      act(kick, () => removeMember(room.name, person.id), room.visibility === "private" ? `${label} was removed.` : `${label} was removed; they may come back to a public room.`),
    );
    const banButton = el("button", { type: "button", class: "btn ghost small danger ban", "aria-label": `Ban ${label} from the room` }, "Ban");
    banButton.addEventListener("click", async () => {
      if (await act(banButton, () => ban(room.name, person.id), `${label} was banned: they cannot join until the ban is lifted.`)) {
        offerUnban(room, person);
      }
    });
    actions.append(kick, banButton);
  }
  if (actions.childElementCount > 0) li.append(actions);
  li.append(confirmRow);
  return li;
}

/** After a ban, the status line offers to lift it (the ban list is not shown anywhere else). */
function offerUnban(room, person) {
  const status = panel?.status;
  if (!status) return;
  const lift = el("button", { type: "button", class: "btn ghost small", id: "room-unban" }, "Lift the ban");
  lift.addEventListener("click", () => act(lift, () => unban(room.name, person.id), `The ban on ${person.name} was lifted.`));
  status.append(" ", lift);
}

function addSection(room) {
  const input = el("input", { type: "text", id: "room-add-username", name: "username", autocomplete: "off", autocapitalize: "off", spellcheck: false, maxLength: 32 });
  const button = el("button", { type: "submit", id: "room-add-submit", class: "btn primary" }, "Add");
  const form = el(
    "form",
    { id: "room-add-form", class: "account-form", noValidate: true },
    el(
      "div",
      { class: "field" },
      el("label", { htmlFor: "room-add-username" }, "Username"),
      el("div", { class: "field-row" }, input, button),
      el("p", { id: "room-add-hint", class: "hint" }, room.visibility === "private" ? "Members can open and read this private room." : "Members keep their place here and can be given roles."),
    ),
  );
  input.setAttribute("aria-describedby", "room-add-hint");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const username = input.value.trim().replace(/^@/, "");
    if (!username) {
      input.focus();
      return;
    }
    act(button, () => addMember(room.name, username), `@${username.toLowerCase()} is now a member.`, "#room-add-username");
  });
  return el("section", { class: "account-section", "aria-labelledby": "room-add-heading" }, el("h3", { id: "room-add-heading" }, "Add a member"), form);
}

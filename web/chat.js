// The room page: the conversation of one room, its members, and a composer whose messages are
// never lost and never shown twice across reconnects.
//
// How nothing is lost or repeated (docs/protocol.md, "Resuming without loss or repeats"):
// * `lastSeq` is the highest seq shown. Every reconnect sends `join {room, since: lastSeq}`, and
//   the answer carries exactly what was missed. A message whose seq is already shown is dropped.
// * Typed messages go to an outbox with a `client_id` made once. They are sent when the
//   connection has joined, and re-sent with the same `client_id` after every reconnect until a
//   `message` carrying that `client_id` confirms them; the server stores each `client_id` once.
//
// Events (docs/protocol.md: `deleted`, `edited`, `reaction`): each has a seq of its own, so
// `lastSeq` advances on them live and on the ones a resume replays, exactly as on messages, and
// they are applied to their target message, never shown themselves. `states` holds each shown
// message's current state (text, edited_at, reactions) so that events, reply quotes and the
// reply bar all read one place.
//
// Deleting: a deletion is an event (above). A deleted message is a tombstone (`deleted: true`, no text) wherever it comes from:
// live, `joined`, `history`; `markDeleted` turns a shown message into one in place, and nothing
// ever puts its text back. A deletion asked for here keeps its `client_id` and is re-sent after a
// reconnect until the message is seen deleted or the server refuses it; the server stores a
// `client_id` once, so a retry never deletes twice.
//
// Editing, reacting and replying: Edit turns one's own message into a textarea in place; the edit
// is re-sent with its `client_id` after a reconnect until the `edited` event carrying it arrives
// or the server refuses it. Reactions are toggled by chips and by the React picker
// (web/reactions.js) and are not retried: a lost one shows as not pressed, and can be pressed
// again. A reply carries `reply_to`; the quote above it is drawn from `states`, and says
// "an earlier message" until the original is loaded. Typing (web/composer.js) is ephemeral.
//
// Staying within the server's rate limits (docs/protocol.md, "Limits"): sends leave through
// `pumpOutbox`, a token bucket a little stricter than the server's default send limit (a burst
// of 10, then 2 a second), so replaying a long outbox after a reconnect paces itself instead of
// being refused. Should the server still say `rate_limited` (a lower limit, another tab of the
// same user), the refused request waits `retry_after_ms` and goes again; nothing is dropped.
//
// Reading and searching live in web/unread.js (the "New messages" divider, `read` as messages are
// seen, the title's unread count, mention notifications) and web/search.js (the room's search
// box); mentions of the viewer are highlighted by web/mentions.js.

import { closeAccountPanel, openAccountPanel, sessionAfterRevocation } from "/assets/account.js";
import { BANNED, CLOSED_BY_ADMIN, Connection, SESSION_REVOKED } from "/assets/client.js";
import { initRoomPage, memberActions, refreshRoomHeader, showExcluded } from "/assets/room-settings.js";
import { ReplyBar, TypingLine, TypingSignal, snippet } from "/assets/composer.js";
import { applyReaction, closePicker, hasReacted, openPicker, reactionsFrom, renderReactions } from "/assets/reactions.js";
import { renderText } from "/assets/text.js";
import { highlightMentions, memberNeedles, mentionNeedles } from "/assets/mentions.js";
import { Reading } from "/assets/unread.js";
import { Search } from "/assets/search.js";
import {
  MAX_TEXT_CHARS,
  avatar,
  bindNameForm,
  charCount,
  fetchSession,
  guestMark,
  isValidRoom,
  nameKey,
  newClientId,
  userTag,
} from "/assets/common.js";

const $ = (id) => document.getElementById(id);

const HISTORY_PAGE = 50;
const GAP_PAGE = 100;
const GAP_MAX_ROUNDS = 10;
const GROUP_WINDOW_MS = 5 * 60 * 1000;
const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 240;
/** How much of a new message the live region reads out; the list holds all of it. */
const ANNOUNCE_CHARS = 140;
/** Announcements kept in the live region (older ones are removed; they were said). */
const ANNOUNCE_KEEP = 5;
/** Client-side send pacing: below the server's default of 10 at once, then 2 a second. */
const SEND_BURST = 8;
const SEND_INTERVAL_MS = 600;

const ui = {
  app: $("app"),
  roomInvalid: $("room-invalid"),
  roomInvalidText: $("room-invalid-text"),
  signin: $("signin"),
  signinRoom: $("signin-room"),
  signedOut: $("signed-out"),
  accountOpen: $("account-open"),
  nameForm: $("name-form"),
  roomLabel: $("room-name-label"),
  status: $("status"),
  banner: $("banner"),
  scroller: $("scroller"),
  messages: $("messages"),
  announcer: $("announcer"),
  historyStart: $("history-start"),
  historyLoading: $("history-loading"),
  jumpLatest: $("jump-latest"),
  form: $("composer-form"),
  composer: $("composer"),
  composerLabel: $("composer-label"),
  composerError: $("composer-error"),
  composerCount: $("composer-count"),
  typing: $("typing"),
  members: $("members"),
  memberCount: $("member-count"),
  memberList: $("member-list"),
  membersToggle: $("members-toggle"),
  membersToggleCount: $("members-toggle-count"),
  membersClose: $("members-close"),
  membersBackdrop: $("members-backdrop"),
  topbar: document.querySelector(".topbar"),
  conversation: document.querySelector(".conversation"),
};

// ---- state ---------------------------------------------------------------------------------

const room = roomFromPath(location.pathname);
/** The signed-in user; `hello.user` once connected (same id as the session's). */
let me = null;
/** Has this page ever received `joined`? Then reconnects join with `since`. */
let joinedOnce = false;
/** Has the current connection joined the room? Only then may `send` and `history` go out. */
let inRoom = false;
/** Highest seq shown (or given by `joined.last_seq`). */
let lastSeq = 0;
/** Lowest seq shown, or null before any message. */
let lowestSeq = null;
/** No messages older than `lowestSeq` exist (the start of the room is shown). */
let olderExhausted = false;
/** The one `history` request in flight on this connection: {kind: "older"} or {kind: "gap", after, rounds}. */
let historyInFlight = null;
/** seq -> li of every confirmed message shown. */
const shown = new Map();
/** Typed messages not yet confirmed, in the order typed: {clientId, text, ts, li, state, retries}. */
const outbox = [];
/** Current members of the room, keyed by user id (names may repeat). A big room lists only the
 * first page in `joined`; the panel loads the rest as it is scrolled. */
const members = new Map();
/** The room's member count as the server last said it (the list may hold fewer). */
let memberCount = 0;
/** The id after which the next `members` page starts, while the server has more; else null. */
let membersAfter = null;
/** A `members` request is on its way. */
let membersLoading = false;
/** The send pacer's bucket: tokens left, when it was last refilled, and its wake-up timer. */
const pacer = { tokens: SEND_BURST, refilled: performance.now(), pausedUntil: 0, timer: null };
/** nameKey -> ids of the users seen with that name (members and authors shown). */
const idsByName = new Map();
/** The signed-in user is a server administrator (`GET /api/session`), so moderates every room
 * and may delete anyone's message. */
let isAdmin = false;
/** The signed-in user owns or moderates this room (`GET /api/rooms/{name}`): they may delete
 * anyone's message here too. */
let isRoomModerator = false;
/** Deletions asked for and not yet seen done, by the target's seq: {clientId, state} with state
 * "queued" (to send once joined) or "sent" (waiting for `deleted` or an error). */
const deletions = new Map();
/** seq -> the current state of each shown message: {seq, user, text (null once deleted),
 * editedAt, reactions, replyTo}. Events change it; the DOM is drawn from it. */
const states = new Map();
/** Edits being saved, by the target's seq: {clientId, text, state} as for `deletions`. */
const edits = new Map();
/** Reactions asked for and not yet answered: client_id -> target seq (for an error's `ref`). */
const reactionRequests = new Map();
/** The signed-in account's username (`GET /api/session`; `hello` does not carry it), for mentions. */
let username = null;

const replyBar = new ReplyBar({
  bar: $("reply-bar"),
  label: $("reply-label"),
  cancel: $("reply-cancel"),
  composer: ui.composer,
  describe: (seq) => {
    const state = states.get(seq);
    return state ? { name: state.user.name, text: state.text } : null;
  },
});
const typingLine = new TypingLine(ui.typing);
const typingSignal = new TypingSignal(() => inRoom && conn.send({ type: "typing", room }));

const conn = new Connection({
  onConnecting() {
    if (!joinedOnce && ui.status.dataset.state !== "reconnecting") setStatus("connecting");
  },
  onFrame: handleFrame,
  onClose: handleClose,
  onPageHide: () => reading.flushNow(),
});
const reading = new Reading({
  room,
  conn,
  scroller: ui.scroller,
  list: ui.messages,
  inRoom: () => inRoom,
  lastSeq: () => lastSeq,
  needles: () => mentionNeedles(me, username),
});
const search = new Search({
  room,
  conn,
  inRoom: () => inRoom,
  goTo: (seq) => {
    if (!shown.has(seq)) return false;
    goToMessage(seq);
    return true;
  },
});

function roomFromPath(path) {
  const match = /^\/chat\/([^/]*)\/?$/.exec(path);
  if (!match) return "";
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

// ---- connection ----------------------------------------------------------------------------

function handleFrame(frame) {
  switch (frame.type) {
    case "hello": {
      const previous = me;
      me = frame.user;
      if (previous !== null && previous.id !== me.id) refreshIdentity();
      inRoom = false;
      conn.send(joinedOnce ? { type: "join", room, since: lastSeq, ref: "join" } : { type: "join", room, ref: "join" });
      break;
    }
    case "joined":
      if (frame.room === room) handleJoined(frame);
      break;
    case "message":
    case "deleted":
    case "edited":
    case "reaction":
      if (frame.room === room && inRoom) receive([frame], "live");
      break;
    case "typing":
      if (frame.room === room && inRoom && frame.user && typeof frame.user.id === "string" && frame.user.id !== me?.id) {
        typingLine.heard(frame.user);
      }
      break;
    case "presence":
      if (frame.room === room && inRoom) handlePresence(frame);
      break;
    case "members":
      if (frame.room === room && inRoom) handleMembers(frame);
      break;
    case "history":
      if (frame.room === room) handleHistory(frame);
      break;
    case "read_marker":
      if (frame.room === room) reading.marker(frame.seq);
      break;
    case "search_results":
      if (frame.room === room) search.results(frame);
      break;
    case "error":
      handleError(frame);
      break;
    case "removed":
      if (frame.room === room) excluded(frame.reason === "banned" ? "banned" : "kicked");
      break;
    default:
      // Unknown frames are ignored, as the protocol asks.
      break;
  }
}

async function handleClose({ code, hadHello, stopped }) {
  inRoom = false;
  if (historyInFlight && historyInFlight.kind === "gap") {
    // The answer is lost with the connection; say so rather than leave a silent hole.
    addSkippedNote(historyInFlight.before);
  }
  historyInFlight = null;
  ui.historyLoading.hidden = true;
  for (const entry of outbox) {
    if (entry.state === "sent") entry.state = "queued";
    clearTimeout(entry.retryTimer);
    entry.retryTimer = null;
  }
  // The answer is lost with the connection: ask again after the resume, same client_id.
  for (const deletion of deletions.values()) deletion.state = "queued";
  for (const edit of edits.values()) edit.state = "queued";
  // A reaction's answer is lost too; it is not retried (the chip shows what the server has).
  reactionRequests.clear();
  typingLine.clear();
  setStatus("reconnecting");
  if (stopped) return;
  if (code === SESSION_REVOKED) {
    await sessionEnded();
  } else if (code === BANNED) {
    excluded("server_banned");
  } else if (code === CLOSED_BY_ADMIN) {
    excluded("disconnected");
  } else if (!hadHello) {
    // A refused upgrade (e.g. the session is gone) looks like any failed connection to a
    // script; ask the HTTP API whether we are still signed in.
    try {
      if ((await fetchSession()) === null) signedOut();
    } catch {
      // unreachable: keep retrying with backoff
    }
  }
}

/**
 * The server closed the socket because its session ended (4003). A sign-in or registration in
 * another tab does that, and then the shared cookie names the new session: carry on with it
 * (`hello` says who we are now). Otherwise this browser was signed out.
 */
async function sessionEnded() {
  let user;
  try {
    user = await sessionAfterRevocation();
  } catch {
    conn.scheduleReconnect(); // unreachable: the next attempt asks again
    return;
  }
  if (user === null) signedOut();
  else conn.reconnectNow();
}

function signedOut() {
  conn.stop();
  closeAccountPanel();
  showSignIn(true);
}

/**
 * The user may not be in this room: moderators removed or banned them (`removed`), or the join
 * was refused (`forbidden`). Joining again would only be refused (or, after a kick from a public
 * room, undo what the moderators meant), so the page stops and says why.
 */
function excluded(reason) {
  conn.stop();
  inRoom = false;
  members.clear();
  memberCount = 0;
  membersAfter = null;
  renderMembers();
  setStatus("closed");
  showExcluded(reason);
}

function handleJoined(frame) {
  inRoom = true;
  conn.resetBackoff();
  setStatus("connected");

  members.clear();
  const listed = (frame.members ?? []).filter((user) => user && user.id);
  for (const user of listed) members.set(user.id, user);
  memberCount = Number.isInteger(frame.member_count) ? frame.member_count : members.size;
  membersAfter = frame.more_members === true && listed.length > 0 ? listed[listed.length - 1].id : null;
  membersLoading = false;
  renderMembers();
  loadMoreMembers();

  historyInFlight = null;
  ui.historyLoading.hidden = true;
  // A plain join lists messages (tombstones included); a resume also replays events.
  const messages = (Array.isArray(frame.messages) ? frame.messages : []).filter(isItem);

  const first = !joinedOnce;
  if (first) {
    joinedOnce = true;
    olderExhausted = frame.has_more !== true;
    receive(messages, "initial");
    lastSeq = Math.max(lastSeq, Number.isInteger(frame.last_seq) ? frame.last_seq : 0);
    if (olderExhausted) showHistoryStart();
    const divider = reading.joined(frame, true);
    scrollToBottom();
    // Unread messages taller than the view: start at the divider, so the first is not missed.
    if (divider) {
      const top = divider.getBoundingClientRect().top - ui.scroller.getBoundingClientRect().top;
      if (top < 0) {
        ui.scroller.scrollTop += top - 8;
        ui.jumpLatest.hidden = false;
      }
    }
    loadOlderIfRoom();
  } else if (frame.reset === true) {
    // Our cursor was ahead of the room (e.g. the server's data was restored from a backup):
    // take the room's own last seq, or the messages that will reuse those seqs would be lost.
    lastSeq = Number.isInteger(frame.last_seq) ? frame.last_seq : 0;
    receive(messages, "resume");
  } else {
    const before = lastSeq;
    receive(messages, "resume");
    lastSeq = Math.max(lastSeq, Number.isInteger(frame.last_seq) ? frame.last_seq : 0);
    if (frame.truncated === true && messages.length > 0 && messages[0].seq > before + 1) {
      requestHistory({ kind: "gap", after: before, before: messages[0].seq, rounds: 1 });
    }
  }
  if (!first) reading.joined(frame, false);
  flushOutbox();
  sendDeletions();
  sendEdits();
}

function handlePresence(frame) {
  for (const user of frame.joined ?? []) if (user && user.id) members.set(user.id, user);
  for (const user of frame.left ?? []) if (user && user.id) members.delete(user.id);
  if (Number.isInteger(frame.member_count)) memberCount = frame.member_count;
  renderMembers();
}

/** A page of a big room's members, asked for as the panel was scrolled. */
function handleMembers(frame) {
  membersLoading = false;
  const listed = (frame.members ?? []).filter((user) => user && user.id);
  for (const user of listed) members.set(user.id, user);
  if (Number.isInteger(frame.member_count)) memberCount = frame.member_count;
  membersAfter = frame.has_more === true && listed.length > 0 ? listed[listed.length - 1].id : null;
  renderMembers();
  loadMoreMembers();
}

/** Loads the next page of members when the panel is scrolled near its end. */
function loadMoreMembers() {
  if (!inRoom || membersLoading || membersAfter === null) return;
  const panel = ui.members;
  if (panel.scrollTop + panel.clientHeight < panel.scrollHeight - 200) return;
  membersLoading = true;
  conn.send({ type: "members", room, after: membersAfter, limit: 100, ref: "members" });
}

function handleHistory(frame) {
  const request = historyInFlight;
  historyInFlight = null;
  ui.historyLoading.hidden = true;
  if (!request || !inRoom) return;
  const messages = (Array.isArray(frame.messages) ? frame.messages : []).filter(isItem);

  if (request.kind === "older") {
    // Prepend without moving what the reader is looking at.
    const heightBefore = ui.scroller.scrollHeight;
    const topBefore = ui.scroller.scrollTop;
    receive(messages.filter((m) => lowestSeq === null || m.seq < lowestSeq), "older");
    ui.scroller.scrollTop = topBefore + (ui.scroller.scrollHeight - heightBefore);
    if (frame.has_more !== true || messages.length === 0) {
      olderExhausted = true;
      showHistoryStart();
    }
    loadOlderIfRoom();
  } else {
    // Filling the hole left by a truncated resume: keep only what lies inside it.
    const inGap = messages.filter((m) => m.seq > request.after && m.seq < request.before);
    receive(inGap, "gap");
    const first = messages.length > 0 ? messages[0].seq : request.before;
    if (frame.has_more === true && first > request.after + 1) {
      if (request.rounds < GAP_MAX_ROUNDS) {
        requestHistory({ kind: "gap", after: request.after, before: first, rounds: request.rounds + 1 });
      } else {
        addSkippedNote(first);
      }
    }
    if (historyInFlight === null && ui.scroller.scrollTop < NEAR_TOP_PX) loadOlder();
  }
}

function handleError(frame) {
  if (
    typeof frame.ref === "string" &&
    (deletionRefused(frame) || editRefused(frame) || reactionRefused(frame) || reading.refused(frame) || search.refused(frame))
  ) {
    return;
  }
  const entry = frame.ref !== undefined ? outbox.find((e) => e.clientId === frame.ref) : undefined;
  const retryAfter = Number.isFinite(frame.retry_after_ms) ? Math.max(0, frame.retry_after_ms) : 1000;
  if (entry && frame.code === "rate_limited") {
    // Nothing was stored: hold every send until the server's bucket has a token again.
    entry.state = "queued";
    pacer.tokens = 0;
    pacer.pausedUntil = performance.now() + retryAfter;
    pumpOutbox();
    return;
  }
  if (frame.code === "rate_limited" && (frame.ref === "join" || frame.ref === "history")) {
    // The request had no effect; ask again once the server says it will be accepted.
    const request = historyInFlight;
    if (frame.ref === "history") historyInFlight = null;
    setTimeout(() => {
      if (frame.ref === "join" && !inRoom) {
        conn.send(joinedOnce ? { type: "join", room, since: lastSeq, ref: "join" } : { type: "join", room, ref: "join" });
      } else if (frame.ref === "history" && request && inRoom) {
        requestHistory(request);
      }
    }, retryAfter);
    return;
  }
  if (entry) {
    if (frame.code === "unavailable" || frame.code === "not_joined") {
      // Nothing was stored: keep it pending and try again a little later, same client_id.
      entry.state = "queued";
      entry.retries += 1;
      clearTimeout(entry.retryTimer);
      const delay = Math.min(10000, 500 * 2 ** Math.min(entry.retries, 5)) * (0.5 + Math.random() / 2);
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = null;
        if (inRoom && entry.state === "queued") pumpOutbox();
      }, delay);
    } else {
      markFailed(entry, frame.message || "The server refused this message.");
    }
    return;
  }
  if (frame.ref === "history") {
    const request = historyInFlight;
    historyInFlight = null;
    ui.historyLoading.hidden = true;
    if (request && request.kind === "gap") addSkippedNote(request.before);
    return;
  }
  if (frame.ref === "join") {
    if (frame.code === "invalid_room") {
      conn.stop();
      showRoomInvalid(frame.message);
    } else if (frame.code === "forbidden") {
      excluded("forbidden");
    } else if (frame.code === "already_joined") {
      // Cannot happen on a fresh connection; resynchronise the protocol way.
      conn.send({ type: "leave", room });
      conn.send({ type: "join", room, since: lastSeq, ref: "join" });
    } else {
      // e.g. `internal`: try again on a fresh connection, with backoff.
      console.warn("confab: join failed", frame.code, frame.message);
      conn.drop();
    }
    return;
  }
  console.warn("confab: server error", frame.code, frame.message);
}

function requestHistory(request) {
  if (!inRoom || historyInFlight) return;
  historyInFlight = request;
  const limit = request.kind === "gap" ? GAP_PAGE : HISTORY_PAGE;
  if (!conn.send({ type: "history", room, before: request.before, limit, ref: "history" })) {
    historyInFlight = null;
    return;
  }
  if (request.kind === "older") ui.historyLoading.hidden = false;
}

function loadOlder() {
  if (olderExhausted || historyInFlight || !inRoom || lowestSeq === null) return;
  requestHistory({ kind: "older", before: lowestSeq });
}

/** Loads more history while the conversation does not yet fill the view. */
function loadOlderIfRoom() {
  if (ui.scroller.scrollHeight <= ui.scroller.clientHeight + NEAR_TOP_PX || ui.scroller.scrollTop < NEAR_TOP_PX) {
    loadOlder();
  }
}

// ---- messages ------------------------------------------------------------------------------

/** A message to show: with its text, or a tombstone (`deleted: true` and no text). */
function isMessage(m) {
  return (
    m &&
    (m.type === undefined || m.type === "message") &&
    Number.isInteger(m.seq) &&
    m.user &&
    typeof m.user.id === "string" &&
    (typeof m.text === "string" || m.deleted === true)
  );
}

/** An event about message `target` (`deleted`, `edited`, `reaction`). It takes a seq, but is
 * not shown itself. */
function isEvent(m) {
  if (!m || !Number.isInteger(m.seq) || !Number.isInteger(m.target)) return false;
  if (m.type === "deleted") return true;
  if (m.type === "edited") return typeof m.text === "string";
  if (m.type === "reaction") return typeof m.emoji === "string" && m.user && typeof m.user.id === "string";
  return false;
}

function isItem(m) {
  return isMessage(m) || isEvent(m);
}

/**
 * Shows confirmed messages. `kind` is "initial", "resume", "live", "older" or "gap"; it only
 * decides scrolling. A message whose seq is already shown is dropped (never shown twice); a
 * message carrying the `client_id` of an outbox entry confirms that entry.
 */
function receive(messages, kind) {
  if (messages.length === 0) return;
  const stick = kind === "older" ? false : isNearBottom();
  let newFromOthers = false;
  let ownConfirmed = false;
  let resumedFromOthers = 0;
  for (const m of messages) {
    if (isEvent(m)) {
      applyEvent(m, kind);
      continue;
    }
    if (!isMessage(m)) continue;
    // Their message ends their typing, whatever the 5 s say.
    if (kind === "live" || kind === "resume") typingLine.stopped(m.user.id);
    const entry = typeof m.client_id === "string" ? confirm(m.client_id) : null;
    if (entry) ownConfirmed = true;
    if (shown.has(m.seq)) {
      // e.g. a history page overlapping what is shown: a tombstone wins, text never comes back.
      if (m.deleted === true) markDeleted(m.seq);
      entry?.li.remove();
      continue;
    }
    if (kind === "live" || kind === "resume") {
      if (m.seq <= lastSeq) {
        // Older than what we have seen live: only fill it in if it falls inside the shown range
        // (e.g. the answer to a retried send whose first copy we missed).
        if (lowestSeq !== null && m.seq > lowestSeq) insertMessage(m, entry?.li);
        else entry?.li.remove();
        continue;
      }
      lastSeq = m.seq;
    } else if (kind === "initial") {
      lastSeq = Math.max(lastSeq, m.seq);
    }
    insertMessage(m, entry?.li);
    if (m.user.id !== me?.id) {
      newFromOthers = true;
      if (kind === "live") announce(m.deleted === true ? `${m.user.name}: message deleted` : `${m.user.name}: ${snippet(m.text, ANNOUNCE_CHARS)}`, m.seq);
      else if (kind === "resume") resumedFromOthers += 1;
    }
  }
  // What a resume brings back is counted, not read out: it may be a long conversation.
  if (resumedFromOthers > 0) {
    announce(resumedFromOthers === 1 ? "1 new message" : `${resumedFromOthers} new messages`);
  }
  relayout();
  if (kind === "older" || kind === "initial") return;
  if (stick || ownConfirmed) scrollToBottom();
  else if (newFromOthers) ui.jumpLatest.hidden = false;
}

/**
 * Applies an event to its target. It counts for the resume cursor like a message, or a resume
 * would replay it; one already counted (a duplicate) is not applied again, since a reaction
 * counted twice would be wrong. A deletion is applied whatever its seq (it is idempotent).
 */
function applyEvent(m, kind) {
  const counted = kind === "live" || kind === "resume" || kind === "initial";
  const repeat = counted && m.seq <= lastSeq;
  if (counted) lastSeq = Math.max(lastSeq, m.seq);
  if (m.type === "deleted") {
    // Said only when it happens while the reader is here, and not to the one who asked for it
    // (their focus is on the message, which now says "Message deleted").
    const heard = kind === "live" && !repeat && !deletions.has(m.target) && states.get(m.target)?.text != null;
    markDeleted(m.target);
    if (heard) announce(`A message by ${states.get(m.target).user.name} was deleted`);
  } else if (m.type === "edited") {
    const edit = edits.get(m.target);
    if (edit && m.client_id === edit.clientId) {
      // Our own edit is stored (maybe the answer to a retry): the editor has done its job.
      edits.delete(m.target);
      if (!repeat) markEdited(m);
      closeEditor(shown.get(m.target), true);
    } else if (!repeat) {
      const author = states.get(m.target)?.user.name;
      if (markEdited(m) && kind === "live" && author !== undefined) announce(`${author} edited a message`);
    }
  } else if (m.type === "reaction" && !repeat) {
    if (typeof m.client_id === "string") reactionRequests.delete(m.client_id);
    const state = states.get(m.target);
    if (!state || state.text === null) return;
    applyReaction(state.reactions, m);
    showReactions(shown.get(m.target));
  }
}

/**
 * Shows confirmed message `m`. `pending` is the outbox's element for it when it is our own: it
 * becomes the confirmed message in place, so assistive technology and focus keep their place
 * (it only moves if a message of another confirmed before it must go above it).
 */
function insertMessage(m, pending = null) {
  let li = buildMessage(m, false);
  // e.g. Retry of a failed send had the focus: it stays on the message it became.
  const hadFocus = pending !== null && pending.contains(document.activeElement);
  if (pending) {
    pending.replaceChildren(...li.childNodes);
    pending.className = li.className;
    delete pending.dataset.clientId;
    Object.assign(pending.dataset, li.dataset);
    li = pending;
  }
  li.dataset.seq = String(m.seq);
  shown.set(m.seq, li);
  if (m.deleted === true) deletions.delete(m.seq);
  else syncActions(li);
  if (lowestSeq === null || m.seq < lowestSeq) lowestSeq = m.seq;

  // Confirmed messages stay sorted by seq, above any pending ones. Appending is the usual case.
  const list = ui.messages;
  if (!(pending && inPlace(li, m.seq))) {
    let anchor = list.querySelector("li.pending"); // null: append at the end
    let previous = anchor ? anchor.previousElementSibling : list.lastElementChild;
    while (previous && !(previous !== li && previous.dataset.seq && Number(previous.dataset.seq) < m.seq)) {
      if (previous !== li) anchor = previous;
      previous = previous.previousElementSibling;
    }
    list.insertBefore(li, anchor);
  }
  if (hadFocus) focusBubble(li);
  // Replies already shown to this (older) message can now quote it.
  refreshQuotes(m.seq);
}

/** Is `li`, now confirmed as `seq`, where it belongs: below the confirmed messages with lower
 * seqs, above the rest and above every pending one? */
function inPlace(li, seq) {
  let before = li.previousElementSibling;
  while (before && !before.classList.contains("message")) before = before.previousElementSibling;
  let after = li.nextElementSibling;
  while (after && !after.classList.contains("message")) after = after.nextElementSibling;
  const beforeOk = before === null || (before.dataset.seq !== undefined && Number(before.dataset.seq) < seq);
  const afterOk = after === null || after.classList.contains("pending") || Number(after.dataset.seq) > seq;
  return beforeOk && afterOk;
}

function buildMessage(m, pending) {
  const li = document.createElement("li");
  li.className = "message";
  const own = me !== null && m.user.id === me.id;
  if (own) li.classList.add("own");
  if (pending) li.classList.add("pending");
  li.dataset.userId = m.user.id;
  li.dataset.ts = String(m.ts);

  const bubble = document.createElement("div");
  bubble.className = "bubble";
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.dir = "auto";
  author.textContent = m.user.name;
  li.dataset.userName = m.user.name;
  meta.append(author);
  if (noteUser(m.user)) refreshTags();
  if (nameIsShared(m.user.name)) meta.append(tagElement(m.user.id));
  if (m.user.guest !== false) meta.append(guestMark());
  meta.append(timeElement(m.ts));
  const replyTo = Number.isInteger(m.reply_to) ? m.reply_to : null;
  if (replyTo !== null) {
    li.dataset.replyTo = String(replyTo);
    bubble.append(quoteElement(replyTo));
  }
  let text;
  if (m.deleted === true) {
    li.classList.add("deleted");
    text = tombstoneText();
  } else {
    text = document.createElement("div");
    text.className = "text";
    text.dir = "auto";
    showText(text, m.text);
  }
  bubble.append(meta, text);
  li.append(avatar(m.user), bubble);
  if (!pending) {
    const state = {
      seq: m.seq,
      user: m.user,
      text: m.deleted === true ? null : m.text,
      editedAt: Number.isInteger(m.edited_at) ? m.edited_at : null,
      reactions: m.deleted === true ? [] : reactionsFrom(m.reactions),
      replyTo,
    };
    states.set(m.seq, state);
    if (state.editedAt !== null) text.after(editedMark(state.editedAt));
    showReactions(li, state);
  }
  return li;
}

/** A message's text: links (web/text.js), and mentions of the viewer marked. */
function showText(element, text) {
  renderText(element, text);
  highlightMentions(element, mentionNeedles(me, username));
  highlightMentions(element, memberNeedles(members.values(), me), "mention-other");
}

function timeElement(ts) {
  const date = new Date(ts);
  const time = document.createElement("time");
  if (Number.isNaN(date.getTime())) return time;
  time.dateTime = date.toISOString();
  time.title = date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
  time.textContent = `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
  return time;
}

/**
 * Puts a day divider before the first message of each day and marks messages that continue
 * their predecessor's group (same author, within 5 minutes, same day). One pass per batch.
 */
function relayout() {
  // Dividers already in place stay put, so that a screen reader's place in the list holds.
  let previous = null;
  let previousDay = null;
  for (const li of [...ui.messages.querySelectorAll("li.message")]) {
    const ts = Number(li.dataset.ts);
    const day = dayKey(ts);
    const before = li.previousElementSibling;
    const divided = before !== null && before.classList.contains("day") && before.dataset.day === day;
    if (day !== previousDay) {
      if (!divided) ui.messages.insertBefore(dayDivider(ts), li);
      previousDay = day;
      previous = null;
    } else if (divided) {
      before.remove();
    }
    const continued =
      previous !== null &&
      previous === li.previousElementSibling &&
      !previous.classList.contains("failed") &&
      previous.dataset.userId === li.dataset.userId &&
      Math.abs(ts - Number(previous.dataset.ts)) < GROUP_WINDOW_MS;
    li.classList.toggle("continued", continued);
    previous = li;
  }
  for (const divider of ui.messages.querySelectorAll("li.day")) {
    const next = divider.nextElementSibling;
    if (next === null || !next.classList.contains("message") || dayKey(Number(next.dataset.ts)) !== divider.dataset.day) {
      divider.remove();
    }
  }
}

function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function dayDivider(ts) {
  const li = document.createElement("li");
  li.className = "day";
  li.dataset.day = dayKey(ts);
  const label = document.createElement("span");
  const date = new Date(ts);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(ts) === dayKey(today.getTime())) label.textContent = "Today";
  else if (dayKey(ts) === dayKey(yesterday.getTime())) label.textContent = "Yesterday";
  else {
    label.textContent = date.toLocaleDateString(undefined, {
      weekday: "long",
      day: "numeric",
      month: "long",
      year: date.getFullYear() === today.getFullYear() ? undefined : "numeric",
    });
  }
  li.append(label);
  return li;
}

/**
 * Says `text` politely through the page's one live region for the conversation. The message list
 * itself is not a live region: a join, a resume and older pages insert many messages at once,
 * and a screen reader would read them all. Only what happens while the reader is here is said:
 * a message from someone else, an edit, a deletion, and a count after a resume.
 */
function announce(text, seq = null) {
  const line = document.createElement("p");
  line.textContent = text;
  // A line quoting message `seq` goes when the message is deleted or edited (`forgetAnnounced`).
  if (seq !== null) line.dataset.seq = String(seq);
  ui.announcer.append(line);
  while (ui.announcer.childElementCount > ANNOUNCE_KEEP) ui.announcer.firstElementChild.remove();
}

/** Takes what the live region quoted of message `seq` out of the DOM: a deleted message's text
 * must not stay anywhere on the page, and an edited one's old text is no longer what it says. */
function forgetAnnounced(seq) {
  for (const line of ui.announcer.querySelectorAll(`p[data-seq="${seq}"]`)) line.remove();
}

function showHistoryStart() {
  ui.historyStart.textContent = `This is the beginning of #${room}`;
  ui.historyStart.hidden = false;
}

function addSkippedNote(beforeSeq) {
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = "Some messages were skipped while you were away.";
  const next = [...shown.entries()].filter(([seq]) => seq >= beforeSeq).sort((a, b) => a[0] - b[0])[0];
  ui.messages.insertBefore(li, next ? next[1] : ui.messages.querySelector("li.pending"));
}

// ---- outbox --------------------------------------------------------------------------------

function submitComposer() {
  const text = ui.composer.value;
  if (text.trim().length === 0) {
    ui.composer.value = "";
    autosize();
    return;
  }
  const length = charCount(text);
  if (length > MAX_TEXT_CHARS) {
    showComposerError(
      `Messages can be at most ${MAX_TEXT_CHARS.toLocaleString("en")} characters; this one has ${length.toLocaleString("en")}. Please shorten it.`,
    );
    return;
  }
  if (me === null) {
    showComposerError("Still connecting to the server; your text is kept. Try again in a moment.");
    return;
  }
  hideComposerError();
  const replyTo = replyBar.seq;
  const entry = { clientId: newClientId(), text, replyTo, ts: Date.now(), state: "queued", retries: 0, retryTimer: null };
  entry.li = buildMessage({ user: me, text, ts: entry.ts, reply_to: replyTo ?? undefined }, true);
  entry.li.dataset.clientId = entry.clientId;
  entry.li.querySelector(".bubble").append(statusLine(pendingLabel()));
  outbox.push(entry);
  ui.messages.append(entry.li);
  relayout();
  ui.composer.value = "";
  replyBar.clear();
  autosize();
  updateCount();
  pumpOutbox();
  scrollToBottom();
}

function pendingLabel() {
  return inRoom ? "Sending…" : "Waiting for the connection…";
}

/** Keeps each pending message's "Sending…" line true to the connection state. */
function refreshPendingLabels() {
  const label = pendingLabel();
  for (const entry of outbox) {
    if (entry.state === "failed") continue;
    const line = entry.li.querySelector(".send-status");
    if (line && line.textContent !== label) line.textContent = label;
  }
  const deleting = deletingLabel();
  for (const seq of deletions.keys()) {
    const line = shown.get(seq)?.querySelector(".delete-status:not(.error)");
    if (line && line.textContent !== deleting) line.textContent = deleting;
  }
}

function statusLine(text) {
  const p = document.createElement("p");
  p.className = "send-status";
  p.textContent = text;
  return p;
}

function sendEntry(entry) {
  const frame = { type: "send", room, text: entry.text, client_id: entry.clientId };
  if (entry.replyTo !== null) frame.reply_to = entry.replyTo;
  if (conn.send(frame)) entry.state = "sent";
}

/** Sends every unconfirmed message, in the order typed, after a `joined`. */
function flushOutbox() {
  pumpOutbox();
}

/**
 * Sends queued outbox entries in the order typed, as fast as the pacer's bucket allows, and
 * sets a timer for the rest. An entry waiting on its own retry backoff holds back the ones after
 * it, so the order typed stays the order sent.
 */
function pumpOutbox() {
  clearTimeout(pacer.timer);
  pacer.timer = null;
  if (!inRoom) return;
  const now = performance.now();
  pacer.tokens = Math.min(SEND_BURST, pacer.tokens + (now - pacer.refilled) / SEND_INTERVAL_MS);
  pacer.refilled = now;
  for (const entry of outbox) {
    if (entry.state !== "queued") continue;
    if (entry.retryTimer) return; // its own timer pumps again when it is due
    if (now < pacer.pausedUntil || pacer.tokens < 1) {
      const wait = Math.max(pacer.pausedUntil - now, (1 - pacer.tokens) * SEND_INTERVAL_MS, 10);
      pacer.timer = setTimeout(pumpOutbox, wait);
      return;
    }
    pacer.tokens -= 1;
    sendEntry(entry);
  }
}

/** Confirms the outbox entry with this `client_id` and returns it (its `li` is still shown,
 * for the confirmed message to take over), or null when there is none. */
function confirm(clientId) {
  const index = outbox.findIndex((e) => e.clientId === clientId);
  if (index < 0) return null;
  const [entry] = outbox.splice(index, 1);
  clearTimeout(entry.retryTimer);
  return entry;
}

function markFailed(entry, message) {
  entry.state = "failed";
  clearTimeout(entry.retryTimer);
  entry.retryTimer = null;
  const li = entry.li;
  li.classList.add("failed");
  li.querySelector(".send-status")?.remove();
  const status = statusLine(`Not sent: ${message}`);
  status.classList.add("error");
  const retry = document.createElement("button");
  retry.type = "button";
  retry.className = "btn ghost small";
  retry.textContent = "Retry";
  retry.addEventListener("click", () => {
    li.classList.remove("failed");
    relayout();
    status.replaceWith(statusLine(pendingLabel()));
    entry.state = "queued";
    pumpOutbox();
  });
  const discard = document.createElement("button");
  discard.type = "button";
  discard.className = "btn ghost small";
  discard.textContent = "Delete";
  discard.addEventListener("click", () => {
    const index = outbox.indexOf(entry);
    if (index >= 0) outbox.splice(index, 1);
    li.remove();
    relayout();
    ui.composer.focus();
  });
  status.append(" ", retry, " ", discard);
  li.querySelector(".bubble").append(status);
  relayout();
}

function showComposerError(message) {
  ui.composerError.textContent = message;
  ui.composerError.hidden = false;
  ui.composer.setAttribute("aria-invalid", "true");
}

function hideComposerError() {
  ui.composerError.hidden = true;
  ui.composerError.textContent = "";
  ui.composer.removeAttribute("aria-invalid");
}

function updateCount() {
  const length = charCount(ui.composer.value);
  if (length > MAX_TEXT_CHARS - 500) {
    ui.composerCount.textContent = `${length.toLocaleString("en")} / ${MAX_TEXT_CHARS.toLocaleString("en")}`;
    ui.composerCount.classList.toggle("over", length > MAX_TEXT_CHARS);
  } else {
    ui.composerCount.textContent = "";
  }
  if (!ui.composerError.hidden && length <= MAX_TEXT_CHARS) hideComposerError();
}

function autosize() {
  const box = ui.composer;
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 200)}px`;
}

// ---- deleting ------------------------------------------------------------------------------

/** What a deleted message shows instead of its text: words, so screen readers say it too. */
function tombstoneText() {
  const text = document.createElement("div");
  text.className = "text tombstone";
  const icon = document.createElement("span");
  icon.className = "tombstone-icon";
  icon.setAttribute("aria-hidden", "true");
  text.append(icon, "Message deleted");
  return text;
}

/**
 * Turns the shown message `seq` into a tombstone in place: its text leaves the DOM, author and
 * time stay. A deletion that happens while the reader is here is announced by `applyEvent`; a
 * tombstone that arrives already deleted (a join, history) is part of the conversation like any
 * message and gets no announcement of its own.
 */
function markDeleted(seq) {
  forgetAnnounced(seq);
  deletions.delete(seq);
  edits.delete(seq);
  search.forget(seq);
  const state = states.get(seq);
  if (state) {
    state.text = null;
    state.reactions = [];
  }
  refreshQuotes(seq);
  const li = shown.get(seq);
  if (!li || li.classList.contains("deleted")) return;
  const hadFocus = li.contains(document.activeElement);
  li.classList.add("deleted");
  li.classList.remove("confirming", "editing");
  li.querySelector(".message-actions")?.remove();
  for (const line of li.querySelectorAll(
    ".confirm-delete, .delete-status, .edit-form, .edited-mark, .reactions, .reaction-picker, .react-status",
  )) {
    line.remove();
  }
  const text = li.querySelector(".text");
  if (text) text.replaceWith(tombstoneText());
  else li.querySelector(".bubble").append(tombstoneText());
  // Focus was on the Delete or the confirmation, now gone: keep the reader's place.
  if (hadFocus) focusBubble(li);
}

function focusBubble(li) {
  const bubble = li.querySelector(".bubble");
  bubble.tabIndex = -1;
  bubble.focus();
}

/** Authors delete their own messages; the room's owner and moderators, and administrators,
 * anyone's. */
function canDelete(userId) {
  return me !== null && (userId === me.id || isAdmin || isRoomModerator);
}

/**
 * Gives a shown message its actions, in one group beside the bubble: Reply and React on every
 * message, Edit on one's own, Delete where the user may delete (their own; everyone's for an
 * administrator). Run again when who we are changes: it adds and takes away what changed.
 */
function syncActions(li) {
  if (li.classList.contains("deleted") || li.classList.contains("pending")) return;
  let actions = li.querySelector(".message-actions");
  const own = me !== null && li.dataset.userId === me.id;
  const who = li.dataset.userName;
  if (!actions) {
    actions = document.createElement("div");
    actions.className = "message-actions";
    actions.setAttribute("role", "group");
    actions.setAttribute("aria-label", "Message actions");
    li.append(actions);
  }
  const wanted = [
    ["message-reply", "Reply", own ? "Reply to your message" : `Reply to ${who}`, () => replyBar.set(Number(li.dataset.seq))],
    ["message-react", "React", own ? "React to your message" : `React to the message from ${who}`, (b) => toggleReactionPicker(li, b)],
    own ? ["message-edit", "Edit", "Edit your message", () => startEditing(li)] : null,
    canDelete(li.dataset.userId)
      ? ["message-delete", "Delete", own ? "Delete your message" : `Delete message from ${who}`, () => askToDelete(li)]
      : null,
  ].filter(Boolean);
  const wantedClasses = new Set(wanted.map(([cls]) => cls));
  for (const button of [...actions.querySelectorAll("button")]) {
    if (![...button.classList].some((cls) => wantedClasses.has(cls))) button.remove();
  }
  if (!wantedClasses.has("message-delete")) {
    li.querySelector(".confirm-delete")?.remove();
    li.classList.remove("confirming");
  }
  let previous = null;
  for (const [cls, label, name, act] of wanted) {
    let button = actions.querySelector(`.${cls}`);
    if (!button) {
      button = document.createElement("button");
      button.type = "button";
      button.className = `btn ghost small message-action ${cls}`;
      button.textContent = label;
      button.addEventListener("click", () => act(button));
      if (cls === "message-react") {
        button.setAttribute("aria-haspopup", "true");
        button.setAttribute("aria-expanded", "false");
      }
    }
    button.setAttribute("aria-label", name);
    const at = previous ? previous.nextElementSibling : actions.firstElementChild;
    if (at !== button) actions.insertBefore(button, at);
    previous = button;
  }
}

/** Who we are changed (a sign-in in another tab): ask whether we administer, then fix the actions. */
async function refreshIdentity() {
  const id = me?.id;
  let user;
  try {
    user = await fetchSession();
  } catch {
    return; // unreachable: the next change of user asks again
  }
  if (me?.id !== id) return; // changed again meanwhile; that change asks for itself
  isAdmin = user !== null && user.id === id && user.admin === true;
  for (const li of shown.values()) syncActions(li);
}

/** The confirmation step: "Delete this message for everyone? Delete / Cancel", inline. */
function askToDelete(li) {
  if (li.querySelector(".confirm-delete") || li.classList.contains("deleted")) return;
  const seq = Number(li.dataset.seq);
  for (const line of li.querySelectorAll(".delete-status")) line.remove();
  const actions = li.querySelector(".message-actions");
  actions.hidden = true;
  li.classList.add("confirming");

  const group = document.createElement("div");
  group.className = "confirm-delete";
  group.setAttribute("role", "group");
  const question = document.createElement("span");
  question.id = `confirm-delete-${seq}`;
  question.textContent = "Delete this message for everyone?";
  group.setAttribute("aria-labelledby", question.id);
  const yes = document.createElement("button");
  yes.type = "button";
  yes.className = "btn small danger confirm-yes";
  yes.textContent = "Delete";
  const no = document.createElement("button");
  no.type = "button";
  no.className = "btn ghost small confirm-no";
  no.textContent = "Cancel";
  group.append(question, " ", yes, " ", no);

  const close = () => {
    group.remove();
    li.classList.remove("confirming");
    actions.hidden = false;
  };
  no.addEventListener("click", () => {
    close();
    actions.querySelector(".message-delete").focus();
  });
  group.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    event.stopPropagation();
    close();
    actions.querySelector(".message-delete").focus();
  });
  yes.addEventListener("click", () => {
    close();
    actions.hidden = true;
    requestDeletion(li, seq);
    focusBubble(li);
  });
  li.querySelector(".bubble").append(group);
  // The safe choice has the focus: Enter twice does not delete by accident.
  no.focus();
}

function deletingLabel() {
  return inRoom ? "Deleting…" : "Deleting once the connection is back…";
}

function deleteLine(text, error) {
  const p = statusLine(text);
  p.classList.add("delete-status");
  if (error) {
    p.classList.add("error");
    p.setAttribute("role", "alert");
  }
  return p;
}

function requestDeletion(li, seq) {
  if (!deletions.has(seq)) deletions.set(seq, { clientId: newClientId(), state: "queued" });
  li.querySelector(".bubble").append(deleteLine(deletingLabel(), false));
  sendDeletions();
}

/** Sends every deletion not yet sent on this connection (after `joined`, or when asked). */
function sendDeletions() {
  if (!inRoom) return;
  for (const [seq, deletion] of deletions) {
    if (deletion.state !== "queued") continue;
    if (conn.send({ type: "delete", room, seq, client_id: deletion.clientId })) deletion.state = "sent";
  }
}

const DELETE_REFUSALS = {
  forbidden: "You can’t delete this message: only its author or a moderator can.",
  not_found: "This message can’t be deleted: it no longer exists, or was deleted already.",
  not_joined: "Not deleted: the page is not in the room right now. Try again in a moment.",
  unavailable: "Not deleted: the server could not store the deletion. Try again in a moment.",
};

/** An `error` answering one of our deletions: says why beside the message. Returns whether it was one. */
function deletionRefused(frame) {
  const found = [...deletions].find(([, deletion]) => deletion.clientId === frame.ref);
  if (!found) return false;
  const [seq] = found;
  deletions.delete(seq);
  const li = shown.get(seq);
  if (!li || li.classList.contains("deleted")) return true;
  let reason = DELETE_REFUSALS[frame.code];
  if (frame.code === "rate_limited") {
    const seconds = Math.max(1, Math.ceil((Number.isFinite(frame.retry_after_ms) ? frame.retry_after_ms : 1000) / 1000));
    const wait = seconds < 90 ? `${seconds} second${seconds === 1 ? "" : "s"}` : `${Math.ceil(seconds / 60)} minutes`;
    reason = `Not deleted: too many messages and deletions at once. Try again in ${wait}.`;
  }
  reason ??= `Not deleted: ${frame.message || "the server refused it."}`;
  for (const line of li.querySelectorAll(".delete-status")) line.remove();
  li.querySelector(".bubble").append(deleteLine(reason, true));
  const actions = li.querySelector(".message-actions");
  if (actions) actions.hidden = false;
  return true;
}

// ---- replies -------------------------------------------------------------------------------

/** The quoted line above a reply: the original's author and first words, a button to go there. */
function quoteElement(seq) {
  const quote = document.createElement("button");
  quote.type = "button";
  quote.className = "reply-quote";
  quote.dataset.target = String(seq);
  quote.addEventListener("click", () => goToMessage(seq));
  fillQuote(quote);
  return quote;
}

function fillQuote(quote) {
  const original = states.get(Number(quote.dataset.target));
  const icon = document.createElement("span");
  icon.className = "reply-icon";
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = "↪";
  const author = document.createElement("span");
  author.className = "quote-author";
  author.dir = "auto";
  const text = document.createElement("span");
  text.className = "quote-text";
  text.dir = "auto";
  // The button's name is its own text plus words for screen readers only, so what is seen is
  // what is said (WCAG 2.5.3, label in name), whatever part of it is scrolled into view.
  if (!original) {
    author.textContent = "an earlier message";
    quote.setAttribute("aria-disabled", "true");
    quote.replaceChildren(icon, hiddenWords("In reply to "), author, hiddenWords(", not loaded"));
    return;
  }
  author.textContent = original.user.name;
  const words = original.text === null ? "message deleted" : snippet(original.text);
  text.textContent = words;
  text.classList.toggle("gone", original.text === null);
  quote.removeAttribute("aria-disabled");
  quote.replaceChildren(icon, hiddenWords("In reply to "), author, hiddenWords(": "), text, hiddenWords(". Go to the original message"));
}

function hiddenWords(words) {
  const span = document.createElement("span");
  span.className = "visually-hidden";
  span.textContent = words;
  return span;
}

/** Message `seq` was loaded, edited or deleted: the quotes of it and the reply bar say so. */
function refreshQuotes(seq) {
  for (const quote of ui.messages.querySelectorAll(`.reply-quote[data-target="${seq}"]`)) fillQuote(quote);
  if (replyBar.seq === seq) replyBar.refresh();
}

/** Scrolls to message `seq` and gives it the focus, if it is loaded. */
function goToMessage(seq) {
  const li = shown.get(seq);
  if (!li) return;
  li.scrollIntoView({ block: "center" });
  focusBubble(li);
  li.classList.remove("flash");
  void li.offsetWidth; // restart the highlight when the same message is visited again
  li.classList.add("flash");
  li.addEventListener("animationend", () => li.classList.remove("flash"), { once: true });
}

// ---- editing -------------------------------------------------------------------------------

function editedMark(ts) {
  const mark = document.createElement("span");
  mark.className = "edited-mark";
  mark.textContent = "(edited)";
  const date = new Date(ts);
  if (!Number.isNaN(date.getTime())) {
    mark.title = `Edited ${date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" })}`;
  }
  return mark;
}

/** An `edited` event: the message shows its new text, marked "(edited)". Returns whether a
 * shown message changed. */
function markEdited(event) {
  const state = states.get(event.target);
  if (!state || state.text === null) return false;
  state.text = event.text;
  state.editedAt = Number.isInteger(event.ts) ? event.ts : Date.now();
  forgetAnnounced(event.target);
  refreshQuotes(event.target);
  const li = shown.get(event.target);
  const text = li?.querySelector(".text");
  if (!text) return false;
  showText(text, state.text);
  li.querySelector(".edited-mark")?.remove();
  text.after(editedMark(state.editedAt));
  return true;
}

/** Edit: the text becomes a textarea in place. Enter saves, Shift+Enter is a new line, Esc cancels. */
function startEditing(li) {
  const seq = Number(li.dataset.seq);
  const state = states.get(seq);
  if (!state || state.text === null) return;
  const open = li.querySelector(".edit-form textarea");
  if (open) {
    open.focus();
    return;
  }
  closePicker(li.querySelector(".bubble"), false);
  const text = li.querySelector(".text");
  text.hidden = true;
  li.classList.add("editing");

  const form = document.createElement("div");
  form.className = "edit-form";
  const box = document.createElement("textarea");
  box.className = "edit-box";
  box.value = state.text;
  box.rows = Math.min(8, state.text.split("\n").length + 1);
  box.setAttribute("aria-label", "Edit your message");
  const hint = document.createElement("p");
  hint.className = "hint edit-hint";
  hint.id = `edit-hint-${seq}`;
  hint.textContent = "Enter to save · Shift+Enter for a new line · Esc to cancel";
  const error = document.createElement("p");
  error.className = "error edit-error";
  error.id = `edit-error-${seq}`;
  error.setAttribute("role", "alert");
  error.hidden = true;
  box.setAttribute("aria-describedby", `${hint.id} ${error.id}`);
  const save = document.createElement("button");
  save.type = "button";
  save.className = "btn primary small edit-save";
  save.textContent = "Save";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "btn ghost small edit-cancel";
  cancel.textContent = "Cancel";
  const buttons = document.createElement("div");
  buttons.className = "edit-buttons";
  buttons.append(save, cancel);
  form.append(box, hint, error, buttons);
  text.after(form);

  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      saveEdit(li);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      edits.delete(seq);
      closeEditor(li, true);
    }
  });
  save.addEventListener("click", () => saveEdit(li));
  cancel.addEventListener("click", () => {
    edits.delete(seq);
    closeEditor(li, true);
  });
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

function showEditError(li, message) {
  const error = li.querySelector(".edit-error");
  if (!error) return;
  error.textContent = message;
  error.hidden = false;
  const box = li.querySelector(".edit-box");
  box.setAttribute("aria-invalid", "true");
  box.readOnly = false;
  li.querySelector(".edit-form").classList.remove("saving");
  li.querySelector(".edit-hint").textContent = "Enter to save · Shift+Enter for a new line · Esc to cancel";
}

function saveEdit(li) {
  const seq = Number(li.dataset.seq);
  const state = states.get(seq);
  const box = li.querySelector(".edit-box");
  if (!state || !box || edits.has(seq)) return;
  const text = box.value;
  if (text === state.text) {
    closeEditor(li, true);
    return;
  }
  if (text.trim().length === 0) {
    showEditError(li, "A message can’t be empty. To remove it, delete it instead.");
    return;
  }
  const length = charCount(text);
  if (length > MAX_TEXT_CHARS) {
    showEditError(li, `Messages can be at most ${MAX_TEXT_CHARS.toLocaleString("en")} characters; this one has ${length.toLocaleString("en")}.`);
    return;
  }
  li.querySelector(".edit-error").hidden = true;
  box.removeAttribute("aria-invalid");
  box.readOnly = true;
  li.querySelector(".edit-form").classList.add("saving");
  li.querySelector(".edit-hint").textContent = inRoom ? "Saving…" : "Saving once the connection is back…";
  edits.set(seq, { clientId: newClientId(), text, state: "queued" });
  sendEdits();
}

/** Sends every edit not yet sent on this connection (after `joined`, or when saved). */
function sendEdits() {
  if (!inRoom) return;
  for (const [seq, edit] of edits) {
    if (edit.state !== "queued") continue;
    const frame = { type: "edit", room, seq, text: edit.text, client_id: edit.clientId, ref: edit.clientId };
    if (conn.send(frame)) edit.state = "sent";
    const hint = shown.get(seq)?.querySelector(".edit-hint");
    if (hint) hint.textContent = "Saving…";
  }
}

/** Puts the message's text back in place of the editor; `refocus` moves the focus to Edit. */
function closeEditor(li, refocus) {
  const form = li?.querySelector(".edit-form");
  if (!form) return;
  const hadFocus = form.contains(document.activeElement);
  form.remove();
  li.classList.remove("editing");
  const text = li.querySelector(".text");
  if (text) text.hidden = false;
  if (refocus && hadFocus) (li.querySelector(".message-edit") ?? li.querySelector(".bubble")).focus();
}

const EDIT_REFUSALS = {
  forbidden: "Not saved: only the author of a message can edit it.",
  not_found: "Not saved: this message no longer exists, or was deleted.",
  invalid_text: "Not saved: a message needs 1–4,000 characters, not only spaces, and no control characters.",
  unavailable: "Not saved: the server could not store the edit. Try again in a moment.",
  not_joined: "Not saved: the page is not in the room right now. Try again in a moment.",
};

function waitWords(frame) {
  const seconds = Math.max(1, Math.ceil((Number.isFinite(frame.retry_after_ms) ? frame.retry_after_ms : 1000) / 1000));
  return seconds < 90 ? `${seconds} second${seconds === 1 ? "" : "s"}` : `${Math.ceil(seconds / 60)} minutes`;
}

/** An `error` answering one of our edits: said in the editor, which keeps the text. */
function editRefused(frame) {
  const found = [...edits].find(([, edit]) => edit.clientId === frame.ref);
  if (!found) return false;
  const [seq] = found;
  edits.delete(seq);
  const li = shown.get(seq);
  if (!li) return true;
  let reason = EDIT_REFUSALS[frame.code];
  if (frame.code === "rate_limited" || frame.code === "overloaded") {
    reason = `Not saved: too many messages and changes at once. Try again in ${waitWords(frame)}.`;
  }
  showEditError(li, reason ?? `Not saved: ${frame.message || "the server refused it."}`);
  li.querySelector(".edit-box")?.focus();
  return true;
}

// ---- reactions -----------------------------------------------------------------------------

/** Draws the chips of message `li` from its state. */
function showReactions(li, state = li ? states.get(Number(li.dataset.seq)) : undefined) {
  if (!li || !state || state.text === null) return;
  const bubble = li.querySelector(".bubble");
  const before = bubble.querySelector(".send-status, .delete-status, .confirm-delete, .react-status, .reaction-picker");
  renderReactions(bubble, state.reactions, me?.id, (emoji) => toggleReaction(li, emoji), before);
}

function toggleReactionPicker(li, opener) {
  const bubble = li.querySelector(".bubble");
  if (bubble.querySelector(".reaction-picker")) {
    closePicker(bubble, true);
    return;
  }
  const seq = Number(li.dataset.seq);
  openPicker(bubble, opener, {
    isMine: (emoji) => hasReacted(states.get(seq)?.reactions ?? [], emoji, me?.id),
    onPick: (emoji) => toggleReaction(li, emoji),
  });
}

/** Gives the user's `emoji` to message `li`, or takes it back if they gave it already. */
function toggleReaction(li, emoji) {
  const seq = Number(li.dataset.seq);
  const state = states.get(seq);
  if (!state || state.text === null || me === null) return;
  li.querySelector(".react-status")?.remove();
  const type = hasReacted(state.reactions, emoji, me.id) ? "unreact" : "react";
  const clientId = newClientId();
  if (!inRoom || !conn.send({ type, room, seq, emoji, client_id: clientId, ref: clientId })) {
    reactStatus(li, "Not connected right now. Try again in a moment.");
    return;
  }
  reactionRequests.set(clientId, seq);
}

function reactStatus(li, text) {
  const line = statusLine(text);
  line.classList.add("react-status", "error");
  line.setAttribute("role", "alert");
  li.querySelector(".react-status")?.remove();
  li.querySelector(".bubble").append(line);
}

const REACT_REFUSALS = {
  not_found: "This message can’t take reactions: it no longer exists, or was deleted.",
  too_many_reactions: "This message has 20 different reactions already; add yours to one of them.",
  invalid_emoji: "That reaction isn’t one emoji.",
  unavailable: "Not saved: the server could not store the reaction. Try again in a moment.",
};

/** An `error` answering one of our reactions: said beside the message. */
function reactionRefused(frame) {
  const seq = reactionRequests.get(frame.ref);
  if (seq === undefined) return false;
  reactionRequests.delete(frame.ref);
  const li = shown.get(seq);
  if (!li || li.classList.contains("deleted")) return true;
  let reason = REACT_REFUSALS[frame.code];
  if (frame.code === "rate_limited" || frame.code === "overloaded") {
    reason = `Not saved: too many messages and reactions at once. Try again in ${waitWords(frame)}.`;
  }
  reactStatus(li, reason ?? `Reaction not saved: ${frame.message || "the server refused it."}`);
  return true;
}

// ---- members -------------------------------------------------------------------------------

// ---- telling people with the same name apart -------------------------------------------------

/** Records that `user` goes by their name; true when that makes the name newly shared. */
function noteUser(user) {
  const key = nameKey(user.name);
  let ids = idsByName.get(key);
  if (!ids) {
    ids = new Set();
    idsByName.set(key, ids);
  }
  if (ids.has(user.id)) return false;
  ids.add(user.id);
  return ids.size === 2;
}

function nameIsShared(name) {
  return (idsByName.get(nameKey(name))?.size ?? 0) >= 2;
}

function tagElement(id) {
  const tag = document.createElement("span");
  tag.className = "user-tag";
  tag.textContent = userTag(id);
  tag.title = "Tells apart people with the same name";
  return tag;
}

/** Gives every shown message whose author's name is now shared its tag. */
function refreshTags() {
  for (const li of ui.messages.querySelectorAll("li.message")) {
    const meta = li.querySelector(".meta");
    if (!meta || meta.querySelector(".user-tag") || !nameIsShared(li.dataset.userName ?? "")) continue;
    meta.querySelector(".author")?.after(tagElement(li.dataset.userId));
  }
}

function renderMembers() {
  let newlyShared = false;
  for (const user of members.values()) if (noteUser(user)) newlyShared = true;
  if (newlyShared) refreshTags();
  const sorted = [...members.values()].sort(
    (a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: "base" }) || a.id.localeCompare(b.id),
  );
  const items = sorted.map((user) => {
    const li = document.createElement("li");
    li.dataset.userId = user.id;
    const name = document.createElement("span");
    name.className = "member-name";
    name.dir = "auto";
    name.textContent = user.name;
    li.append(avatar(user, "small"), name);
    if (nameIsShared(user.name)) li.append(" ", tagElement(user.id));
    if (user.guest !== false) li.append(" ", guestMark());
    if (me && user.id === me.id) {
      li.classList.add("me");
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "(you)";
      li.append(" ", you);
    }
    li.append(...memberActions(user));
    return li;
  });
  ui.memberList.replaceChildren(...items);
  const count = String(Math.max(memberCount, sorted.length));
  ui.memberCount.textContent = count;
  ui.membersToggleCount.textContent = count;
}

/** The layout where the members panel slides over the conversation (style.css's breakpoint). */
const phoneLayout = matchMedia("(max-width: 700px)");

function setMembersOpen(open) {
  ui.members.classList.toggle("open", open);
  ui.membersBackdrop.hidden = !open;
  ui.membersToggle.setAttribute("aria-expanded", String(open));
  setMembersModal(open && phoneLayout.matches);
  if (open) ui.membersClose.focus();
}

/**
 * Where the panel covers the conversation it is a modal dialog: the rest of the page is inert
 * (neither focus nor a screen reader's cursor can wander behind the backdrop) and Tab cycles
 * inside it. Beside the conversation (wide layout) it is an ordinary complementary region.
 */
function setMembersModal(modal) {
  if (modal) {
    ui.members.setAttribute("role", "dialog");
    ui.members.setAttribute("aria-modal", "true");
  } else {
    ui.members.removeAttribute("role");
    ui.members.removeAttribute("aria-modal");
  }
  for (const part of [ui.topbar, ui.banner, ui.conversation]) part.inert = modal;
}

function closeMembers() {
  setMembersOpen(false);
  ui.membersToggle.focus();
}

/** Keeps Tab inside the members panel while it is a modal dialog. */
function trapMembersFocus(event) {
  if (event.key !== "Tab" || ui.members.getAttribute("aria-modal") !== "true") return;
  const focusable = [...ui.members.querySelectorAll("button, a[href], input, select, textarea, [tabindex]")].filter(
    (el) => el.tabIndex >= 0 && !el.disabled && el.checkVisibility(),
  );
  if (focusable.length === 0) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && (document.activeElement === first || !ui.members.contains(document.activeElement))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (document.activeElement === last || !ui.members.contains(document.activeElement))) {
    event.preventDefault();
    first.focus();
  }
}

// ---- scrolling and status ------------------------------------------------------------------

function isNearBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  ui.jumpLatest.hidden = true;
}

function setStatus(state) {
  ui.status.dataset.state = state;
  ui.status.textContent =
    state === "connected"
      ? "Connected"
      : state === "reconnecting"
        ? "Reconnecting…"
        : state === "closed"
          ? "Not in this room"
          : "Connecting…";
  ui.banner.hidden = state !== "reconnecting";
  document.body.dataset.connection = state;
  refreshPendingLabels();
}

// ---- pages ---------------------------------------------------------------------------------

function showRoomInvalid(reason) {
  ui.app.hidden = true;
  ui.signin.hidden = true;
  ui.roomInvalid.hidden = false;
  const shownName = room.length > 80 ? room.slice(0, 80) + "…" : room;
  ui.roomInvalidText.textContent =
    (room ? `“${shownName}” is not a valid room name. ` : "This address does not name a room. ") +
    (reason ? reason.replace(/\.?$/, ".") : "Room names are 1–64 characters of letters A–Z and a–z, digits 0–9, “-” and “_”.");
  document.title = "Invalid room · confab";
}

/** The name form; `signedOut` when a session this page used has ended. */
function showSignIn(signedOut) {
  ui.app.hidden = true;
  ui.signin.hidden = false;
  ui.signedOut.hidden = !signedOut;
  ui.signinRoom.textContent = `#${room}`;
  $("name").focus();
}

function startRoom(user) {
  me = me ?? user;
  username = typeof user.username === "string" ? user.username : null;
  isAdmin = user.admin === true;
  ui.signin.hidden = true;
  ui.signedOut.hidden = true;
  ui.app.hidden = false;
  conn.start();
  refreshRoomHeader();
  ui.composer.focus();
}

function wireEvents() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
    ui.composer.focus();
  });
  ui.composer.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      submitComposer();
    } else if (event.key === "Escape" && replyBar.seq !== null) {
      event.preventDefault();
      event.stopPropagation();
      replyBar.clear();
    }
  });
  ui.composer.addEventListener("input", () => {
    autosize();
    updateCount();
    typingSignal.input(ui.composer.value);
  });
  ui.scroller.addEventListener(
    "scroll",
    () => {
      if (isNearBottom()) ui.jumpLatest.hidden = true;
      if (ui.scroller.scrollTop < NEAR_TOP_PX) loadOlder();
    },
    { passive: true },
  );
  ui.jumpLatest.addEventListener("click", () => {
    scrollToBottom();
    ui.composer.focus();
  });
  ui.membersToggle.addEventListener("click", () => setMembersOpen(!ui.members.classList.contains("open")));
  ui.members.addEventListener("scroll", loadMoreMembers, { passive: true });
  ui.membersClose.addEventListener("click", closeMembers);
  ui.membersBackdrop.addEventListener("click", closeMembers);
  ui.members.addEventListener("keydown", trapMembersFocus);
  // Turning a phone (or resizing a window) across the breakpoint with the panel open.
  phoneLayout.addEventListener("change", () => setMembersModal(ui.members.classList.contains("open") && phoneLayout.matches));
  ui.accountOpen.addEventListener("click", () =>
    openAccountPanel({
      // Reconnect so `hello` and the room see the new name (resuming with `since` loses nothing).
      onUserChanged: () => conn.drop(),
    }),
  );
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && ui.members.classList.contains("open")) closeMembers();
  });
  // Keep the newest message in view when the viewport shrinks (phone keyboard opening).
  let stickOnResize = true;
  ui.scroller.addEventListener("scroll", () => (stickOnResize = isNearBottom()), { passive: true });
  new ResizeObserver(() => {
    if (stickOnResize) scrollToBottom();
  }).observe(ui.scroller);
}

async function boot() {
  if (!isValidRoom(room)) {
    showRoomInvalid();
    return;
  }
  document.title = `#${room} · confab`;
  ui.roomLabel.textContent = room;
  ui.composer.placeholder = `Message #${room}`;
  ui.composerLabel.textContent = `Message #${room}`;
  wireEvents();
  initRoomPage({
    room,
    me: () => me,
    online: () => [...members.values()],
    onRole: (role) => {
      isRoomModerator = role === "owner" || role === "moderator";
      for (const li of shown.values()) syncActions(li);
    },
  });
  bindNameForm(ui.nameForm, (user) => {
    me = user;
    startRoom(user);
  });
  ui.app.hidden = false;
  setStatus("connecting");
  let delay = 500;
  for (;;) {
    try {
      const user = await fetchSession();
      if (user) startRoom(user);
      else showSignIn(false);
      return;
    } catch {
      setStatus("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random() / 2)));
      delay = Math.min(delay * 2, 8000);
    }
  }
}

boot();

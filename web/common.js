// Helpers shared by the lobby and the room page: the session API, the value rules of
// docs/protocol.md checked before the server sees them, the sign-in form, and avatars.

export const MAX_NAME_CHARS = 32;
export const MAX_TEXT_CHARS = 4000;
const ROOM_RULE = /^[A-Za-z0-9_-]{1,64}$/;
const CONTROL_CHAR = /\p{Cc}/u;
/** Refused in names by the server: bidi controls, zero-width and invisible characters. */
const SPOOFING_CHAR = /[\u200E\u200F\u202A-\u202E\u2066-\u2069\u061C\u200B-\u200D\u2060\uFEFF\u115F\u1160\u3164\uFFA0\u2800]/u;
/** Something that shows: not white space, a control or a default-ignorable character. */
const VISIBLE_CHAR = /[^\p{White_Space}\p{Cc}\p{Default_Ignorable_Code_Point}\u2800]/u;

/** Length in Unicode scalar values, as the server counts it. */
export function charCount(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

const SURROUNDING_SPACE = /^\p{White_Space}+|\p{White_Space}+$/gu;

/** Normalises (NFC) and trims what the server does (Unicode White_Space, as Rust's `str::trim`). */
export function trimName(raw) {
  return raw.normalize("NFC").replace(SURROUNDING_SPACE, "");
}

/** Returns a message for people when `raw` is not a valid display name, otherwise null. */
export function nameProblem(raw) {
  const name = trimName(raw);
  if (name.length === 0) return "Please enter a display name.";
  if (charCount(name) > MAX_NAME_CHARS) {
    return `Display names can be at most ${MAX_NAME_CHARS} characters (this one has ${charCount(name)}).`;
  }
  if (CONTROL_CHAR.test(name)) return "Display names cannot contain control characters.";
  if (SPOOFING_CHAR.test(name)) {
    return "Display names cannot contain direction marks, zero-width or invisible characters (emoji joined into one are not allowed either).";
  }
  if (!VISIBLE_CHAR.test(name)) return "Please enter a display name with something visible in it.";
  return null;
}

/** Returns a message for people when `raw` is not a valid room name, otherwise null. */
export function roomProblem(raw) {
  if (raw.length === 0) return "Please enter a room name.";
  if (raw.length > 64) return "Room names can be at most 64 characters.";
  if (!ROOM_RULE.test(raw)) {
    return "Room names may only use letters A–Z and a–z, digits 0–9, “-” and “_” (no spaces).";
  }
  return null;
}

export function isValidRoom(name) {
  return ROOM_RULE.test(name);
}

/** Error thrown by the HTTP API, carrying the server's `{code, message, retry_after_ms?}`. */
export class ApiError extends Error {
  constructor(code, message, retryAfterMs) {
    super(message);
    this.code = code;
    this.retryAfterMs = retryAfterMs ?? null;
  }
}

async function apiError(response) {
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") {
      return new ApiError(body.error.code ?? "error", body.error.message, body.error.retry_after_ms);
    }
  } catch {
    // not JSON: fall through
  }
  return new ApiError("http_" + response.status, `The server answered ${response.status}. Please try again.`);
}

/**
 * One JSON request to the HTTP API (docs/protocol.md, "HTTP API"). Returns the parsed body, or
 * null for `204`; throws an `ApiError` for an error answer, and one with code `offline` when the
 * server cannot be reached.
 */
export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError("offline", "Cannot reach the server. Check your connection and try again.");
  }
  if (!response.ok) throw await apiError(response);
  return response.status === 204 ? null : response.json();
}

/**
 * The signed-in user `{id, name, username?, guest}`, or null when there is no session. Throws
 * when unreachable.
 */
export async function fetchSession() {
  try {
    return (await api("GET", "/api/session")).user;
  } catch (e) {
    if (e.code === "unauthenticated" || e.code === "http_401") return null;
    if (e.code === "offline") throw new ApiError("offline", "Cannot reach the server. Retrying…");
    throw e;
  }
}

/** Creates a guest session (or renames the current user, keeping its id). Returns the user. */
export async function createSession(name) {
  return (await api("POST", "/api/session", { name })).user;
}

/**
 * Wires a sign-in form: `input#name`, `button#name-submit`, `#name-error`. Validates on the
 * client, posts to the session API, shows the server's message on failure, and calls
 * `onSignedIn(user)` on success.
 */
export function bindNameForm(form, onSignedIn) {
  const input = form.querySelector("#name");
  const error = form.querySelector("#name-error");
  const button = form.querySelector("#name-submit");
  const showError = (message) => {
    error.textContent = message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  input.addEventListener("input", () => {
    if (!error.hidden) {
      error.hidden = true;
      error.textContent = "";
      input.removeAttribute("aria-invalid");
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = nameProblem(input.value);
    if (problem) {
      showError(problem);
      return;
    }
    button.disabled = true;
    try {
      const user = await createSession(trimName(input.value));
      error.hidden = true;
      error.textContent = "";
      input.removeAttribute("aria-invalid");
      onSignedIn(user);
    } catch (e) {
      showError(e instanceof ApiError ? e.message : "Something went wrong. Please try again.");
    } finally {
      button.disabled = false;
    }
  });
}

/** Up to two initials of a display name, for avatars. */
export function initials(name) {
  const words = name.trim().split(/\s+/u).filter(Boolean);
  const first = (w) => (w ? Array.from(w)[0] : "");
  const letters = words.length >= 2 ? first(words[0]) + first(words[1]) : Array.from(words[0] ?? "?").slice(0, 2).join("");
  return letters.toLocaleUpperCase() || "?";
}

const AVATAR_COLOURS = 12;
const TAG_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * 32 well-mixed bits from a user id: FNV-1a, then murmur3's finaliser so ids that differ in a
 * few characters differ everywhere. Colour and tag come from the id and nothing else, never the
 * name: a lookalike name gets its own colour and tag, and matching both by re-rolling ids takes
 * about a million new sessions, which the per-IP session limit makes impractical.
 */
function idHash(id) {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A stable colour class (`c0`..`c11`) from a user id. */
export function colourClass(id) {
  return "c" + ((idHash(id) >>> 20) % AVATAR_COLOURS);
}

/** A short stable tag from a user id (`#` and 4 characters: 20 bits), shown beside a name that another member shares. */
export function userTag(id) {
  const h = idHash(id);
  let tag = "#";
  for (let shift = 15; shift >= 0; shift -= 5) tag += TAG_ALPHABET[(h >>> shift) & 31];
  return tag;
}

/** When two names count as the same to a reader: compatibility-normalised and case-folded. */
export function nameKey(name) {
  return name.normalize("NFKC").toLocaleLowerCase();
}

export function avatar(user, extraClass) {
  const el = document.createElement("span");
  el.className = `avatar ${colourClass(user.id)}${extraClass ? " " + extraClass : ""}`;
  el.setAttribute("aria-hidden", "true");
  el.textContent = initials(user.name);
  return el;
}

/**
 * The visible "guest" mark beside the name of someone without an account: words, not a colour,
 * so screen readers say it too. Accounts get none.
 */
export function guestMark() {
  const mark = document.createElement("span");
  mark.className = "guest-mark";
  mark.textContent = "guest";
  mark.title = "A guest: no account, so anyone could pick this name";
  return mark;
}

/**
 * A new `client_id`: a UUIDv7, 48 bits of the current time in milliseconds then 74 random bits.
 *
 * Time first, not `crypto.randomUUID()`: the server keeps a unique index of each user's
 * `client_id`s per room, and ids that grow with time are added at the end of the user's part of
 * it. Random ones land anywhere in it, so once a room holds many messages each new one rewrote a
 * different page of the index (a batch of 1,000 messages into a large room wrote about 6 MB to
 * SQLite's WAL instead of 0.4 MB). BENCHMARKS.md, "client_ids that grow with time", has figures.
 */
export function newClientId() {
  const bytes = new Uint8Array(16);
  if (globalThis.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// What sits around the composer: the "Replying to …" bar, telling the room that the user is
// typing, and the line saying who else is (docs/protocol.md, `typing`).

/** How often the user's own `typing` goes out while they type: the protocol's 2 s. */
const TYPING_EVERY_MS = 2000;
/** How long someone shows as typing after their last `typing`: the protocol's 5 s. */
const TYPING_SHOWN_MS = 5000;
const SNIPPET_CHARS = 60;

/** The start of `text` on one line, at most `max` characters, with "…" when cut. */
export function snippet(text, max = SNIPPET_CHARS) {
  const line = text.replace(/\s+/g, " ").trim();
  const chars = [...line];
  return chars.length <= max ? line : `${chars.slice(0, max - 1).join("").trimEnd()}…`;
}

/**
 * The bar above the composer while the next message answers another. `describe(seq)` gives
 * `{name, text}` of the message answered (`text` null once it is deleted).
 */
export class ReplyBar {
  constructor({ bar, label, cancel, composer, describe }) {
    this.bar = bar;
    this.label = label;
    this.composer = composer;
    this.describe = describe;
    /** The seq answered, or null. */
    this.seq = null;
    cancel.addEventListener("click", () => {
      this.clear();
      composer.focus();
    });
  }

  set(seq) {
    this.seq = seq;
    this.refresh();
    this.bar.hidden = false;
    this.composer.focus();
  }

  /** Says again what is answered (it was edited or deleted meanwhile). */
  refresh() {
    if (this.seq === null) return;
    const original = this.describe(this.seq);
    const name = original?.name ?? "an earlier message";
    const text = original ? (original.text === null ? "message deleted" : snippet(original.text)) : "";
    this.label.textContent = text ? `Replying to ${name}: ${text}` : `Replying to ${name}`;
  }

  clear() {
    this.seq = null;
    this.bar.hidden = true;
    this.label.textContent = "";
  }
}

/** Sends `typing` while the user types: not for empty input, and at most every 2 s. */
export class TypingSignal {
  constructor(send) {
    this.send = send;
    this.last = -Infinity;
  }

  /** The composer's text changed to `text`. */
  input(text) {
    if (text.trim().length === 0) return;
    const now = performance.now();
    if (now - this.last < TYPING_EVERY_MS) return;
    if (this.send()) this.last = now;
  }
}

/**
 * The line under the composer naming who else is typing. It is a polite live region, so its
 * text changes only when the sentence does: a `typing` from someone already shown just renews
 * their 5 s, and says nothing.
 */
export class TypingLine {
  constructor(element) {
    this.element = element;
    /** user id -> {name, timer}, in the order they started typing. */
    this.typists = new Map();
  }

  heard(user) {
    const known = this.typists.get(user.id);
    if (known) clearTimeout(known.timer);
    const timer = setTimeout(() => this.stopped(user.id), TYPING_SHOWN_MS);
    this.typists.set(user.id, { name: user.name, timer });
    if (!known) this.render();
  }

  /** `id` stopped typing: their message arrived, or 5 s passed. */
  stopped(id) {
    const known = this.typists.get(id);
    if (!known) return;
    clearTimeout(known.timer);
    this.typists.delete(id);
    this.render();
  }

  clear() {
    for (const { timer } of this.typists.values()) clearTimeout(timer);
    this.typists.clear();
    this.render();
  }

  render() {
    const names = [...this.typists.values()].map((t) => t.name);
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    if (this.element.textContent !== text) this.element.textContent = text;
  }
}

// Read state on the room page (docs/protocol.md: `read`, `read_marker`, `joined.read_seq`):
// the "New messages" divider, marking messages read as they are seen, the unread count in the
// page title, and browser notifications for mentions while the tab is hidden.
//
// Seeing: an IntersectionObserver watches every confirmed message in the list (a
// MutationObserver hands it each one chat.js inserts, so chat.js needs no hook for that). A
// message counts as seen when at least half of it (or half the view, for a tall one) is on
// screen while the tab is visible; when the newest message is seen, everything up to the room's
// last seq is (events included, so they never linger as unread).
//
// Sending: the highest seq seen goes out as `read {room, seq}` at most once a second (the first
// at once, later ones after the rest of the second), only upwards: a seq at or below what the
// server already confirmed (`read_marker`, `joined.read_seq`) or what was already sent is never
// sent. A `read` lost with a connection is sent again after the resume. When the tab is hidden or
// the page is left, what is waiting for the throttle goes at once.
//
// The divider is placed once, on entering the room, above the first message from someone else
// after `read_seq`; it stays there while the page is open (as in Slack), whatever is read since.
// The title counts what is unread here and now, so a `read_marker` from another tab clears it.

import { mentions } from "/assets/mentions.js";

const READ_EVERY_MS = 1000;
/** How much of a message must be on screen to count as seen. */
const SEEN_RATIO = 0.5;
const NOTIFY_KEY = "confab.notify-mentions";

/**
 * Sets the `(3)` / `(3, @1)` prefix of the page title, keeping the rest of the title as it is
 * (other code may rename the page).
 */
export function showCountsInTitle(unread, mentioned) {
  const base = document.title.replace(/^\([^)]*\) /, "");
  const prefix = unread > 0 ? (mentioned > 0 ? `(${unread}, @${mentioned}) ` : `(${unread}) `) : "";
  document.title = prefix + base;
}

/** The words a screen reader hears for a room's counts ("3 unread, 1 mention"); "" for none. */
export function countsLabel(unread, mentioned) {
  const parts = [];
  if (unread > 0) parts.push(`${unread} unread`);
  if (mentioned > 0) parts.push(`${mentioned} ${mentioned === 1 ? "mention" : "mentions"}`);
  return parts.join(", ");
}

export class Reading {
  /**
   * @param {object} page
   * @param {string} page.room
   * @param {import("/assets/client.js").Connection} page.conn
   * @param {HTMLElement} page.scroller the scrolling box the messages are seen in
   * @param {HTMLElement} page.list the message list (`li.message[data-seq]` items)
   * @param {() => boolean} page.inRoom whether the connection has joined the room
   * @param {() => number} page.lastSeq the highest seq of the room this page has
   * @param {() => string[]} page.needles what mentions the viewer (web/mentions.js)
   */
  constructor(page) {
    this.page = page;
    /** The marker as the server last told it. */
    this.serverSeq = 0;
    /** The highest seq seen here (sent, or waiting for the throttle). */
    this.seenSeq = 0;
    /** The highest seq sent on this connection (reset on each join). */
    this.sentSeq = 0;
    /** The user's own newest message here: the server counts everything before it as read. */
    this.ownSeq = 0;
    this.lastSentAt = -Infinity;
    this.timer = null;
    /** Messages at or below this seq were there on entry: they never notify. */
    this.enteredAt = null;
    this.divider = null;
    this.visible = new Set();
    this.titleTimer = null;
    this.notify = new MentionNotifier(page.room);

    this.io = new IntersectionObserver((entries) => this.intersections(entries), {
      root: page.scroller,
      threshold: [0, SEEN_RATIO, 1],
    });
    new MutationObserver((records) => this.listChanged(records)).observe(page.list, {
      childList: true,
      attributes: true,
      attributeFilter: ["class"],
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.update();
      else this.flushNow();
    });
  }

  /** The highest seq known to be read, here or elsewhere. */
  get readUpTo() {
    return Math.max(this.serverSeq, this.seenSeq, this.ownSeq);
  }

  /**
   * The room's `joined` arrived. On the first one (`first`), the messages it carried are shown:
   * put the divider above the first unread one. Returns the divider, or null.
   */
  joined(frame, first) {
    const readSeq = Number.isInteger(frame.read_seq) ? frame.read_seq : null;
    if (readSeq !== null) this.serverSeq = Math.max(this.serverSeq, readSeq);
    this.sentSeq = this.serverSeq;
    if (first) {
      this.enteredAt = this.page.lastSeq();
      if (readSeq !== null) this.placeDivider(readSeq);
    }
    this.refreshTitle();
    this.schedule();
    return this.divider;
  }

  placeDivider(readSeq) {
    const first = [...this.page.list.querySelectorAll("li.message[data-seq]")].find(
      (li) => Number(li.dataset.seq) > readSeq && !li.classList.contains("own") && !li.classList.contains("deleted"),
    );
    if (!first) return;
    const li = document.createElement("li");
    // A plain item: `role="separator"` inside a list is not a list item (axe: listitem).
    li.className = "unread-divider";
    const label = document.createElement("span");
    label.textContent = "New messages";
    li.append(label);
    // Above the day divider that opens this message's day, if any, so that chat.js keeps it.
    const before = first.previousElementSibling;
    const anchor = before && before.classList.contains("day") ? before : first;
    this.page.list.insertBefore(li, anchor);
    this.divider = li;
  }

  /** `read_marker {room, seq}`: this user read up to `seq` here or in another tab. */
  marker(seq) {
    if (!Number.isInteger(seq)) return;
    this.serverSeq = Math.max(this.serverSeq, seq);
    this.refreshTitle();
  }

  /** An `error` answering a `read`; true when it was one. */
  refused(frame) {
    if (frame.ref !== "read") return false;
    // Nothing moved: let the same seq go again later.
    this.sentSeq = this.serverSeq;
    const wait = Number.isFinite(frame.retry_after_ms) ? Math.max(frame.retry_after_ms, READ_EVERY_MS) : 5 * READ_EVERY_MS;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait);
    return true;
  }

  listChanged(records) {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!(node instanceof HTMLElement) || !node.matches("li.message[data-seq]")) continue;
        this.io.observe(node);
        if (node.classList.contains("own")) this.ownSeq = Math.max(this.ownSeq, Number(node.dataset.seq));
        this.arrived(node);
      }
      for (const node of record.removedNodes) {
        if (node instanceof HTMLElement) {
          this.io.unobserve(node);
          this.visible.delete(node);
        }
      }
    }
    this.refreshTitle();
  }

  intersections(entries) {
    for (const entry of entries) {
      const view = entry.rootBounds ? entry.rootBounds.height : 0;
      const seen =
        entry.isIntersecting && (entry.intersectionRatio >= SEEN_RATIO || entry.intersectionRect.height >= view * SEEN_RATIO);
      if (seen) this.visible.add(entry.target);
      else this.visible.delete(entry.target);
    }
    this.update();
  }

  /** Counts what is on screen as seen, if the tab is visible. */
  update() {
    if (document.visibilityState !== "visible" || this.visible.size === 0) return;
    const items = this.page.list.querySelectorAll("li.message[data-seq]");
    const newest = items[items.length - 1];
    let seq = 0;
    for (const li of this.visible) {
      if (!li.isConnected) continue;
      seq = Math.max(seq, Number(li.dataset.seq));
    }
    if (newest && this.visible.has(newest)) seq = Math.max(seq, this.page.lastSeq());
    if (seq <= this.seenSeq) return;
    this.seenSeq = seq;
    this.refreshTitle();
    this.schedule();
  }

  schedule() {
    if (this.timer !== null || this.seenSeq <= Math.max(this.serverSeq, this.sentSeq)) return;
    const wait = Math.max(0, this.lastSentAt + READ_EVERY_MS - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait);
  }

  /**
   * Sends what is seen now, throttle or not: the tab is going out of view, or the page is being
   * left (chat.js calls this from the connection's `onPageHide`, before the socket closes), and
   * the last second's `read` must not be lost.
   */
  flushNow() {
    clearTimeout(this.timer);
    this.timer = null;
    this.flush();
  }

  flush() {
    const seq = this.seenSeq;
    if (seq <= Math.max(this.serverSeq, this.sentSeq) || !this.page.inRoom()) return;
    if (this.page.conn.send({ type: "read", room: this.page.room, seq, ref: "read" })) {
      this.sentSeq = seq;
      this.lastSentAt = performance.now();
    }
  }

  /** Unread messages here: from others, not deleted, after what is read. */
  counts() {
    const upTo = this.readUpTo;
    let unread = 0;
    let mentioned = 0;
    for (const li of this.page.list.querySelectorAll("li.message[data-seq]:not(.own):not(.deleted)")) {
      if (Number(li.dataset.seq) <= upTo) continue;
      unread += 1;
      if (li.querySelector(".text mark.mention")) mentioned += 1;
    }
    return { unread, mentioned };
  }

  /** Recomputes the title soon (once for a batch of changes). */
  refreshTitle() {
    if (this.titleTimer !== null) return;
    this.titleTimer = setTimeout(() => {
      this.titleTimer = null;
      const { unread, mentioned } = this.counts();
      showCountsInTitle(unread, mentioned);
    }, 0);
  }

  /** A message was added to the list: a new mention of the viewer may notify. */
  arrived(li) {
    const seq = Number(li.dataset.seq);
    if (this.enteredAt === null || seq <= this.enteredAt || seq <= this.readUpTo) return;
    if (li.classList.contains("own") || li.classList.contains("deleted")) return;
    const text = li.querySelector(".text")?.textContent ?? "";
    if (!li.querySelector(".text mark.mention") && !mentions(text, this.page.needles())) return;
    this.notify.mentioned(li, text);
  }
}

/**
 * Browser notifications for mentions while the tab is hidden, behind the "Notify me of
 * mentions" control. Permission is only ever asked for from a click on that control: browsers
 * ignore or punish asking on load, and it would be rude.
 */
export class MentionNotifier {
  constructor(room) {
    this.room = room;
    this.button = document.getElementById("notify-toggle");
    this.supported = typeof Notification === "function" && this.button !== null;
    if (!this.supported) return;
    this.button.hidden = false;
    this.button.addEventListener("click", () => this.toggle());
    // The permission may change in the browser's settings while the page is open.
    document.addEventListener("visibilitychange", () => this.render());
    this.render();
  }

  get wanted() {
    try {
      return localStorage.getItem(NOTIFY_KEY) === "on";
    } catch {
      return false;
    }
  }

  set wanted(on) {
    try {
      if (on) localStorage.setItem(NOTIFY_KEY, "on");
      else localStorage.removeItem(NOTIFY_KEY);
    } catch {
      // storage refused (private mode): the choice lasts as long as the page
    }
    this.sessionWanted = on;
  }

  get on() {
    return this.supported && Notification.permission === "granted" && (this.sessionWanted ?? this.wanted);
  }

  async toggle() {
    if (this.on) {
      this.wanted = false;
      this.render();
      return;
    }
    if (Notification.permission === "default") {
      this.button.setAttribute("aria-busy", "true");
      try {
        await Notification.requestPermission();
      } catch {
        // an old browser's callback form, or the request failed: the permission says what is
      } finally {
        this.button.removeAttribute("aria-busy");
      }
    }
    this.wanted = Notification.permission === "granted";
    this.render();
  }

  render() {
    if (!this.supported) return;
    const permission = Notification.permission;
    const on = this.on;
    this.button.setAttribute("aria-pressed", String(on));
    this.button.dataset.permission = permission;
    let state;
    if (permission === "denied") state = "Notifications are blocked for this site in the browser’s settings";
    else if (on) state = "On: you are notified of mentions while this tab is hidden";
    else state = "Off";
    this.button.title = `Notify me of mentions · ${state}`;
    const note = document.getElementById("notify-state");
    if (note) note.textContent = state;
  }

  mentioned(li, text) {
    if (!this.on || !document.hidden) return;
    const author = li.querySelector(".author")?.textContent ?? "Someone";
    const where = document.title.replace(/^\([^)]*\) /, "").replace(/ · confab$/, "");
    try {
      const notification = new Notification(`${author} mentioned you in ${where}`, {
        body: text.length > 200 ? `${text.slice(0, 199)}…` : text,
        tag: `confab:${this.room}:${li.dataset.seq}`,
      });
      notification.addEventListener("click", () => {
        window.focus();
        if (li.isConnected) li.scrollIntoView({ block: "center" });
        notification.close();
      });
    } catch {
      // e.g. a browser that only shows notifications from a service worker: nothing to show
    }
  }
}

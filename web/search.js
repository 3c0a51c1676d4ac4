// The room's search box (docs/protocol.md: `search`, `search_results`): words in, the room's
// matching messages out, newest first, a page at a time ("More results" asks again with `before`
// = the last seq listed). A result of a message loaded on the page scrolls to it; an older one
// says so. Everything a sender wrote goes in through `textContent`.

const PAGE = 20;
const MAX_QUERY_CHARS = 200;

export class Search {
  /**
   * @param {object} page
   * @param {string} page.room
   * @param {import("/assets/client.js").Connection} page.conn
   * @param {() => boolean} page.inRoom whether the connection has joined the room
   * @param {(seq: number) => boolean} page.goTo shows message `seq` if it is loaded
   */
  constructor(page) {
    this.page = page;
    const $ = (id) => document.getElementById(id);
    this.ui = {
      open: $("search-open"),
      panel: $("search"),
      form: $("search-form"),
      input: $("search-input"),
      close: $("search-close"),
      status: $("search-status"),
      results: $("search-results"),
      more: $("search-more"),
    };
    /** The search being shown: {query, listed, lastSeq, waiting} or null. */
    this.current = null;
    this.retry = null;
    if (!this.ui.panel) return;
    this.ui.open.addEventListener("click", () => (this.ui.panel.hidden ? this.show() : this.hide()));
    this.ui.close.addEventListener("click", () => this.hide());
    this.ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.start();
    });
    this.ui.more.addEventListener("click", () => this.ask());
    this.ui.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        this.hide();
      }
    });
  }

  show() {
    this.ui.panel.hidden = false;
    this.ui.open.setAttribute("aria-expanded", "true");
    this.ui.input.focus();
    this.ui.input.select();
  }

  hide() {
    this.ui.panel.hidden = true;
    this.ui.open.setAttribute("aria-expanded", "false");
    clearTimeout(this.retry);
    if (this.current) this.current.waiting = false;
    this.ui.open.focus();
  }

  start() {
    const query = this.ui.input.value.trim().slice(0, MAX_QUERY_CHARS);
    clearTimeout(this.retry);
    this.ui.results.replaceChildren();
    this.ui.more.hidden = true;
    if (query === "") {
      this.current = null;
      this.say("Type a word or two to search for.");
      return;
    }
    this.current = { query, listed: 0, lastSeq: null, waiting: false };
    this.ask();
  }

  /** Asks for the next page of the current search. */
  ask() {
    const search = this.current;
    if (!search || search.waiting) return;
    const frame = { type: "search", room: this.page.room, query: search.query, limit: PAGE, ref: "search" };
    if (search.lastSeq !== null) frame.before = search.lastSeq;
    if (!this.page.inRoom() || !this.page.conn.send(frame)) {
      this.say("Not connected right now; try again in a moment.");
      return;
    }
    search.waiting = true;
    this.ui.more.disabled = true;
    if (search.listed === 0) this.say("Searching…");
  }

  /** `search_results`: a page of the current search (answers to older searches are dropped). */
  results(frame) {
    const search = this.current;
    if (!search || !search.waiting || frame.query !== search.query) return;
    search.waiting = false;
    this.ui.more.disabled = false;
    const messages = Array.isArray(frame.messages) ? frame.messages : [];
    for (const m of messages) {
      if (!m || !Number.isInteger(m.seq) || typeof m.text !== "string" || !m.user) continue;
      if (search.lastSeq !== null && m.seq >= search.lastSeq) continue;
      this.ui.results.append(this.item(m));
      search.listed += 1;
      search.lastSeq = m.seq;
    }
    const more = frame.has_more === true && search.lastSeq !== null;
    this.ui.more.hidden = !more;
    if (search.listed === 0) this.say(`No messages match “${search.query}”.`);
    else this.say(`${search.listed} ${search.listed === 1 ? "result" : "results"}${more ? ", more available" : ""}.`);
  }

  /** An `error` answering a `search`; true when it was one. */
  refused(frame) {
    if (frame.ref !== "search") return false;
    const search = this.current;
    if (!search) return true;
    search.waiting = false;
    this.ui.more.disabled = false;
    if (frame.code === "rate_limited") {
      const wait = Number.isFinite(frame.retry_after_ms) ? Math.max(0, frame.retry_after_ms) : 1000;
      this.say("Searching too fast; trying again in a moment…");
      this.retry = setTimeout(() => this.ask(), wait);
    } else {
      this.say(frame.message ? `The search failed: ${frame.message}` : "The search failed.");
    }
    return true;
  }

  /** Message `seq` was deleted: it no longer matches anything. */
  forget(seq) {
    const item = this.ui.results?.querySelector(`li[data-seq="${seq}"]`);
    if (!item || !this.current) return;
    item.remove();
    this.current.listed -= 1;
  }

  item(m) {
    const li = document.createElement("li");
    li.dataset.seq = String(m.seq);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "search-result";
    const meta = document.createElement("span");
    meta.className = "search-meta";
    const author = document.createElement("span");
    author.className = "author";
    author.dir = "auto";
    author.textContent = m.user.name ?? "";
    meta.append(author, " ", when(m.ts));
    const text = document.createElement("span");
    text.className = "search-text";
    text.dir = "auto";
    text.textContent = m.text;
    button.append(meta, text);
    button.addEventListener("click", () => {
      if (!this.page.goTo(m.seq)) {
        this.say("That message is older than the ones loaded here: scroll up in the conversation to load it.");
      }
    });
    li.append(button);
    return li;
  }

  say(text) {
    this.ui.status.textContent = text;
  }
}

/** A `<time>` with the hour, and the date unless it is today. */
function when(ts) {
  const time = document.createElement("time");
  const date = new Date(ts);
  if (!Number.isInteger(ts) || Number.isNaN(date.getTime())) return time;
  time.dateTime = date.toISOString();
  time.title = date.toLocaleString(undefined, { dateStyle: "full", timeStyle: "medium" });
  const today = new Date().toDateString() === date.toDateString();
  time.textContent = today
    ? date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  return time;
}

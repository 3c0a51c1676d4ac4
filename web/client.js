// A small reconnecting client for confab's WebSocket protocol (docs/protocol.md).
//
// It owns one WebSocket at a time to `/ws` on the page's own origin (the session cookie
// authenticates it), parses frames, and reconnects forever with exponential backoff and full
// jitter. It knows nothing about rooms: pages decide what to send after `hello` and call
// `resetBackoff()` once the connection proved useful (a `joined`, a `rooms` snapshot).

/** The close code of a socket whose session was signed out or revoked (docs/protocol.md). */
export const SESSION_REVOKED = 4003;
/** An administrator closed this user's connections: reconnect only when the user asks. */
export const CLOSED_BY_ADMIN = 4004;
/** The user was banned from the server: their session is gone and they may not sign in. */
export const BANNED = 4005;
const BACKOFF_BASE_MS = 300;
const BACKOFF_CAP_MS = 8000;
// The server drops a silent connection after `idle_timeout` (45 s by default) and pings us every
// third of that; the browser answers those pings itself, but they are invisible to scripts. An
// application ping every 20 s gives us something to hear back, so a connection that died without
// a close frame (laptop lid, flaky Wi-Fi) is noticed and replaced.
const PING_EVERY_MS = 20000;
const SILENCE_LIMIT_MS = 50000;

export class Connection {
  /**
   * @param {object} handlers
   * @param {(frame: object) => void} handlers.onFrame every frame except `pong`, `hello` included
   * @param {(info: {code: number, hadHello: boolean, stopped: boolean}) => void} [handlers.onClose]
   *   the socket closed or failed to open; `stopped` when `stop()` closed it. After code 4003
   *   (session ended) nothing reconnects until the handler says so (see `closed`).
   * @param {() => void} [handlers.onConnecting] a new attempt starts
   * @param {() => void} [handlers.onPageHide] the page is being left, the socket still open
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.hadHello = false;
    this.lastHeard = 0;
    this.heartbeat = null;
    this.onOnline = () => this.reconnectNow();
    // The browser says the network is gone: the socket is most likely dead, but TCP may take
    // minutes to notice. Drop it now so the page shows it is reconnecting and retries; resuming
    // with `since` makes a needless reconnect cheap and lossless.
    this.onOffline = () => this.drop();
    this.onVisible = () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    };
    // Leaving the page closes the socket at once, so the server sees us go now rather than at
    // the idle timeout (a page kept in the back/forward cache could otherwise stay "online").
    // Coming back from that cache starts again, and the page resumes where it was.
    this.suspended = false;
    window.addEventListener("pagehide", () => {
      if (this.stopped) return;
      // The page's last words (a read marker waiting for its throttle) go before the close.
      this.handlers.onPageHide?.();
      this.suspended = true;
      this.stop();
    });
    window.addEventListener("pageshow", () => {
      if (!this.suspended) return;
      this.suspended = false;
      this.start();
    });
  }

  get url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  /** True when the socket is open (frames can be sent). */
  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    document.addEventListener("visibilitychange", this.onVisible);
    this.heartbeat = setInterval(() => this.beat(), PING_EVERY_MS);
    this.connect();
  }

  /** Closes the socket and stops reconnecting until `start()` is called again. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    clearInterval(this.heartbeat);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    document.removeEventListener("visibilitychange", this.onVisible);
    const ws = this.ws;
    if (ws) {
      this.closed(1000);
      ws.close(1000);
    }
  }

  /** Sends one frame; returns false (and sends nothing) when the socket is not open. */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Call when the connection did something useful, so the next drop retries quickly. */
  resetBackoff() {
    this.attempt = 0;
  }

  /** Skips the remaining backoff wait (e.g. the browser says the network is back). */
  reconnectNow() {
    if (this.stopped || this.ws !== null) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  connect() {
    this.timer = null;
    this.hadHello = false;
    this.handlers.onConnecting?.();
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.lastHeard = Date.now();
    ws.onopen = () => {
      if (ws === this.ws) this.lastHeard = Date.now();
    };
    ws.onmessage = (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      if (typeof event.data !== "string") return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame === null || typeof frame !== "object" || typeof frame.type !== "string") return;
      if (frame.type === "pong") return;
      if (frame.type === "hello") this.hadHello = true;
      this.handlers.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.ws) return;
      this.closed(event.code);
    };
  }

  closed(code) {
    this.ws = null;
    const hadHello = this.hadHello;
    this.hadHello = false;
    this.handlers.onClose?.({ code, hadHello, stopped: this.stopped });
    // A session that ended (4003) would only be refused again: the page asks who is signed in
    // now, then calls `reconnectNow()`, `stop()` or, when it cannot tell, `scheduleReconnect()`.
    // After 4004 and 4005 an administrator meant the connection to end: the page says so.
    const final = code === SESSION_REVOKED || code === CLOSED_BY_ADMIN || code === BANNED;
    if (!this.stopped && !final) this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.stopped || this.timer !== null) return;
    // Exponential backoff with full jitter: wait a random time in [0, min(cap, base * 2^n)).
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 16);
    const delay = Math.random() * ceiling;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Abandons the current socket (if any) and reconnects with backoff. */
  drop() {
    const ws = this.ws;
    if (ws === null) return;
    // Detach it first so its late close event is ignored.
    this.closed(4000);
    try {
      ws.close();
    } catch {
      // already closing
    }
  }

  beat() {
    if (!this.isOpen) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      // The socket looks dead; don't wait for TCP to notice.
      this.drop();
      return;
    }
    this.send({ type: "ping" });
  }
}

// The WebSocket connection: connect, stay connected, reconnect.
//
// States: "connecting" (first attempt), "online" (hello received), "reconnecting"
// (waiting out a backoff delay, `retryAt` says until when), "offline" (the browser
// says there is no network; we wait for it), "stopped" (signed out).
//
// What to send after a (re)connect -- resume cursors, pending messages -- is the
// chat engine's business (chat.js); this module only moves frames and matches replies
// to requests by id.

import { ROOT } from "./api.js";
import { Emitter } from "./store.js";

// Reconnect delays grow 0.5 s, 1 s, 2 s ... up to 30 s, each with "full jitter" (a
// random delay between half and all of it) so a restarted server is not hit by every
// client in the same instant.
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// Browsers cannot see WebSocket pings, so the client pings in band: a connection that
// stays silent this long after a ping is dead (a laptop lid, a NAT that forgot us).
const PING_EVERY_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 15_000;

// Close codes from docs/protocol.md.
export const CLOSE_TOKEN_EXPIRED = 4001;
export const CLOSE_SESSION_REVOKED = 4003;

export class SocketError extends Error {
  constructor(code, message, frame = null) {
    super(message);
    this.name = "SocketError";
    this.code = code;
    this.frame = frame;
  }
}

export class Socket extends Emitter {
  // Events: "state" (state), "hello" (frame), "frame" (every other frame),
  // "closed" ({code, opened}), "revoked".
  state = "stopped";
  retryAt = 0;
  #ws = null;
  #attempt = 0;
  #retryTimer = 0;
  #pingTimer = 0;
  #pongTimer = 0;
  #nextId = 1;
  #preparing = false; // between "connect now" and the WebSocket existing
  #requests = new Map(); // id -> {resolve, reject, timer}
  #getToken;
  #beforeConnect;

  /**
   * `getToken()` returns the access token to connect with; `beforeConnect(failedBefore)`
   * may refresh it (it gets true when the previous attempt failed during the handshake,
   * which a browser reports only as a close without a status).
   */
  constructor({ getToken, beforeConnect }) {
    super();
    this.#getToken = getToken;
    this.#beforeConnect = beforeConnect;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => {
      // The browser knows the network is gone before TCP does: drop the socket now and
      // show it, instead of writing into a dead connection for a minute.
      if (this.state === "stopped") return;
      clearTimeout(this.#retryTimer);
      this.#drop();
      this.#setState("offline");
    });
    document.addEventListener("visibilitychange", () => {
      // Timers of hidden tabs are throttled; coming back is a good moment to check.
      if (document.visibilityState === "visible" && this.state === "reconnecting") this.reconnectNow();
      else if (document.visibilityState === "visible" && this.state === "online") this.#ping();
    });
  }

  get online() {
    return this.state === "online";
  }

  start() {
    if (this.state !== "stopped") return;
    this.#attempt = 0;
    this.#setState("connecting");
    this.#connect(false);
  }

  stop() {
    clearTimeout(this.#retryTimer);
    this.#drop();
    this.#setState("stopped");
  }

  /** Skip the remaining backoff delay (the "Retry now" button, the network is back). */
  reconnectNow() {
    if (this.state === "stopped" || this.state === "online") return;
    if (this.#preparing || (this.#ws && this.#ws.readyState === WebSocket.CONNECTING)) return;
    clearTimeout(this.#retryTimer);
    this.#setState(this.state === "offline" ? "reconnecting" : this.state);
    this.#connect(false);
  }

  /** Close and reconnect (a hung connection, a token that needs a new handshake). */
  restart() {
    if (this.state === "stopped") return;
    this.#drop();
    this.#scheduleReconnect(false);
  }

  /** Send a frame if the socket is open; returns whether it was written. */
  send(frame) {
    if (!this.#ws || this.#ws.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Send a frame with an id and wait for the reply carrying that id. Rejects with a
   * SocketError: the server's error frame (its code), "DISCONNECTED" or "TIMEOUT".
   */
  request(frame, { id = `r${this.#nextId++}`, timeout = REQUEST_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
      if (!this.send({ ...frame, id })) {
        reject(new SocketError("DISCONNECTED", "not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this.#requests.delete(id);
        reject(new SocketError("TIMEOUT", "no reply from the server"));
      }, timeout);
      this.#requests.set(id, { resolve, reject, timer });
    });
  }

  // -- connection -------------------------------------------------------------------

  async #connect(failedBefore) {
    if (this.state === "stopped" || this.#ws || this.#preparing) return;
    if (navigator.onLine === false) {
      this.#setState("offline");
      return;
    }
    this.#preparing = true;
    try {
      await this.#beforeConnect?.(failedBefore);
    } catch {
      // Still no way in (the server is down, or the session ended and we stopped).
      if (this.state !== "stopped" && this.state !== "offline") this.#scheduleReconnect(failedBefore);
      return;
    } finally {
      this.#preparing = false;
    }
    // Stopped, or the network went away while the token was being checked.
    if (this.state === "stopped" || this.state === "offline") return;
    const token = this.#getToken();
    if (!token) {
      this.#scheduleReconnect(true);
      return;
    }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // resume=1: this client always sends its cursors, so the server must wait for them
    // rather than start from the account's delivery cursor after a grace period.
    const ws = new WebSocket(
      `${scheme}//${location.host}${ROOT}/ws?resume=1&token=${encodeURIComponent(token)}`,
    );
    this.#ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (event) => {
      if (ws !== this.#ws) return;
      this.#alive();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.#dispatch(frame);
    };
    ws.onclose = (event) => {
      if (ws !== this.#ws) return; // an old socket we already replaced
      this.#ws = null;
      this.#stopPinging();
      this.#failRequests();
      this.emit("closed", { code: event.code, opened });
      if (this.state === "stopped" || this.state === "offline") return;
      if (event.code === CLOSE_SESSION_REVOKED) {
        this.emit("revoked");
        return;
      }
      // 4001: the token expired; anything else: the network or the server. Either way
      // try again, first checking the token when the handshake itself failed.
      this.#scheduleReconnect(!opened || event.code === CLOSE_TOKEN_EXPIRED);
    };
  }

  #dispatch(frame) {
    if (frame.type === "hello") {
      this.#attempt = 0;
      this.#setState("online");
      this.#startPinging();
      this.emit("hello", frame);
      return;
    }
    if (frame.type === "pong") return;
    if (frame.id !== undefined && frame.id !== null && this.#requests.has(frame.id)) {
      const request = this.#requests.get(frame.id);
      this.#requests.delete(frame.id);
      clearTimeout(request.timer);
      if (frame.type === "error") request.reject(new SocketError(frame.code, frame.message, frame));
      else request.resolve(frame);
      return;
    }
    this.emit("frame", frame);
  }

  #scheduleReconnect(failedBefore) {
    clearTimeout(this.#retryTimer);
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.#attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#attempt = Math.min(this.#attempt + 1, 16);
    this.retryAt = Date.now() + delay;
    this.#setState("reconnecting");
    this.#retryTimer = setTimeout(() => this.#connect(failedBefore), delay);
  }

  #drop() {
    const ws = this.#ws;
    this.#ws = null;
    this.#stopPinging();
    this.#failRequests();
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000, "bye");
      } catch {
        // already closing
      }
      this.emit("closed", { code: 1000, opened: true });
    }
  }

  #failRequests() {
    for (const { reject, timer } of this.#requests.values()) {
      clearTimeout(timer);
      reject(new SocketError("DISCONNECTED", "the connection closed"));
    }
    this.#requests.clear();
  }

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  // -- heartbeat --------------------------------------------------------------------

  #startPinging() {
    this.#stopPinging();
    const jitter = 0.8 + Math.random() * 0.4;
    this.#pingTimer = setInterval(() => this.#ping(), PING_EVERY_MS * jitter);
  }

  #stopPinging() {
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
    this.#pongTimer = 0;
  }

  #ping() {
    if (this.#pongTimer || !this.send({ type: "ping" })) return;
    this.#pongTimer = setTimeout(() => {
      this.#pongTimer = 0;
      this.restart();
    }, PONG_TIMEOUT_MS);
  }

  /** Any frame proves the connection is alive. */
  #alive() {
    clearTimeout(this.#pongTimer);
    this.#pongTimer = 0;
  }
}

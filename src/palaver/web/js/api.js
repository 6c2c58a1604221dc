// REST client with silent token refresh.
//
// The access token lives only in this module's memory. The refresh token is an
// HttpOnly cookie (path /api/auth) that the server sets at login and rotates at every
// refresh; scripts never see it, so an XSS bug could not steal a long-lived credential.
// After a reload the page calls /api/auth/refresh to get a fresh access token.

import { noteSession } from "./session-hint.js";
import { Emitter } from "./store.js";

/** Prefix of every server URL (the page's root path when served under a sub-path). */
export const ROOT = (document.querySelector('meta[name="palaver-root"]')?.content || "").replace(/\/$/, "");

const REFRESH_PATH = "/api/auth/refresh";
// Refresh a minute before the access token expires; short-lived tokens (a test
// setup, a strict deployment) at 70% of their life instead.
const REFRESH_MARGIN_MS = 60_000;
const REFRESH_RETRY_MS = 10_000;

export class ApiError extends Error {
  constructor(status, code, message, { field = null, retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
    this.retryAfter = retryAfter;
  }

  /** The session is over (refresh refused): the user must sign in again. */
  get sessionEnded() {
    return this.status === 401 || this.code === "ACCOUNT_DISABLED" || this.code === "SESSION_REVOKED";
  }
}

export class Api extends Emitter {
  // Events: "token" (a new access token), "ended" (the session is over).
  #token = null;
  #expiresAt = 0;
  #timer = 0;
  #refreshing = null;

  get token() {
    return this.#token;
  }

  get expiresAt() {
    return this.#expiresAt;
  }

  get signedIn() {
    return this.#token !== null;
  }

  // -- session ----------------------------------------------------------------------

  async login(login, password) {
    return this.#start(await this.#fetch("POST", "/api/auth/login", { body: { login, password }, auth: false }));
  }

  async register(fields) {
    return this.#start(await this.#fetch("POST", "/api/auth/register", { body: fields, auth: false }));
  }

  /** End the session on the server (best effort) and forget the token. */
  async logout() {
    try {
      if (this.#token) await this.#fetch("POST", "/api/auth/logout", { retry: false });
    } catch {
      // Offline or already revoked: the cookie stays until it expires, the token is gone.
    } finally {
      this.#clear();
    }
  }

  /**
   * Get a new access token with the refresh cookie. One refresh at a time per tab, and
   * one at a time across tabs (Web Locks): the server rotates the refresh token and
   * treats a second use of the old one as theft, ending the session everywhere.
   * Throws ApiError; `sessionEnded` says the user has to sign in again.
   */
  refresh() {
    this.#refreshing ??= (async () => {
      const run = () => this.#fetch("POST", REFRESH_PATH, { auth: false });
      try {
        const body = navigator.locks ? await navigator.locks.request("palaver-refresh", run) : await run();
        return this.#start(body);
      } catch (error) {
        if (error instanceof ApiError && error.sessionEnded) this.#end();
        else this.#schedule(REFRESH_RETRY_MS);
        throw error;
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  #start(body) {
    this.#token = body.access_token;
    this.#expiresAt = Date.now() + body.expires_in * 1000;
    noteSession(true);
    const lifetime = body.expires_in * 1000;
    this.#schedule(lifetime > 2 * REFRESH_MARGIN_MS ? lifetime - REFRESH_MARGIN_MS : lifetime * 0.7);
    this.emit("token", this.#token);
    return body.user;
  }

  #schedule(ms) {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.refresh().catch(() => {}), ms);
  }

  #clear() {
    clearTimeout(this.#timer);
    this.#token = null;
    this.#expiresAt = 0;
    noteSession(false);
  }

  #end() {
    const had = this.#token !== null;
    this.#clear();
    if (had) this.emit("ended");
  }

  // -- requests ---------------------------------------------------------------------

  get(path) {
    return this.#fetch("GET", path);
  }

  post(path, body) {
    return this.#fetch("POST", path, { body });
  }

  /** Any other method (PUT, DELETE). */
  request(method, path, body) {
    return this.#fetch(method, path, { body });
  }

  async #fetch(method, path, { body, auth = true, retry = true } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.#token) headers.Authorization = `Bearer ${this.#token}`;
    let response;
    try {
      response = await fetch(ROOT + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "NETWORK", "Cannot reach the server. Check your connection.");
    }
    if (response.status === 401 && auth && retry) {
      // The access token expired (a sleeping laptop, a throttled timer): refresh once.
      await this.refresh();
      return this.#fetch(method, path, { body, auth, retry: false });
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data?.error ?? {};
      const retryAfter = Number(response.headers.get("Retry-After")) || error.retry_after || null;
      throw new ApiError(response.status, error.code ?? `HTTP_${response.status}`, error.message ?? response.statusText, {
        field: error.field ?? null,
        retryAfter,
      });
    }
    return data;
  }
}

export const api = new Api();

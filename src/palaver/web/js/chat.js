// The chat engine: turns socket frames and REST pages into state, and user actions
// into frames and requests.
//
// Delivery rules (see docs/protocol.md, "Delivery: cursors, resume, exactly once"):
// * Messages are stored by (conversation, seq), so whatever arrives twice is kept once.
// * After every (re)connect the client sends `resume` with each conversation's cursor
//   and the server sends what it missed, in order; only then are pending messages sent.
// * Every message is sent with a client_msg_id and stays in the outbox (shown as
//   pending, kept across reloads) until its ack -- or its own `message` frame -- comes
//   back. A resend after a reconnect carries the same id, and the server answers it with
//   the original ack instead of storing it twice.

import { api, ApiError } from "./api.js";
import { isEntry } from "./rich.js";
import { Socket, SocketError } from "./socket.js";
import { Emitter, store } from "./store.js";
import { onModerationFrame } from "./moderation.js";

const HISTORY_PAGE = 50;
// Delivery receipts are coalesced: one frame per conversation per burst of messages.
const DELIVERED_DELAY_MS = 300;
// The server forwards one "typing" per user per 2 s and shows it for 6 s; renewing
// every 3 s keeps the indicator on without a gap.
const TYPING_RENEW_MS = 3_000;
// Failures worth retrying (with the same client_msg_id) and how often.
const RETRYABLE = new Set(["UNAVAILABLE", "INTERNAL_ERROR", "TIMEOUT"]);
const MAX_SEND_RETRIES = 6;

export class Chat extends Emitter {
  // Events: "incoming" ({conversation, message}) for notifications, "ended" (reason)
  // when the session is over, "opened" (id) when a conversation should be shown,
  // "stream" ({conversation, message}) once for every stream entry newly held (live,
  // resumed or acknowledged; not history pages) for views that follow threads.
  synced = false; // the current socket has resumed
  #deliveredTimers = new Map();
  #typing = { conversationId: null, sentAt: 0 };
  #typingTimers = new Map();
  #connectStartedAt = 0;
  #filling = new Set();
  #sending = null; // the outbox entry waiting for its ack
  #pumpTimer = 0;

  constructor() {
    super();
    this.socket = new Socket({
      getToken: () => api.token,
      beforeConnect: (failedBefore) => this.#beforeConnect(failedBefore),
    });
    this.socket.on("state", (state) => {
      store.connection = { state, retryAt: this.socket.retryAt };
      store.emit("connection");
    });
    this.socket.on("hello", (frame) => this.#onHello(frame));
    this.socket.on("frame", (frame) => this.#onFrame(frame));
    this.socket.on("closed", () => {
      this.synced = false;
      for (const conversation of store.conversations.values()) {
        if (conversation.typing.size) {
          conversation.typing.clear();
          store.emit("typing", conversation.id);
        }
      }
    });
    this.socket.on("revoked", () => this.emit("ended", "Your session ended. Please sign in again."));
    // A refreshed token is handed to the open socket, which would otherwise be closed
    // with 4001 when the old one expires.
    api.on("token", (token) => {
      if (this.socket.online) this.socket.request({ type: "auth", token }).catch(() => this.socket.restart());
    });
  }

  get me() {
    return store.me;
  }

  // -- lifecycle --------------------------------------------------------------------

  /** Load the conversation list, then go live. */
  async start() {
    this.#loadOutbox();
    await this.loadConversations();
    this.socket.start();
  }

  stop() {
    this.socket.stop();
    this.synced = false;
    for (const timer of this.#deliveredTimers.values()) clearTimeout(timer);
    this.#deliveredTimers.clear();
  }

  /** Forget everything this user had locally (at sign-out). */
  forget() {
    try {
      if (store.me) sessionStorage.removeItem(this.#outboxKey());
    } catch {
      // storage disabled: nothing was kept
    }
  }

  async #beforeConnect(failedBefore) {
    this.#connectStartedAt = Date.now();
    if (!api.token || api.expiresAt - Date.now() < 30_000) {
      await api.refresh();
      return;
    }
    if (failedBefore) {
      // The handshake failed, and a browser does not say why: ask REST. A 401 there
      // refreshes the token (or ends the session); a network error means the server
      // is still away, and we wait out the next backoff delay.
      await api.get("/api/auth/me");
    }
  }

  // -- conversations ----------------------------------------------------------------

  async loadConversations() {
    const items = await api.get("/api/conversations");
    for (const item of items) this.#absorbSummary(item);
    store.emit("conversations");
  }

  /** The server's unread count again, after a delete of a message this page never held. */
  async #recount(conversation) {
    conversation.unreadStale = false;
    try {
      await this.loadConversations();
    } catch {
      // The next list refresh (a reconnect's hello) brings the count anyway.
    }
  }

  #absorbSummary(item) {
    const conversation = store.ensure(item.id);
    conversation.update(item);
    conversation.seenAt ??= Date.now();
    if (conversation.cursor === null) conversation.cursor = item.last_seq ?? 0;
    if (typeof item.unread === "number") conversation.syncUnread(item.unread, item.last_seq ?? 0, this.me);
    if (item.mentions > 0) conversation.mentioned = true; // counted by the server
    if (item.last_message?.sender_id) store.names.set(item.last_message.sender_id, item.last_message.sender_name);
    if (item.peer) store.names.set(item.peer.id, item.peer.display_name);
    return conversation;
  }

  async #loadConversation(id) {
    try {
      const item = await api.get(`/api/conversations/${id}`);
      const conversation = store.ensure(id);
      conversation.update(item);
      if (item.peer) store.names.set(item.peer.id, item.peer.display_name);
      store.emit("conversations");
      if (store.activeId === id) store.emit("active");
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.#remove(id);
    }
  }

  #remove(id) {
    if (!store.conversations.delete(id)) return;
    const before = store.outbox.length;
    store.outbox = store.outbox.filter((entry) => entry.conversation_id !== id);
    if (store.outbox.length !== before) this.#saveOutbox();
    if (store.activeId === id) this.open(null);
    store.emit("conversations");
  }

  /** Show a conversation (null: none): load its history and members, mark it read. */
  open(id) {
    const previous = store.active;
    if (previous && previous.id !== id) this.stopTyping(previous);
    store.activeId = id;
    const conversation = store.active;
    store.emit("active");
    if (!conversation) return;
    if (!conversation.loaded) this.loadLatest(conversation);
    if (!conversation.members || conversation.membersStale) this.loadMembers(conversation);
    if (conversation.peer && !store.lastSeen.has(conversation.peer.id)) this.#loadLastSeen(conversation.peer.id);
  }

  /** "last seen ..." for the header of a direct conversation. */
  async #loadLastSeen(userId) {
    try {
      const user = await api.get(`/api/users/${userId}`);
      if (user.last_seen_at) {
        store.lastSeen.set(userId, user.last_seen_at);
        store.emit("presence", userId);
      }
    } catch {
      // The header just says "offline".
    }
  }

  async loadLatest(conversation) {
    if (conversation.loadingLatest) return;
    conversation.loadingLatest = true;
    store.emit("history", conversation.id);
    try {
      const page = await api.get(`/api/conversations/${conversation.id}/messages?limit=${HISTORY_PAGE}`);
      this.#absorbPage(conversation, page);
      if (conversation.cursor === null) {
        // Joined live and nothing arrived yet: the page's newest is where we stand.
        conversation.cursor = page.messages.at(-1)?.seq ?? 0;
      }
      conversation.advance();
      conversation.loaded = true;
      conversation.hasMoreBefore = page.has_more && !page.gap;
    } catch (error) {
      this.#report(error, "Could not load messages");
    } finally {
      conversation.loadingLatest = false;
      store.emit("history", conversation.id);
      store.emit("messages", conversation.id);
      store.emit("conversations");
    }
  }

  /** Fetch the page before the oldest message held (infinite scroll). */
  async loadOlder(conversation) {
    if (!conversation.loaded || !conversation.hasMoreBefore || conversation.loadingOlder) return;
    const before = conversation.oldestSeq;
    if (before === null || before <= 1) {
      conversation.hasMoreBefore = false;
      store.emit("history", conversation.id);
      return;
    }
    conversation.loadingOlder = true;
    store.emit("history", conversation.id);
    try {
      const page = await api.get(
        `/api/conversations/${conversation.id}/messages?before=${before}&limit=${HISTORY_PAGE}`,
      );
      this.#absorbPage(conversation, page);
      conversation.hasMoreBefore = page.has_more && !page.gap && page.messages.length > 0;
      store.emit("messages", conversation.id);
    } catch (error) {
      this.#report(error, "Could not load older messages");
    } finally {
      conversation.loadingOlder = false;
      store.emit("history", conversation.id);
    }
  }

  #absorbPage(conversation, page) {
    for (const message of page.messages) {
      if (message.sender_id && message.sender_name) store.names.set(message.sender_id, message.sender_name);
      conversation.insert(message, this.me);
    }
  }

  /** Someone not in the loaded member list spoke or typed: it is out of date. */
  #knowMember(conversation, userId) {
    if (conversation.members && userId && !conversation.members.has(userId)) this.#refreshMembers(conversation);
  }

  #refreshMembers(conversation) {
    if (!conversation.members || conversation.membersLoading) return;
    this.loadMembers(conversation);
  }

  async loadMembers(conversation) {
    conversation.membersLoading = true;
    conversation.membersStale = false;
    try {
      const members = await api.get(`/api/conversations/${conversation.id}/members`);
      conversation.members = new Map();
      for (const member of members) {
        conversation.members.set(member.user_id, member);
        store.names.set(member.user_id, member.display_name);
        if (member.user_id === this.me.id) continue;
        conversation.noteCursor(member.user_id, member.read_seq, member.delivered_seq);
        store.presence.set(member.user_id, member.presence);
      }
      conversation.memberCount = members.length;
      store.emit("members", conversation.id);
      store.emit("messages", conversation.id);
      store.emit("presence");
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) this.#remove(conversation.id);
    } finally {
      conversation.membersLoading = false;
    }
  }

  // -- frames -----------------------------------------------------------------------

  async #onHello(hello) {
    store.me = { ...store.me, ...hello.user };
    if (hello.limits) store.limits = hello.limits;
    const cursors = {};
    const listed = new Set();
    let unknown = false;
    for (const item of hello.conversations) {
      listed.add(item.id);
      const conversation = store.ensure(item.id);
      conversation.seenAt ??= Date.now();
      if (conversation.placeholder) unknown = true;
      if (conversation.cursor === null) conversation.cursor = item.last_seq;
      // A read receipt written just before the connection died may never have arrived:
      // the server's cursor says, and the receipt is sent again after the resume.
      if (conversation.readSeq > item.read_seq) {
        conversation.unsentRead = Math.max(conversation.unsentRead ?? 0, conversation.readSeq);
      }
      conversation.readSeq = Math.max(conversation.readSeq, item.read_seq);
      // What this device learnt over REST (the list, a history page) reached it too:
      // acknowledge it, so the senders see two ticks.
      conversation.deliveredSeq = item.delivered_seq;
      conversation.syncUnread(item.unread, item.last_seq, this.me);
      cursors[item.id] = conversation.cursor;
    }
    // Conversations left on another device while this one was away.
    for (const [id, conversation] of [...store.conversations]) {
      if (!listed.has(id) && conversation.seenAt < this.#connectStartedAt) this.#remove(id);
    }
    store.emit("conversations");
    try {
      await this.socket.request({ type: "resume", cursors });
    } catch {
      return; // the socket closed again; the next hello starts over
    }
    this.synced = true;
    store.emit("synced");
    this.#pump();
    this.#loadPresence();
    for (const conversation of store.conversations.values()) {
      if (conversation.unsentRead) this.#sendRead(conversation, conversation.unsentRead);
      if ((conversation.cursor ?? 0) > conversation.deliveredSeq) this.#queueDelivered(conversation);
    }
    if (unknown) this.loadConversations().catch(() => {});
    // Receipts sent while we were away are not replayed: members' cursors are read
    // again, now for the open conversation, on opening for the others.
    for (const conversation of store.conversations.values()) conversation.membersStale = true;
    const active = store.active;
    if (active) {
      this.loadMembers(active);
      if (!active.loaded) this.loadLatest(active); // its first load failed offline
    }
  }

  #onFrame(frame) {
    switch (frame.type) {
      case "message":
        this.#onMessage(frame);
        break;
      case "ack":
        // An ack whose request timed out arrives without a waiting promise.
        this.#onAck(frame);
        break;
      case "receipt":
        this.#onReceipt(frame);
        break;
      case "typing":
        this.#onTyping(frame);
        break;
      case "presence":
        store.presence.set(frame.user_id, frame.status);
        if (frame.last_seen_at) store.lastSeen.set(frame.user_id, frame.last_seen_at);
        store.emit("presence", frame.user_id);
        break;
      case "joined":
        this.#onJoined(frame.conversation);
        break;
      case "left":
        this.#remove(frame.conversation_id);
        break;
      case "conversation_updated":
        this.#onUpdated(frame.conversation);
        break;
      case "gap":
        this.#onGap(frame);
        break;
      case "notifications":
      case "member_updated":
        onModerationFrame(frame);
        break;
      case "error":
        if (frame.code !== "NOT_FOUND") console.warn("palaver: server error", frame.code, frame.message);
        break;
      default:
        break; // frames this client does not use
    }
  }

  #onMessage(message) {
    const me = this.me;
    const conversation = store.ensure(message.conversation_id);
    conversation.seenAt ??= Date.now();
    if (conversation.placeholder && !conversation.fetching) {
      conversation.fetching = true;
      this.#loadConversation(conversation.id);
    }
    if (message.sender_id && message.sender_name) store.names.set(message.sender_id, message.sender_name);
    if (conversation.cursor === null) conversation.cursor = message.seq - 1;
    const fresh = conversation.insert(message, me);
    if (conversation.unreadStale) this.#recount(conversation);
    if (message.client_msg_id && message.sender_id === me.id) this.#settle(message.client_msg_id);
    if (message.seq > conversation.cursor + 1) this.#fillGap(conversation, message.seq);
    conversation.advance();
    if (conversation.typing.delete(message.sender_id)) store.emit("typing", conversation.id);
    if (!fresh) return;
    this.emit("stream", { conversation, message });
    if (isEntry(message)) return void store.emit("messages", conversation.id); // applied by insert
    // "X joined", "X added Y", "X left": the member list changed.
    if (message.kind === "system") this.#refreshMembers(conversation);
    else this.#knowMember(conversation, message.sender_id);
    if (message.sender_id === me.id) {
      conversation.markRead(message.seq, me); // sending implies having read (server too)
    } else {
      // A member's own message means they have read everything before it; the server
      // sends no receipt frame for that (the protocol says so), so note it here.
      if (message.kind === "text") {
        conversation.noteCursor(message.sender_id, message.seq - 1, message.seq - 1);
        store.emit("messages", conversation.id);
      }
      this.#queueDelivered(conversation);
      this.emit("incoming", { conversation, message });
    }
    store.emit("messages", conversation.id);
    store.emit("conversations");
  }

  /** Defensive: the server promises no gaps, but a hole is fetched rather than kept. */
  async #fillGap(conversation, upto) {
    if (this.#filling.has(conversation.id)) return;
    this.#filling.add(conversation.id);
    try {
      while (conversation.cursor !== null && conversation.cursor < upto - 1) {
        const page = await api.get(
          `/api/conversations/${conversation.id}/messages?after=${conversation.cursor}&limit=200`,
        );
        this.#absorbPage(conversation, page);
        const before = conversation.cursor;
        if (page.gap) conversation.cursor = Math.max(conversation.cursor, page.gap.to_seq);
        conversation.advance();
        if (conversation.cursor === before) break;
      }
    } catch {
      // The next resume asks for the range again.
    } finally {
      this.#filling.delete(conversation.id);
      store.emit("messages", conversation.id);
    }
  }

  #onGap(frame) {
    const conversation = store.conversation(frame.conversation_id);
    if (!conversation || conversation.cursor === null) return;
    conversation.cursor = Math.max(conversation.cursor, frame.to_seq);
    conversation.advance();
    store.emit("messages", conversation.id);
  }

  #onReceipt(frame) {
    const conversation = store.conversation(frame.conversation_id);
    if (!conversation) return;
    if (frame.user_id === this.me.id) {
      // This user read on another tab or device: every tab agrees on unread counts.
      conversation.deliveredSeq = Math.max(conversation.deliveredSeq, frame.delivered_seq ?? 0);
      if (conversation.markRead(frame.read_seq ?? 0, this.me)) store.emit("conversations");
      return;
    }
    conversation.noteCursor(frame.user_id, frame.read_seq, frame.delivered_seq);
    store.emit("messages", conversation.id);
    store.emit("conversations");
  }

  #onTyping(frame) {
    if (frame.user_id === this.me.id) return;
    const conversation = store.conversation(frame.conversation_id);
    if (!conversation) return;
    const key = `${frame.conversation_id}:${frame.user_id}`;
    clearTimeout(this.#typingTimers.get(key));
    this.#knowMember(conversation, frame.user_id);
    if (frame.typing) {
      const ms = (frame.expires_in ?? 6) * 1000;
      conversation.typing.set(frame.user_id, Date.now() + ms);
      this.#typingTimers.set(
        key,
        setTimeout(() => {
          this.#typingTimers.delete(key);
          store.emit("typing", conversation.id);
        }, ms + 50),
      );
    } else {
      conversation.typing.delete(frame.user_id);
    }
    store.emit("typing", conversation.id);
  }

  #onJoined(data) {
    const conversation = store.ensure(data.id);
    conversation.seenAt ??= Date.now();
    conversation.update(data);
    // The frame has no peer name (direct), role or unread count: fetch the summary.
    this.#loadConversation(data.id);
    store.emit("conversations");
  }

  /** A room or group was renamed or its topic changed; the frame has the whole object. */
  #onUpdated(data) {
    const conversation = store.conversations.get(data.id);
    if (!conversation) return;
    conversation.update(data);
    store.emit("conversations");
  }

  async #loadPresence() {
    try {
      const reply = await this.socket.request({ type: "get_online_users" });
      // Anyone not listed went offline while we were disconnected.
      for (const userId of store.presence.keys()) store.presence.set(userId, "offline");
      for (const user of reply.users) {
        store.presence.set(user.id, user.status);
        if (user.display_name) store.names.set(user.id, user.display_name);
      }
      store.emit("presence");
    } catch {
      // Presence is decoration; the next presence frame corrects it.
    }
  }

  // -- receipts ---------------------------------------------------------------------

  #queueDelivered(conversation) {
    if (this.#deliveredTimers.has(conversation.id)) return;
    this.#deliveredTimers.set(
      conversation.id,
      setTimeout(() => {
        this.#deliveredTimers.delete(conversation.id);
        const seq = conversation.cursor ?? 0;
        if (seq > conversation.deliveredSeq && conversation.readSeq < seq) {
          if (this.socket.send({ type: "delivered", conversation_id: conversation.id, seq })) {
            conversation.deliveredSeq = seq;
          }
        }
      }, DELIVERED_DELAY_MS),
    );
  }

  /** The user has seen everything in `conversation` up to the newest held message. */
  markRead(conversation) {
    // Up to the cursor, not the newest message held: an ack can place one's own
    // message above a gap that someone else's message has yet to fill.
    const seq = conversation.cursor ?? 0;
    if (seq <= conversation.readSeq) return;
    conversation.markRead(seq, this.me);
    this.#sendRead(conversation, seq);
    store.emit("conversations");
  }

  #sendRead(conversation, seq) {
    if (this.synced && this.socket.send({ type: "read", conversation_id: conversation.id, seq })) {
      conversation.unsentRead = 0;
    } else {
      conversation.unsentRead = Math.max(conversation.unsentRead ?? 0, seq);
    }
  }

  // -- typing -----------------------------------------------------------------------

  /** The composer changed: tell the others (throttled), or stop when it emptied. */
  composing(conversation, hasText) {
    if (!hasText) {
      this.stopTyping(conversation);
      return;
    }
    const now = Date.now();
    if (this.#typing.conversationId === conversation.id && now - this.#typing.sentAt < TYPING_RENEW_MS) return;
    if (this.synced && this.socket.send({ type: "typing", conversation_id: conversation.id, typing: true })) {
      this.#typing = { conversationId: conversation.id, sentAt: now };
    }
  }

  stopTyping(conversation) {
    if (this.#typing.conversationId !== conversation.id) return;
    this.socket.send({ type: "typing", conversation_id: conversation.id, typing: false });
    this.#typing = { conversationId: null, sentAt: 0 };
  }

  // -- sending ----------------------------------------------------------------------

  /** Queue a message: shown at once as pending, sent now or after the next resume.
   * `extras`: `reply_to_id`, `thread_root_id` and `attachments` (uploads), when set. */
  send(conversation, content, extras = {}) {
    const entry = {
      client_msg_id: crypto.randomUUID(),
      conversation_id: conversation.id,
      content,
      attachments: extras.attachments ?? [],
      ...threadFields(extras),
      created_at: Date.now(),
      pending: true,
      failed: false,
      error: null,
      retries: 0,
    };
    store.outbox.push(entry);
    this.#saveOutbox();
    this.stopTyping(conversation);
    store.emit("messages", conversation.id);
    store.emit("outbox");
    this.#pump();
    return entry;
  }

  /** Try a failed message again (the user asked). */
  retry(clientMsgId) {
    const entry = store.outbox.find((e) => e.client_msg_id === clientMsgId);
    if (!entry) return;
    Object.assign(entry, { failed: false, error: null, retries: 0 });
    store.emit("messages", entry.conversation_id);
    store.emit("outbox");
    this.#pump();
  }

  /** Drop a message that could not be sent. */
  discard(clientMsgId) {
    const entry = store.outbox.find((e) => e.client_msg_id === clientMsgId);
    if (!entry) return;
    store.outbox = store.outbox.filter((e) => e !== entry);
    this.#saveOutbox();
    store.emit("messages", entry.conversation_id);
    store.emit("outbox");
  }

  /**
   * Send the outbox oldest first, one message at a time. One at a time keeps the order
   * even when the server turns one away (rate limit, a storage blip) and would have
   * taken the next: a later message never overtakes an earlier one. The cost is one
   * round trip per message, which only shows when a long offline queue drains.
   */
  #pump() {
    if (!this.synced || this.#sending || this.#pumpTimer) return;
    const entry = store.outbox.find((e) => !e.failed);
    if (!entry) return;
    this.#sending = entry;
    this.socket
      .request(
        {
          type: "send",
          conversation_id: entry.conversation_id,
          content: entry.content,
          client_msg_id: entry.client_msg_id,
          ...(entry.attachments?.length ? { attachments: entry.attachments.map((a) => a.id) } : {}),
          ...threadFields(entry),
        },
        { id: `s:${entry.client_msg_id}` },
      )
      .then(
        (ack) => {
          this.#sending = null;
          this.#onAck(ack);
          this.#pump();
        },
        (error) => {
          this.#sending = null;
          this.#sendFailed(entry, error);
        },
      );
  }

  #pumpLater(ms) {
    clearTimeout(this.#pumpTimer);
    this.#pumpTimer = setTimeout(() => {
      this.#pumpTimer = 0;
      this.#pump();
    }, ms);
  }

  #sendFailed(entry, error) {
    const code = error instanceof SocketError ? error.code : "INTERNAL_ERROR";
    if (code === "DISCONNECTED") return; // sent again after the next resume
    if (code === "RATE_LIMITED") {
      this.#pumpLater(Math.max(0.1, Number(error.frame?.retry_after) || 1) * 1000);
      return;
    }
    if (RETRYABLE.has(code) && entry.retries < MAX_SEND_RETRIES) {
      entry.retries += 1;
      this.#pumpLater(500 * 2 ** Math.min(entry.retries, 5));
      return;
    }
    // Refused for good (too long, no longer a member): the user decides.
    entry.failed = true;
    entry.error = error.message || "could not be sent";
    store.emit("messages", entry.conversation_id);
    store.emit("outbox");
    this.#pump();
  }

  #onAck(ack) {
    const entry = store.outbox.find((e) => e.client_msg_id === ack.client_msg_id);
    const conversation = store.conversation(ack.conversation_id);
    if (entry && conversation) {
      const me = this.me;
      const message = {
          type: "message",
          conversation_id: ack.conversation_id,
          seq: ack.seq,
          message_id: ack.message_id,
          sender_id: me.id,
          sender: me.username,
          sender_name: me.display_name,
          kind: "text",
          content: entry.content,
          ...(entry.attachments?.length ? { attachments: entry.attachments } : {}),
          created_at: ack.created_at,
          client_msg_id: ack.client_msg_id,
          ...threadFields(entry),
        };
      if (conversation.insert(message, me)) this.emit("stream", { conversation, message });
      conversation.advance();
      conversation.markRead(ack.seq, me);
    }
    if (ack.client_msg_id) this.#settle(ack.client_msg_id);
    if (conversation) {
      store.emit("messages", conversation.id);
      store.emit("conversations");
    }
  }

  /** The server holds this message: it leaves the outbox. */
  #settle(clientMsgId) {
    const before = store.outbox.length;
    store.outbox = store.outbox.filter((e) => e.client_msg_id !== clientMsgId);
    if (store.outbox.length !== before) {
      this.#saveOutbox();
      store.emit("outbox");
    }
  }

  #outboxKey() {
    return `palaver.outbox.${store.me?.id}`;
  }

  // The outbox survives a reload, so a message typed offline is not lost when the tab
  // is reloaded before the network comes back. It lives in sessionStorage, which is
  // per tab: two tabs never overwrite each other's queue. Removed at sign-out.
  #saveOutbox() {
    try {
      const entries = store.outbox.map((entry) => ({
        client_msg_id: entry.client_msg_id,
        conversation_id: entry.conversation_id,
        content: entry.content,
        attachments: entry.attachments,
        created_at: entry.created_at,
        ...threadFields(entry),
      }));
      if (entries.length) sessionStorage.setItem(this.#outboxKey(), JSON.stringify(entries));
      else sessionStorage.removeItem(this.#outboxKey());
    } catch {
      // Storage full or disabled: the outbox still lives in memory.
    }
  }

  #loadOutbox() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(this.#outboxKey()) || "[]");
      store.outbox = saved.map((entry) => ({
        ...entry,
        pending: true,
        failed: false,
        error: null,
        retries: 0,
      }));
    } catch {
      store.outbox = [];
    }
  }

  // -- actions over REST ------------------------------------------------------------

  /** Open (creating if needed) the direct conversation with a user. */
  async startDirect(userId) {
    const item = await api.post("/api/conversations", { type: "direct", user_id: userId });
    const conversation = this.#absorbNew(item);
    this.emit("opened", conversation.id);
    return conversation;
  }

  async createRoom(name, topic) {
    const item = await api.post("/api/conversations", { type: "room", name, topic: topic || null });
    const conversation = this.#absorbNew(item);
    conversation.role = "owner";
    this.emit("opened", conversation.id);
    return conversation;
  }

  async createGroup(name, memberIds) {
    const item = await api.post("/api/conversations", { type: "group", name, members: memberIds });
    const conversation = this.#absorbNew(item);
    conversation.role = "owner";
    this.emit("opened", conversation.id);
    return conversation;
  }

  async joinRoom(roomId) {
    const reply = await api.post(`/api/conversations/${roomId}/join`);
    const conversation = this.#absorbNew(reply.conversation);
    this.#loadConversation(conversation.id);
    this.emit("opened", conversation.id);
    return conversation;
  }

  async leave(conversation) {
    await api.post(`/api/conversations/${conversation.id}/leave`);
    this.#remove(conversation.id);
  }

  async addMember(conversation, userId) {
    await api.post(`/api/conversations/${conversation.id}/members`, { user_id: userId });
    await this.loadMembers(conversation);
  }

  searchUsers(query) {
    return api.get(`/api/users/search?query=${encodeURIComponent(query)}&limit=20`);
  }

  listRooms(query) {
    const q = query ? `&query=${encodeURIComponent(query)}` : "";
    return api.get(`/api/rooms?limit=100${q}`);
  }

  #absorbNew(item) {
    const known = store.conversation(item.id);
    const conversation = store.ensure(item.id);
    conversation.seenAt ??= Date.now();
    conversation.update(item);
    if (item.peer) store.names.set(item.peer.id, item.peer.display_name);
    if (!known) store.emit("conversations");
    return conversation;
  }

  #report(error, what) {
    const detail = error instanceof ApiError || error instanceof SocketError ? error.message : "unexpected error";
    this.emit("problem", `${what}: ${detail}`);
  }
}

/** The reply and thread fields of a send, only those set. */
function threadFields({ reply_to_id, thread_root_id }) {
  const fields = {};
  if (reply_to_id) fields.reply_to_id = reply_to_id;
  if (thread_root_id) fields.thread_root_id = thread_root_id;
  return fields;
}

export const chat = new Chat();

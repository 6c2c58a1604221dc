// Application state and the events views listen to.
//
// A conversation's messages are kept by sequence number, so a message that arrives
// twice (a live frame and a history page, a resend after reconnecting) is stored once.
// `cursor` is the highest seq up to which the client has everything (held, or known
// to be fetchable as history): it is what `resume` sends after a reconnect.
import { applyEntry, isEntry } from "./rich.js";

/** A minimal event emitter: on() returns a function that unsubscribes. */
export class Emitter {
  #listeners = new Map();

  on(type, fn) {
    if (!this.#listeners.has(type)) this.#listeners.set(type, new Set());
    this.#listeners.get(type).add(fn);
    return () => this.#listeners.get(type)?.delete(fn);
  }

  emit(type, detail) {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) {
      try {
        fn(detail);
      } catch (error) {
        console.error(`palaver: a "${type}" listener failed`, error);
      }
    }
  }
}

/** Does `text` mention `username` as @username (not inside a longer word)? */
export function mentions(text, username) {
  if (!username || !text) return false;
  const escaped = username.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\w@])@${escaped}(?![\\w-])`, "i").test(text);
}

/** Whether an unread count includes `m`: the server counts others' main-timeline
 * texts that are not deleted. */
function counted(m, me) {
  return m.kind === "text" && !m.thread_root_id && !m.deleted_at && m.sender_id !== me.id;
}

export class Conversation {
  constructor(id) {
    this.id = id;
    this.type = "room";
    this.name = "";
    this.topic = null;
    this.memberCount = null;
    this.role = null;
    this.peer = null; // direct conversations: {id, username, display_name}
    this.createdAt = 0;
    this.lastMessage = null; // newest message known, for the list preview
    this.placeholder = true; // metadata not loaded yet
    // Delivery state.
    this.cursor = null;
    this.messages = new Map(); // seq -> message
    this.sortedCache = null;
    this.loaded = false; // the newest history page has been fetched
    this.hasMoreBefore = true;
    this.loadingOlder = false;
    // This user's cursors and the unread count derived from them.
    this.readSeq = 0;
    this.deliveredSeq = 0;
    this.unread = 0;
    this.unreadBase = 0; // the server's unread count covers messages up to this seq
    // A delete of a message this page does not hold, which the server's count may have
    // included: only the server can say (the chat asks it again).
    this.unreadStale = false;
    this.mentioned = false;
    // Other members: cursors (for ticks), details (when loaded), who is typing.
    this.cursors = new Map(); // user id -> {read_seq, delivered_seq}
    this.members = null; // user id -> member, once fetched
    this.typing = new Map(); // user id -> expiry time (ms)
  }

  /** Fill in from a REST conversation or summary object. */
  update(data) {
    this.placeholder = false;
    this.type = data.type ?? this.type;
    this.name = data.name ?? this.name;
    this.topic = data.topic ?? null;
    this.memberCount = data.member_count ?? this.memberCount;
    this.role = data.role ?? this.role;
    this.createdAt = data.created_at ?? this.createdAt;
    if (data.peer !== undefined) this.peer = data.peer;
    if (data.notifications) this.notifications = data.notifications;
    if (data.last_message) this.notePreview(data.last_message);
    if (typeof data.read_seq === "number") this.readSeq = Math.max(this.readSeq, data.read_seq);
    if (typeof data.delivered_seq === "number") this.deliveredSeq = Math.max(this.deliveredSeq, data.delivered_seq);
  }

  get title() {
    if (this.type === "direct") return this.peer?.display_name || this.name || "Direct message";
    return this.name || (this.placeholder ? "…" : "Untitled");
  }

  get lastActivity() {
    return this.lastMessage?.created_at ?? this.createdAt ?? 0;
  }

  /** The newest seq known. */
  get latestSeq() {
    return Math.max(this.cursor ?? 0, this.lastMessage?.seq ?? 0);
  }

  notePreview(message) {
    // Thread replies live in their panel: the list previews the main timeline.
    if (message.thread_root_id && this.lastMessage) return;
    if (!this.lastMessage || message.seq >= this.lastMessage.seq) this.lastMessage = message;
  }

  /** Messages by seq, oldest first. */
  list() {
    this.sortedCache ??= [...this.messages.values()].sort((a, b) => a.seq - b.seq);
    return this.sortedCache;
  }

  get oldestSeq() {
    const list = this.list();
    return list.length ? list[0].seq : null;
  }

  /**
   * Store a message (from a live frame, a resume, a history page or an ack).
   * Returns false when it was already there. Counts it as unread when it is new since
   * the server's count and from someone else.
   */
  insert(message, me) {
    if (this.messages.has(message.seq)) return false;
    this.messages.set(message.seq, message);
    this.sortedCache = null;
    if (isEntry(message)) {
      // A delete newer than the server's count takes back a message that count (or
      // this page since) included, as the server's own count already does.
      const deletes = message.kind === "delete" && message.seq > this.unreadBase;
      const target = deletes ? this.#byId(message.ref_id) : null;
      const uncount = target !== null && target.seq > this.readSeq && counted(target, me);
      if (deletes && target === null && this.unread > 0) this.unreadStale = true;
      const applied = applyEntry(this, message);
      if (applied && uncount && this.unread > 0) {
        this.unread -= 1;
        if (this.unread === 0) this.mentioned = false;
      }
      return applied || true;
    }
    this.notePreview(message);
    if (message.seq > this.unreadBase && message.seq > this.readSeq && message.sender_id !== me.id) {
      if (counted(message, me)) this.unread += 1;
      if (mentions(message.content, me.username)) this.mentioned = true;
    }
    return true;
  }

  #byId(messageId) {
    for (const m of this.messages.values()) if (m.message_id === messageId) return m;
    return null;
  }

  /** Move the cursor over every seq now held contiguously. */
  advance() {
    if (this.cursor === null) return;
    while (this.messages.has(this.cursor + 1)) this.cursor += 1;
  }

  /**
   * Take the server's unread count, computed when the conversation's last seq was
   * `atSeq`, plus what arrived since.
   */
  syncUnread(serverUnread, atSeq, me) {
    this.unreadBase = atSeq;
    let extra = 0;
    for (const m of this.messages.values()) {
      if (m.seq > atSeq && m.seq > this.readSeq && counted(m, me)) extra += 1;
    }
    this.unread = serverUnread + extra;
    if (this.unread === 0) this.mentioned = false;
  }

  /** This user's read cursor moved (here or on another device): recount. */
  markRead(seq, me) {
    if (seq <= this.readSeq) return false;
    this.readSeq = seq;
    this.deliveredSeq = Math.max(this.deliveredSeq, seq);
    const latest = this.latestSeq;
    if (seq >= latest) {
      this.unread = 0;
      this.mentioned = false;
      return true;
    }
    let held = true;
    let count = 0;
    for (let s = seq + 1; s <= latest; s += 1) {
      const m = this.messages.get(s);
      if (!m) {
        held = false;
        break;
      }
      if (counted(m, me)) count += 1;
    }
    // Without every message in between, the best estimate is what is left, at most.
    this.unread = held ? count : Math.min(this.unread, latest - seq);
    if (this.unread === 0) this.mentioned = false;
    return true;
  }

  /** Another member's cursors moved (a receipt frame or the member list). */
  noteCursor(userId, readSeq, deliveredSeq) {
    const previous = this.cursors.get(userId) ?? { read_seq: 0, delivered_seq: 0 };
    this.cursors.set(userId, {
      read_seq: Math.max(previous.read_seq, readSeq ?? 0),
      delivered_seq: Math.max(previous.delivered_seq, deliveredSeq ?? 0, readSeq ?? 0),
    });
  }

  /**
   * Delivery state of one of this user's own messages: "sent" once the server holds
   * it, "delivered"/"read" once another member's cursor passed it. In groups and rooms
   * one member is enough (as in Telegram); a direct conversation has one other member.
   */
  statusOf(message, me) {
    if (message.pending) return message.failed ? "failed" : "pending";
    let status = "sent";
    for (const [userId, cursor] of this.cursors) {
      if (userId === me.id) continue;
      if (cursor.read_seq >= message.seq) return "read";
      if (cursor.delivered_seq >= message.seq) status = "delivered";
    }
    return status;
  }

  /** Names of the others typing now. */
  typingNames(me, nameOf) {
    const now = Date.now();
    const names = [];
    for (const [userId, until] of this.typing) {
      if (until <= now) this.typing.delete(userId);
      else if (userId !== me.id) names.push(nameOf(this, userId));
    }
    return names;
  }
}

class Store extends Emitter {
  // Events:
  //   "conversations"  the list changed (added, removed, reordered, unread counts)
  //   "messages"       id: a conversation's messages or their ticks changed
  //   "typing"         id: who is typing changed
  //   "members"        id: a conversation's member list changed
  //   "presence"       user id
  //   "connection"     the socket's state changed
  //   "active"         the open conversation changed
  //   "outbox"         pending sends changed
  me = null;
  limits = { max_message_length: 5000 };
  conversations = new Map();
  presence = new Map(); // user id -> "online" | "away" | "offline"
  lastSeen = new Map(); // user id -> ms, for people who are offline
  names = new Map(); // user id -> display name, learnt from messages and members
  activeId = null;
  connection = { state: "connecting", retryAt: 0 };
  outbox = []; // pending sends, oldest first

  reset() {
    this.me = null;
    this.conversations.clear();
    this.presence.clear();
    this.lastSeen.clear();
    this.names.clear();
    this.activeId = null;
    this.outbox = [];
  }

  conversation(id) {
    return this.conversations.get(Number(id)) ?? null;
  }

  /** The conversation with `id`, created empty when unknown. */
  ensure(id) {
    let conversation = this.conversations.get(id);
    if (!conversation) {
      conversation = new Conversation(id);
      this.conversations.set(id, conversation);
    }
    return conversation;
  }

  get active() {
    return this.activeId === null ? null : this.conversation(this.activeId);
  }

  /** Conversations, latest activity first (a message still being sent counts). */
  sorted() {
    const activity = new Map();
    for (const conversation of this.conversations.values()) activity.set(conversation, conversation.lastActivity);
    for (const entry of this.outbox) {
      const conversation = this.conversations.get(entry.conversation_id);
      if (conversation) activity.set(conversation, Math.max(activity.get(conversation), entry.created_at));
    }
    return [...activity.keys()].sort((a, b) => activity.get(b) - activity.get(a) || b.id - a.id);
  }

  pending(conversationId) {
    return this.outbox.filter((entry) => entry.conversation_id === conversationId);
  }

  /** A display name for a user in a conversation. */
  nameOf(conversation, userId) {
    const member = conversation?.members?.get(userId);
    if (member) return member.display_name || member.username || "Someone";
    if (conversation?.peer?.id === userId) return conversation.peer.display_name;
    return this.names.get(userId) ?? "Someone";
  }
}

export const store = new Store();

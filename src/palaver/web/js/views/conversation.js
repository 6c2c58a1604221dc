// The open conversation: header, messages, typing line and composer.
//
// Rows (day separators, messages, the pending outbox) are keyed and reconciled in
// place, so a pending message turns into a sent one without being rebuilt from scratch,
// and scrolling back through history keeps the reader's position.

import { hasAttachments, renderAttachments, setupAttachments, spokenText, takeAttachments, uploading } from "../attachments.js";
import { chat } from "../chat.js";
import { $, avatar, h, hueClass, icon, paintAvatar, richText, setIcon, toast } from "../dom.js";
import { clock, dayKey, dayLabel, fullStamp, lastSeen } from "../format.js";
import { isMuted, setMuted } from "../notify.js";
import { store } from "../store.js";
import { decorateBubble, isEntry, mayPin, richSignature } from "../rich.js";
import { decorateReply, quoteSignature, setupReplies, takeReply } from "../replies.js";
import { decorateThread, setupThreads } from "../threads.js";
import { pinToBottom } from "../pin.js";
import { setupDayLabels } from "../daylabel.js";
import { carryActions, setupActions } from "../actions.js";
import { editing, finishEdit, setupEditing } from "../editing.js";

// Within this distance of the bottom the view follows new messages.
const STICK_PX = 80;
// Older history is fetched when the reader gets this close to the top.
const LOAD_OLDER_PX = 300;
// Consecutive messages of one sender within this time share one name and avatar.
const GROUP_MS = 5 * 60_000;
const STATUS_LABELS = {
  pending: "Sending",
  failed: "Not sent",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
};
const STATUS_ICONS = { pending: "clock", failed: "alert", sent: "check", delivered: "check2", read: "check2" };

const view = {
  id: null, // conversation shown
  elements: new Map(), // row key -> element
  unreadFrom: null, // seq of the first message that was unread when the conversation opened
  initialScrollDone: false,
  frame: 0,
  stuck: true, // the reader was at the bottom when last seen scrolling
  drafts: new Map(), // conversation id -> unsent text
};

export function setupConversation({ back, toggleInfo }) {
  const messages = $("messages");
  const input = $("composer-input");
  setupAttachments();
  setupReplies();
  setupThreads();
  setupEditing();
  setupActions();

  for (const event of ["messages", "history", "typing", "members"]) {
    store.on(event, (id) => {
      if (id === undefined || id === view.id) schedule();
    });
  }
  store.on("outbox", schedule);
  store.on("presence", scheduleHeader);
  store.on("conversations", scheduleHeader);
  store.on("active", () => show(store.active));
  store.on("synced", () => maybeMarkRead());

  messages.addEventListener("scroll", onScroll, { passive: true });
  setupDayLabels(messages);
  pinToBottom(messages, $("rows"), { stuck: () => view.stuck && view.id !== null, toBottom: () => scrollToBottom() });
  document.addEventListener("visibilitychange", maybeMarkRead);
  window.addEventListener("focus", maybeMarkRead);

  $("jump").addEventListener("click", () => {
    scrollToBottom(true);
    input.focus({ preventScroll: true });
  });
  $("back").addEventListener("click", back);
  $("info-button").addEventListener("click", toggleInfo);
  $("mute-button").addEventListener("click", () => {
    const conversation = store.active;
    if (!conversation) return;
    setMuted(conversation.id, !isMuted(conversation.id));
    renderHeader();
  });

  $("rows").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const id = button.closest("[data-client-id]")?.dataset.clientId;
    if (button.dataset.action === "retry") chat.retry(id);
    else if (button.dataset.action === "discard") chat.discard(id);
  });

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; never while an IME is composing a word.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });
  input.addEventListener("input", () => {
    autosize();
    updateCounter();
    const conversation = store.active;
    if (conversation) chat.composing(conversation, input.value.trim().length > 0);
  });
}

// -- showing a conversation -----------------------------------------------------------

function show(conversation) {
  const input = $("composer-input");
  if (view.id !== null && view.id !== (conversation?.id ?? null)) view.drafts.set(view.id, input.value);
  const switched = view.id !== (conversation?.id ?? null);
  $("conversation").hidden = !conversation;
  $("empty-pane").hidden = Boolean(conversation);
  if (!conversation) {
    view.id = null;
    return;
  }
  if (switched) {
    view.id = conversation.id;
    view.elements.clear();
    $("rows").replaceChildren();
    view.initialScrollDone = false;
    view.unreadFrom = conversation.unread > 0 ? firstUnreadSeq(conversation) : null;
    input.value = view.drafts.get(conversation.id) ?? "";
    autosize();
    updateCounter();
    // On a phone the keyboard would cover the conversation the user wants to read.
    if (!window.matchMedia("(max-width: 700px)").matches) input.focus({ preventScroll: true });
  }
  renderHeader();
  render();
}

function firstUnreadSeq(conversation) {
  const me = store.me;
  for (const m of conversation.list()) {
    if (m.seq > conversation.readSeq && m.sender_id !== me.id && m.kind === "text") return m.seq;
  }
  // Not loaded yet: the first seq after the read cursor.
  return conversation.readSeq + 1;
}

function schedule() {
  if (!view.frame) {
    view.frame = requestAnimationFrame(() => {
      view.frame = 0;
      render();
    });
  }
}

let headerFrame = 0;
function scheduleHeader() {
  if (!headerFrame) {
    headerFrame = requestAnimationFrame(() => {
      headerFrame = 0;
      renderHeader();
    });
  }
}

// -- header ---------------------------------------------------------------------------

function renderHeader() {
  const conversation = store.active;
  if (!conversation) return;
  $("conv-title").textContent = conversation.title;
  paintAvatar($("conv-avatar"), conversation.title, conversation.peer?.id ?? `c${conversation.id}`);
  $("conv-subtitle").textContent = subtitle(conversation);
  const muted = isMuted(conversation.id);
  const mute = $("mute-button");
  mute.setAttribute("aria-pressed", String(muted));
  mute.setAttribute("aria-label", muted ? "Unmute notifications" : "Mute notifications");
  mute.title = muted ? "Muted: only @mentions notify" : "Mute notifications";
  setIcon(mute.querySelector("svg"), muted ? "bell-off" : "bell");
}

function subtitle(conversation) {
  if (conversation.type === "direct") {
    const peer = conversation.peer;
    if (!peer) return "";
    const status = store.presence.get(peer.id) ?? "offline";
    if (status === "online") return "online";
    if (status === "away") return "away";
    return lastSeen(store.lastSeen.get(peer.id));
  }
  const count = conversation.members?.size ?? conversation.memberCount;
  const parts = [conversation.type === "room" ? "Room" : "Group"];
  if (count) parts.push(`${count} member${count === 1 ? "" : "s"}`);
  if (conversation.members) {
    let online = 0;
    for (const id of conversation.members.keys()) {
      if (id === store.me.id || store.presence.get(id) === "online") online += 1;
    }
    parts.push(`${online} online`);
  }
  return parts.join(" · ");
}

// -- rows -----------------------------------------------------------------------------

function buildRows(conversation) {
  const me = store.me;
  const rows = [];
  let lastDay = null;
  let previous = null;
  let markerPlaced = false;
  const push = (message, pending) => {
    if (isEntry(message) || message.thread_root_id) return; // thread replies: in their panel
    const day = dayKey(message.created_at);
    if (day !== lastDay) {
      rows.push({ key: `d${day}`, kind: "day", label: dayLabel(message.created_at) });
      lastDay = day;
      previous = null;
    }
    if (
      !markerPlaced &&
      !pending &&
      view.unreadFrom !== null &&
      message.seq >= view.unreadFrom &&
      message.kind === "text" &&
      message.sender_id !== me.id
    ) {
      rows.push({ key: "unread", kind: "unread" });
      markerPlaced = true;
      previous = null;
    }
    if (message.kind === "system") {
      rows.push({ key: `m${message.seq}`, kind: "system", message });
      previous = null;
      return;
    }
    const own = message.sender_id === me.id;
    const grouped =
      previous !== null &&
      previous.sender_id === message.sender_id &&
      message.created_at - previous.created_at < GROUP_MS;
    const key = message.client_msg_id ? `c${message.sender_id}:${message.client_msg_id}` : `m${message.seq}`;
    const status = own ? conversation.statusOf(message, me) : null;
    rows.push({ key, kind: "message", message, own, grouped, status, pending, pin: mayPin(conversation, me) });
    previous = message;
  };
  for (const message of conversation.list()) push(message, false);
  for (const entry of store.pending(conversation.id)) {
    push({ ...entry, sender_id: me.id, sender_name: me.display_name, kind: "text", seq: null }, true);
  }
  return rows;
}

function signature(row) {
  if (row.kind !== "message") return row.kind + (row.label ?? "") + (row.message?.content ?? "");
  const m = row.message;
  const files = (m.attachments ?? []).map((a) => a.id).join(",");
  return [row.own, row.grouped, row.status, row.pin, m.seq, m.content, m.error ?? "", files, richSignature(m), quoteSignature(m)].join("\u0000");
}

function buildRow(row, conversation) {
  if (row.kind === "day") {
    return h("div", { class: "row day", role: "separator", "aria-label": row.label }, h("span", { text: row.label }));
  }
  if (row.kind === "unread") {
    return h("div", { class: "row unread-marker", role: "separator" }, h("span", { text: "Unread messages" }));
  }
  const m = row.message;
  if (row.kind === "system") {
    return h("div", { class: "row system", dataset: { seq: String(m.seq) } }, h("span", { text: m.content }));
  }
  const direct = conversation.type === "direct";
  const el = h("div", {
    class: `row msg ${row.own ? "own" : "other"}${row.grouped ? " grouped" : ""}`,
    role: "article",
    dataset: {
      seq: m.seq === null ? "" : String(m.seq),
      clientId: m.client_msg_id ?? "",
      status: row.status ?? "",
      sender: String(m.sender_id ?? ""),
    },
  });
  if (!row.own && !direct) {
    el.append(row.grouped ? h("span", { class: "avatar-space" }) : avatar(m.sender_name || "?", m.sender_id));
  }
  const bubble = h("div", { class: "bubble" });
  if (!row.own && !direct && !row.grouped) {
    bubble.append(h("span", { class: `sender ${hueClass(m.sender_id)}`, text: m.sender_name || "Someone" }));
  }
  if (m.content || !m.attachments?.length) bubble.append(h("p", { class: "text" }, richText(m.content)));
  if (m.attachments?.length) bubble.append(renderAttachments(m.attachments));
  const when = h("time", { text: clock(m.created_at), title: fullStamp(m.created_at) });
  when.dateTime = new Date(m.created_at).toISOString();
  const meta = h("span", { class: "meta" }, when);
  if (row.own) {
    const label = STATUS_LABELS[row.status];
    meta.append(
      h("span", { class: `tick ${row.status}`, role: "img", "aria-label": label, title: label }, icon(STATUS_ICONS[row.status], "icon tick-icon")),
    );
  }
  bubble.append(meta);
  decorateBubble(bubble, m, { own: row.own, me: store.me, socket: chat.socket, pin: row.pin });
  decorateReply(bubble, m, conversation);
  decorateThread(bubble, m, conversation);
  el.append(bubble);
  if (row.status === "failed") {
    el.append(
      h(
        "div",
        { class: "failed-actions" },
        h("span", { class: "failed-reason", text: m.error ? `Not sent: ${m.error}` : "Not sent" }),
        h("button", { type: "button", class: "link", dataset: { action: "retry" }, text: "Retry" }),
        h("button", { type: "button", class: "link", dataset: { action: "discard" }, text: "Delete" }),
      ),
    );
  }
  // Screen readers hear who said what, not just the words.
  const who = row.own ? "You" : m.sender_name || "Someone";
  el.setAttribute("aria-label", `${who}: ${spokenText(m)}. ${clock(m.created_at)}${row.own ? `, ${STATUS_LABELS[row.status]}` : ""}`);
  return el;
}

function render() {
  const conversation = store.active;
  if (!conversation || conversation.id !== view.id) return;
  const box = $("messages");
  const container = $("rows");
  const wasAtBottom = view.stuck || atBottom();
  const anchor = wasAtBottom ? null : findAnchor();

  const rows = buildRows(conversation);
  const keep = new Set();
  let previous = null;
  for (const row of rows) {
    keep.add(row.key);
    const sig = signature(row);
    let el = view.elements.get(row.key);
    if (!el || el.dataset.sig !== sig) {
      const fresh = buildRow(row, conversation);
      fresh.dataset.sig = sig;
      fresh.dataset.key = row.key;
      if (el) {
        const refocus = carryActions(el, fresh);
        el.replaceWith(fresh);
        refocus();
      }
      el = fresh;
      view.elements.set(row.key, el);
    }
    const expected = previous ? previous.nextSibling : container.firstChild;
    if (expected !== el) container.insertBefore(el, expected);
    previous = el;
  }
  for (const [key, el] of view.elements) {
    if (!keep.has(key)) {
      el.remove();
      view.elements.delete(key);
    }
  }

  renderHistoryStatus(conversation);
  renderTyping(conversation);

  if (!view.initialScrollDone) {
    if (!conversation.loaded) {
      scrollToBottom();
    } else if (markerNotLoaded(conversation)) {
      // Open at the first unread message, as phone apps do: page back until it is here.
      scrollToBottom();
      chat.loadOlder(conversation);
    } else {
      view.initialScrollDone = true;
      const marker = view.elements.get("unread");
      if (marker) {
        marker.scrollIntoView({ block: "start" });
        view.stuck = atBottom();
      }
      else scrollToBottom();
    }
  } else if (wasAtBottom) {
    scrollToBottom();
  } else if (anchor) {
    box.scrollTop += anchor.el.getBoundingClientRect().top - anchor.top;
  }
  updateJump(conversation);
  maybeMarkRead();
  // A short history may not fill the screen, leaving nothing to scroll: fetch more.
  if (conversation.loaded && conversation.hasMoreBefore && box.scrollHeight <= box.clientHeight + LOAD_OLDER_PX) {
    chat.loadOlder(conversation);
  }
}

// Paging back to the first unread message stops here; beyond, the view opens at the
// bottom and the reader scrolls.
const MAX_PAGED_FOR_MARKER = 500;

function markerNotLoaded(conversation) {
  const oldest = conversation.oldestSeq;
  return (
    view.unreadFrom !== null &&
    oldest !== null &&
    oldest > view.unreadFrom &&
    conversation.hasMoreBefore &&
    conversation.messages.size < MAX_PAGED_FOR_MARKER
  );
}

function renderHistoryStatus(conversation) {
  const status = $("history-status");
  // While a page of history is inserted, screen readers should not read it all out.
  const loading = conversation.loadingOlder || conversation.loadingLatest;
  $("messages").setAttribute("aria-busy", String(Boolean(loading)));
  if (conversation.loadingOlder || (conversation.loadingLatest && !conversation.loaded)) {
    status.textContent = "Loading messages…";
  } else if (conversation.loaded && !conversation.hasMoreBefore) {
    status.textContent = conversation.list().length ? "This is the beginning of the conversation." : "No messages yet. Say hello!";
  } else {
    status.textContent = "";
  }
}

function renderTyping(conversation) {
  const names = conversation.typingNames(store.me, (c, id) => store.nameOf(c, id));
  const line = $("typing");
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  line.textContent = text;
  line.classList.toggle("active", names.length > 0);
}

// -- scrolling ------------------------------------------------------------------------

function atBottom() {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < STICK_PX;
}

/** The first row visible at the top, to keep in place while rows are added above. */
function findAnchor() {
  const top = $("messages").getBoundingClientRect().top;
  for (const el of $("rows").children) {
    const rect = el.getBoundingClientRect();
    if (rect.bottom > top) return { el, top: rect.top };
  }
  return null;
}

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

function scrollToBottom(smooth = false) {
  const box = $("messages");
  // A long way down is a jump, not a ride.
  const far = box.scrollHeight - box.scrollTop - box.clientHeight > 3 * box.clientHeight;
  const behavior = smooth && !far && !reducedMotion.matches ? "smooth" : "instant";
  box.scrollTo({ top: box.scrollHeight, behavior });
  view.stuck = true;
}

function onScroll() {
  const conversation = store.active;
  if (!conversation) return;
  view.stuck = atBottom();
  if ($("messages").scrollTop < LOAD_OLDER_PX) chat.loadOlder(conversation);
  updateJump(conversation);
  maybeMarkRead();
}

function updateJump(conversation) {
  const box = $("messages");
  const far = box.scrollHeight - box.scrollTop - box.clientHeight > STICK_PX * 3;
  $("jump").hidden = !far;
  const count = $("jump-count");
  count.hidden = !far || conversation.unread === 0;
  count.textContent = String(conversation.unread);
}

/** Everything is read once the newest message is on screen in a visible tab. */
function maybeMarkRead() {
  const conversation = store.active;
  if (!conversation || !conversation.loaded || document.visibilityState !== "visible") return;
  if (!view.initialScrollDone) return;
  if ($("conversation").hidden || !atBottom()) return;
  chat.markRead(conversation);
}

// -- composer -------------------------------------------------------------------------

/** Length as the server counts it: code points, not UTF-16 units. */
function length(text) {
  let pairs = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) pairs += 1;
  }
  return text.length - pairs;
}

function updateCounter() {
  const input = $("composer-input");
  const counter = $("counter");
  const max = store.limits.max_message_length;
  const used = length(input.value);
  const near = used >= Math.floor(max * 0.9);
  counter.hidden = !near;
  counter.textContent = near ? `${used.toLocaleString()} / ${max.toLocaleString()}` : "";
  const over = used > max;
  counter.classList.toggle("over", over);
  if (over) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
  $("send-button").disabled = over;
}

function autosize() {
  const input = $("composer-input");
  // CSSOM writes are allowed by the CSP (style attributes in markup are not).
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}

function submit() {
  const conversation = store.active;
  const input = $("composer-input");
  if (!conversation) return;
  const text = input.value;
  if (editing()) {
    if (length(text) > store.limits.max_message_length) {
      updateCounter();
      return;
    }
    finishEdit(text);
    updateCounter();
    return;
  }
  if (uploading()) {
    toast("Wait for the files to finish uploading.");
    return;
  }
  if (!text.trim() && !hasAttachments()) return;
  if (length(text) > store.limits.max_message_length) {
    updateCounter();
    return;
  }
  chat.send(conversation, text.trim() ? text : "", {
    ...takeReply(conversation),
    attachments: takeAttachments(),
  });
  input.value = "";
  view.drafts.delete(conversation.id);
  view.unreadFrom = null;
  autosize();
  updateCounter();
  scrollToBottom();
  schedule();
}

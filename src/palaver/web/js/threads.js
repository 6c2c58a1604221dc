// Threads: the reply count on a root (with the replies this user has not read), the
// "Reply in thread" action, and the thread panel: the root, its replies kept live from
// the conversation's stream, and a composer of its own that sends with thread_root_id.
// Thread replies have their own read cursor (`thread_read`), moved while the panel is
// open and the page visible; the main timeline does not show them. The panel opens on
// the latest page of replies; "Load earlier replies" pages back (`before`).

import { actionButton, addAction, carryActions } from "./actions.js";
import { chat } from "./chat.js";
import { h, richText } from "./dom.js";
import { clock, fullStamp } from "./format.js";
import { applyEntry, decorateBubble, isEntry, mayPin } from "./rich.js";
import { findMessage } from "./replies.js";
import { store } from "./store.js";

const PAGE = 50;
const MAX_REPLIERS = 5;

const panel = {
  el: null,
  conversationId: null,
  rootId: null, // message_id of the root
  root: null,
  replies: new Map(), // seq -> reply
  loading: false,
  failed: false,
  buffer: [], // stream entries that arrived while the thread was loading
  readSeq: 0,
  hasOlder: false, // the server has replies before the oldest held
  loadingOlder: false,
  olderFailed: false,
  entriesMeanwhile: null, // while a page back loads: entries to apply to it too
};

function plural(n) {
  return `${n} repl${n === 1 ? "y" : "ies"}`;
}

// -- the root's summary -----------------------------------------------------------------

/** A thread reply newly held: count it on its root (once: by seq), unread unless the
 * thread is open and being read. */
function countReply(conversation, reply) {
  const root = findMessage(conversation, reply.thread_root_id);
  if (!root) return; // its history page brings the summary as the server has it
  const thread = (root.thread ??= { reply_count: 0, repliers: [], last_reply_seq: 0, read_seq: 0, unread: 0 });
  if (reply.seq <= (thread.last_reply_seq ?? 0)) return;
  thread.reply_count += 1;
  thread.last_reply_seq = reply.seq;
  thread.last_reply_at = reply.created_at;
  thread.repliers = [reply.sender_id, ...(thread.repliers ?? []).filter((id) => id !== reply.sender_id)].slice(0, MAX_REPLIERS);
  if (reply.sender_id !== store.me.id && !reading(root.message_id)) thread.unread = (thread.unread ?? 0) + 1;
}

function reading(rootId) {
  return panel.rootId === rootId && document.visibilityState === "visible";
}

/** The reply count (a button that opens the thread) and "Reply in thread" on a row. */
export function decorateThread(bubble, m, conversation) {
  if (m.deleted_at || m.thread_root_id || m.message_id === undefined || m.seq === null) return;
  const count = m.thread?.reply_count ?? 0;
  if (count > 0) {
    const unread = m.thread.unread ?? 0;
    const open = h(
      "button",
      { type: "button", class: `link thread-count${unread ? " unread" : ""}`, dataset: { action: "thread" } },
      h("span", { text: plural(count) }),
    );
    if (unread) open.append(h("span", { class: "badge thread-unread", text: `${unread} new` }));
    open.setAttribute("aria-label", `${plural(count)}${unread ? `, ${unread} unread` : ""}: open the thread`);
    open.addEventListener("click", () => openThread(conversation, m));
    bubble.append(open);
  }
  addAction(bubble, actionButton("reply-thread", "thread", "Reply in thread", () => openThread(conversation, m)));
}

// -- the panel --------------------------------------------------------------------------

function build() {
  if (panel.el) return panel.el;
  const close = h("button", { type: "button", class: "icon-button", "aria-label": "Close thread", text: "×" });
  close.addEventListener("click", closeThread);
  const input = h("textarea", { id: "thread-input", rows: "1", "aria-label": "Reply in thread", placeholder: "Reply…" });
  const form = h(
    "form",
    { class: "composer thread-composer" },
    input,
    h("button", { type: "submit", class: "send-button thread-send", "aria-label": "Send reply", text: "➤" }),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(input);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit(input);
    }
  });
  const earlier = h("button", { type: "button", id: "thread-earlier", class: "secondary thread-earlier", text: "Load earlier replies", hidden: true });
  earlier.addEventListener("click", loadEarlier);
  panel.el = h(
    "aside",
    { id: "thread-panel", class: "thread-panel", "aria-labelledby": "thread-title", hidden: true },
    h("header", { class: "info-head" }, h("h2", { id: "thread-title", text: "Thread" }), close),
    h("div", { class: "thread-body" },
      h("div", { id: "thread-root", class: "thread-root" }),
      h("p", { id: "thread-status", class: "history-status", role: "status" }),
      earlier,
      h("div", { id: "thread-replies", class: "thread-replies", role: "log", "aria-label": "Thread replies", "aria-live": "polite", tabIndex: -1 }),
    ),
    form,
  );
  document.getElementById("chat").append(panel.el);
  return panel.el;
}

function submit(input) {
  const conversation = store.conversation(panel.conversationId);
  const text = input.value;
  if (!conversation || !text.trim() || text.length > store.limits.max_message_length) return;
  chat.send(conversation, text, { thread_root_id: panel.rootId });
  input.value = "";
}

/** Show the thread of `root` (a top-level message of `conversation`). */
export async function openThread(conversation, root) {
  const el = build();
  Object.assign(panel, {
    conversationId: conversation.id,
    rootId: root.message_id,
    root,
    replies: new Map(),
    loading: true,
    failed: false,
    buffer: [],
    readSeq: root.thread?.read_seq ?? 0,
    hasOlder: false,
    loadingOlder: false,
    olderFailed: false,
    entriesMeanwhile: null,
  });
  el.hidden = false;
  document.getElementById("chat").classList.add("thread-open");
  render();
  el.querySelector("#thread-input").focus();
  const rootId = root.message_id;
  // The latest page: replies past everything this client has seen of the conversation
  // reach it in the stream, so "before" starts just after that.
  const before = Math.max(conversation.latestSeq, root.thread?.last_reply_seq ?? 0) + 1;
  try {
    const answer = await chat.socket.request({ type: "thread", root_id: rootId, before, limit: PAGE });
    if (panel.rootId !== rootId) return; // closed or another thread opened meanwhile
    for (const reply of answer.messages) panel.replies.set(reply.seq, reply);
    panel.hasOlder = answer.has_more && answer.messages.length > 0;
    panel.readSeq = Math.max(panel.readSeq, answer.read_seq ?? 0);
    // The answer is the state when read; entries that arrived since apply on top, in
    // order, which gives the same result whether or not the answer included them.
    for (const entry of panel.buffer) take(entry);
  } catch {
    if (panel.rootId === rootId) panel.failed = true;
  }
  if (panel.rootId !== rootId) return;
  panel.loading = false;
  panel.buffer = [];
  render();
  markThreadRead();
}

/** Fetch the page of replies before the oldest held. */
async function loadEarlier() {
  if (panel.rootId === null || panel.loading || panel.loadingOlder || !panel.hasOlder) return;
  const rootId = panel.rootId;
  const before = Math.min(...panel.replies.keys());
  Object.assign(panel, { loadingOlder: true, olderFailed: false, entriesMeanwhile: [] });
  render();
  try {
    const answer = await chat.socket.request({ type: "thread", root_id: rootId, before, limit: PAGE });
    if (panel.rootId !== rootId) return;
    for (const reply of answer.messages) if (!panel.replies.has(reply.seq)) panel.replies.set(reply.seq, reply);
    // Entries that arrived while the page was read may be older than its state or
    // newer; applied again in order they leave the newest state either way.
    for (const entry of panel.entriesMeanwhile) applyEntry({ messages: panel.replies }, entry);
    panel.hasOlder = answer.has_more && answer.messages.length > 0;
  } catch {
    if (panel.rootId === rootId) panel.olderFailed = true;
  }
  if (panel.rootId !== rootId) return;
  const earlier = panel.el.querySelector("#thread-earlier");
  const hadFocus = document.activeElement === earlier;
  panel.loadingOlder = false;
  panel.entriesMeanwhile = null;
  render({ keepScroll: true });
  // The button goes once the first reply is here: keep the keyboard in the thread.
  if (hadFocus && earlier.hidden) panel.el.querySelector("#thread-replies").focus();
}

export function closeThread() {
  panel.rootId = null;
  panel.root = null;
  panel.replies = new Map();
  if (panel.el) panel.el.hidden = true;
  document.getElementById("chat").classList.remove("thread-open");
}

function take(message) {
  if (isEntry(message)) {
    applyEntry({ messages: panel.replies }, message);
    panel.entriesMeanwhile?.push(message);
  }
  else if (message.thread_root_id === panel.rootId) panel.replies.set(message.seq, message);
}

function onStream(conversation, message) {
  if (message.kind === "text" && message.thread_root_id) countReply(conversation, message);
  if (panel.rootId === null || conversation.id !== panel.conversationId) return;
  const mine = (isEntry(message) && message.ref_id !== panel.rootId) || message.thread_root_id === panel.rootId;
  if (!mine) {
    if (message.ref_id === panel.rootId) render(); // the root changed; applied by the conversation
    return;
  }
  if (panel.loading) panel.buffer.push(message);
  else {
    take(message);
    render();
    markThreadRead();
  }
}

/** Move this user's thread cursor to the newest reply shown (while it is seen). */
function markThreadRead() {
  if (panel.rootId === null || panel.loading || document.visibilityState !== "visible") return;
  let last = 0;
  for (const seq of panel.replies.keys()) last = Math.max(last, seq);
  const root = panel.root;
  if (root?.thread && (root.thread.unread || (root.thread.read_seq ?? 0) < last)) {
    root.thread.unread = 0;
    root.thread.read_seq = Math.max(root.thread.read_seq ?? 0, last);
    store.emit("messages", panel.conversationId);
  }
  if (last <= panel.readSeq) return;
  panel.readSeq = last;
  chat.socket.request({ type: "thread_read", root_id: panel.rootId, seq: last }).catch(() => {
    panel.readSeq = 0; // asked again with the next reply or visit
  });
}

function row(m, conversation, pending) {
  const own = m.sender_id === store.me.id;
  const el = h("div", {
    class: `thread-msg${own ? " own" : ""}${pending ? " pending" : ""}`,
    role: "article",
    dataset: { seq: m.seq === null ? "" : String(m.seq) },
  });
  const when = h("time", { text: clock(m.created_at), title: fullStamp(m.created_at) });
  const bubble = h(
    "div",
    { class: "bubble" },
    h("span", { class: "sender", text: own ? "You" : m.sender_name || store.nameOf(conversation, m.sender_id) }),
    h("p", { class: "text" }, richText(m.content)),
    h("span", { class: "meta" }, when, pending ? h("span", { class: "tick pending", text: " Sending" }) : null),
  );
  decorateBubble(bubble, m, { own, me: store.me, socket: chat.socket, pin: mayPin(conversation, store.me) });
  el.append(bubble);
  return el;
}

function render({ keepScroll = false } = {}) {
  if (panel.rootId === null || !panel.el) return;
  const conversation = store.conversation(panel.conversationId);
  if (!conversation) return closeThread();
  const rootBox = panel.el.querySelector("#thread-root");
  const refocus = [];
  const rebuild = (box, fresh) => {
    // Every render rebuilds the rows: keep an open picker and the focus on them.
    const old = new Map([...box.children].filter((el) => el.dataset.seq).map((el) => [el.dataset.seq, el]));
    for (const el of fresh) {
      const was = old.get(el.dataset.seq);
      if (was) refocus.push(carryActions(was, el));
    }
    box.replaceChildren(...fresh);
  };
  rebuild(rootBox, [row(panel.root, conversation, false)]);
  const status = panel.el.querySelector("#thread-status");
  const replies = [...panel.replies.values()].sort((a, b) => a.seq - b.seq);
  // Replies not loaded yet still count: the root's summary has them all.
  const total = Math.max(replies.length, panel.hasOlder ? (panel.root.thread?.reply_count ?? 0) : 0);
  if (panel.loading) status.textContent = "Loading the thread…";
  else if (panel.failed) status.textContent = "Could not load the thread.";
  else if (panel.olderFailed) status.textContent = "Could not load earlier replies.";
  else status.textContent = total ? plural(total) : "No replies yet.";
  const earlier = panel.el.querySelector("#thread-earlier");
  earlier.hidden = !panel.hasOlder || panel.loading;
  // aria-disabled, not disabled: a disabled button drops the keyboard focus.
  earlier.setAttribute("aria-disabled", String(panel.loadingOlder));
  earlier.textContent = panel.loadingOlder ? "Loading earlier replies…" : "Load earlier replies";
  // The panel's body scrolls (the root, then the replies).
  const scroller = panel.el.querySelector(".thread-body");
  const atBottom = !keepScroll && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 60;
  const box = panel.el.querySelector("#thread-replies");
  const rows = replies.map((m) => row(m, conversation, false));
  for (const entry of store.pending(conversation.id)) {
    if (entry.thread_root_id !== panel.rootId) continue;
    rows.push(row({ ...entry, sender_id: store.me.id, kind: "text", seq: null }, conversation, true));
  }
  rebuild(box, rows);
  for (const focus of refocus) focus();
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
}

export function setupThreads() {
  chat.on("stream", ({ conversation, message }) => onStream(conversation, message));
  store.on("outbox", () => render());
  store.on("messages", (id) => {
    if (id === panel.conversationId) render();
  });
  store.on("active", () => {
    if (panel.rootId !== null && store.activeId !== panel.conversationId) closeThread();
  });
  document.addEventListener("visibilitychange", markThreadRead);
}

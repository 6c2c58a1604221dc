// Replies: the "Reply" action, the quoted preview above the composer while a reply is
// being written, and the quote on a sent reply, which scrolls to the original.
// Quotes are built from text nodes only, like every message.

import { actionButton, addAction } from "./actions.js";
import { chat } from "./chat.js";
import { $, h } from "./dom.js";
import { store } from "./store.js";

const SNIPPET = 120;
// How many older pages a click on a quote may fetch to reach the original.
const MAX_PAGES_TO_ORIGINAL = 20;

let target = null; // {conversationId, message} while a reply is being written

export function findMessage(conversation, messageId) {
  for (const m of conversation.messages.values()) if (m.message_id === messageId) return m;
  return null;
}

function snippet(m) {
  if (!m) return "An earlier message";
  if (m.deleted_at) return "This message was deleted";
  return m.content.length > SNIPPET ? `${m.content.slice(0, SNIPPET)}…` : m.content;
}

function nameOf(conversation, m) {
  if (!m) return "";
  if (m.sender_id === store.me?.id) return "You";
  return m.sender_name || store.nameOf(conversation, m.sender_id);
}

function previewBox() {
  let box = document.getElementById("reply-preview");
  if (!box) {
    box = h("div", { id: "reply-preview", class: "reply-preview", role: "status", hidden: true });
    $("composer").before(box);
  }
  return box;
}

function renderPreview() {
  const box = previewBox();
  if (!target) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const conversation = store.conversation(target.conversationId);
  const cancel = h("button", { type: "button", class: "icon-button small reply-cancel", "aria-label": "Cancel reply", text: "×" });
  cancel.addEventListener("click", () => {
    cancelReply();
    $("composer-input").focus();
  });
  box.replaceChildren(
    h(
      "div",
      { class: "reply-quote" },
      h("span", { class: "reply-quote-name", text: `Replying to ${nameOf(conversation, target.message)}` }),
      h("span", { class: "reply-quote-text", text: snippet(target.message) }),
    ),
    cancel,
  );
  box.hidden = false;
}

/** Start writing a reply to `m` in the main composer. */
export function startReply(conversation, m) {
  target = { conversationId: conversation.id, message: m };
  renderPreview();
  $("composer-input").focus();
}

export function cancelReply() {
  if (!target) return;
  target = null;
  renderPreview();
}

/** The reply fields of the message being sent now (and the preview goes). */
export function takeReply(conversation) {
  if (!target || target.conversationId !== conversation.id) return {};
  const fields = { reply_to_id: target.message.message_id };
  cancelReply();
  return fields;
}

/** What the quote on a reply shows, for the row reconciler's signature. */
export function quoteSignature(m) {
  if (!m.reply_to_id) return "";
  const original = store.active ? findMessage(store.active, m.reply_to_id) : null;
  return `${m.reply_to_id}:${original ? `${original.content}${original.deleted_at ?? ""}` : "?"}`;
}

/** Resolves once no page of `conversation`'s history is on its way. */
function historySettled(conversation) {
  if (!conversation.loadingLatest && !conversation.loadingOlder) return Promise.resolve();
  return new Promise((resolve) => {
    const off = store.on("history", (id) => {
      if (id !== conversation.id || conversation.loadingLatest || conversation.loadingOlder) return;
      off();
      resolve();
    });
  });
}

/** Scroll to a message (the original of a reply, a search result), fetching the
 * newest page first when the conversation was just opened, then older history until
 * the message is held. */
export async function jumpTo(conversation, messageId) {
  await historySettled(conversation);
  if (!conversation.loaded) {
    await chat.loadLatest(conversation);
    if (!conversation.loaded) return;
  }
  let original = findMessage(conversation, messageId);
  for (let page = 0; !original && page < MAX_PAGES_TO_ORIGINAL; page += 1) {
    // The view may be paging back on its own (to the first unread message): a page it
    // is fetching counts as one of ours.
    await historySettled(conversation);
    original = findMessage(conversation, messageId);
    if (original || !conversation.hasMoreBefore) break;
    await chat.loadOlder(conversation);
    original = findMessage(conversation, messageId);
  }
  if (!original || store.activeId !== conversation.id) return;
  // Rendering happens on the next frame.
  requestAnimationFrame(() => {
    const row = document.querySelector(`#rows .row.msg[data-seq="${original.seq}"]`);
    if (!row) return;
    row.scrollIntoView({ block: "center" });
    // The scroll event comes a frame later; rows growing in this one (a page just
    // drawn) would pin the view back to the bottom before it learnt the reader left it.
    $("messages").dispatchEvent(new Event("scroll"));
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 1600);
  });
}

/** Quote the original above a reply's text, and add the "Reply" action. */
export function decorateReply(bubble, m, conversation) {
  if (m.deleted_at) return;
  if (m.reply_to_id) {
    const original = findMessage(conversation, m.reply_to_id);
    const quote = h(
      "button",
      { type: "button", class: "reply-quote", "aria-label": `Show the message replied to: ${snippet(original)}` },
      h("span", { class: "reply-quote-name", text: nameOf(conversation, original) }),
      h("span", { class: "reply-quote-text", text: snippet(original) }),
    );
    quote.addEventListener("click", () => jumpTo(conversation, m.reply_to_id));
    const text = bubble.querySelector(".text");
    if (text) text.before(quote);
    else bubble.prepend(quote);
  }
  if (m.message_id === undefined || m.seq === null) return;
  addAction(bubble, actionButton("reply", "reply", "Reply", () => startReply(conversation, m)));
}

export function setupReplies() {
  // A reply belongs to the conversation it was started in.
  store.on("active", () => {
    if (target && target.conversationId !== store.activeId) cancelReply();
  });
}

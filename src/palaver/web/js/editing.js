// Editing a sent message in the main composer: the composer shows "Editing" with the
// original above it and a cancel button; Enter saves, Escape or cancel gives the draft
// back.

import { onEdit } from "./actions.js";
import { $, h } from "./dom.js";
import { cancelReply } from "./replies.js";
import { store } from "./store.js";

let target = null; // {conversationId, message, socket, draft}

function bar() {
  let box = document.getElementById("edit-preview");
  if (!box) {
    const cancel = h("button", { type: "button", class: "icon-button small reply-cancel", "aria-label": "Cancel editing", text: "×" });
    cancel.addEventListener("click", () => {
      cancelEdit();
      $("composer-input").focus();
    });
    box = h(
      "div",
      { id: "edit-preview", class: "reply-preview edit-preview", role: "status", hidden: true },
      h("div", { class: "reply-quote" }, h("span", { class: "reply-quote-name", text: "Editing" }), h("span", { class: "reply-quote-text" })),
      cancel,
    );
    $("composer").before(box);
  }
  return box;
}

function resize(input) {
  input.dispatchEvent(new Event("input"));
}

/** Start editing `m` (one's own message) in the composer. */
export function startEdit(socket, m) {
  const input = $("composer-input");
  const conversationId = store.activeId;
  if (target) cancelEdit();
  cancelReply();
  target = { conversationId, message: m, socket, draft: input.value };
  const box = bar();
  box.querySelector(".reply-quote-text").textContent = m.content;
  box.hidden = false;
  input.value = m.content;
  resize(input);
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

export function editing() {
  return target !== null;
}

export function cancelEdit() {
  if (!target) return;
  const { draft, conversationId } = target;
  target = null;
  bar().hidden = true;
  const input = $("composer-input");
  if (store.activeId === conversationId) {
    input.value = draft;
    resize(input);
  }
}

/** Save the composer's text as the edit (unchanged or empty text saves nothing). */
export function finishEdit(text) {
  if (!target) return;
  const { message, socket, conversationId } = target;
  const content = text.trim() ? text : "";
  cancelEdit();
  if (!content || content === message.content) return;
  // The socket is the toolbar's, which tells the user why a refusal came and answers
  // false for it.
  Promise.resolve(socket.request({ type: "edit", message_id: message.message_id, content }))
    .then((done) => done !== false, () => false)
    .then((done) => {
      // Refused (the word filter, a mute): the edit comes back to be changed instead of
      // being lost, unless the user has moved on to another conversation or edit.
      if (done || target || store.activeId !== conversationId) return;
      startEdit(socket, message);
      const input = $("composer-input");
      input.value = content;
      resize(input);
    });
}

export function setupEditing() {
  onEdit(startEdit);
  store.on("active", () => {
    if (target && target.conversationId !== store.activeId) {
      target = null;
      bar().hidden = true;
    }
  });
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && target) {
      event.preventDefault();
      cancelEdit();
    }
  });
}

// A small in-app confirmation dialog (window.confirm blocks the page, cannot be
// styled and reads as an alarm from the browser rather than from Palaver).

import { h } from "./dom.js";

let dialog = null;
// The answer of the question on screen; a new question answers the previous one Cancel.
let pending = null;

function answer(value) {
  const resolve = pending;
  pending = null;
  if (resolve) resolve(value);
}

/** Ask; resolves true when the user picks `action`, false on Cancel or Escape. */
export function confirmAction({ title, text, action = "OK", danger = true }) {
  if (!dialog) {
    dialog = h(
      "dialog",
      { id: "confirm-dialog", class: "dialog confirm-dialog", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }),
      h("p", { id: "confirm-text", class: "confirm-text" }),
      h(
        "form",
        { method: "dialog", class: "confirm-buttons" },
        h("button", { type: "submit", value: "cancel", class: "secondary confirm-cancel", text: "Cancel" }),
        h("button", { type: "submit", value: "ok", class: "confirm-ok" }),
      ),
    );
    // A close event is queued, not dispatched at once: the one of a question replaced by
    // a newer one arrives while that newer one is open, and must not answer it.
    dialog.addEventListener("close", () => {
      if (!dialog.open) answer(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
  }
  // A second question answers the first with Cancel: showModal on an open dialog throws.
  answer(false);
  if (dialog.open) dialog.close();
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  const ok = dialog.querySelector(".confirm-ok");
  ok.textContent = action;
  ok.className = `confirm-ok ${danger ? "danger" : "primary"}`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    pending = resolve;
    dialog.showModal();
    ok.focus();
  });
}

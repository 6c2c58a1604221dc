// A small in-app confirmation dialog (window.confirm blocks the page, cannot be
// styled and reads as an alarm from the browser rather than from Palaver).

import { byLabel, h } from "./dom.js";

let dialog = null;
// The answer of the question on screen; a new question answers the previous one Cancel.
let pending = null;
// Where the focus goes back to once the question on screen is answered (see opener()).
let returnTo = null;

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
      if (dialog.open) return;
      answer(dialog.returnValue === "ok");
      const back = returnTo;
      returnTo = null;
      back?.();
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
    returnTo = opener(document.activeElement);
    dialog.showModal();
    ok.focus();
  });
}

// The browser gives the focus back to the control that opened the dialog, unless that
// control was replaced while the question was open (a member list redrawn when someone
// joined): the focus would then fall to the page itself, and a keyboard user would
// start again from the top. The same control in the new list, found by its accessible
// name in the nearest container still there, takes it instead.
function opener(control) {
  const label = control?.getAttribute?.("aria-label");
  if (!label) return null;
  const containers = [];
  for (let node = control.parentElement; node; node = node.parentElement) {
    if (node.id) containers.push(node);
  }
  return () => {
    if (control.isConnected) return;
    // Still on the closed dialog's button, or already on the page: lost. Anywhere else,
    // the user put it there.
    const focused = document.activeElement;
    if (focused && focused !== document.body && !dialog.contains(focused)) return;
    const container = containers.find((node) => node.isConnected);
    if (container) byLabel(container, label)?.focus();
  };
}

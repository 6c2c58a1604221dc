// A small in-app confirmation dialog (window.confirm blocks the page, cannot be
// styled and reads as an alarm from the browser rather than from Palaver).

import { h } from "./dom.js";

let dialog = null;

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
    document.body.append(dialog);
  }
  // A second question answers the first with Cancel: showModal on an open dialog throws.
  if (dialog.open) dialog.close();
  dialog.querySelector("#confirm-title").textContent = title;
  dialog.querySelector("#confirm-text").textContent = text;
  const ok = dialog.querySelector(".confirm-ok");
  ok.textContent = action;
  ok.className = `confirm-ok ${danger ? "danger" : "primary"}`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    ok.focus();
  });
}

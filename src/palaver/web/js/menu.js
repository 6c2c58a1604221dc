// A small popup menu behind a "⋯" button: items are buttons with role "menuitem",
// arrow keys move between them, Escape or a click elsewhere closes it. One menu is
// open at a time.

import { byLabel, h, icon } from "./dom.js";

let open = null; // {button, list}

function close(returnFocus = false) {
  if (!open) return;
  const { button, list } = open;
  open = null;
  list.hidden = true;
  button.setAttribute("aria-expanded", "false");
  if (returnFocus) button.focus();
}

document.addEventListener("click", (event) => {
  if (open && !open.button.parentElement.contains(event.target)) close();
});
// Capturing, so that Escape closes the menu and not also the panel holding it.
document.addEventListener(
  "keydown",
  (event) => {
    if (open && event.key === "Escape") {
      event.stopPropagation();
      close(true);
    }
  },
  true,
);

/**
 * A button opening a menu of `items` ({label, text, action, danger}); `label` names
 * the button for screen readers. Returns the wrapper to insert.
 */
export function popupMenu(label, items, className = "") {
  const button = h(
    "button",
    { type: "button", class: "icon-button small more-button", "aria-label": label, title: label, "aria-haspopup": "menu", "aria-expanded": "false" },
    icon("more"),
  );
  const list = h("div", { class: "popup-menu", role: "menu", "aria-label": label, hidden: true });
  for (const item of items) {
    const entry = h("button", {
      type: "button",
      role: "menuitem",
      class: `menu-item${item.danger ? " danger-item" : ""}`,
      text: item.text,
      "aria-label": item.label ?? item.text,
      tabIndex: -1,
    });
    entry.addEventListener("click", () => {
      close(true);
      item.action();
    });
    list.append(entry);
  }
  list.addEventListener("keydown", (event) => {
    const entries = [...list.querySelectorAll('[role="menuitem"]')];
    const at = entries.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      entries[(at + step + entries.length) % entries.length]?.focus();
    }
  });
  button.addEventListener("click", () => {
    if (open?.button === button) return close();
    close();
    open = { button, list };
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    list.querySelector('[role="menuitem"]')?.focus();
  });
  return h("span", { class: `popup-wrap ${className}` }, button, list);
}

/**
 * Note the menu open in `root` and the element focused in it, before `root` is rebuilt;
 * call the function returned once it is, to open that menu's twin (the button of the
 * same label) and focus the twin of that element: someone joining or going offline must
 * not close the menu the user is choosing from.
 */
export function keepMenu(root) {
  const label = (el) => el.getAttribute("aria-label");
  const menu = open && root.contains(open.button) ? label(open.button) : null;
  const focused = root.contains(document.activeElement) ? label(document.activeElement) : null;
  return () => {
    const button = menu === null ? null : byLabel(root, menu, ".more-button");
    if (button) {
      open = { button, list: button.nextElementSibling };
      open.list.hidden = false;
      button.setAttribute("aria-expanded", "true");
    } else if (menu !== null) {
      open = null; // its button went with the member
    }
    if (focused !== null) byLabel(root, focused, "button")?.focus({ preventScroll: true });
  };
}

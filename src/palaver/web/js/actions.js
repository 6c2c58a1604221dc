// The actions of a message: a small toolbar floating at the bubble's top corner, shown
// on hover (or keyboard focus) where there is a pointer, and on a tap or long press on
// touch screens, so no row of buttons sits under every bubble. Icons carry labels for
// screen readers. Reacting opens a quick emoji picker; editing happens in the composer;
// deleting asks first.

import { confirmAction } from "./confirm.js";
import { h, icon } from "./dom.js";

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
// Where the toolbar puts each action, whichever module added it.
const ORDER = { react: 0, reply: 1, "reply-thread": 2, pin: 3, edit: 4, delete: 5 };

const touch = window.matchMedia("(hover: none)");

// Set by the composer's editing module; kept as a hook so that this module, which the
// store loads through rich.js, does not load the chat client in turn.
let editHandler = null;

/** Who edits a message when "Edit" is picked: `handler(socketLike, message)`. */
export function onEdit(handler) {
  editHandler = handler;
}

/** An icon button for the toolbar. */
export function actionButton(action, iconName, label, onClick) {
  const button = h(
    "button",
    { type: "button", class: "action-button", "aria-label": label, title: label, dataset: { action } },
    icon(iconName),
  );
  button.addEventListener("click", (event) => {
    event.stopPropagation();
    closeAll();
    onClick();
  });
  return button;
}

/** Put `button` in the toolbar of `bubble` at its place. */
export function addAction(bubble, button) {
  const bar = bubble.querySelector(".msg-actions");
  if (!bar) return;
  const rank = ORDER[button.dataset.action] ?? 9;
  const after = [...bar.children].find((el) => (ORDER[el.dataset.action] ?? 9) > rank);
  bar.insertBefore(button, after ?? null);
}

/**
 * The toolbar of a sent message. `act(frame)` sends a frame; `mine(emoji)` says
 * whether this user already reacted so; `pin` whether this user may pin.
 */
export function messageActions(m, { own, pin = true, act, mine }) {
  const bar = h("div", { class: "msg-actions", role: "toolbar", "aria-label": "Message actions" });
  const picker = h("div", { class: "react-picker", role: "group", "aria-label": "Reactions", hidden: true });
  for (const emoji of QUICK_REACTIONS) {
    const choice = h("button", { type: "button", class: "react-choice", text: emoji, "aria-label": `React ${emoji}`, title: emoji });
    choice.addEventListener("click", (event) => {
      event.stopPropagation();
      closeAll();
      act({ type: "react", message_id: m.message_id, emoji, remove: mine(emoji) });
    });
    picker.append(choice);
  }
  const react = h(
    "button",
    { type: "button", class: "action-button", "aria-label": "React", title: "React", "aria-expanded": "false", dataset: { action: "react" } },
    icon("smile"),
  );
  react.addEventListener("click", (event) => {
    event.stopPropagation();
    picker.hidden = !picker.hidden;
    react.setAttribute("aria-expanded", String(!picker.hidden));
    if (!picker.hidden) picker.querySelector("button").focus();
  });
  bar.append(react);
  if (pin) {
    bar.append(
      actionButton("pin", "pin", m.pinned ? "Unpin" : "Pin", () => act({ type: "pin", message_id: m.message_id, pinned: !m.pinned })),
    );
  }
  if (own) {
    bar.append(
      actionButton("edit", "edit", "Edit", () => editHandler?.({ request: (frame) => act(frame) }, m)),
      actionButton("delete", "trash", "Delete", async () => {
        const sure = await confirmAction({
          title: "Delete message?",
          text: "It will be deleted for everyone in this conversation.",
          action: "Delete",
        });
        if (sure) act({ type: "delete", message_id: m.message_id });
      }),
    );
  }
  bar.append(picker);
  return bar;
}

/**
 * Carry what the user is doing in the toolbar of `from` (an open reaction picker, a
 * toolbar shown by a tap or by the pointer, the keyboard focus) over to `to`, the
 * element rebuilt to replace it: someone else's reaction or a receipt arriving must not
 * snatch away the picker the user is choosing from, nor the button under the pointer.
 * Call while `from` is still in the document; call the function it returns once `to`
 * is, to move the focus.
 */
export function carryActions(from, to) {
  if (from.querySelector(".bubble.actions-open")) to.querySelector(".bubble")?.classList.add("actions-open");
  if (from.matches(":hover") || from.querySelector(".msg-actions.pointed")) holdWhilePointed(to);
  const picker = to.querySelector(".react-picker");
  if (picker && from.querySelector(".react-picker:not([hidden])")) {
    picker.hidden = false;
    picker.parentElement.querySelector('[data-action="react"]')?.setAttribute("aria-expanded", "true");
  }
  const focused = document.activeElement;
  const label = focused && from.contains(focused) ? focused.getAttribute("aria-label") : null;
  const twin = label ? [...to.querySelectorAll(".msg-actions button")].find((el) => el.getAttribute("aria-label") === label) : null;
  return () => twin?.focus({ preventScroll: true });
}

/**
 * Keep the toolbar of `el`, which replaced a message under the pointer, shown until the
 * pointer moves off it. The new element is not hovered until the pointer moves, and
 * where the toolbar juts out above the bubble never: the new toolbar does not take the
 * pointer while hidden, so the one the user was about to click would vanish.
 */
function holdWhilePointed(el) {
  const bar = el.querySelector(".msg-actions");
  if (!bar) return;
  bar.classList.add("pointed");
  const release = (event) => {
    if (el.contains(event.target)) return;
    bar.classList.remove("pointed");
    document.removeEventListener("pointermove", release);
  };
  document.addEventListener("pointermove", release);
}

function closeAll(except = null) {
  for (const el of document.querySelectorAll(".bubble.actions-open")) {
    if (el !== except) el.classList.remove("actions-open");
  }
  for (const picker of document.querySelectorAll(".react-picker:not([hidden])")) {
    if (except?.contains(picker)) continue;
    picker.hidden = true;
    picker.parentElement.querySelector('[data-action="react"]')?.setAttribute("aria-expanded", "false");
  }
}

function interactive(target) {
  return target.closest("button, a, input, textarea, .msg-actions");
}

/** Touch screens: a tap on a bubble shows its toolbar, a long press too; a tap
 * elsewhere hides it. Escape closes any toolbar or picker. */
export function setupActions() {
  document.addEventListener("click", (event) => {
    const bubble = event.target.closest(".bubble");
    if (bubble && touch.matches && !interactive(event.target) && bubble.querySelector(".msg-actions")) {
      closeAll(bubble);
      bubble.classList.toggle("actions-open");
      return;
    }
    if (!event.target.closest(".msg-actions")) closeAll();
  });
  document.addEventListener("contextmenu", (event) => {
    const bubble = event.target.closest(".bubble");
    if (!bubble || !touch.matches || !bubble.querySelector(".msg-actions")) return;
    event.preventDefault();
    closeAll(bubble);
    bubble.classList.add("actions-open");
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeAll();
  });
}

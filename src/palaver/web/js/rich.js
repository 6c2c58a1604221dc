// Rich messages in the web client: mutation entries (edit, delete, react, pin) applied
// to the messages they point at, and the bubble's extras (edited mark, tombstone,
// reactions, action buttons, mention highlight). Entries arrive in the stream like
// messages and keep their sequence numbers there (so cursors stay gapless) but are
// never shown as rows of their own.

import { messageActions } from "./actions.js";
import { h, toast } from "./dom.js";

const ENTRY_KINDS = new Set(["edit", "delete", "react", "unreact", "pin", "unpin"]);

/** True for stream entries that change another message instead of being one. */
export function isEntry(message) {
  return ENTRY_KINDS.has(message.kind);
}

function findById(conversation, id) {
  for (const m of conversation.messages.values()) if (m.message_id === id) return m;
  return null;
}

/** Apply a mutation entry to its target when this client holds it. Idempotent: a
 * history page and a resume may both bring the same entry. */
export function applyEntry(conversation, entry) {
  if (!isEntry(entry)) return false;
  const target = findById(conversation, entry.ref_id);
  if (!target) return false;
  switch (entry.kind) {
    case "edit":
      // An empty edit is one of a deleted message, whose delete entry follows it.
      if (target.deleted_at || !entry.content) return false;
      target.content = entry.content;
      target.edited_at = entry.created_at;
      target.mentions = entry.mentions ?? []; // an edit's mentions replace the old ones
      break;
    case "delete":
      target.content = "";
      target.deleted_at = entry.created_at;
      target.reactions = [];
      target.pinned = false;
      break;
    case "react":
    case "unreact": {
      const reactions = (target.reactions ??= []);
      let slot = reactions.find((r) => r.emoji === entry.content);
      if (!slot) reactions.push((slot = { emoji: entry.content, count: 0, user_ids: [] }));
      const has = slot.user_ids.includes(entry.sender_id);
      if (entry.kind === "react" && !has) slot.user_ids.push(entry.sender_id);
      if (entry.kind === "unreact" && has) slot.user_ids = slot.user_ids.filter((u) => u !== entry.sender_id);
      slot.count = slot.user_ids.length;
      target.reactions = reactions.filter((r) => r.count > 0);
      break;
    }
    case "pin":
    case "unpin":
      target.pinned = entry.kind === "pin";
      break;
  }
  return true;
}

/** What, beyond the text, makes a bubble look different (for the row reconciler). */
export function richSignature(m) {
  const reactions = (m.reactions ?? []).map((r) => `${r.emoji}${r.user_ids.join(",")}`).join(";");
  return [m.edited_at ?? "", m.deleted_at ?? "", m.pinned ? 1 : 0, reactions, m.thread?.reply_count ?? 0, m.thread?.unread ?? 0].join("|");
}

export function mentionsMe(m, me) {
  const name = me?.username?.toLowerCase();
  return Boolean(m.mentions?.includes("@room") || (name && m.mentions?.includes(name)));
}

/** May this user pin in `conversation`? In rooms only owners and admins (and server
 * admins) may; in groups and direct conversations every member. */
export function mayPin(conversation, me) {
  return conversation?.type !== "room" || ["owner", "admin"].includes(conversation.role) || Boolean(me?.is_admin);
}

const REFUSED = {
  react: "Could not react",
  pin: "Could not pin the message",
  delete: "Could not delete the message",
  edit: "Could not edit the message",
};

/** Send an action's frame; a refusal is told, never swallowed. */
export async function act(socket, frame) {
  try {
    await socket.request(frame);
    return true;
  } catch (error) {
    toast(`${REFUSED[frame.type] ?? "Could not do that"}: ${error.message}`, "error");
    return false;
  }
}

/** Add the edited mark, tombstone, reactions and actions to a message bubble. */
export function decorateBubble(bubble, m, { own, me, socket, pin = true }) {
  if (m.deleted_at) {
    bubble.classList.add("deleted");
    const text = bubble.querySelector(".text");
    if (text) text.replaceChildren(h("em", { text: "This message was deleted" }));
    return;
  }
  if (mentionsMe(m, me)) bubble.classList.add("mentions-me");
  const meta = bubble.querySelector(".meta");
  if (m.edited_at && meta) meta.prepend(h("span", { class: "edited", text: "edited", title: "This message was edited" }));
  if (m.pinned) bubble.prepend(h("span", { class: "pinned" }, h("span", { class: "emoji", text: "📌" }), " Pinned"));
  if (m.message_id === undefined || m.seq === null) return; // not sent yet
  const reactions = h("div", { class: "reactions", role: "group", "aria-label": "Reactions" });
  for (const r of m.reactions ?? []) {
    const mine = r.user_ids.includes(me.id);
    // The emoji and the count in their own fonts: colour emoji fonts carry digits too.
    const chip = h(
      "button",
      {
        type: "button",
        class: `reaction${mine ? " mine" : ""}`,
        "aria-pressed": String(mine),
        "aria-label": `${r.emoji} ${r.count}`,
      },
      h("span", { class: "emoji", text: r.emoji }),
      " ",
      h("span", { class: "reaction-count", text: String(r.count) }),
    );
    chip.addEventListener("click", () => act(socket, { type: "react", message_id: m.message_id, emoji: r.emoji, remove: mine }));
    reactions.append(chip);
  }
  const mine = (emoji) => (m.reactions ?? []).some((r) => r.emoji === emoji && r.user_ids.includes(me.id));
  const actions = messageActions(m, { own, pin, act: (frame) => act(socket, frame), mine });
  bubble.append(reactions, actions);
}

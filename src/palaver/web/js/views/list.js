// The conversation list: newest activity first, with preview, time, unread badge and
// presence; the search box filters it and finds people to start a direct chat with.

import { attachmentSummary } from "../attachments.js";
import { chat } from "../chat.js";
import { $, avatar, debounce, h, icon, paintAvatar, toast } from "../dom.js";
import { listTime } from "../format.js";
import { isMuted } from "../notify.js";
import { store } from "../store.js";
import { entryLine, previewMessage } from "../preview.js";
import { isEntry } from "../rich.js";

const items = new Map(); // conversation id -> <li>
let query = "";
let frame = 0;

/** Coalesce renders to one per animation frame, however many events arrive. */
function schedule() {
  if (!frame) frame = requestAnimationFrame(render);
}

export function setupList({ open }) {
  const search = $("search");
  for (const event of ["conversations", "presence", "typing", "active", "outbox"]) store.on(event, schedule);

  $("conv-list").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-conversation-id]");
    if (button) open(Number(button.dataset.conversationId));
  });

  const findPeople = debounce(async (text) => {
    if (!text) return;
    try {
      const users = await chat.searchUsers(text);
      if (text === query) renderPeople(users, open);
    } catch {
      // A failed lookup leaves the list as it was.
    }
  }, 250);

  search.addEventListener("input", () => {
    query = search.value.trim();
    $("people").hidden = !query;
    if (!query) $("people-list").replaceChildren();
    render();
    findPeople(query);
  });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && search.value) {
      event.preventDefault();
      event.stopPropagation();
      search.value = "";
      search.dispatchEvent(new Event("input"));
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      $("sidebar").querySelector(".lists button")?.focus();
    } else if (event.key === "Enter") {
      event.preventDefault();
      $("sidebar").querySelector(".lists button")?.click();
    }
  });

  // Arrow keys move through the list (Tab still works as usual).
  $("sidebar").querySelector(".lists").addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = [...$("sidebar").querySelectorAll(".lists button:not([hidden])")];
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    event.preventDefault();
    if (event.key === "ArrowUp" && index === 0) search.focus();
    else buttons[Math.min(buttons.length - 1, Math.max(0, index + (event.key === "ArrowDown" ? 1 : -1)))].focus();
  });
}

function render() {
  frame = 0;
  if (!store.me) return;
  const list = $("conv-list");
  const needle = query.toLowerCase();
  const shown = store.sorted().filter((c) => !needle || matches(c, needle));
  const keep = new Set(shown.map((c) => c.id));
  for (const [id, li] of items) {
    if (!keep.has(id)) {
      li.remove();
      items.delete(id);
    }
  }
  // Items are updated in place and moved only when out of order: moving a node takes
  // keyboard focus away from it, and the list re-renders on every message.
  let previous = null;
  for (const conversation of shown) {
    let li = items.get(conversation.id);
    if (!li) {
      li = h("li", { class: "conv-item" });
      items.set(conversation.id, li);
    }
    fill(li, conversation);
    const expected = previous ? previous.nextSibling : list.firstChild;
    if (expected !== li) list.insertBefore(li, expected);
    previous = li;
  }
  $("conv-empty").hidden = shown.length > 0 || Boolean(query);
}

function matches(conversation, needle) {
  return (
    conversation.title.toLowerCase().includes(needle) ||
    (conversation.peer?.username ?? "").toLowerCase().includes(needle)
  );
}

function previewOf(conversation) {
  const me = store.me;
  const typing = conversation.typingNames(me, (c, id) => store.nameOf(c, id));
  if (typing.length) {
    return { text: typing.length === 1 && conversation.type === "direct" ? "typing…" : `${typing[0]} is typing…`, kind: "typing" };
  }
  const pending = store.pending(conversation.id).at(-1);
  if (pending) return { text: `You: ${pending.content}`, kind: pending.failed ? "failed" : "pending" };
  const last = previewMessage(conversation);
  if (!last) return { text: conversation.topic || "No messages yet", kind: "empty" };
  if (last.kind === "system") return { text: last.content, kind: "system" };
  if (last.deleted_at || last.kind === "delete") return { text: "Message deleted", kind: "deleted" };
  const content = isEntry(last) ? entryLine(last) : last.content || attachmentSummary(last);
  if (last.sender_id === me.id) return { text: `You: ${content}`, kind: "own" };
  const sender = conversation.type === "direct" ? "" : `${last.sender_name || "Someone"}: `;
  return { text: sender + content, kind: "text" };
}

function fill(li, conversation) {
  let button = li.firstElementChild;
  if (!button) {
    button = h("button", { type: "button", class: "conv-button" });
    li.append(button);
  }
  button.dataset.conversationId = String(conversation.id);
  li.dataset.conversationId = String(conversation.id);
  li.dataset.type = conversation.type;
  const active = store.activeId === conversation.id;
  if (active) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");

  const preview = previewOf(conversation);
  const muted = isMuted(conversation.id);
  const unread = conversation.unread;
  const time = conversation.lastMessage?.created_at ?? conversation.createdAt;

  const face = avatar(conversation.title, conversation.peer?.id ?? `c${conversation.id}`);
  const wrap = h("span", { class: "avatar-wrap" }, face);
  if (conversation.type === "direct" && conversation.peer) {
    const status = store.presence.get(conversation.peer.id) ?? "offline";
    wrap.append(h("span", { class: `presence-dot ${status}`, title: status }));
  } else if (conversation.type !== "direct") {
    wrap.append(h("span", { class: "kind-mark" }, icon(conversation.type === "room" ? "hash" : "users", "icon tiny")));
  }

  const badges = h("span", { class: "conv-badges" });
  if (muted) badges.append(icon("bell-off", "icon tiny muted-icon"));
  if (conversation.mentioned && unread) badges.append(h("span", { class: "badge mention", text: "@", title: "You were mentioned" }));
  if (unread) {
    badges.append(
      h("span", {
        class: `badge unread${muted ? " quiet" : ""}`,
        text: unread > 999 ? "999+" : String(unread),
        dataset: { unread: String(unread) },
      }),
    );
  }

  button.replaceChildren(
    wrap,
    h(
      "span",
      { class: "conv-main" },
      h("span", { class: "conv-line" }, h("span", { class: "conv-name", text: conversation.title }), h("span", { class: "conv-time", text: listTime(time) })),
      h("span", { class: "conv-line" }, h("span", { class: `conv-preview ${preview.kind}`, text: preview.text }), badges),
    ),
  );
  li.classList.toggle("has-unread", unread > 0);
  const label = [conversation.title];
  if (unread) label.push(`${unread} unread message${unread === 1 ? "" : "s"}`);
  if (muted) label.push("muted");
  label.push(preview.text);
  button.setAttribute("aria-label", label.join(", "));
}

function renderPeople(users, open) {
  const list = $("people-list");
  const me = store.me;
  const others = users.filter((u) => u.id !== me.id && !u.deleted);
  list.replaceChildren(
    ...others.map((user) => {
      const button = h(
        "button",
        {
          type: "button",
          class: "conv-button person",
          dataset: { userId: String(user.id) },
          "aria-label": `Message ${user.display_name}${user.username ? ` (@${user.username})` : ""}`,
        },
        h("span", { class: "avatar-wrap" }, paintAvatar(h("span", { "aria-hidden": "true" }), user.display_name, user.id)),
        h(
          "span",
          { class: "conv-main" },
          h("span", { class: "conv-line" }, h("span", { class: "conv-name", text: user.display_name })),
          h("span", { class: "conv-line" }, h("span", { class: "conv-preview", text: user.username ? `@${user.username}` : "" })),
        ),
      );
      button.addEventListener("click", () => startWith(user, open));
      return h("li", { class: "conv-item" }, button);
    }),
  );
  $("people-empty").hidden = others.length > 0;
}

async function startWith(user, open) {
  const existing = [...store.conversations.values()].find((c) => c.type === "direct" && c.peer?.id === user.id);
  const search = $("search");
  search.value = "";
  search.dispatchEvent(new Event("input"));
  if (existing) {
    open(existing.id);
    return;
  }
  try {
    await chat.startDirect(user.id);
  } catch (error) {
    toast(`Could not start the conversation: ${error.message}`, "error");
  }
}

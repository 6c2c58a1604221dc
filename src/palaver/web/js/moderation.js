// Moderation in the web client: actions on members (kick, ban, mute, promote, block)
// for those allowed, the conversation's notification menu, and the frames that keep
// both current. The server decides; the buttons only hide what it would refuse.

import { api } from "./api.js";
import { confirmAction } from "./confirm.js";
import { h, toast } from "./dom.js";
import { popupMenu } from "./menu.js";
import { store } from "./store.js";

const RANK = { owner: 0, admin: 1, member: 2 };

/** Apply a `notifications` or `member_updated` frame. */
export function onModerationFrame(frame) {
  const conversation = store.conversations.get(frame.conversation_id);
  if (!conversation) return;
  if (frame.type === "notifications") {
    const { level, muted, muted_until } = frame;
    conversation.notifications = { level, muted, muted_until };
    store.emit("conversations");
    return;
  }
  const member = conversation.members?.get(frame.user_id);
  if (member) {
    member.role = frame.role;
    member.muted = frame.muted;
    member.muted_until = frame.muted_until;
  }
  if (frame.user_id === store.me?.id) conversation.role = frame.role;
  store.emit("members", conversation.id);
}

/** Save the user's settings for a conversation (and show them at once). */
export async function saveNotifications(conversationId, settings) {
  try {
    const saved = await api.request("PUT", `/api/conversations/${conversationId}/notifications`, settings);
    const conversation = store.conversations.get(conversationId);
    if (conversation) {
      conversation.notifications = { level: saved.level, muted: saved.muted, muted_until: saved.muted_until };
      store.emit("conversations");
    }
  } catch (error) {
    toast(`Could not change notifications: ${error.message}`, "error");
  }
}

const CHOICES = [
  ["all", "All messages", { level: "all", mute: false }],
  ["mentions", "Mentions only", { level: "mentions", mute: false }],
  ["none", "Nothing", { level: "none", mute: false }],
  ["hour", "Mute for an hour", { mute: 3600 }],
  ["forever", "Mute until I unmute", { mute: true }],
];

function currentChoice(settings) {
  if (!settings) return "all";
  if (settings.muted && (settings.muted_until == null || settings.muted_until > Date.now())) {
    return settings.muted_until == null ? "forever" : "hour";
  }
  return settings.level;
}

/** A labelled select for the details panel. */
export function notificationMenu(conversation) {
  const current = currentChoice(conversation.notifications);
  const select = h(
    "select",
    {
      id: "notify-level",
      "aria-label": "Notifications for this conversation",
      onchange: () => {
        const choice = CHOICES.find(([key]) => key === select.value);
        if (choice) saveNotifications(conversation.id, choice[2]);
      },
    },
    ...CHOICES.map(([key, label]) => h("option", { value: key, text: label, selected: key === current })),
  );
  return h("label", { class: "notify-menu" }, h("span", { text: "Notifications " }), select);
}

function mayModerate(conversation, member) {
  if (conversation.type === "direct" || member.user_id === store.me?.id) return false;
  const mine = RANK[conversation.role] ?? 3;
  if (mine > 1 && !store.me?.is_admin) return false;
  if (member.role === "owner") return false;
  return mine < (RANK[member.role] ?? 3) || (store.me?.is_admin && member.role !== "owner");
}

async function act(label, method, path, body) {
  try {
    await api.request(method, path, body);
    toast(label);
  } catch (error) {
    toast(`${label} failed: ${error.message}`, "error");
  }
}

async function ask(question, then) {
  if (await confirmAction(question)) then();
}

/** The "⋯" menu of one row of the member list (nothing for oneself). */
export function memberActions(conversation, member) {
  if (member.user_id === store.me?.id) return null;
  const name = member.display_name || member.username || "this member";
  const base = `/api/conversations/${conversation.id}`;
  const items = [];
  const item = (text, action, danger = false) => items.push({ text, label: `${text} ${name}`, action, danger });
  if (mayModerate(conversation, member)) {
    if (member.muted) item("Unmute", () => act(`${name} unmuted`, "DELETE", `${base}/members/${member.user_id}/mute`));
    else item("Mute", () => act(`${name} muted`, "PUT", `${base}/members/${member.user_id}/mute`, {}));
    if (conversation.role === "owner" || store.me?.is_admin) {
      const promote = member.role === "admin" ? "member" : "admin";
      item(promote === "admin" ? "Make admin" : "Remove admin", () =>
        act(`${name} is now ${promote}`, "PUT", `${base}/members/${member.user_id}/role`, { role: promote }),
      );
    }
    const where = `the ${conversation.type === "room" ? "room" : "group"} “${conversation.title}”`;
    const comeBack =
      conversation.type === "room" ? "They can join it again." : "They can come back only if someone adds or invites them.";
    item(
      "Kick",
      () =>
        ask(
          {
            title: `Remove ${name}?`,
            text: `${name} will be removed from ${where} at once. ${comeBack}`,
            action: "Remove",
          },
          () => act(`${name} removed`, "POST", `${base}/members/${member.user_id}/kick`),
        ),
      true,
    );
    item(
      "Ban",
      () =>
        ask(
          {
            title: `Ban ${name}?`,
            text: `${name} will be removed from ${where} and cannot come back, by joining, an invite or being added, until the ban is lifted.`,
            action: "Ban",
          },
          () => act(`${name} banned`, "POST", `${base}/bans`, { user_id: member.user_id }),
        ),
      true,
    );
  }
  item(
    "Block",
    () =>
      ask(
        {
          title: `Block ${name}?`,
          text: `Neither of you will be able to write in your direct conversation, and ${name} will no longer see when you are online.`,
          action: "Block",
        },
        () => act(`${name} blocked`, "POST", `/api/users/${member.user_id}/block`),
      ),
    true,
  );
  const muted = member.muted ? h("span", { class: "role muted-badge", text: "muted" }) : null;
  return h("span", { class: "member-actions" }, muted, popupMenu(`Actions for ${name}`, items));
}

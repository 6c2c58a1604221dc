// Desktop notifications, per-conversation mute, and the unread total in the tab title.
//
// Permission is asked only when the user presses a button (browsers penalise prompts
// on load, and people deny them). A notification is shown for a message from someone
// else while the tab is hidden; a muted conversation stays silent except for messages
// that @mention the user. Notifications are tagged per conversation, so a burst of
// messages -- or the same message seen by several tabs -- shows one notification.

import { spokenText } from "./attachments.js";
import { saveNotifications } from "./moderation.js";
import { mentions, store } from "./store.js";

const DISMISS_KEY = "palaver.notify.dismissed";
// Backlog delivered after a long absence is not worth a notification per message.
const MAX_AGE_MS = 5 * 60_000;

export const supported = typeof Notification !== "undefined";

export function permission() {
  return supported ? Notification.permission : "unsupported";
}

export async function requestPermission() {
  if (!supported) return "unsupported";
  try {
    return await Notification.requestPermission();
  } catch {
    return Notification.permission;
  }
}

/** Should the "turn on notifications" banner show? */
export function bannerWanted() {
  let dismissed = false;
  try {
    dismissed = localStorage.getItem(DISMISS_KEY) === "1";
  } catch {
    // storage disabled: ask (politely) every time
  }
  return supported && Notification.permission === "default" && !dismissed;
}

export function dismissBanner() {
  try {
    localStorage.setItem(DISMISS_KEY, "1");
  } catch {
    // shown again next time
  }
}

// -- mute ---------------------------------------------------------------------------
// The settings live on the server (per member and conversation), so every device of
// the user honours them: level "all", "mentions" or "none", and a mute with an end.

/** Does a message (mentioning the user or not) of this conversation notify? */
export function wanted(conversationId, mentioned) {
  const settings = store.conversations.get(conversationId)?.notifications;
  if (!settings) return true;
  if (settings.muted && (settings.muted_until == null || settings.muted_until > Date.now())) return false;
  if (settings.level === "none") return false;
  return settings.level === "all" || mentioned;
}

/** Quiet unless mentioned (the header's bell). */
export function isMuted(conversationId) {
  return !wanted(conversationId, false);
}

export function setMuted(conversationId, muted) {
  return saveNotifications(conversationId, muted ? { level: "mentions" } : { level: "all", mute: false });
}

// -- title --------------------------------------------------------------------------

/** "(3) Palaver": unread messages of conversations that are not muted. */
export function updateTitle() {
  let total = 0;
  for (const conversation of store.conversations.values()) {
    if (wanted(conversation.id, conversation.mentioned)) total += conversation.unread;
  }
  document.title = total > 0 ? `(${total}) Palaver` : "Palaver";
}

// -- notifications ------------------------------------------------------------------

/** Called for every new message from someone else. `open(id)` shows a conversation. */
export function notifyIncoming({ conversation, message }, open) {
  if (!supported || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible") return;
  if (message.kind !== "text" || Date.now() - message.created_at > MAX_AGE_MS) return;
  const mentioned = mentions(message.content, store.me?.username);
  if (!wanted(conversation.id, mentioned)) return;
  const sender = message.sender_name || "Someone";
  const title =
    conversation.type === "direct" ? sender : `${sender} in ${conversation.title}${mentioned ? " (mentioned you)" : ""}`;
  try {
    const text = spokenText(message);
    const notification = new Notification(title, {
      body: text.length > 240 ? `${text.slice(0, 240)}…` : text,
      tag: `palaver-${conversation.id}`,
      icon: document.querySelector('link[rel="icon"]')?.href,
    });
    notification.onclick = () => {
      window.focus();
      open(conversation.id);
      notification.close();
    };
  } catch {
    // Some platforms only allow notifications from a service worker; stay quiet.
  }
}

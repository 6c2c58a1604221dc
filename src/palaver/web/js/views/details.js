// The details panel of the open conversation: topic, members with presence, adding
// people (groups: owners and admins; rooms: anyone may invite), leaving.

import { chat } from "../chat.js";
import { confirmAction } from "../confirm.js";
import { $, avatar, debounce, h, toast } from "../dom.js";
import { keepMenu } from "../menu.js";
import { memberActions, notificationMenu } from "../moderation.js";
import { store } from "../store.js";

let openedFor = null;

export function setupDetails() {
  $("info-close").addEventListener("click", () => closeDetails());
  store.on("members", (id) => id === openedFor && render());
  store.on("presence", () => openedFor !== null && render());
  store.on("active", () => {
    if (openedFor !== null && store.activeId !== openedFor) closeDetails(false);
  });

  const search = $("add-member-search");
  const find = debounce(async () => {
    const text = search.value.trim();
    const results = $("add-member-results");
    if (!text) {
      results.replaceChildren();
      return;
    }
    try {
      const users = await chat.searchUsers(text);
      const conversation = store.active;
      const members = conversation?.members ?? new Map();
      results.replaceChildren(
        ...users
          .filter((u) => !members.has(u.id) && !u.deleted)
          .map((user) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "pick",
                  "aria-label": `Add ${user.display_name}`,
                  onclick: () => add(user),
                },
                avatar(user.display_name, user.id, "small"),
                h("span", { class: "pick-name", text: user.display_name }),
                h("span", { class: "pick-sub", text: user.username ? `@${user.username}` : "" }),
              ),
            ),
          ),
      );
    } catch {
      // leave the results as they were
    }
  }, 250);
  search.addEventListener("input", find);

  $("leave-button").addEventListener("click", async () => {
    const conversation = store.active;
    if (!conversation) return;
    const kind = conversation.type === "room" ? "room" : "group";
    const sure = await confirmAction({
      title: `Leave the ${kind} “${conversation.title}”?`,
      text:
        kind === "room"
          ? "It leaves your list and you stop receiving its messages. You can join it again from Browse rooms."
          : "It leaves your list and you stop receiving its messages. You can come back only if someone adds or invites you.",
      action: "Leave",
    });
    if (!sure) return;
    try {
      await chat.leave(conversation);
      closeDetails(false);
    } catch (error) {
      toast(`Could not leave: ${error.message}`, "error");
    }
  });
}

async function add(user) {
  const conversation = store.active;
  if (!conversation) return;
  try {
    await chat.addMember(conversation, user.id);
    $("add-member-search").value = "";
    $("add-member-results").replaceChildren();
    toast(`${user.display_name} was added.`);
  } catch (error) {
    toast(`Could not add ${user.display_name}: ${error.message}`, "error");
  }
}

export function detailsOpen() {
  return openedFor !== null;
}

export function toggleDetails() {
  if (openedFor !== null) closeDetails();
  else openDetails();
}

export function openDetails() {
  const conversation = store.active;
  if (!conversation) return;
  openedFor = conversation.id;
  $("info-panel").hidden = false;
  $("chat").classList.add("details-open");
  $("info-button").setAttribute("aria-expanded", "true");
  if (!conversation.members) chat.loadMembers(conversation);
  render();
  $("info-close").focus();
}

export function closeDetails(returnFocus = true) {
  if (openedFor === null) return;
  openedFor = null;
  $("info-panel").hidden = true;
  $("chat").classList.remove("details-open");
  $("info-button").setAttribute("aria-expanded", "false");
  if (returnFocus) $("info-button").focus();
}

function render() {
  const conversation = store.active;
  if (!conversation || conversation.id !== openedFor) return;
  $("info-title").textContent = conversation.title;
  const topic = $("info-topic");
  topic.textContent = conversation.topic ?? "";
  topic.hidden = !conversation.topic;
  $("info-notifications").replaceChildren(notificationMenu(conversation));
  const canAdd =
    conversation.type === "room" || (conversation.type === "group" && ["owner", "admin"].includes(conversation.role));
  $("add-member").hidden = !canAdd;
  $("leave-button").hidden = conversation.type === "direct";
  $("leave-button").textContent = conversation.type === "room" ? "Leave room" : "Leave group";

  const members = [...(conversation.members?.values() ?? [])];
  const rank = { owner: 0, admin: 1, member: 2 };
  members.sort(
    (a, b) => (rank[a.role] ?? 3) - (rank[b.role] ?? 3) || String(a.display_name).localeCompare(String(b.display_name)),
  );
  const restore = keepMenu($("members"));
  $("members").replaceChildren(
    ...members.map((member) => {
      const status = member.user_id === store.me.id ? "online" : (store.presence.get(member.user_id) ?? "offline");
      return h(
        "li",
        { class: "member", dataset: { userId: String(member.user_id) } },
        h(
          "span",
          { class: "avatar-wrap" },
          avatar(member.display_name || member.username || "?", member.user_id, "small"),
          h("span", { class: `presence-dot ${status}`, title: status }),
        ),
        h(
          "span",
          { class: "member-names" },
          h("span", { class: "member-name", text: member.user_id === store.me.id ? `${member.display_name} (you)` : member.display_name }),
          h("span", { class: "member-sub", text: member.username ? `@${member.username}` : "" }),
        ),
        member.role !== "member" ? h("span", { class: "role", text: member.role }) : null,
        h("span", { class: "visually-hidden", text: status }),
        memberActions(conversation, member),
      );
    }),
  );
  restore();
}

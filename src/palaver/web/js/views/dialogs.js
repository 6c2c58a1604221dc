// Modal dialogs: browse/create/join rooms, create a private group, settings.
// Native <dialog> elements: showModal() traps focus, Esc closes, focus returns to the
// button that opened them.

import { chat } from "../chat.js";
import { $, avatar, debounce, h, paintAvatar, toast } from "../dom.js";
import * as notify from "../notify.js";
import { store } from "../store.js";
import { theme } from "../theme.js";

export function setupDialogs({ signOut, open }) {
  setupRooms(open);
  setupGroup(open);
  setupSettings(signOut);
}

function showError(form, error) {
  form.querySelector(".form-error").textContent = error ? error.message || String(error) : "";
}

// -- rooms ----------------------------------------------------------------------------

function setupRooms(open) {
  const dialog = $("rooms-dialog");
  const search = $("rooms-search");
  const form = $("room-create");

  const refresh = async () => {
    const query = search.value.trim();
    try {
      const rooms = await chat.listRooms(query);
      renderRooms(rooms, open, dialog, query);
    } catch (error) {
      toast(`Could not list rooms: ${error.message}`, "error");
    }
  };
  const refreshSoon = debounce(refresh, 200);

  $("rooms-button").addEventListener("click", () => {
    search.value = "";
    showError(form, null);
    dialog.showModal();
    search.focus();
    refresh();
  });
  search.addEventListener("input", refreshSoon);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(form, null);
    const data = Object.fromEntries(new FormData(form));
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await chat.createRoom(data.name.trim(), data.topic.trim());
      form.reset();
      dialog.close();
    } catch (error) {
      showError(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

function renderRooms(rooms, open, dialog, query) {
  const list = $("rooms-list");
  list.replaceChildren(
    ...rooms.map((room) => {
      const joined = store.conversations.has(room.id);
      const action = h("button", {
        type: "button",
        class: joined ? "secondary" : "primary small",
        text: joined ? "Open" : "Join",
        "aria-label": `${joined ? "Open" : "Join"} ${room.name}`,
      });
      action.addEventListener("click", async () => {
        action.disabled = true;
        try {
          if (joined) open(room.id);
          else await chat.joinRoom(room.id);
          dialog.close();
        } catch (error) {
          toast(`Could not join ${room.name}: ${error.message}`, "error");
          action.disabled = false;
        }
      });
      const count = room.member_count ?? 0;
      return h(
        "li",
        { class: "room", dataset: { roomId: String(room.id) } },
        avatar(room.name, `c${room.id}`, "small"),
        h(
          "span",
          { class: "room-names" },
          h("span", { class: "room-name", text: room.name }),
          h("span", { class: "room-sub", text: [room.topic, `${count} member${count === 1 ? "" : "s"}`].filter(Boolean).join(" · ") }),
        ),
        action,
      );
    }),
  );
  const empty = $("rooms-empty");
  empty.hidden = rooms.length > 0;
  empty.textContent = query ? `No room matches “${query}”.` : "No rooms yet. Create the first one below.";
}

// -- new group ------------------------------------------------------------------------

function setupGroup(open) {
  const dialog = $("group-dialog");
  const form = $("group-create");
  const search = $("group-search");
  const chosen = new Map(); // user id -> user

  const renderChosen = () => {
    $("group-chosen").replaceChildren(
      ...[...chosen.values()].map((user) =>
        h(
          "li",
          { class: "chip" },
          h("span", { text: user.display_name }),
          h("button", {
            type: "button",
            class: "chip-remove",
            "aria-label": `Remove ${user.display_name}`,
            text: "×",
            onclick: () => {
              chosen.delete(user.id);
              renderChosen();
              search.focus();
            },
          }),
        ),
      ),
    );
  };

  const find = debounce(async () => {
    const text = search.value.trim();
    const results = $("group-results");
    if (!text) {
      results.replaceChildren();
      return;
    }
    try {
      const users = await chat.searchUsers(text);
      results.replaceChildren(
        ...users
          .filter((u) => u.id !== store.me.id && !chosen.has(u.id) && !u.deleted)
          .map((user) =>
            h(
              "li",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "pick",
                  "aria-label": `Add ${user.display_name} to the group`,
                  onclick: () => {
                    chosen.set(user.id, user);
                    renderChosen();
                    search.value = "";
                    results.replaceChildren();
                    search.focus();
                  },
                },
                paintAvatar(h("span", { class: "small", "aria-hidden": "true" }), user.display_name, user.id),
                h("span", { class: "pick-name", text: user.display_name }),
                h("span", { class: "pick-sub", text: user.username ? `@${user.username}` : "" }),
              ),
            ),
          ),
      );
    } catch {
      // keep what was there
    }
  }, 250);
  search.addEventListener("input", find);
  // Enter in the search box picks the first result instead of submitting the form.
  search.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      $("group-results").querySelector("button")?.click();
    }
  });

  $("group-button").addEventListener("click", () => {
    form.reset();
    chosen.clear();
    renderChosen();
    $("group-results").replaceChildren();
    showError(form, null);
    dialog.showModal();
    form.elements.namedItem("name").focus();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(form, null);
    const name = form.elements.namedItem("name").value.trim();
    if (!name) {
      showError(form, new Error("Give the group a name."));
      return;
    }
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      await chat.createGroup(name, [...chosen.keys()]);
      dialog.close();
    } catch (error) {
      showError(form, error);
    } finally {
      button.disabled = false;
    }
  });
}

// -- settings -------------------------------------------------------------------------

function setupSettings(signOut) {
  const dialog = $("settings-dialog");
  const radios = dialog.querySelectorAll('input[name="theme"]');

  const renderNotify = () => {
    const state = notify.permission();
    const button = $("settings-notify");
    const text = {
      granted: "Desktop notifications are on.",
      denied: "Desktop notifications are blocked in the browser's site settings.",
      default: "Desktop notifications are off.",
      unsupported: "This browser cannot show desktop notifications.",
    }[state];
    $("notify-state").textContent = text;
    button.hidden = state !== "default";
  };

  $("me-button").addEventListener("click", () => {
    const me = store.me;
    paintAvatar($("settings-avatar"), me.display_name, me.id);
    $("settings-name").textContent = me.display_name;
    $("settings-username").textContent = me.username ? `@${me.username}` : (me.email ?? "");
    for (const radio of radios) radio.checked = radio.value === theme.current;
    renderNotify();
    dialog.showModal();
  });
  for (const radio of radios) radio.addEventListener("change", () => theme.set(radio.value));
  $("settings-notify").addEventListener("click", async () => {
    await notify.requestPermission();
    renderNotify();
    store.emit("notify");
  });
  $("logout-button").addEventListener("click", () => {
    dialog.close();
    signOut();
  });
}

// Palaver's web client: start-up, sign-in and sign-out, routing, the connection bar.
//
// Module map: api.js (REST + token refresh), socket.js (the WebSocket, backoff),
// chat.js (delivery engine: resume, outbox, receipts), store.js (state + events),
// notify.js (notifications, mute, title), theme.js, dom.js (safe DOM helpers),
// views/*.js (what is on screen).

import { api } from "./api.js";
import { chat } from "./chat.js";
import { $, paintAvatar, setIcon, toast } from "./dom.js";
import * as notify from "./notify.js";
import { setupMessageSearch } from "./search.js";
import { mayHaveSession } from "./session-hint.js";
import { store } from "./store.js";
import { theme } from "./theme.js";
import { setupAuth, showAuth } from "./views/auth.js";
import { setupConversation } from "./views/conversation.js";
import { closeDetails, detailsOpen, setupDetails, toggleDetails } from "./views/details.js";
import { setupDialogs } from "./views/dialogs.js";
import { setupList } from "./views/list.js";

const NOTICE_KEY = "palaver.notice";
const BOOT_RETRY_MS = 3_000;

// -- routing: #/c/<id> is the open conversation, so a reload reopens it --------------

function routeId() {
  const match = /^#\/c\/(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

/** Show a conversation (or, with null, the list) as a navigation the Back button undoes. */
function open(id) {
  if (id === routeId()) {
    applyRoute();
    return;
  }
  if (id === null) {
    if (history.state?.palaver) history.back();
    else history.replaceState(null, "", location.pathname + location.search);
  } else if (routeId() === null) {
    // From the list into a conversation: Back (a phone's back gesture) returns here.
    history.pushState({ palaver: true }, "", `#/c/${id}`);
  } else {
    history.replaceState({ palaver: true }, "", `#/c/${id}`);
  }
  applyRoute();
}

function applyRoute() {
  if (!store.me) return;
  const id = routeId();
  const known = id !== null && store.conversation(id) !== null;
  if (id !== null && !known) {
    // Left, or never a member: back to the list.
    history.replaceState(null, "", location.pathname + location.search);
  }
  if (store.activeId !== (known ? id : null)) chat.open(known ? id : null);
  $("chat").classList.toggle("conversation-open", known);
}

window.addEventListener("popstate", applyRoute);
window.addEventListener("hashchange", applyRoute);

// -- signing in and out ---------------------------------------------------------------

async function enter(user) {
  store.reset();
  store.me = user;
  $("splash").hidden = true;
  $("auth").hidden = true;
  $("chat").hidden = false;
  paintAvatar($("me-avatar"), user.display_name, user.id);
  $("me-button").setAttribute("aria-label", `${user.display_name}: account and settings`);
  $("notify-banner").hidden = !notify.bannerWanted();
  try {
    await chat.start();
  } catch (error) {
    toast(`Could not load your conversations: ${error.message}`, "error");
    chat.socket.start();
  }
  applyRoute();
  notify.updateTitle();
}

/** Log out on purpose: the server ends the session and local traces are removed. */
async function signOut() {
  chat.stop();
  chat.forget();
  await api.logout();
  restart();
}

/** The session ended elsewhere (revoked, expired): back to the sign-in screen. */
function sessionEnded(message) {
  chat.stop();
  try {
    sessionStorage.setItem(NOTICE_KEY, message);
  } catch {
    // the notice is lost, the sign-in screen is not
  }
  restart();
}

// A fresh page is the simplest way to drop every piece of the previous user's state.
function restart() {
  location.replace(location.pathname + location.search);
}

async function boot() {
  try {
    if (!mayHaveSession()) throw new Error("signed out");
    const user = await api.refresh();
    await enter(user);
  } catch (error) {
    if (error.code === "NETWORK") {
      $("splash").textContent = "Cannot reach Palaver. Retrying…";
      setTimeout(boot, BOOT_RETRY_MS);
      return;
    }
    $("splash").hidden = true;
    showAuth();
    const notice = sessionStorage.getItem(NOTICE_KEY);
    if (notice) {
      sessionStorage.removeItem(NOTICE_KEY);
      $("login-form").querySelector(".form-error").textContent = notice;
    }
  }
}

// -- connection bar -------------------------------------------------------------------

let connTimer = 0;

function renderConnection() {
  const bar = $("conn");
  const { state } = store.connection;
  bar.dataset.state = state;
  const retry = bar.querySelector(".conn-retry");
  let text = "";
  clearInterval(connTimer);
  if (state === "connecting") text = "Connecting…";
  else if (state === "online") text = "Connected";
  else if (state === "offline") text = "No network. Messages will be sent when you are back online.";
  else if (state === "reconnecting") {
    const seconds = Math.max(0, Math.ceil((chat.socket.retryAt - Date.now()) / 1000));
    text = seconds > 0 ? `Connection lost. Reconnecting in ${seconds} s…` : "Reconnecting…";
    connTimer = setInterval(renderConnection, 1000);
  }
  bar.querySelector(".conn-text").textContent = text;
  retry.hidden = state !== "reconnecting" && state !== "offline";
  const dot = $("conn-dot");
  dot.dataset.state = state;
  const label = { online: "Online", connecting: "Connecting", reconnecting: "Reconnecting", offline: "Offline" }[state];
  dot.setAttribute("aria-label", label ?? state);
  dot.title = label ?? state;
}

// -- setup ----------------------------------------------------------------------------

function renderThemeButton() {
  const button = $("theme-toggle");
  const dark = theme.current === "dark";
  button.setAttribute("aria-pressed", String(!dark));
  button.setAttribute("aria-label", dark ? "Switch to light theme" : "Switch to dark theme");
  button.title = button.getAttribute("aria-label");
  setIcon(button.querySelector("svg"), dark ? "sun" : "moon");
}

function back() {
  open(null);
  // Keyboard users land where they left: on the conversation they were in.
  requestAnimationFrame(() => {
    const id = store.activeId ?? Number($("conv-list").dataset.lastOpened);
    document.querySelector(`#conv-list button[data-conversation-id="${id}"]`)?.focus();
  });
}

function setup() {
  setupAuth((user) => {
    enter(user);
  });
  setupList({ open });
  setupMessageSearch({ open });
  setupConversation({ back, toggleInfo: toggleDetails });
  setupDetails();
  setupDialogs({ signOut, open });

  store.on("connection", renderConnection);
  store.on("conversations", notify.updateTitle);
  store.on("active", () => {
    if (store.activeId !== null) $("conv-list").dataset.lastOpened = String(store.activeId);
    // The open conversation went away (left on another device): follow it in the URL.
    else if (routeId() !== null) applyRoute();
  });
  $("conn").querySelector(".conn-retry").addEventListener("click", () => chat.socket.reconnectNow());

  chat.on("incoming", (event) => notify.notifyIncoming(event, open));
  chat.on("opened", (id) => open(id));
  chat.on("problem", (message) => toast(message, "error"));
  chat.on("ended", sessionEnded);
  api.on("ended", () => sessionEnded("Your session has ended. Please sign in again."));

  // Icon-only buttons: the accessible name doubles as the mouse tooltip.
  for (const button of document.querySelectorAll(".icon-button[aria-label]:not([title])")) {
    button.title = button.getAttribute("aria-label");
  }

  theme.on("change", renderThemeButton);
  renderThemeButton();
  $("theme-toggle").addEventListener("click", () => theme.toggle());

  $("notify-enable").addEventListener("click", async () => {
    await notify.requestPermission();
    $("notify-banner").hidden = true;
  });
  $("notify-dismiss").addEventListener("click", () => {
    notify.dismissBanner();
    $("notify-banner").hidden = true;
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
    if (event.key === "Escape") {
      if (detailsOpen()) {
        event.preventDefault();
        closeDetails();
      } else if (store.activeId !== null && !$("chat").hidden) {
        event.preventDefault();
        back();
      }
    } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
      event.preventDefault();
      $("search").focus();
    }
  });
}

setup();
boot();

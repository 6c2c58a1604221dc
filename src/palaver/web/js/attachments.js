// Attachments: the attach button and tray of the composer, and the files of a message.
//
// Files are read with the access token (fetch + Authorization), never with a plain
// <img src="/api/uploads/..">: the token lives only in memory, and a URL that worked
// without it would let any page that learns it read the file. What the server sends is
// shown through blob: URLs, which the page's CSP allows for images; names are text.

import { api, ApiError, ROOT } from "./api.js";
import { $, h, icon, toast } from "./dom.js";
import { store } from "./store.js";

const MAX_ATTACHMENTS = 10;
// Thumbnails fit in this square (as .attach-thumb's max-width/max-height say).
const THUMB_PX = 240;
const MIN_THUMB_PX = 48;

// Uploads waiting in the tray: {key, name, state: "uploading"|"ready", item?}.
let tray = [];
let trayEl = null;
// Blob URLs by "id:variant", kept for the page's life so re-rendered rows reuse them.
const blobs = new Map();

/** Add the attach button and the tray to the composer (once, at start-up). */
export function setupAttachments() {
  const composer = $("composer");
  const input = h("input", { type: "file", class: "attach-input", multiple: true, tabIndex: -1, "aria-hidden": "true" });
  const button = h(
    "button",
    { type: "button", id: "attach-button", class: "icon-button attach-button", "aria-label": "Attach files", title: "Attach files" },
    icon("plus"),
  );
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    for (const file of input.files) upload(file);
    input.value = "";
  });
  trayEl = h("ul", { id: "attach-tray", class: "attach-tray", "aria-label": "Files to send", hidden: true });
  composer.prepend(button, input);
  composer.before(trayEl);
  // A tray belongs to the conversation it was filled in.
  store.on("active", () => {
    tray = [];
    renderTray();
  });
}

/** Whether the tray holds files ready to send (a message may then have no text). */
export function hasAttachments() {
  return tray.some((entry) => entry.state === "ready");
}

/** Whether a file is still uploading (sending waits for it). */
export function uploading() {
  return tray.some((entry) => entry.state === "uploading");
}

/** The ready files' attachment elements, emptying the tray. */
export function takeAttachments() {
  const ready = tray.filter((entry) => entry.state === "ready").map((entry) => entry.item);
  tray = tray.filter((entry) => entry.state !== "ready");
  renderTray();
  return ready;
}

async function upload(file) {
  if (tray.length >= MAX_ATTACHMENTS) {
    toast(`At most ${MAX_ATTACHMENTS} files per message.`, "error");
    return;
  }
  const entry = { key: crypto.randomUUID(), name: file.name, state: "uploading", item: null };
  tray.push(entry);
  renderTray();
  try {
    const body = await authorized("POST", "/api/upload", () => {
      const form = new FormData();
      form.append("file", file, file.name);
      return form;
    });
    const uploaded = await body.json();
    entry.item = {
      id: uploaded.id,
      name: uploaded.name,
      type: uploaded.type,
      size: uploaded.size,
      ...(uploaded.width ? { width: uploaded.width, height: uploaded.height } : {}),
      ...(uploaded.thumbnail ? { thumbnail: true } : {}),
    };
    entry.state = "ready";
  } catch (error) {
    tray = tray.filter((e) => e !== entry);
    toast(`${file.name}: ${error.message || "could not be uploaded"}`, "error", 6000);
  }
  renderTray();
}

function renderTray() {
  if (!trayEl) return;
  trayEl.replaceChildren(
    ...tray.map((entry) => {
      const remove = h(
        "button",
        { type: "button", class: "icon-button small", "aria-label": `Remove ${entry.name}` },
        icon("x"),
      );
      remove.addEventListener("click", () => {
        tray = tray.filter((e) => e !== entry);
        renderTray();
      });
      return h(
        "li",
        { class: `attach-chip ${entry.state}`, dataset: { state: entry.state } },
        h("span", { class: "attach-name", text: entry.name }),
        entry.state === "uploading" ? h("span", { class: "attach-size", text: "uploading…" }) : null,
        remove,
      );
    }),
  );
  trayEl.hidden = tray.length === 0;
}

// -- a message's files ---------------------------------------------------------------

/** A one-line stand-in for a message that has files and no text (list previews). */
export function attachmentSummary(message) {
  const files = message.attachments ?? [];
  if (!files.length) return "";
  return files.length === 1 ? `\u{1F4CE} ${files[0].name}` : `\u{1F4CE} ${files.length} files`;
}

/** What a message says, in words, where its bubble shows it otherwise (a screen
 * reader's label, a desktop notification): a deleted message and one that is only
 * files have no text of their own. */
export function spokenText(message) {
  if (message.deleted_at) return "This message was deleted";
  if (message.content) return message.content;
  const files = message.attachments ?? [];
  if (!files.length) return "";
  return files.length === 1 ? `Sent a file: ${files[0].name}` : `Sent ${files.length} files`;
}

/** The files of a message: image thumbnails that open the full image, and file chips
 * that download. */
export function renderAttachments(attachments) {
  const box = h("div", { class: "attachments" });
  for (const item of attachments) {
    if (item.thumbnail) box.append(thumbnail(item));
    else box.append(fileChip(item));
  }
  return box;
}

function thumbnail(item) {
  const img = h("img", { class: "attach-thumb", alt: item.name, loading: "lazy" });
  if (item.width && item.height) {
    // The box is reserved before the bytes arrive, so the timeline does not jump (and
    // a view pinned to the bottom stays there) when the image loads.
    const scale = Math.min(1, THUMB_PX / item.width, THUMB_PX / item.height);
    img.width = Math.max(MIN_THUMB_PX, Math.round(item.width * scale));
    img.height = Math.max(MIN_THUMB_PX, Math.round(item.height * scale));
    img.style.width = `${img.width}px`;
    img.style.height = `${img.height}px`;
    img.style.aspectRatio = `${item.width} / ${item.height}`;
  }
  const button = h("button", { type: "button", class: "attach-image", "aria-label": `Open image ${item.name}`, title: item.name }, img);
  blobUrl(item.id, "thumbnail").then(
    (url) => (img.src = url),
    () => button.classList.add("broken"),
  );
  button.addEventListener("click", () => openImage(item));
  return button;
}

function fileChip(item) {
  const chip = h(
    "button",
    { type: "button", class: "file-chip", "aria-label": `Download ${item.name}, ${size(item.size)}` },
    icon("down"),
    h("span", { class: "attach-name", text: item.name }),
    h("span", { class: "attach-size", text: size(item.size) }),
  );
  chip.addEventListener("click", async () => {
    try {
      const url = await blobUrl(item.id, "file");
      const a = h("a", { download: item.name, class: "hidden-link" });
      a.href = url;
      document.body.append(a);
      a.click();
      a.remove();
    } catch (error) {
      toast(`${item.name}: ${error.message || "could not be downloaded"}`, "error");
    }
  });
  return chip;
}

let viewer = null;

async function openImage(item) {
  if (!viewer) {
    const close = h("button", { type: "button", class: "icon-button", "aria-label": "Close image" }, icon("x"));
    viewer = h(
      "dialog",
      { id: "image-viewer", class: "dialog image-viewer", "aria-label": "Image" },
      h("div", { class: "dialog-head" }, h("h2", { class: "viewer-title" }), close),
      h("img", { class: "viewer-image", alt: "" }),
    );
    close.addEventListener("click", () => viewer.close());
    document.body.append(viewer);
  }
  viewer.querySelector(".viewer-title").textContent = item.name;
  const img = viewer.querySelector(".viewer-image");
  img.alt = item.name;
  img.removeAttribute("src");
  viewer.showModal();
  try {
    img.src = await blobUrl(item.id, "file");
  } catch (error) {
    toast(`${item.name}: ${error.message || "could not be opened"}`, "error");
  }
}

function blobUrl(id, variant) {
  const key = `${id}:${variant}`;
  let url = blobs.get(key);
  if (!url) {
    const path = variant === "thumbnail" ? `/api/uploads/${id}/thumbnail` : `/api/uploads/${id}`;
    url = authorized("GET", path).then(async (response) => URL.createObjectURL(await response.blob()));
    url.catch(() => blobs.delete(key));
    blobs.set(key, url);
  }
  return url;
}

/** A request with the access token, refreshed once on 401; throws ApiError. */
async function authorized(method, path, makeBody = null, retry = true) {
  let response;
  try {
    response = await fetch(ROOT + path, {
      method,
      headers: api.token ? { Authorization: `Bearer ${api.token}` } : {},
      body: makeBody ? makeBody() : undefined,
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "NETWORK", "Cannot reach the server. Check your connection.");
  }
  if (response.status === 401 && retry) {
    await api.refresh();
    return authorized(method, path, makeBody, false);
  }
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    const error = data?.error ?? {};
    throw new ApiError(response.status, error.code ?? `HTTP_${response.status}`, error.message ?? response.statusText);
  }
  return response;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

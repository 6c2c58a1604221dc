// Tiny DOM helpers. Text always goes in through textContent or text nodes: no helper
// here parses HTML, so a message like <img src=x onerror=alert(1)> stays text.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Find an element by id, failing loudly when the page and the scripts disagree. */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from the page`);
  return el;
}

/**
 * The first element under `root` matching `selector` whose accessible name (aria-label)
 * is `label`: the twin, in a list drawn anew, of a control that was replaced.
 */
export function byLabel(root, label, selector = "[aria-label]") {
  return [...root.querySelectorAll(selector)].find((el) => el.getAttribute("aria-label") === label);
}

/**
 * Create an element. `props`: `class`, `text` (textContent), `dataset`, `on<event>`
 * (a listener), DOM properties such as `hidden`, `disabled`, `value`, `type`, `title`,
 * and any other attribute (set with setAttribute, never `style` or `on...` strings).
 * Children are nodes or strings (added as text nodes); null and false are skipped.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const PROPERTIES = new Set(["hidden", "disabled", "value", "checked", "type", "title", "tabIndex", "id", "name"]);

function setProps(el, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new TypeError(`${key} must be a function`);
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "style" || key === "href" || key === "src") {
      // Styles go through classes (the CSP forbids style attributes); URLs through link().
      throw new TypeError(`set ${key} with a dedicated helper`);
    } else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An icon from the page's sprite (`name` as in `#i-name`). */
export function icon(name, className = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", className);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG_NS, "use");
  use.setAttribute("href", `#i-${name}`);
  svg.append(use);
  return svg;
}

/** Swap the symbol of an icon created by icon() or written in the page. */
export function setIcon(svg, name) {
  svg.querySelector("use")?.setAttribute("href", `#i-${name}`);
}

/** A safe outgoing link: only http(s) URLs; anything else comes back as plain text. */
export function link(url, text = url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return document.createTextNode(text);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return document.createTextNode(text);
  const a = h("a", { target: "_blank", rel: "noopener noreferrer nofollow", text });
  a.href = parsed.href;
  return a;
}

// URLs in chat text: scheme://... or www...., trailing punctuation left out.
const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"']+[^\s<>"'.,;:!?)\]}]/gi;

/** Chat text as nodes: text nodes, with http(s) URLs made into links. */
export function richText(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    const raw = match[0];
    nodes.push(link(raw.startsWith("www.") ? `https://${raw}` : raw, raw));
    last = match.index + raw.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

/** Up to two initials of a name, for avatars. */
export function initials(name) {
  const words = String(name || "?").trim().split(/[\s._-]+/).filter(Boolean);
  const letters = words.length > 1 ? [words[0], words[words.length - 1]] : [words[0] || "?"];
  return letters.map((w) => Array.from(w)[0].toUpperCase()).join("").slice(0, 2) || "?";
}

/** An avatar's colour class, stable for a user or conversation id (8 hues in the CSS). */
export function hueClass(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `hue-${hash % 8}`;
}

/** Fill an avatar element: initials of `name`, colour from `key`. */
export function paintAvatar(el, name, key) {
  el.textContent = initials(name);
  el.className = el.className.replace(/\bhue-\d\b/g, "").trim();
  el.classList.add("avatar", hueClass(key ?? name));
  return el;
}

/** A new avatar element. */
export function avatar(name, key, extra = "") {
  const el = h("span", { class: `avatar ${extra}`.trim(), "aria-hidden": "true" });
  return paintAvatar(el, name, key);
}

/** Show a short message at the bottom of the screen (errors, confirmations). */
export function toast(message, kind = "info", ms = 4000) {
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h("p", { class: `toast ${kind}`, text: message });
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/** Debounce: run `fn` once `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = 0;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}

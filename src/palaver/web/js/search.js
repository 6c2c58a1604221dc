// Message search: as the sidebar's search box gets a word of 3 characters or more, the
// "Messages" section lists matches from GET /api/search, newest first; choosing one opens
// its conversation on that message. Matches are <mark> elements holding text nodes: the
// server sends plain-text segments and nothing here parses HTML.

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { jumpTo } from "./replies.js";
import { store } from "./store.js";

const MIN_WORD = 3;
const DEBOUNCE_MS = 250;
const LIMIT = 20;

export function setupMessageSearch({ open }) {
  const input = $("search");
  const list = h("ul", { id: "message-results-list", class: "conv-list message-results-list" });
  const empty = h("p", { class: "list-empty", hidden: true, text: "No messages found." });
  const section = h(
    "section",
    { id: "message-results", class: "people message-results", "aria-labelledby": "message-results-title", "aria-live": "polite", hidden: true },
    h("h2", { id: "message-results-title", class: "section-title", text: "Messages" }),
    list,
    empty,
  );
  $("people").after(section);

  let timer = 0;
  let latest = 0;

  function clear() {
    latest += 1;
    section.hidden = true;
    list.replaceChildren();
  }

  async function run(query) {
    const mine = ++latest;
    section.setAttribute("aria-busy", "true");
    let page;
    try {
      page = await api.get(`/api/search?q=${encodeURIComponent(query)}&limit=${LIMIT}`);
    } catch {
      if (mine === latest) clear();
      return;
    } finally {
      section.removeAttribute("aria-busy");
    }
    if (mine !== latest) return; // a newer query is on its way
    list.replaceChildren(...page.results.map((hit) => item(hit)));
    empty.hidden = page.results.length > 0;
    section.hidden = false;
  }

  function item(hit) {
    const conversation = store.conversation(hit.conversation_id);
    const where = conversation?.name || "Conversation";
    const who = hit.sender_name || hit.sender || "Deleted user";
    const text = hit.snippet.map((segment) => (segment.match ? h("mark", {}, segment.text) : segment.text));
    const button = h(
      "button",
      {
        type: "button",
        class: "search-result",
        onclick: () => {
          input.value = "";
          input.dispatchEvent(new Event("input"));
          open(hit.conversation_id);
          const conversation = store.conversation(hit.conversation_id);
          if (conversation && store.activeId === conversation.id) jumpTo(conversation, hit.message_id);
        },
      },
      h("span", { class: "search-result-meta", text: `${where} · ${who}` }),
      h("span", { class: "search-result-text" }, text),
    );
    return h("li", { dataset: { messageId: String(hit.message_id), conversationId: String(hit.conversation_id) } }, button);
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    const query = input.value.trim();
    if (!query.split(/\s+/).some((word) => word.length >= MIN_WORD)) {
      clear();
      return;
    }
    timer = setTimeout(() => run(query), DEBOUNCE_MS);
  });
}

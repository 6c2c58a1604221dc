// Which message the conversation list previews: the newest of the main timeline.
// Entries (edits, reactions, pins, deletions) change other messages and thread replies
// live in their panel, so neither stands for the conversation; a deleted message does,
// as "Message deleted".

import { isEntry } from "./rich.js";

function shown(message) {
  return !isEntry(message) && !message.thread_root_id;
}

/** The message to preview, or null. The server's summary names the newest seq, which
 * may be an entry: a deletion is kept (it reads "Message deleted"), others are passed
 * over in favour of the newest shown message held. */
export function previewMessage(conversation) {
  const list = conversation.list();
  for (let i = list.length - 1; i >= 0; i -= 1) {
    if (shown(list[i])) {
      const newest = conversation.lastMessage;
      // The summary may be newer than anything loaded.
      if (newest && newest.seq > list[i].seq && (shown(newest) || newest.kind === "delete")) return newest;
      return list[i];
    }
  }
  const last = conversation.lastMessage;
  if (!last || last.thread_root_id || last.kind === "unreact" || last.kind === "unpin") return null;
  return last;
}

/** A line for an entry that is all the summary says (nothing of the timeline held). */
export function entryLine(entry) {
  if (entry.kind === "react") return `reacted ${entry.content}`;
  if (entry.kind === "pin") return "pinned a message";
  if (entry.kind === "edit") return entry.content;
  return "";
}

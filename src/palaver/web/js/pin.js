// Keeps a scrolled log pinned to its bottom while content grows (an image decoding, a
// font arriving, a reaction row appearing) as long as the reader was at the bottom.
// A scroll handler alone cannot: growth does not move scrollTop, so no event fires.

/**
 * Follow `content` growing inside the scroller `box`. `stuck()` says whether the
 * reader was at the bottom before the growth; `toBottom()` scrolls there.
 */
export function pinToBottom(box, content, { stuck, toBottom }) {
  let height = content.getBoundingClientRect().height;
  let boxHeight = box.clientHeight;
  const observer = new ResizeObserver(() => {
    const next = content.getBoundingClientRect().height;
    const nextBox = box.clientHeight;
    const grew = next > height || nextBox < boxHeight;
    height = next;
    boxHeight = nextBox;
    if (grew && stuck()) toBottom();
  });
  observer.observe(content);
  observer.observe(box);
  return observer;
}

// Dates and times in the reader's locale.

const time = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
const longWeekday = new Intl.DateTimeFormat(undefined, { weekday: "long" });
const shortDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const fullDate = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "long", year: "numeric" });
const numeric = new Intl.DateTimeFormat(undefined, { day: "2-digit", month: "2-digit", year: "2-digit" });
const stamp = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });
const DAY = 86_400_000;

function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** "14:05". */
export function clock(ms) {
  return time.format(ms);
}

/** The full date and time, for tooltips. */
export function fullStamp(ms) {
  return stamp.format(ms);
}

/** A key that is equal for two times on the same local day. */
export function dayKey(ms) {
  return startOfDay(ms);
}

/** Day separator label: "Today", "Yesterday", "Monday", "3 March 2025". */
export function dayLabel(ms) {
  const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / DAY);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days > 1 && days < 7) return longWeekday.format(ms);
  return fullDate.format(ms);
}

/** Conversation list time: "14:05" today, "Yesterday", "Mon", "3 Mar", "03/03/24". */
export function listTime(ms) {
  if (!ms) return "";
  const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / DAY);
  if (days === 0) return time.format(ms);
  if (days === 1) return "Yesterday";
  if (days > 1 && days < 7) return weekday.format(ms);
  if (new Date(ms).getFullYear() === new Date().getFullYear()) return shortDate.format(ms);
  return numeric.format(ms);
}

/** "last seen today at 14:05" style text for presence. */
export function lastSeen(ms) {
  if (!ms) return "offline";
  const days = Math.round((startOfDay(Date.now()) - startOfDay(ms)) / DAY);
  if (days === 0) return `last seen today at ${time.format(ms)}`;
  if (days === 1) return `last seen yesterday at ${time.format(ms)}`;
  return `last seen ${shortDate.format(ms)}`;
}

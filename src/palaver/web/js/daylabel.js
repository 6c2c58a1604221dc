// The sticky day label at the top of the timeline shows while the reader scrolls (to
// say which day they are in) and fades once they stop, so it never covers a notice or
// a message they are reading.

// How long after the last scroll the label stays.
const LINGER_MS = 1200;

export function setupDayLabels(box) {
  let timer = 0;
  box.addEventListener(
    "scroll",
    () => {
      box.classList.add("scrolling");
      clearTimeout(timer);
      timer = setTimeout(() => box.classList.remove("scrolling"), LINGER_MS);
      const top = box.getBoundingClientRect().top;
      for (const day of box.querySelectorAll(".row.day")) {
        // A stuck label sits at the scroller's top while its natural place is above.
        const stuck = box.scrollTop > 0 && Math.abs(day.getBoundingClientRect().top - top) < 1 && day.offsetTop > 0;
        day.classList.toggle("stuck", stuck);
      }
    },
    { passive: true },
  );
}

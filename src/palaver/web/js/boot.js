// Runs before the first paint (a classic script in <head>, not a module) so the page
// never flashes the dark theme when the light one was chosen. The theme is a
// preference, not a secret, so localStorage is the right place for it.
(() => {
  try {
    const theme = localStorage.getItem("palaver.theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch {
    // Storage can be disabled; the dark default stays.
  }
})();

// Dark by default, light on request; the choice is remembered in localStorage (a
// preference, not a secret). boot.js applies it before the first paint.

import { Emitter } from "./store.js";

const KEY = "palaver.theme";

class Theme extends Emitter {
  get current() {
    return document.documentElement.dataset.theme === "light" ? "light" : "dark";
  }

  set(theme) {
    const value = theme === "light" ? "light" : "dark";
    document.documentElement.dataset.theme = value;
    try {
      localStorage.setItem(KEY, value);
    } catch {
      // Not remembered, still applied.
    }
    this.emit("change", value);
  }

  toggle() {
    this.set(this.current === "dark" ? "light" : "dark");
  }
}

export const theme = new Theme();

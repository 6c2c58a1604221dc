// The sign-in / create-account screen.

import { api, ApiError } from "../api.js";
import { $ } from "../dom.js";

/** Wire the forms; `onSignedIn(user)` runs after a successful login or registration. */
export function setupAuth(onSignedIn) {
  const tabs = [$("tab-login"), $("tab-register")];
  const forms = { "tab-login": $("login-form"), "tab-register": $("register-form") };

  function select(tab, focus = true) {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute("aria-selected", String(on));
      other.tabIndex = on ? 0 : -1;
      forms[other.id].hidden = !on;
    }
    if (focus) {
      tab.focus();
      forms[tab.id].querySelector("input")?.focus();
    }
  }

  for (const tab of tabs) {
    tab.addEventListener("click", () => select(tab));
    // Arrow keys move between tabs, as the ARIA tabs pattern expects.
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      event.preventDefault();
      const next = tabs[(tabs.indexOf(tab) + 1) % tabs.length];
      select(next, false);
      next.focus();
    });
  }

  bind(forms["tab-login"], async (data) => {
    if (!data.login || !data.password) throw new ApiError(0, "VALIDATION_ERROR", "Enter your username (or e-mail) and password.");
    return api.login(data.login.trim(), data.password);
  });

  bind(forms["tab-register"], async (data) => {
    const fields = {
      username: data.username.trim() || null,
      email: data.email.trim() || null,
      display_name: data.display_name.trim() || null,
      password: data.password,
    };
    if (!fields.username && !fields.email) {
      throw new ApiError(0, "VALIDATION_ERROR", "Pick a username or give an e-mail address.", { field: "username" });
    }
    return api.register(fields);
  });

  function bind(form, submit) {
    const error = form.querySelector(".form-error");
    const button = form.querySelector('button[type="submit"]');
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
      button.disabled = true;
      try {
        const user = await submit(Object.fromEntries(new FormData(form)));
        form.reset();
        onSignedIn(user);
      } catch (failure) {
        error.textContent = failure instanceof ApiError ? explain(failure) : "Something went wrong. Try again.";
        const field = failure instanceof ApiError && failure.field ? form.elements.namedItem(failure.field) : null;
        if (field) {
          field.setAttribute("aria-invalid", "true");
          field.focus();
        }
      } finally {
        button.disabled = false;
      }
    });
  }
}

/** The server's message, with the wait it asks for (Retry-After) in place of a vague
 * "later". */
function explain(failure) {
  if (failure.code !== "RATE_LIMITED" || !failure.retryAfter) return sentence(failure.message);
  const what = sentence(String(failure.message).replace(/[;,.]?\s*try again later\.?$/i, ""));
  return `${what} Try again in ${Math.ceil(failure.retryAfter)} s.`;
}

/** Server messages are lower-case fragments ("password needs a digit"): make a sentence. */
function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

export function showAuth() {
  $("auth").hidden = false;
  $("chat").hidden = true;
  const first = $("login-form").hidden ? $("register-form") : $("login-form");
  first.querySelector("input")?.focus();
}

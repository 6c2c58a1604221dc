// Whether this browser may hold a refresh cookie. The cookie is HttpOnly (scripts
// cannot see it), so without a hint every fresh visitor's page would ask the server
// for a refresh just to be told 401, a red error in the console for nothing. The hint
// is no credential: it only says whether asking is worth it.

const KEY = "palaver-session";

export function noteSession(present) {
  try {
    if (present) localStorage.setItem(KEY, "1");
    else localStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the page then always asks, as before.
  }
}

export function mayHaveSession() {
  try {
    return localStorage.getItem(KEY) === "1";
  } catch {
    return true;
  }
}

// Accounts in the browser: the account routes of the HTTP API, the sign-in and sign-up forms,
// the account panel (name, password, where you are signed in), and what a page does when the
// server closes its socket because the session ended (close code 4003).

import { ApiError, api, avatar, fetchSession, guestMark, nameProblem, trimName } from "/assets/common.js";

const USERNAME_RULE = /^[a-z0-9_.-]{3,32}$/i;
const MIN_PASSWORD_CHARS = 8;
const MAX_PASSWORD_CHARS = 256;

// ---- the API ----------------------------------------------------------------------------------

/**
 * Settles when this page's sign-in, sign-up or sign-out requests have. Those end the session
 * the page's sockets use, so the server may close them (4003) before the answer that carries
 * the new cookie arrives; a page that sees 4003 waits for this before asking who it is.
 */
let authSettled = Promise.resolve();

function tracked(request) {
  authSettled = Promise.allSettled([authSettled, request]);
  return request;
}

export async function register(username, password, name) {
  const body = { username, password };
  if (name) body.name = name;
  return (await tracked(api("POST", "/api/register", body))).user;
}

export async function login(username, password) {
  return (await tracked(api("POST", "/api/login", { username, password }))).user;
}

export async function signOut() {
  await tracked(api("DELETE", "/api/session"));
}

export async function renameMe(name) {
  return (await api("PATCH", "/api/me", { name })).user;
}

export async function changePassword(old, password) {
  await api("POST", "/api/me/password", { old, new: password });
}

export async function listSessions() {
  return (await api("GET", "/api/sessions")).sessions;
}

export async function revokeSession(id) {
  await api("DELETE", `/api/sessions/${encodeURIComponent(id)}`);
}

/**
 * Who is signed in now that the server closed a socket with 4003: the new user when this
 * browser signed in again (a guest who registered, a sign-in in another tab), or null when the
 * session really ended. Throws when the server cannot be reached.
 */
export async function sessionAfterRevocation() {
  await authSettled;
  const user = await fetchSession();
  if (user !== null) return user;
  // Another tab's sign-in ends this session a moment before its answer sets the new cookie,
  // which this tab shares; give that answer a moment to land before saying "signed out".
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return fetchSession();
}

// ---- messages for people ----------------------------------------------------------------------

export function usernameProblem(raw) {
  if (raw.length === 0) return "Please enter a username.";
  if (!USERNAME_RULE.test(raw)) {
    return "Usernames are 3–32 characters: letters a–z, digits 0–9, “_”, “.” and “-”.";
  }
  return null;
}

export function passwordProblem(raw, isNew) {
  if (raw.length === 0) return "Please enter a password.";
  if (!isNew) return null;
  const length = [...raw].length;
  if (length < MIN_PASSWORD_CHARS) return `Passwords need at least ${MIN_PASSWORD_CHARS} characters.`;
  if (length > MAX_PASSWORD_CHARS) return `Passwords can be at most ${MAX_PASSWORD_CHARS} characters.`;
  return null;
}

/** What to tell people about a failed account request, from its error `code`. */
export function errorMessage(e) {
  if (!(e instanceof ApiError)) return "Something went wrong. Please try again.";
  switch (e.code) {
    case "invalid_username":
      return "Usernames are 3–32 characters: letters a–z, digits 0–9, “_”, “.” and “-”.";
    case "invalid_password":
      return `Passwords are ${MIN_PASSWORD_CHARS} to ${MAX_PASSWORD_CHARS} characters.`;
    case "username_taken":
      return "That username is taken. Please choose another one.";
    case "invalid_credentials":
      return "Wrong username or password.";
    case "wrong_password":
      return "Your current password is not right.";
    case "account_required":
      return "This needs an account: create one first.";
    case "rate_limited": {
      const seconds = Math.max(1, Math.ceil((e.retryAfterMs ?? 1000) / 1000));
      return `Too many attempts. Please wait ${seconds} second${seconds === 1 ? "" : "s"} and try again.`;
    }
    case "unauthenticated":
      return "You were signed out. Please sign in again.";
    default:
      // invalid_name and the rest: the server's own message says exactly what is wrong.
      return e.message;
  }
}

/** The field an error code is about, so it can be marked invalid and focused. */
function fieldOf(code) {
  switch (code) {
    case "invalid_username":
    case "username_taken":
      return "username";
    case "invalid_password":
    case "invalid_credentials":
    case "wrong_password":
      return "password";
    case "invalid_name":
      return "name";
    default:
      return null;
  }
}

// ---- forms ------------------------------------------------------------------------------------

/**
 * Wires a form whose inputs are named after the request's fields and which holds one `.error`
 * paragraph (a live region). `check(values)` returns `[field, message]` for a value the server
 * would refuse; `submit(values)` does the request and resolves with the user; `onDone(user)`
 * follows success.
 */
function bindForm(form, check, submit, onDone) {
  const error = form.querySelector(".error");
  const button = form.querySelector("[type=submit]");
  const inputs = [...form.querySelectorAll("input[name]")].filter((input) => !input.hidden);
  const clear = () => {
    error.hidden = true;
    error.textContent = "";
    delete error.dataset.code;
    for (const input of inputs) input.removeAttribute("aria-invalid");
  };
  const show = (field, message, code) => {
    error.textContent = message;
    error.dataset.code = code;
    error.hidden = false;
    const input = (field && form.elements.namedItem(field)) || inputs[0];
    input.setAttribute("aria-invalid", "true");
    input.focus();
  };
  form.addEventListener("input", () => {
    if (!error.hidden) clear();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(inputs.map((input) => [input.name, input.value]));
    // (A hidden `autocomplete=username` input only tells password managers whose password it is.)
    const problem = check(values);
    if (problem) {
      show(problem[0], problem[1], "client");
      return;
    }
    button.disabled = true;
    try {
      const result = await submit(values);
      clear();
      onDone(result);
    } catch (e) {
      // In the change-password form, a refused password is the new one.
      const field = e.code === "invalid_password" && form.elements.namedItem("new") ? "new" : fieldOf(e.code);
      if (e.code === "invalid_credentials" || e.code === "wrong_password") {
        form.elements.namedItem("password").value = "";
      }
      show(field, errorMessage(e), e.code ?? "error");
    } finally {
      button.disabled = false;
    }
  });
  return { clear };
}

/** Wires a sign-in form (inputs `username`, `password`); `onDone(user)` once signed in. */
export function bindLoginForm(form, onDone) {
  return bindForm(
    form,
    ({ username, password }) => {
      if (username.trim().length === 0) return ["username", "Please enter your username."];
      if (password.length === 0) return ["password", "Please enter your password."];
      return null;
    },
    ({ username, password }) => login(username.trim(), password),
    onDone,
  );
}

/**
 * Wires a sign-up form (inputs `username`, `password`, optional `name`); `onDone(user)` once
 * the account exists and is signed in. A guest who signs up keeps their id, and their display
 * name when `name` is left empty.
 */
export function bindSignupForm(form, onDone) {
  return bindForm(
    form,
    ({ username, password, name }) => {
      const badUsername = usernameProblem(username.trim());
      if (badUsername) return ["username", badUsername];
      const badPassword = passwordProblem(password, true);
      if (badPassword) return ["password", badPassword];
      const badName = name.trim() ? nameProblem(name) : null;
      if (badName) return ["name", badName];
      return null;
    },
    ({ username, password, name }) => register(username.trim(), password, name.trim() ? trimName(name) : null),
    onDone,
  );
}

// ---- the account panel ------------------------------------------------------------------------

/** "Chrome on Linux" from a user agent string, or a plain fallback. */
export function describeAgent(ua) {
  if (!ua) return "Unknown browser";
  const browser =
    [
      [/Edg\//, "Edge"],
      [/OPR\/|Opera/, "Opera"],
      [/Firefox\//, "Firefox"],
      [/HeadlessChrome/, "Headless Chrome"],
      [/Chrome\/|CriOS/, "Chrome"],
      [/Safari\//, "Safari"],
    ].find(([rule]) => rule.test(ua))?.[1] ?? null;
  const system =
    [
      [/Android/, "Android"],
      [/iPhone|iPad|iPod/, "iOS"],
      [/Windows/, "Windows"],
      [/Mac OS X|Macintosh/, "macOS"],
      [/CrOS/, "ChromeOS"],
      [/Linux/, "Linux"],
    ].find(([rule]) => rule.test(ua))?.[1] ?? null;
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? (ua.length > 40 ? ua.slice(0, 40) + "…" : ua);
}

/** "5 minutes ago" for a time in ms since the epoch. */
function ago(ms) {
  const seconds = Math.round((ms - Date.now()) / 1000);
  if (Math.abs(seconds) < 60) return "just now";
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const minutes = Math.round(seconds / 60);
  if (Math.abs(minutes) < 60) return format.format(minutes, "minute");
  const hours = Math.round(minutes / 60);
  if (Math.abs(hours) < 24) return format.format(hours, "hour");
  return format.format(Math.round(hours / 24), "day");
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function field(id, label, input, hint) {
  input.id = id;
  const described = [];
  if (hint) described.push(`${id}-hint`);
  if (described.length) input.setAttribute("aria-describedby", described.join(" "));
  return el(
    "div",
    { class: "field" },
    el("label", { htmlFor: id }, label),
    input,
    ...(hint ? [el("p", { id: `${id}-hint`, class: "hint" }, hint)] : []),
  );
}

let panel = null;

/**
 * Opens the account panel, a modal dialog: who you are, your display name, your password
 * (accounts), and the browsers signed in as you, each but this one with its own "Sign out".
 *
 * `options.onUserChanged(user)` follows a change of name; `options.onCreateAccount()` is what
 * the guest's "Create account" does (without it, a link to the lobby's form).
 */
export async function openAccountPanel(options) {
  panel?.dialog.remove();
  const dialog = el("dialog", { id: "account-dialog", class: "account-dialog", "aria-labelledby": "account-heading" });
  const close = el("button", { type: "button", class: "btn ghost small", "aria-label": "Close the account panel" }, "✕");
  close.addEventListener("click", () => dialog.close());
  const body = el("div", { class: "account-body" }, el("p", { class: "muted" }, "Loading…"));
  dialog.append(el("div", { class: "dialog-head" }, el("h2", { id: "account-heading" }, "Your account"), close), body);
  const opener = document.activeElement;
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (panel?.dialog === dialog) panel = null;
    if (opener && document.contains(opener)) opener.focus();
  });
  document.body.append(dialog);
  panel = { dialog };
  dialog.showModal();

  let user;
  try {
    user = await fetchSession();
  } catch (e) {
    body.replaceChildren(el("p", { class: "error", role: "alert" }, errorMessage(e)));
    return;
  }
  if (user === null) {
    body.replaceChildren(el("p", { class: "error", role: "alert" }, "You were signed out."));
    return;
  }
  renderPanel(body, user, options, dialog);
}

/** Closes the account panel if it is open (the session ended under it). */
export function closeAccountPanel() {
  if (panel) panel.dialog.close();
}

function renderPanel(body, user, options, dialog) {
  // Who you are.
  const who = el("p", { class: "account-who" }, avatar(user, "large"));
  const names = el("span", { class: "account-names" }, el("strong", { id: "account-display-name", dir: "auto" }, user.name));
  if (user.guest) names.append(" ", guestMark());
  else names.append(" ", el("span", { id: "account-username", class: "username" }, `@${user.username}`));
  who.append(names);
  const sections = [who];
  if (user.guest) {
    const cta = options.onCreateAccount
      ? el("button", { type: "button", class: "btn primary small", id: "account-create" }, "Create account")
      : el("a", { class: "btn primary small", id: "account-create", href: "/#create-account" }, "Create account");
    if (options.onCreateAccount) {
      cta.addEventListener("click", () => {
        dialog.close();
        options.onCreateAccount();
      });
    }
    sections.push(
      el(
        "div",
        { class: "account-cta" },
        el("p", {}, "You are a guest. Create an account to keep your name, and sign in with it on any device; your messages stay yours."),
        cta,
      ),
    );
  }

  // Display name.
  const nameInput = el("input", { type: "text", name: "name", autocomplete: "nickname", maxLength: 64, spellcheck: false, required: true, value: user.name });
  const nameDone = el("p", { class: "hint done", role: "status" });
  nameInput.id = "account-name";
  nameInput.setAttribute("aria-describedby", "account-name-hint");
  const nameForm = el(
    "form",
    { id: "account-name-form", class: "account-form", noValidate: true },
    el(
      "div",
      { class: "field" },
      el("label", { htmlFor: "account-name" }, "Display name"),
      el("div", { class: "field-row" }, nameInput, el("button", { id: "account-name-save", type: "submit", class: "btn primary" }, "Save")),
      el("p", { id: "account-name-hint", class: "hint" }, "1–32 characters. Everyone sees it."),
    ),
    el("p", { id: "account-name-error", class: "error", role: "alert", "aria-live": "assertive", hidden: true }),
    nameDone,
  );
  bindForm(
    nameForm,
    ({ name }) => {
      const problem = nameProblem(name);
      return problem ? ["name", problem] : null;
    },
    ({ name }) => renameMe(trimName(name)),
    (changed) => {
      nameDone.textContent = "Saved.";
      body.querySelector("#account-display-name").textContent = changed.name;
      options.onUserChanged?.(changed);
    },
  );
  nameForm.addEventListener("input", () => (nameDone.textContent = ""));
  sections.push(nameForm);

  // Where you are signed in.
  const list = el("ul", { id: "account-sessions", class: "session-list", "aria-labelledby": "account-sessions-heading" });
  const sessionsError = el("p", { id: "account-sessions-error", class: "error", role: "alert", "aria-live": "assertive", hidden: true });
  const loadSessions = async () => {
    try {
      renderSessions(list, await listSessions(), sessionsError);
      sessionsError.hidden = true;
    } catch (e) {
      sessionsError.textContent = errorMessage(e);
      sessionsError.hidden = false;
    }
  };
  sections.push(
    el(
      "section",
      { class: "account-section", "aria-labelledby": "account-sessions-heading" },
      el("h3", { id: "account-sessions-heading" }, "Where you are signed in"),
      list,
      sessionsError,
    ),
  );

  // Password (accounts only).
  if (!user.guest) {
    const passwordDone = el("p", { class: "hint done", role: "status" });
    const passwordForm = el(
      "form",
      { id: "account-password-form", class: "account-form", noValidate: true },
      // For password managers: which account this new password belongs to.
      el("input", { type: "text", name: "account", autocomplete: "username", value: user.username, hidden: true, readOnly: true }),
      field("account-old-password", "Current password", el("input", { type: "password", name: "password", autocomplete: "current-password", required: true })),
      field(
        "account-new-password",
        "New password",
        el("input", { type: "password", name: "new", autocomplete: "new-password", required: true }),
        "At least 8 characters. Your other devices will be signed out.",
      ),
      el("p", { id: "account-password-error", class: "error", role: "alert", "aria-live": "assertive", hidden: true }),
      el("div", { class: "form-actions" }, el("button", { id: "account-password-save", type: "submit", class: "btn primary small" }, "Change password"), passwordDone),
    );
    bindForm(
      passwordForm,
      ({ password, new: next }) => {
        if (password.length === 0) return ["password", "Please enter your current password."];
        const problem = passwordProblem(next, true);
        return problem ? ["new", problem] : null;
      },
      ({ password, new: next }) => changePassword(password, next),
      () => {
        for (const input of passwordForm.querySelectorAll("input[type=password]")) input.value = "";
        passwordDone.textContent = "Password changed. Your other devices were signed out.";
        loadSessions();
      },
    );
    passwordForm.addEventListener("input", () => (passwordDone.textContent = ""));
    sections.push(el("section", { class: "account-section", "aria-labelledby": "account-password-heading" }, el("h3", { id: "account-password-heading" }, "Password"), passwordForm));
  }

  body.replaceChildren(...sections);
  loadSessions();
}

function renderSessions(list, sessions, error) {
  const sorted = [...sessions].sort((a, b) => Number(b.current) - Number(a.current) || b.last_seen - a.last_seen);
  list.replaceChildren(
    ...sorted.map((session) => {
      const device = describeAgent(session.user_agent);
      const seen = new Date(session.last_seen);
      const time = el("time", { dateTime: seen.toISOString(), title: seen.toLocaleString() }, ago(session.last_seen));
      const li = el(
        "li",
        { "data-session-id": session.id, class: session.current ? "current" : "" },
        el("div", { class: "session-what" }, el("strong", { title: session.user_agent || "" }, device), el("span", { class: "muted small" }, "Last active ", time)),
      );
      if (session.current) {
        li.append(el("span", { class: "this-device pill" }, "This device"));
      } else {
        const button = el("button", { type: "button", class: "btn ghost small sign-out-session", "aria-label": `Sign out ${device}, last active ${time.textContent}` }, "Sign out");
        button.addEventListener("click", async () => {
          button.disabled = true;
          try {
            await revokeSession(session.id);
            const next = li.nextElementSibling?.querySelector("button") ?? li.previousElementSibling?.querySelector("button");
            li.remove();
            (next ?? list.closest("dialog").querySelector(".dialog-head button")).focus();
          } catch (e) {
            if (e.code === "not_found") {
              li.remove(); // it had ended already
            } else {
              error.textContent = errorMessage(e);
              error.hidden = false;
              button.disabled = false;
            }
          }
        });
        li.append(button);
      }
      return li;
    }),
  );
}

// The page's entry point: who the user is (kept in this browser) and the API key it calls with (kept for
// this tab only), the two views, and switching between them.

import { setApiKey } from "./api.js";
import { ChatView } from "./chat.js";
import { OperatorView } from "./operator.js";

const USER_KEY = "parley.userId";
// 1-200 characters without whitespace or control characters, as the API takes it; and ASCII, since the id
// also travels in the X-User-Id header, which fetch() refuses to carry beyond Latin-1.
const USER_ID = /^[\x21-\x7e]{1,200}$/;

function storedUserId() {
  try {
    const stored = localStorage.getItem(USER_KEY);
    if (stored && USER_ID.test(stored)) return stored;
  } catch {
    // Storage refused (private mode): a fresh id for this visit.
  }
  const random = new Uint8Array(4);
  crypto.getRandomValues(random);
  return `guest-${Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function saveUserId(userId) {
  try {
    localStorage.setItem(USER_KEY, userId);
  } catch {
    // Not kept across visits, then; it still works for this one.
  }
}

// sessionStorage, not localStorage: a key is a credential, and one kept past the tab's life would outlive
// the person's intent to use it (and be readable by anyone who opens this browser later).
const API_KEY = "parley.apiKey";
const API_KEY_FORM = /^[\x21-\x7e]{0,300}$/;

function storedApiKey() {
  try {
    const stored = sessionStorage.getItem(API_KEY) || "";
    return API_KEY_FORM.test(stored) ? stored : "";
  } catch {
    return "";
  }
}

function saveApiKey(key) {
  try {
    if (key) sessionStorage.setItem(API_KEY, key);
    else sessionStorage.removeItem(API_KEY);
  } catch {
    // Kept in memory only, then.
  }
}

let apiKey = storedApiKey();
setApiKey(apiKey);

let userId = storedUserId();
saveUserId(userId);
const currentUser = () => userId;

const chat = new ChatView(currentUser);
const operator = new OperatorView(currentUser);

const who = document.getElementById("who");
const userField = document.getElementById("user-id");
const userError = document.getElementById("user-id-error");
const keyField = document.getElementById("api-key");
userField.value = userId;
keyField.value = apiKey;
who.addEventListener("submit", (event) => {
  event.preventDefault();
  const candidate = userField.value.trim();
  const key = keyField.value.trim();
  if (!USER_ID.test(candidate)) {
    userError.textContent = "A user id is 1 to 200 letters, digits or symbols (ASCII), without spaces.";
    userField.setAttribute("aria-invalid", "true");
    userField.focus();
    return;
  }
  if (!API_KEY_FORM.test(key)) {
    userError.textContent = "An API key is printable ASCII without spaces (parley_…).";
    keyField.setAttribute("aria-invalid", "true");
    keyField.focus();
    return;
  }
  userError.textContent = "";
  userField.removeAttribute("aria-invalid");
  keyField.removeAttribute("aria-invalid");
  if (candidate === userId && key === apiKey) return;
  userId = candidate;
  saveUserId(userId);
  apiKey = key;
  saveApiKey(apiKey);
  setApiKey(apiKey);
  chat.newChat();
  chat.loadSessions();
  chat.loadGraphs();
  if (!document.getElementById("view-operator").hidden) operator.refresh();
});

// Tabs, as the ARIA pattern has them: arrow keys move between tabs, Tab moves into the panel.
const tabs = Array.from(document.querySelectorAll('[role="tab"]'));
function select(tab) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (tab.id === "tab-operator") operator.refresh();
}
for (const tab of tabs) {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (event) => {
    const index = tabs.indexOf(tab);
    let next = null;
    if (event.key === "ArrowRight") next = tabs[(index + 1) % tabs.length];
    else if (event.key === "ArrowLeft") next = tabs[(index - 1 + tabs.length) % tabs.length];
    else if (event.key === "Home") next = tabs[0];
    else if (event.key === "End") next = tabs[tabs.length - 1];
    if (next) {
      event.preventDefault();
      next.focus();
      select(next);
    }
  });
}

chat.loadSessions();
chat.loadGraphs();

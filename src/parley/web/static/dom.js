// Building the page's elements. Text from the model, the user or the server only ever becomes a Text node
// (textContent, or a string given to append): never HTML, so no reply can inject markup or script.

let counter = 0;

/** A fresh id for tying a label or heading to its control. */
export function uniqueId(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * An element with attributes (`class`, `text` for its text, `on<event>` for listeners, anything else as
 * an attribute; null, undefined and false leave one out) and children (elements, or strings as text).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** A timestamp as the API gives it (UTC, microseconds, Z), in the reader's own time and words. */
export function formatTime(timestamp) {
  // Date.parse reads milliseconds; the API writes microseconds.
  const date = new Date(String(timestamp).replace(/(\.\d{3})\d+/, "$1"));
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

/** A <time> element for a timestamp. */
export function timeElement(timestamp) {
  return el("time", { datetime: timestamp, text: formatTime(timestamp) });
}

/** Wait `ms`, or less if `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

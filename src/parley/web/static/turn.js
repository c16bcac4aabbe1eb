// Following one message's turn to its end, whatever happens to the connection.

import { ApiError, getEvents } from "./api.js";
import { sleep } from "./dom.js";
import { readEventStream } from "./sse.js";

const TERMINAL = new Set(["completed", "interrupted", "failed", "cancelled"]);
// Pauses before reconnecting after a dropped stream: quickly at first, then every 2 s for about a minute
// (long enough for a server to restart); a reconnection that brings events starts the count again.
const RECONNECT_DELAYS_MS = [250, 500, 1000, ...Array(28).fill(2000)];

function isEventStream(response) {
  return (response.headers.get("Content-Type") || "").startsWith("text/event-stream");
}

/**
 * Show a message's turn as it happens, until its `done` event (the final message resource).
 *
 * `response` is a stream already open (the POST that created the message), or null to open one. When the
 * stream drops before `done`, GET /v1/messages/{id}/events with Last-Event-ID: the server sends exactly
 * the events after the last one seen, so no token is shown twice and none is missed.
 *
 * `on` has onStatus(data), onToken(text), onInterrupt(interrupt), onError(error), onDone(message),
 * onReconnecting(attempt), onConnected(), onLost(error?) — the last when reconnecting keeps failing.
 */
export async function followMessage({ userId, messageId, response, on, signal }) {
  let lastEventId = "";
  let done = false;

  const handle = (event) => {
    if (event.id) lastEventId = event.id;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // not one of ours
    }
    if (event.type === "status") on.onStatus?.(data);
    else if (event.type === "token") on.onToken?.(String(data.text ?? ""));
    else if (event.type === "interrupt") on.onInterrupt?.(data);
    else if (event.type === "error") on.onError?.(data);
    else if (event.type === "done") {
      done = true;
      on.onDone(data);
    }
  };

  let current = response;
  let id = messageId;
  if (current && !isEventStream(current)) {
    // A server that answered with the message resource instead of its events.
    const message = await current.json();
    if (TERMINAL.has(message.status)) {
      on.onDone(message);
      return;
    }
    id = message.message_id;
    current = null;
  }

  let failures = 0;
  while (!done && !signal?.aborted) {
    if (current === null) {
      if (failures >= RECONNECT_DELAYS_MS.length) {
        on.onLost?.();
        return;
      }
      on.onReconnecting?.(failures + 1);
      await sleep(RECONNECT_DELAYS_MS[failures], signal);
      if (signal?.aborted) return;
      try {
        current = await getEvents(userId, id, lastEventId, signal);
      } catch (error) {
        if (signal?.aborted) return;
        if (error instanceof ApiError && error.status < 500) {
          on.onLost?.(error); // not found (or not ours): reconnecting cannot help
          return;
        }
        failures += 1;
        continue;
      }
      on.onConnected?.();
    }
    const before = lastEventId;
    try {
      await readEventStream(current, handle);
    } catch {
      if (signal?.aborted) return;
    }
    current = null;
    failures = lastEventId !== before ? 0 : failures + 1;
  }
}

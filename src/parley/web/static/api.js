// The few calls the page makes to Parley's HTTP API (docs/api.md). Every request names its user with
// X-User-Id (or user_id in a POST body) and, once one is given, carries the API key as a bearer token; the
// operator view adds X-Role: operator (which only a server with PARLEY_AUTH=off reads).

let apiKey = "";

/** The API key every request from now on carries ("" for none: a server with PARLEY_AUTH=off). */
export function setApiKey(key) {
  apiKey = key;
}

/** An answer other than 2xx, with the problem+json body the API sends for every error. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(userId, { operator = false, json = false, stream = false, lastEventId = "" } = {}) {
  const result = { "X-User-Id": userId };
  if (apiKey) result.Authorization = `Bearer ${apiKey}`;
  if (operator) result["X-Role"] = "operator";
  if (json) result["Content-Type"] = "application/json";
  if (stream) result.Accept = "text/event-stream";
  if (lastEventId) result["Last-Event-ID"] = lastEventId;
  return result;
}

/** The problem+json of a failed response (or what can be said without one). */
async function problemOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body === "object") return body;
  } catch {
    // Not JSON (a proxy's page, a plain-text 503): say what we know.
  }
  return { status: response.status, title: response.statusText || `HTTP ${response.status}` };
}

async function checked(response) {
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response;
}

async function getJson(path, userId, options = {}) {
  const response = await checked(await fetch(path, { headers: headers(userId, options) }));
  return response.json();
}

const segment = encodeURIComponent;

export function listSessions(userId, cursor) {
  const query = new URLSearchParams({ limit: "20" });
  if (cursor) query.set("cursor", cursor);
  return getJson(`/v1/sessions?${query}`, userId);
}

export function getSession(userId, sessionId) {
  return getJson(`/v1/sessions/${segment(sessionId)}`, userId);
}

/** The whole transcript, oldest first (page after page; a very long one is cut at `maxPages`). */
export async function getTranscript(userId, sessionId, maxPages = 25) {
  const items = [];
  let cursor = null;
  for (let page = 0; page < maxPages; page++) {
    const query = new URLSearchParams({ limit: "200" });
    if (cursor) query.set("cursor", cursor);
    const body = await getJson(`/v1/sessions/${segment(sessionId)}/messages?${query}`, userId);
    items.push(...body.items);
    cursor = body.next_cursor;
    if (!cursor) return { items, complete: true };
  }
  return { items, complete: false };
}

/** GET /v1/graphs: the graphs the service hosts, the default first. */
export function listGraphs(userId) {
  return getJson("/v1/graphs", userId);
}

/** POST /v1/chat asking for the turn's event stream; the response is returned unread. A new session (no
 * sessionId) is created with ``graph`` when one is given. */
export async function postChat(userId, sessionId, message, signal, graph = "") {
  const body = { user_id: userId, message };
  if (sessionId) body.session_id = sessionId;
  else if (graph) body.graph = graph;
  return checked(
    await fetch("/v1/chat", {
      method: "POST",
      headers: headers(userId, { json: true, stream: true }),
      body: JSON.stringify(body),
      signal,
    }),
  );
}

/** POST /v1/sessions/{id}/resume: the end user's answer, streamed; or an operator's, not waited for. */
export async function postResume(userId, sessionId, interruptId, value, { operator = false, signal } = {}) {
  const options = { json: true, operator, stream: !operator };
  const requestHeaders = headers(userId, options);
  // An operator answers and moves on to the next review: the user's page streams the reply.
  if (operator) requestHeaders.Prefer = "respond-async";
  return checked(
    await fetch(`/v1/sessions/${segment(sessionId)}/resume`, {
      method: "POST",
      headers: requestHeaders,
      body: JSON.stringify({ user_id: userId, interrupt_id: interruptId, value }),
      signal,
    }),
  );
}

/** GET /v1/messages/{id}/events after `lastEventId` (every event when it is empty). */
export async function getEvents(userId, messageId, lastEventId, signal) {
  return checked(
    await fetch(`/v1/messages/${segment(messageId)}/events`, {
      headers: headers(userId, { stream: true, lastEventId }),
      signal,
    }),
  );
}

export function listReviews(userId) {
  return getJson("/v1/interrupts?kind=review&limit=100", userId, { operator: true });
}

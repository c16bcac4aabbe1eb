// Reading a text/event-stream body delivered to fetch(). EventSource would parse it for us, but it cannot
// send headers (X-User-Id, Last-Event-ID on our own terms) or a POST body, so the page parses the stream
// itself, following the HTML standard's rules: lines end in CRLF, LF or CR; a blank line ends an event;
// a line starting with ':' is a comment (the server's heartbeats); fields are id, event and data
// (several data lines join with LF); anything else is ignored.

export class EventStreamParser {
  /** @param {(event: {type: string, data: string, id: string}) => void} onEvent */
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.type = "";
    this.data = [];
    /** The id of the last event seen: what a reconnect sends as Last-Event-ID. */
    this.lastEventId = "";
  }

  /** Feed decoded text, in whatever pieces the network delivered it. */
  push(text) {
    this.buffer += text;
    const lineEnd = /\r\n|\r|\n/g;
    let start = 0;
    let match;
    while ((match = lineEnd.exec(this.buffer)) !== null) {
      // A CR at the very end may be the first half of a CRLF split across two chunks: wait for the next.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, match.index));
      start = match.index + match[0].length;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.type = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) this.lastEventId = value;
  }

  dispatch() {
    const type = this.type || "message";
    const data = this.data;
    this.type = "";
    this.data = [];
    if (data.length === 0) return;
    this.onEvent({ type, data: data.join("\n"), id: this.lastEventId });
  }
}

/**
 * Read a fetch() response's body as an event stream until it ends; each event goes to onEvent. Resolves
 * when the server closes the stream; rejects if the connection drops (or the signal aborts the fetch).
 * An event cut off by the end of the stream (no blank line after it) is dropped, as the standard says.
 * @returns {Promise<string>} the last event id seen
 */
export async function readEventStream(response, onEvent, initialLastEventId = "") {
  const parser = new EventStreamParser(onEvent);
  parser.lastEventId = initialLastEventId;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return parser.lastEventId;
    parser.push(value);
  }
}

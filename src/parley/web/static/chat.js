// The chat view: the conversation, the composer, the pending questions, and the list of sessions.

import * as api from "./api.js";
import { el, formatTime, sleep, timeElement, uniqueId } from "./dom.js";
import { followMessage } from "./turn.js";

const REVIEW_POLL_MS = 2000;
// What the user sees of a draft waiting for an operator: this fixed notice, never anything of the draft
// (the API hides it from users anyway; the page does not even show what the API sends in its place).
const REVIEW_NOTICE = "Your answer is being reviewed by an operator. It will appear here once approved.";

const STATUS_WORDS = {
  idle: "idle",
  busy: "replying",
  interrupted: "waiting for an answer",
  error: "last reply failed",
};

function describeProblem(error) {
  if (error instanceof api.ApiError) return error.problem.detail || error.problem.title || error.message;
  return "Parley cannot be reached. Check your connection and try again.";
}

export class ChatView {
  /** @param {() => string} userId the current user id */
  constructor(userId) {
    this.userId = userId;
    this.sessionId = null;
    this.controller = new AbortController();
    this.cursor = null;
    this.transcript = document.getElementById("transcript");
    this.pending = document.getElementById("pending");
    this.status = document.getElementById("chat-status");
    this.label = document.getElementById("session-label");
    this.form = document.getElementById("composer");
    this.input = document.getElementById("message");
    this.sendButton = document.getElementById("send");
    this.sessionList = document.getElementById("session-list");
    this.sessionsEmpty = document.getElementById("sessions-empty");
    this.sessionsMore = document.getElementById("sessions-more");
    this.sessionsPanel = document.getElementById("sessions");
    this.sessionsToggle = document.getElementById("sessions-toggle");
    this.graphChoice = document.getElementById("graph-choice");
    this.graphPicker = document.getElementById("graph-picker");

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    document.getElementById("new-chat").addEventListener("click", () => {
      this.newChat();
      this.closeSessionsOnPhone();
    });
    document.getElementById("sessions-refresh").addEventListener("click", () => this.loadSessions());
    this.sessionsMore.addEventListener("click", () => this.loadSessions({ more: true }));
    this.sessionsToggle.addEventListener("click", () => {
      const open = this.sessionsToggle.getAttribute("aria-expanded") !== "true";
      this.sessionsToggle.setAttribute("aria-expanded", String(open));
      this.sessionsPanel.classList.toggle("open", open);
    });
  }

  /** Stop following whatever the view followed (the turns go on on the server) and start afresh. */
  restart() {
    this.controller.abort();
    this.controller = new AbortController();
    return this.controller.signal;
  }

  say(text) {
    this.status.textContent = text;
  }

  closeSessionsOnPhone() {
    this.sessionsToggle.setAttribute("aria-expanded", "false");
    this.sessionsPanel.classList.remove("open");
  }

  // -- the conversation ------------------------------------------------------------------------

  /** Offer the service's graphs for a new chat, when it hosts more than one (GET /v1/graphs). */
  async loadGraphs() {
    let graphs;
    try {
      graphs = (await api.listGraphs(this.userId())).items;
    } catch {
      graphs = []; // an older service, or a key refused: new chats get the default, as before
    }
    const label = (graph) => (graph.description ? `${graph.name} — ${graph.description}` : graph.name);
    this.graphPicker.replaceChildren(
      ...graphs.map((graph) => el("option", { value: graph.name, text: label(graph) })),
    );
    this.graphChoice.hidden = graphs.length < 2 || this.sessionId !== null;
  }

  newChat() {
    this.restart();
    this.sessionId = null;
    this.graphChoice.hidden = this.graphPicker.options.length < 2;
    this.transcript.replaceChildren();
    this.pending.replaceChildren();
    this.label.textContent = "A new chat";
    delete this.label.dataset.session;
    this.say("");
    this.markCurrentSession();
    this.input.focus();
  }

  line(role, text, { createdAt } = {}) {
    const who = role === "user" ? "You" : "Assistant";
    const body = el("p", { class: "text", text });
    const item = el(
      "li",
      { class: `msg msg-${role}` },
      el("span", { class: "who", text: who }),
      body,
      createdAt ? timeElement(createdAt) : null,
    );
    this.transcript.append(item);
    item.scrollIntoView({ block: "end" });
    return { item, body };
  }

  /** Make a change to the transcript; if the reader was at its end, keep them there. */
  keepingUp(change) {
    const log = this.transcript;
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    change();
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  note(text, kind = "note") {
    const item = el("li", { class: `msg ${kind}`, text });
    this.transcript.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text) {
      this.say("Type a message first.");
      this.input.focus();
      return;
    }
    this.input.value = "";
    const signal = this.controller.signal;
    const sent = this.line("user", text);
    this.say("Sending…");
    let response;
    try {
      response = await api.postChat(this.userId(), this.sessionId, text, signal, this.graphPicker.value);
    } catch (error) {
      if (signal.aborted) return;
      sent.item.classList.add("unsent");
      sent.item.append(el("p", { class: "error", text: `Not sent: ${describeProblem(error)}` }));
      this.say("The message was not sent.");
      if (error instanceof api.ApiError && Array.isArray(error.problem.pending)) {
        this.renderPending(error.problem.pending);
      }
      if (!this.input.value) this.input.value = text;
      return;
    }
    const sessionId = response.headers.get("X-Session-Id");
    if (sessionId && sessionId !== this.sessionId) this.enterSession(sessionId);
    await this.followTurn(response.headers.get("X-Message-Id"), response, signal);
  }

  enterSession(sessionId) {
    this.sessionId = sessionId;
    this.label.textContent = `Session ${sessionId}`;
    this.graphChoice.hidden = true;
    this.label.dataset.session = sessionId;
    this.markCurrentSession();
  }

  /** Stream one message's turn into a new assistant line, then show what it ended with. */
  async followTurn(messageId, response, signal) {
    const reply = this.line("assistant", "");
    reply.item.setAttribute("aria-busy", "true");
    reply.item.classList.add("streaming");
    this.pending.replaceChildren();
    this.say("The assistant is replying…");
    const asked = [];
    let outcome = null;
    await followMessage({
      userId: this.userId(),
      messageId,
      response,
      signal,
      on: {
        onStatus: (data) => {
          if (data.status !== "running") return;
          if (reply.body.textContent || data.attempt > 1) {
            // Every start of the turn after the first (a retry, a restart of the server) streams the
            // reply from its beginning: what was streamed so far is not the reply.
            reply.body.textContent = "";
            this.say(`Trying again (attempt ${data.attempt})…`);
          }
        },
        onToken: (text) => {
          this.keepingUp(() => reply.body.append(text));
        },
        onInterrupt: (interrupt) => {
          asked.push(interrupt);
          this.renderPending(asked);
        },
        onDone: (message) => {
          outcome = message;
        },
        onReconnecting: () => this.say("Connection lost; reconnecting…"),
        onConnected: () => this.say("The assistant is replying…"),
        onLost: () => {
          this.say("The connection to this reply was lost. Reopen the session to see it.");
        },
      },
    });
    reply.item.removeAttribute("aria-busy");
    reply.item.classList.remove("streaming");
    if (signal.aborted) return;
    if (outcome === null) {
      if (!reply.body.textContent) reply.item.remove();
      return;
    }
    this.showOutcome(outcome, reply);
    this.loadSessions();
  }

  showOutcome(message, reply) {
    if (message.session_id && message.session_id !== this.sessionId) this.enterSession(message.session_id);
    if (message.reply !== null && message.reply !== undefined) {
      // The resource's reply is the whole answer: it settles any doubt about what was streamed.
      reply.body.textContent = message.reply;
    }
    if (message.status === "failed" || message.status === "cancelled") {
      const detail = message.error?.detail || "The reply failed.";
      reply.item.classList.add("failed");
      reply.item.append(el("p", { class: "error", text: detail }));
    } else if (!reply.body.textContent) {
      reply.item.remove();
    }
    const interrupts = message.status === "interrupted" ? message.interrupt || [] : [];
    this.renderPending(interrupts);
    if (message.status === "completed") this.say("");
    else if (message.status === "interrupted") this.say(this.pendingSummary(interrupts));
    else this.say(message.status === "cancelled" ? "The reply was cancelled." : "The reply failed.");
  }

  pendingSummary(interrupts) {
    if (interrupts.some((i) => i.kind !== "review")) return "The assistant is waiting for your answer.";
    return "Your answer is being reviewed.";
  }

  // -- pending questions -------------------------------------------------------------------------

  renderPending(interrupts) {
    const cards = interrupts.map((interrupt) =>
      interrupt.kind === "review" ? this.reviewCard() : this.questionCard(interrupt),
    );
    this.pending.replaceChildren(...cards);
    const review = interrupts.find((interrupt) => interrupt.kind === "review");
    if (review && this.sessionId) this.watchReview(this.sessionId, review.id, this.controller.signal);
  }

  reviewCard() {
    return el(
      "section",
      { class: "card card-review", "aria-label": "Being reviewed" },
      el("p", { class: "card-title", text: "Being reviewed" }),
      el("p", { text: REVIEW_NOTICE }),
    );
  }

  questionCard(interrupt) {
    const value = interrupt.value ?? {};
    const headingId = uniqueId("question");
    const titles = { confirm: "Please confirm", breakpoint: "Paused", input: "The assistant asks" };
    let question = "";
    if (typeof value === "string") question = value;
    else if (typeof value.question === "string") question = value.question;
    else question = JSON.stringify(value, null, 2);
    const card = el(
      "section",
      { class: "card", "aria-labelledby": headingId },
      el("h3", { id: headingId, class: "card-title", text: titles[interrupt.kind] || titles.input }),
      el("p", { class: "question", text: question }),
      typeof value.error === "string" ? el("p", { class: "error", text: value.error }) : null,
    );
    const buttons = el("div", { class: "actions" });
    card.append(buttons);
    const answer = (value, summary) => this.answer(interrupt, value, summary, card);
    if (interrupt.kind === "breakpoint") {
      buttons.append(el("button", { type: "button", text: "Continue", onclick: () => answer("continue", "Continue") }));
      return card;
    }
    const editor = this.editor(value, (edited, summary) => answer(edited, summary));
    const edit = el("button", {
      type: "button",
      text: "Edit",
      "aria-expanded": "false",
      "aria-controls": editor.id,
      onclick: () => {
        const open = editor.hidden;
        editor.hidden = !open;
        edit.setAttribute("aria-expanded", String(open));
        if (open) editor.querySelector("textarea").focus();
      },
    });
    buttons.append(
      el("button", {
        type: "button",
        class: "primary",
        text: "Approve",
        onclick: () => answer({ decision: "approve" }, "Approved"),
      }),
      el("button", {
        type: "button",
        class: "danger",
        text: "Reject",
        onclick: () => answer({ decision: "reject" }, "Rejected"),
      }),
      edit,
    );
    card.append(editor);
    return card;
  }

  /** The form of an edit: new arguments as JSON when the question has some, else a text answer. */
  editor(value, send) {
    const hasArgs = value && typeof value.args === "object" && value.args !== null && !Array.isArray(value.args);
    const fieldId = uniqueId("edit");
    const errorId = uniqueId("edit-error");
    const field = el("textarea", { id: fieldId, rows: hasArgs ? 4 : 2, "aria-describedby": errorId, spellcheck: "false" });
    field.value = hasArgs ? JSON.stringify(value.args, null, 2) : "";
    const error = el("p", { id: errorId, class: "error", role: "alert" });
    const form = el(
      "form",
      { id: uniqueId("editor"), class: "editor", hidden: true },
      el("label", { for: fieldId, text: hasArgs ? "New arguments (JSON)" : "Your answer" }),
      field,
      error,
      el("button", { type: "submit", text: "Send edit" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      error.textContent = "";
      field.removeAttribute("aria-invalid");
      if (!hasArgs) {
        if (!field.value.trim()) {
          error.textContent = "Write your answer first.";
          field.setAttribute("aria-invalid", "true");
          field.focus();
          return;
        }
        send({ decision: "edit", text: field.value }, `Edited: ${field.value}`);
        return;
      }
      let args;
      try {
        args = JSON.parse(field.value);
      } catch {
        args = null;
      }
      if (!args || typeof args !== "object" || Array.isArray(args)) {
        error.textContent = 'Write the arguments as a JSON object, e.g. {"quantity": 1}.';
        field.setAttribute("aria-invalid", "true");
        field.focus();
        return;
      }
      send({ decision: "edit", args }, `Edited: ${JSON.stringify(args)}`);
    });
    return form;
  }

  async answer(interrupt, value, summary, card) {
    const sessionId = this.sessionId;
    const signal = this.controller.signal;
    for (const control of card.querySelectorAll("button, textarea")) control.disabled = true;
    this.say("Sending your answer…");
    let response;
    try {
      response = await api.postResume(this.userId(), sessionId, interrupt.id, value, { signal });
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof api.ApiError && error.status === 409 && Array.isArray(error.problem.pending)) {
        // Answered elsewhere, or asked again: show what is pending now.
        this.renderPending(error.problem.pending);
      } else {
        for (const control of card.querySelectorAll("button, textarea")) control.disabled = false;
      }
      this.say(`Your answer was not sent: ${describeProblem(error)}`);
      return;
    }
    this.note(`${summary}.`);
    await this.followTurn(response.headers.get("X-Message-Id"), response, signal);
  }

  /** While a review is pending nothing else tells the page it was answered: look now and then. */
  async watchReview(sessionId, interruptId, signal) {
    if (this.watching === interruptId) return;
    this.watching = interruptId;
    try {
      while (!signal.aborted) {
        await sleep(REVIEW_POLL_MS, signal);
        if (signal.aborted) return;
        let session;
        try {
          session = await api.getSession(this.userId(), sessionId);
        } catch {
          continue; // try again at the next tick
        }
        if (!session.pending_interrupts.some((interrupt) => interrupt.id === interruptId)) {
          // Reviewed: the session shows the outcome (and streams it, while the reply is being written).
          this.openSession(sessionId);
          return;
        }
      }
    } finally {
      if (this.watching === interruptId) this.watching = null;
    }
  }

  // -- sessions ----------------------------------------------------------------------------------

  /** Show a session: its transcript, what it waits on, and the reply being written, if one is. */
  async openSession(sessionId) {
    const signal = this.restart();
    this.enterSession(sessionId);
    this.transcript.replaceChildren();
    this.pending.replaceChildren();
    this.say("Loading the conversation…");
    let transcript;
    let session;
    try {
      [transcript, session] = await Promise.all([
        api.getTranscript(this.userId(), sessionId),
        api.getSession(this.userId(), sessionId),
      ]);
    } catch (error) {
      if (signal.aborted) return;
      this.say(`The session could not be opened: ${describeProblem(error)}`);
      return;
    }
    if (signal.aborted) return;
    if (!transcript.complete) this.note("Only the beginning of this long conversation is shown.");
    for (const entry of transcript.items) this.line(entry.role, entry.content, { createdAt: entry.created_at });
    const graph = this.graphPicker.options.length > 1 ? ` · ${session.graph}` : "";
    this.label.textContent = `Session ${sessionId}${graph} · ${STATUS_WORDS[session.status] || session.status}`;
    this.renderPending(session.pending_interrupts);
    if (session.status === "busy" && session.last_message_id) {
      await this.followTurn(session.last_message_id, null, signal);
    } else if (session.status === "interrupted") {
      this.say(this.pendingSummary(session.pending_interrupts));
    } else {
      this.say(transcript.items.length ? "" : "No messages yet.");
    }
  }

  markCurrentSession() {
    for (const button of this.sessionList.querySelectorAll("button[data-session]")) {
      if (button.dataset.session === this.sessionId) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  sessionItem(session) {
    const title = session.title || "Untitled";
    const status = STATUS_WORDS[session.status] || session.status;
    const when = session.last_activity_at || session.updated_at || session.created_at;
    const button = el(
      "button",
      {
        type: "button",
        class: "session",
        "data-session": session.session_id,
        onclick: () => {
          this.closeSessionsOnPhone();
          this.openSession(session.session_id);
        },
      },
      el("span", { class: "session-title", text: title }),
      el("span", { class: "session-meta", text: `${status} · ${formatTime(when)}` }),
    );
    return el("li", {}, button);
  }

  /** The user's sessions, most recent activity first (`more`: the next page, added below). */
  async loadSessions({ more = false } = {}) {
    let page;
    try {
      page = await api.listSessions(this.userId(), more ? this.cursor : null);
    } catch (error) {
      this.sessionsEmpty.hidden = false;
      this.sessionsEmpty.textContent = `The sessions could not be listed: ${describeProblem(error)}`;
      return;
    }
    const items = page.items.map((session) => this.sessionItem(session));
    if (more) this.sessionList.append(...items);
    else this.sessionList.replaceChildren(...items);
    this.cursor = page.next_cursor ?? page.next ?? null;
    this.sessionsMore.hidden = !this.cursor;
    this.sessionsEmpty.hidden = this.sessionList.children.length > 0;
    this.sessionsEmpty.textContent = "No sessions yet.";
    this.markCurrentSession();
  }
}

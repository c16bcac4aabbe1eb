// The operator view: drafts waiting for review (GET /v1/interrupts), each approved, edited or rejected.
// Every request carries X-Role: operator, which the server trusts only with PARLEY_OPERATOR_HEADER_ENABLED.

import * as api from "./api.js";
import { el, timeElement, uniqueId } from "./dom.js";

function waited(seconds) {
  if (seconds < 60) return "under a minute";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} days`;
}

export class OperatorView {
  /** @param {() => string} userId the operator's own user id */
  constructor(userId) {
    this.userId = userId;
    this.list = document.getElementById("queue");
    this.status = document.getElementById("queue-status");
    this.refreshButton = document.getElementById("queue-refresh");
    this.refreshButton.addEventListener("click", () => this.refresh());
  }

  async refresh() {
    this.status.textContent = "Loading the queue…";
    let page;
    try {
      page = await api.listReviews(this.userId());
    } catch (error) {
      this.list.replaceChildren();
      if (error instanceof api.ApiError && error.status === 403) {
        this.status.textContent =
          "The operator role is not enabled on this server: start it with PARLEY_OPERATOR_HEADER_ENABLED=true.";
      } else {
        this.status.textContent = `The queue could not be loaded: ${error.message}`;
      }
      return;
    }
    this.list.replaceChildren(...page.items.map((item) => this.card(item)));
    this.status.textContent = page.items.length
      ? `${page.items.length} waiting for review.`
      : "No reviews are waiting.";
  }

  card(item) {
    const value = item.value ?? {};
    const headingId = uniqueId("review");
    const reasons = Array.isArray(value.reasons) ? value.reasons : [];
    const card = el(
      "li",
      { class: "card", "aria-labelledby": headingId },
      el("h3", { id: headingId, class: "card-title", text: `Review for ${item.user_id}` }),
      el(
        "p",
        { class: "muted small" },
        `Session ${item.session_id} · waiting ${waited(item.age_seconds)} · since `,
        timeElement(item.created_at),
      ),
      el("p", { class: "label", text: "The user asked" }),
      el("p", { class: "quoted", text: String(value.question ?? "") }),
      el("p", { class: "label", text: "Draft reply" }),
      el("p", { class: "quoted draft", text: String(value.draft ?? "") }),
      reasons.length
        ? el(
            "div",
            {},
            el("p", { class: "label", text: "Flagged because" }),
            el("ul", { class: "reasons" }, ...reasons.map((reason) => el("li", { text: String(reason) }))),
          )
        : null,
      typeof value.error === "string" ? el("p", { class: "error", text: value.error }) : null,
    );
    const answer = (decision, done) => this.answer(item, decision, done, card);
    const fieldId = uniqueId("edited");
    const field = el("textarea", { id: fieldId, rows: 4 });
    field.value = String(value.draft ?? "");
    const editor = el(
      "form",
      { id: uniqueId("editor"), class: "editor", hidden: true },
      el("label", { for: fieldId, text: "Reply to send instead" }),
      field,
      el("button", { type: "submit", text: "Send edited reply" }),
    );
    editor.addEventListener("submit", (event) => {
      event.preventDefault();
      answer({ decision: "edit", text: field.value }, "Edited");
    });
    const edit = el("button", {
      type: "button",
      text: "Edit",
      "aria-expanded": "false",
      "aria-controls": editor.id,
      onclick: () => {
        const open = editor.hidden;
        editor.hidden = !open;
        edit.setAttribute("aria-expanded", String(open));
        if (open) field.focus();
      },
    });
    card.append(
      el(
        "div",
        { class: "actions" },
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
      ),
      editor,
    );
    return card;
  }

  async answer(item, value, done, card) {
    for (const control of card.querySelectorAll("button, textarea")) control.disabled = true;
    try {
      await api.postResume(this.userId(), item.session_id, item.interrupt_id, value, { operator: true });
    } catch (error) {
      for (const control of card.querySelectorAll("button, textarea")) control.disabled = false;
      if (error instanceof api.ApiError && error.status === 409) {
        this.status.textContent = "That review was already answered.";
        await this.refresh();
        return;
      }
      this.status.textContent = `The answer was not sent: ${error.message}`;
      return;
    }
    card.remove();
    // The button that had the focus is gone: hand it to the next review, or to Refresh.
    (this.list.querySelector("button") || this.refreshButton).focus();
    const left = this.list.children.length;
    this.status.textContent = `${done} the review for ${item.user_id}. ${
      left ? `${left} still waiting.` : "No reviews are waiting."
    }`;
  }
}

"""The web page at ``/`` in a real browser (Debian's chromium, driven by Playwright) against the real server:
replies stream in as they are written, a confirmation is answered with its buttons, an operator approves a
review from the operator view, and a session reopens from the list with its transcript.

Waiting is Playwright's ``expect``, which polls the page until its deadline; each test leaves screenshots
in ``tests/artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Error, Page, expect, sync_playwright

from tests.backends import Backend
from tests.conftest import require_service
from tests.e2e.browser import DESKTOP, PHONE, chromium_missing, launch, screenshot
from tests.e2e.server import ServerProcess, create_key

expect.set_options(timeout=20_000)
OpenPage = Callable[[ServerProcess, str], Page]
ORDER = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs, please'
STREAMED = "Replies arrive one word at a time, as the model writes them, and the page shows each."

# Every state the last assistant line goes through: its text, and whether it was still being streamed.
_RECORD_REPLY = """() => {
  window.replyStates = [];
  const log = document.getElementById("transcript");
  new MutationObserver(() => {
    const replies = log.querySelectorAll(".msg-assistant");
    const last = replies[replies.length - 1];
    if (last) {
      window.replyStates.push([last.querySelector(".text").textContent, last.getAttribute("aria-busy") === "true"]);
    }
  }).observe(log, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A browser for one test. Not shared: Playwright's sync API holds an event loop in this thread while it
    runs, and the PostgreSQL fixtures call ``asyncio.run`` (to migrate the template) when they are set up —
    which they are before this, by taking ``start_server`` first."""
    missing = chromium_missing()
    require_service("chromium", missing is None, missing or "")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """``open_page(server, user)``: the page in a fresh browser profile, signed in as ``user``. The test
    fails if the page's script raised anything."""
    contexts = []
    errors: list[Error] = []

    def _open(server: ServerProcess, user: str) -> Page:
        context = browser.new_context(viewport=DESKTOP)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on("pageerror", lambda error: errors.append(error))
        page.goto(f"{server.base_url}/")
        page.get_by_label("Your user id").fill(user)
        page.get_by_role("button", name="Use").click()
        return page

    yield _open
    for context in contexts:
        context.close()
    assert errors == [], f"the page's script failed: {errors}"


def send(page: Page, text: str) -> None:
    """Type a message and send it with the Enter key."""
    box = page.get_by_role("textbox", name="Message", exact=True)
    box.fill(text)
    box.press("Enter")


def tab_to(page: Page, name: str, *, presses: int = 40) -> None:
    """Press Tab from the top of the page until the control named ``name`` has the focus."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(presses):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "(() => { const e = document.activeElement; return e.getAttribute('aria-label') || e.textContent.trim(); })()"
        )
        if focused == name:
            return
    raise AssertionError(f"{name!r} not reached with {presses} presses of Tab")


def last_reply(page: Page) -> Any:
    return page.locator("#transcript .msg-assistant .text").last


def test_a_reply_streams_into_the_page_as_it_is_generated(
    start_server: Any, open_page: OpenPage, backend: Backend, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": STREAMED, "pace": 0.1}]))
    # Without review keywords the assistant's reply can only be reviewed for a tool's amount: it streams live.
    server: ServerProcess = start_server(PARLEY_REVIEW_KEYWORDS="", PARLEY_SCRIPTED_SCRIPT=str(script))
    page = open_page(server, "alice")
    page.evaluate(_RECORD_REPLY)

    send(page, "How do replies reach me?")
    expect(last_reply(page)).to_contain_text("Replies arrive")
    screenshot(page, f"page-streaming-{backend.name}")
    expect(last_reply(page)).to_have_text(STREAMED)
    expect(page.locator("#transcript .msg-assistant").last).not_to_have_attribute("aria-busy", "true")

    states: list[tuple[str, bool]] = page.evaluate("window.replyStates")
    streamed = [text for text, busy in states if busy and text]
    # Shown piece by piece before the turn's end: several growing prefixes of the reply.
    assert len(set(streamed)) >= 5, states
    assert all(STREAMED.startswith(text) for text in streamed), states
    assert [len(t) for t in streamed] == sorted(len(t) for t in streamed), states
    assert min(len(t) for t in streamed) < len(STREAMED) // 2, states

    # What the page ends with is the reply the server kept.
    session_id = page.locator("#session-label").get_attribute("data-session")
    with httpx.Client(base_url=server.base_url, headers={"X-User-Id": "alice"}) as client:
        lines = client.get(f"/v1/sessions/{session_id}/messages").json()["items"]
    assert [(line["role"], line["content"]) for line in lines] == [
        ("user", "How do replies reach me?"),
        ("assistant", STREAMED),
    ]
    screenshot(page, f"page-streamed-{backend.name}")


def test_a_dropped_stream_is_picked_up_where_it_stopped(
    start_server: Any, open_page: OpenPage, backend: Backend, tmp_path: Path
) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"text": STREAMED, "pace": 0.25}]))
    server: ServerProcess = start_server(PARLEY_REVIEW_KEYWORDS="", PARLEY_SCRIPTED_SCRIPT=str(script))
    page = open_page(server, "alice")
    page.evaluate(_RECORD_REPLY)
    reconnections: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            reconnections.append(request.headers.get("last-event-id"))
            if request.url.endswith("/events")
            else None
        ),
    )

    send(page, "How do replies reach me?")
    expect(last_reply(page)).to_contain_text("Replies arrive")
    # The API process dies mid-reply, taking the stream with it, and comes back on the same port. The turn
    # goes on: in a worker (queue), or started again by the restarted server's recovery.
    server.sigkill()
    expect(page.locator("#chat-status")).to_have_text("Connection lost; reconnecting…")
    server.start()
    expect(last_reply(page)).to_have_text(STREAMED)
    expect(page.locator("#transcript .msg-assistant").last).not_to_have_attribute("aria-busy", "true")
    expect(page.locator("#chat-status")).to_have_text("")

    # The page asked for what came after the last event it had, and the tokens it then got, with those it
    # had (or, after a restart of the turn, the new attempt's alone), make the reply: none missing, none twice.
    assert reconnections, "the page never reconnected"
    assert all(last is not None and last.isdigit() and int(last) > 0 for last in reconnections), reconnections
    states: list[tuple[str, bool]] = page.evaluate("window.replyStates")
    streamed = [text for text, busy in states if busy]
    assert streamed[-1] == STREAMED, states
    screenshot(page, f"page-reconnected-{backend.name}")


def test_a_confirmation_is_approved_with_its_button(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    server: ServerProcess = start_server()
    page = open_page(server, "alice")

    send(page, ORDER)
    card = page.get_by_role("region", name="Please confirm")
    expect(card).to_contain_text("Place an order for 2 x mug ($18.00)?")
    expect(card.get_by_role("button", name="Reject")).to_be_visible()
    expect(card.get_by_role("button", name="Edit")).to_be_visible()
    screenshot(page, f"page-confirm-asked-{backend.name}")
    assert backend.count("parley_orders") == 0

    card.get_by_role("button", name="Approve").click()
    expect(last_reply(page)).to_contain_text('Tool results: place_order: {"ok": true')
    expect(card).to_have_count(0)
    expect(page.locator("#transcript")).to_contain_text("Approved.")
    assert backend.count("parley_orders") == 1
    screenshot(page, f"page-confirm-approved-{backend.name}")


@pytest.mark.sqlite_only
def test_a_confirmation_is_edited_with_new_arguments(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    page = open_page(start_server(), "alice")
    send(page, ORDER)
    card = page.get_by_role("region", name="Please confirm")
    card.get_by_role("button", name="Edit").click()
    field = card.get_by_label("New arguments (JSON)")
    expect(field).to_be_focused()
    expect(field).to_have_value('{\n  "item": "mug",\n  "quantity": 2\n}')

    field.fill("three mugs")
    card.get_by_role("button", name="Send edit").click()
    expect(card.get_by_role("alert")).to_contain_text("JSON object")
    expect(field).to_have_attribute("aria-invalid", "true")

    field.fill('{"quantity": 3}')
    card.get_by_role("button", name="Send edit").click()
    expect(last_reply(page)).to_contain_text('"quantity": 3, "total": 27.0')
    assert backend.query("SELECT item, quantity FROM parley_orders") == [{"item": "mug", "quantity": 3}]
    screenshot(page, f"page-confirm-edited-{backend.name}")


def test_the_operator_view_approves_a_review(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    server: ServerProcess = start_server(PARLEY_OPERATOR_HEADER_ENABLED="true")
    question = "What dosage of ibuprofen is safe for me?"
    draft = f"Echo: {question}"
    user = open_page(server, "alice")

    send(user, question)
    expect(user.get_by_role("region", name="Being reviewed")).to_be_visible()
    # The user learns that a review is pending, and nothing of the draft.
    expect(user.locator("#transcript .msg-assistant")).to_have_count(0)
    assert draft not in user.locator("body").inner_text()

    operator = open_page(server, "olga")
    operator.get_by_role("tab", name="Operator").click()
    expect(operator.get_by_role("tab", name="Operator")).to_have_attribute("aria-selected", "true")
    expect(operator.locator("#view-chat")).to_be_hidden()
    card = operator.locator("#queue > li").filter(has_text="Review for alice")
    expect(card).to_contain_text(draft)
    expect(card).to_contain_text("mentions 'dosage'")
    screenshot(operator, f"page-operator-queue-{backend.name}")

    card.get_by_role("button", name="Approve").click()
    expect(operator.locator("#queue-status")).to_have_text(
        "Approved the review for alice. No reviews are waiting."
    )
    expect(card).to_have_count(0)

    # The user's page sees the review answered and shows the approved reply.
    expect(last_reply(user)).to_have_text(draft)
    expect(user.get_by_role("region", name="Being reviewed")).to_have_count(0)
    screenshot(user, f"page-review-approved-{backend.name}")
    screenshot(operator, f"page-operator-done-{backend.name}")


@pytest.mark.sqlite_only
def test_the_operator_view_edits_a_review(start_server: Any, open_page: OpenPage, backend: Backend) -> None:
    server: ServerProcess = start_server(PARLEY_OPERATOR_HEADER_ENABLED="true")
    user = open_page(server, "alice")
    send(user, "Is this a case for a lawsuit?")
    expect(user.get_by_role("region", name="Being reviewed")).to_be_visible()

    operator = open_page(server, "olga")
    operator.get_by_role("tab", name="Operator").click()
    card = operator.locator("#queue > li").filter(has_text="Review for alice")
    card.get_by_role("button", name="Edit").click()
    card.get_by_label("Reply to send instead").fill("Please ask a lawyer about that.")
    card.get_by_role("button", name="Send edited reply").click()
    expect(operator.locator("#queue-status")).to_have_text(
        "Edited the review for alice. No reviews are waiting."
    )

    expect(last_reply(user)).to_have_text("Please ask a lawyer about that.")
    assert "Echo:" not in user.locator("body").inner_text()


def test_a_session_reopens_from_the_list_with_its_transcript(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    server: ServerProcess = start_server()
    page = open_page(server, "alice")
    # Markup in a message is text, in the user's line and in the model's echo of it.
    first = 'Hello <img src=x onerror="window.injected = 1"> there'
    send(page, first)
    expect(last_reply(page)).to_have_text(f"Echo: {first}")
    send(page, "and a second message")
    expect(last_reply(page)).to_have_text("Echo: and a second message")

    page.get_by_role("button", name="New chat").click()
    expect(page.locator("#transcript .msg")).to_have_count(0)
    send(page, "another conversation")
    expect(last_reply(page)).to_have_text("Echo: another conversation")

    # The user id is kept across visits; the list shows both sessions, the latest first.
    page.reload()
    expect(page.get_by_label("Your user id")).to_have_value("alice")
    sessions = page.locator("#session-list button")
    expect(sessions).to_have_count(2)
    expect(sessions.first).to_contain_text("another conversation")

    sessions.filter(has_text="Hello").click()
    expect(page.locator("#transcript .msg .text")).to_have_text(
        [first, f"Echo: {first}", "and a second message", "Echo: and a second message"]
    )
    expect(sessions.filter(has_text="Hello")).to_have_attribute("aria-current", "true")
    expect(page.locator("#transcript img")).to_have_count(0)
    assert page.evaluate("window.injected") is None
    screenshot(page, f"page-reopened-{backend.name}")


# Contrast as WCAG 2 defines it, for every element that shows text, against the first opaque background
# behind it.
_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const found = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility() || el.closest(".visually-hidden")) continue;
    const style = getComputedStyle(el);
    const fg = rgb(style.color).slice(0, 3);
    const [a, b] = [lum(fg), lum(background(el))].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    found.push([el.tagName + "." + el.className, el.textContent.trim().slice(0, 30), ratio, el.disabled === true]);
  }
  return found;
}"""

# Every control a person must reach has a name (a label, or its text).
_UNNAMED = """() => Array.from(document.querySelectorAll("input, textarea, button, select"))
  .filter((el) => el.checkVisibility())
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
  .map((el) => el.outerHTML)"""


@pytest.mark.sqlite_only
def test_the_page_is_labelled_readable_and_fits_a_phone(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    server: ServerProcess = start_server()
    page = open_page(server, "alice")
    # A user id the API would refuse is refused in the form, and the one in use stays.
    user_field = page.get_by_label("Your user id")
    user_field.fill("has space")
    page.get_by_role("button", name="Use").click()
    expect(page.locator("#user-id-error")).to_contain_text("without spaces")
    expect(user_field).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("localStorage.getItem('parley.userId')") == "alice"
    user_field.fill("alice")
    page.get_by_role("button", name="Use").click()
    expect(user_field).not_to_have_attribute("aria-invalid", "true")

    send(page, ORDER)
    expect(page.get_by_role("region", name="Please confirm")).to_be_visible()
    page.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("New arguments (JSON)")).to_be_focused()

    # The reply area is a live region; the controls have names; text is readable (4.5:1).
    log = page.get_by_role("log", name="Messages")
    expect(log).to_have_attribute("aria-live", "polite")
    assert page.evaluate(_UNNAMED) == []
    low = [found for found in page.evaluate(_CONTRAST) if found[2] < 4.5 and not found[3]]
    assert low == []

    # By keyboard alone: Tab reaches the buttons, Enter presses one.
    tab_to(page, "Reject")
    page.keyboard.press("Enter")
    expect(page.locator("#transcript")).to_contain_text("Rejected.")
    expect(last_reply(page)).to_contain_text('"declined": true')

    # On a phone's screen nothing runs off the side, and the sessions fold behind a button.
    page.set_viewport_size(PHONE)
    send(page, "a-long-word-without-spaces-" * 8)
    expect(last_reply(page)).to_contain_text("a-long-word-without-spaces-")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # The conversation scrolls; the message box stays on screen.
    box = page.get_by_role("textbox", name="Message", exact=True).bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= PHONE["height"]
    expect(page.locator("#session-list")).to_be_hidden()
    toggle = page.get_by_role("button", name="Sessions")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#session-list button")).to_have_count(1)
    screenshot(page, f"page-phone-{backend.name}")


# The page's own parser, fed a stream in awkward pieces: CRLF split between chunks, a lone CR and LF as
# line ends, comments (heartbeats), several data lines, a field without a value, an event with no data,
# and an unfinished event when the stream ends.
_PARSE = """async (pieces) => {
  const { EventStreamParser } = await import("/static/sse.js");
  const events = [];
  const parser = new EventStreamParser((event) => events.push(event));
  for (const piece of pieces) parser.push(piece);
  return events;
}"""


@pytest.mark.sqlite_only
def test_the_page_parses_event_streams_as_the_standard_says(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    page = open_page(start_server(), "alice")
    pieces = [
        ": ping\r\n\r\nid: 1\r",
        '\nevent: token\r\ndata: {"text": "Hel"}\r\n\r',
        '\n: ping\n\nid: 2\nevent: token\ndata: {"text":\ndata: "lo"}\n\r',
        "id: 3\revent: update\rdata\r\rid: 4\nevent: nothing\n\n",
        "id: 5\nevent: done\ndata: {}",
    ]
    assert page.evaluate(_PARSE, pieces) == [
        {"type": "token", "data": '{"text": "Hel"}', "id": "1"},
        {"type": "token", "data": '{"text":\n"lo"}', "id": "2"},
        {"type": "update", "data": "", "id": "3"},
    ]


@pytest.mark.sqlite_only
def test_the_page_calls_a_keyed_server_with_the_key_it_is_given(
    start_server: Any, open_page: OpenPage, backend: Backend
) -> None:
    server: ServerProcess = start_server(PARLEY_AUTH="keys")
    key = create_key(
        {**backend.env(), "PARLEY_DATA_DIR": str(backend.data_dir)}, "--role", "user", "--user", "alice"
    )
    page = open_page(server, "alice")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use").click()
    send(page, "hello with a key")
    expect(last_reply(page)).to_have_text("Echo: hello with a key")
    # Kept for this tab only, never in the browser's lasting storage.
    assert page.evaluate("sessionStorage.getItem('parley.apiKey')") == key
    assert page.evaluate("localStorage.getItem('parley.apiKey')") is None
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
        [listed] = client.get("/v1/sessions").json()["items"]
        assert client.get(f"/v1/sessions/{listed['session_id']}").json()["user_id"] == "alice"
    # Without the key the server refuses the page's calls, and the page says so.
    page.get_by_label("API key").fill("")
    page.get_by_role("button", name="Use").click()
    send(page, "no key now")
    expect(page.locator("#transcript")).to_contain_text("API key")
    screenshot(page, f"page-keys-{backend.name}")


@pytest.mark.sqlite_only  # the page and the graphs it offers; storage adds nothing here
def test_a_new_chat_talks_to_the_graph_picked_and_the_session_keeps_it(
    start_server: Any, open_page: OpenPage
) -> None:
    server: ServerProcess = start_server(
        PARLEY_GRAPHS="assistant=parley.bots.assistant:build_graph,fn=tests.graphs.functional:bot"
    )
    page = open_page(server, "alice")
    picker = page.get_by_label("Talk to")
    expect(picker).to_be_visible()
    picker.select_option("fn")
    screenshot(page, "page-graph-choice")
    send(page, "hello")
    expect(last_reply(page)).to_have_text("turn 1: hello")
    # The session exists now: its graph is its own, no longer offered.
    expect(picker).to_be_hidden()
    send(page, "again")
    expect(last_reply(page)).to_have_text("turn 2: again")
    session_id = page.locator("#session-label").get_attribute("data-session")
    with httpx.Client(base_url=server.base_url, headers={"X-User-Id": "alice"}) as client:
        assert client.get(f"/v1/sessions/{session_id}").json()["graph"] == "fn"
    screenshot(page, "page-graph-picked")

    # A new chat is offered the graphs again; without a pick it gets the default.
    page.get_by_role("button", name="New chat").click()
    expect(picker).to_be_visible()
    picker.select_option("assistant")
    send(page, "hi there")
    expect(last_reply(page)).to_contain_text("Echo: hi there")


@pytest.mark.sqlite_only
def test_no_graph_is_offered_when_the_service_hosts_one(start_server: Any, open_page: OpenPage) -> None:
    server: ServerProcess = start_server()
    page = open_page(server, "alice")
    send(page, "hello")
    expect(last_reply(page)).to_contain_text("Echo: hello")
    expect(page.locator("#graph-choice")).to_be_hidden()

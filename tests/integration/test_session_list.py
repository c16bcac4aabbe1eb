"""``GET /v1/sessions``: the caller's sessions, most recent activity first, a page at a time; each with its
status and counts as the session resource has them, and its first message as a title."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import AppHarness
from tests.integration.test_chat_api import poll_until_terminal

ALICE = {"X-User-Id": "alice"}
OPERATOR = {"X-User-Id": "op-1", "X-Role": "operator"}
ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'


async def _list(h: AppHarness, headers: dict[str, str] = ALICE, **params: Any) -> dict[str, Any]:
    response = await h.client.get("/v1/sessions", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _all_pages(h: AppHarness, *, limit: int, headers: dict[str, str] = ALICE) -> list[list[str]]:
    """Every page of the listing, as session ids, following ``next_cursor`` to the end (a listing that
    never ends fails the test rather than hanging it)."""
    pages: list[list[str]] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(100):
        body = await _list(h, headers, **params)
        pages.append([item["session_id"] for item in body["items"]])
        if body["next_cursor"] is None:
            return pages
        assert len(body["items"]) == limit
        params["cursor"] = body["next_cursor"]
    raise AssertionError(f"still more pages after {len(pages)}: {pages[-3:]}")


async def _new_session(h: AppHarness, message: str = "hi", user: str = "alice") -> str:
    response = await h.chat(user_id=user, message=message)
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


def _activity(h: AppHarness, session_id: str) -> str:
    return str(
        h.backend.query("SELECT updated_at FROM parley_sessions WHERE session_id = ?", (session_id,))[0][
            "updated_at"
        ]
    )


def _assert_problem(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if field is not None:
        assert field in [e["field"] for e in response.json()["errors"]], response.text


# -- order and pages ---------------------------------------------------------------------------------


async def test_sessions_are_listed_most_recent_activity_first(harness: AppHarness) -> None:
    first, second, third = [await _new_session(harness, m) for m in ("one", "two", "three")]
    assert [i["session_id"] for i in (await _list(harness))["items"]] == [third, second, first]

    # A new message is activity: the oldest session comes first again.
    assert (await harness.chat(message="again", session_id=first)).status_code == 200
    body = await _list(harness)
    assert [i["session_id"] for i in body["items"]] == [first, third, second]
    assert body["next_cursor"] is None
    stamps = [i["last_activity_at"] for i in body["items"]]
    assert stamps == sorted(stamps, reverse=True)
    for item in body["items"]:
        session = (await harness.client.get(f"/v1/sessions/{item['session_id']}", headers=ALICE)).json()
        assert item["last_activity_at"] == session["updated_at"]
        assert item["created_at"] == session["created_at"]
        # The project's one form of a time: UTC, microseconds, Z.
        assert len(item["last_activity_at"]) == 27
        assert item["last_activity_at"].endswith("Z")


async def test_pages_list_every_session_once_in_a_total_order(harness: AppHarness) -> None:
    ids = [await _new_session(harness, f"session {n}") for n in range(7)]
    # Ties on the last activity: three sessions with one timestamp, in the middle of the others.
    tied = ids[2:5]
    stamp = _activity(harness, ids[3])
    for sid in tied:
        harness.backend.execute(
            "UPDATE parley_sessions SET updated_at = ? WHERE session_id = ?", (stamp, sid)
        )
    expected = [*reversed(ids[5:]), *sorted(tied, reverse=True), *reversed(ids[:2])]

    assert [i["session_id"] for i in (await _list(harness))["items"]] == expected
    for limit in (1, 2, 3, 7, 50):
        pages = await _all_pages(harness, limit=limit)
        assert [sid for page in pages for sid in page] == expected, limit
        assert all(pages), limit  # no empty page at the end: next_cursor is null on the last one


async def test_activity_between_pages_neither_repeats_nor_shows_a_session_twice(harness: AppHarness) -> None:
    a, b, c, d = [await _new_session(harness, m) for m in "abcd"]
    page1 = await _list(harness, limit=2)
    assert [i["session_id"] for i in page1["items"]] == [d, c]

    # Activity on a session already listed, and on one not listed yet, before the next page is read.
    assert (await harness.chat(message="more", session_id=c)).status_code == 200
    assert (await harness.chat(message="more", session_id=a)).status_code == 200
    page2 = await _list(harness, limit=2, cursor=page1["next_cursor"])
    # c is not listed again; a moved ahead of the cursor, so it is on a fresh listing's first page.
    assert [i["session_id"] for i in page2["items"]] == [b]
    assert page2["next_cursor"] is None
    assert [i["session_id"] for i in (await _list(harness))["items"]] == [a, c, d, b]


async def test_cancelling_a_queued_message_is_activity(harness: AppHarness) -> None:
    sid = await _new_session(harness)
    running = (await harness.chat(message="[[sleep:30]] hold", session_id=sid, wait=0)).json()
    queued = (await harness.chat(message="behind", session_id=sid, wait=0)).json()
    assert queued["status"] == "queued"
    before = (await _list(harness))["items"][0]

    cancelled = await harness.client.post(f"/v1/messages/{queued['message_id']}/cancel", headers=ALICE)
    assert cancelled.json()["status"] == "cancelled"
    after = (await _list(harness))["items"][0]
    assert after["last_activity_at"] > before["last_activity_at"]
    assert after["pending_count"] == 1

    assert (
        await harness.client.post(f"/v1/messages/{running['message_id']}/cancel", headers=ALICE)
    ).status_code in (200, 202)
    await poll_until_terminal(harness.client, running["message_id"])


async def test_a_deleted_session_leaves_the_list(harness: AppHarness) -> None:
    keep, gone = await _new_session(harness), await _new_session(harness)
    assert (await harness.client.delete(f"/v1/sessions/{gone}", headers=ALICE)).status_code == 204
    assert [i["session_id"] for i in (await _list(harness))["items"]] == [keep]


# -- what an item says -------------------------------------------------------------------------------


async def _session_in_each_status(h: AppHarness) -> dict[str, tuple[str, str | None]]:
    """A session per status: its id, and a message still running (to cancel at the end)."""
    idle = await _new_session(h, "hello")
    error = await _new_session(h, "hello")
    assert (await h.chat(message="[[fail]] again", session_id=error)).json()["status"] == "failed"
    asked = (await h.chat(message=ORDER_MUGS)).json()
    assert asked["status"] == "interrupted"
    slow = (await h.chat(message="[[sleep:30]] slow", wait=0)).json()
    return {
        "idle": (idle, None),
        "error": (error, None),
        "interrupted": (asked["session_id"], None),
        "busy": (slow["session_id"], slow["message_id"]),
    }


async def test_each_item_has_the_status_and_counts_of_the_session_resource(harness: AppHarness) -> None:
    sessions = await _session_in_each_status(harness)
    body = await _list(harness)
    items = {i["session_id"]: i for i in body["items"]}
    assert len(items) == len(sessions)
    for status, (sid, _) in sessions.items():
        item = items[sid]
        session = (await harness.client.get(f"/v1/sessions/{sid}", headers=ALICE)).json()
        assert item["status"] == session["status"] == status
        assert item["message_count"] == session["message_count"]
        assert item["pending_count"] == session["pending_count"]
        assert set(item) == {
            "session_id",
            "status",
            "title",
            "message_count",
            "pending_count",
            "created_at",
            "last_activity_at",
        }
    assert (items[sessions["error"][0]]["message_count"], items[sessions["busy"][0]]["pending_count"]) == (
        2,
        1,
    )

    running = sessions["busy"][1]
    assert running is not None
    assert (await harness.client.post(f"/v1/messages/{running}/cancel", headers=ALICE)).status_code in (
        200,
        202,
    )
    await poll_until_terminal(harness.client, running)


LONG = "Please place an order for two blue mugs and a teapot, and ship them to my office by Friday"


@pytest.mark.parametrize(
    ("first", "title"),
    [
        ("Hello there", "Hello there"),
        ("  Hello\n\n  there,\tfriend  \r\n", "Hello there, friend"),
        (LONG, "Please place an order for two blue mugs and a teapot, and…"),
        ("Line one\nline two\n" * 20, "Line one line two Line one line two Line one line two Line…"),
        ("x" * 61, "x" * 59 + "…"),
        ("x" * 60, "x" * 60),
        # Far longer than what storage reads for a title.
        ("word " * 3000, "word " * 11 + "word…"),
    ],
)
async def test_the_title_is_the_first_message_shortened(harness: AppHarness, first: str, title: str) -> None:
    sid = await _new_session(harness, first)
    assert (await harness.chat(message="a later message", session_id=sid)).status_code == 200
    [item] = (await _list(harness))["items"]
    assert item["title"] == title
    assert len(item["title"]) <= 60


# -- whose sessions ----------------------------------------------------------------------------------


async def test_a_user_sees_only_their_own_sessions(harness: AppHarness) -> None:
    mine = await _new_session(harness, "mine")
    theirs = await _new_session(harness, "secret of bob", user="bob")
    assert [i["session_id"] for i in (await _list(harness))["items"]] == [mine]
    assert [i["session_id"] for i in (await _list(harness, {"X-User-Id": "bob"}))["items"]] == [theirs]
    assert (await _list(harness, {"X-User-Id": "carol"})) == {"items": [], "next_cursor": None}

    # Naming another user is for operators; naming oneself is the default made explicit.
    refused = await harness.client.get("/v1/sessions", params={"user_id": "bob"}, headers=ALICE)
    _assert_problem(refused, 403)
    assert "secret" not in refused.text
    assert [i["session_id"] for i in (await _list(harness, user_id="alice"))["items"]] == [mine]


async def test_an_operator_lists_another_users_sessions_with_user_id(
    harness_factory: Any, make_settings: Any
) -> None:
    h: AppHarness = await harness_factory(make_settings(operator_header_enabled=True))
    alices = [await _new_session(h, m) for m in ("one", "two")]
    own = await _new_session(h, "operator's own", user="op-1")
    listed = await _list(h, OPERATOR, user_id="alice")
    assert [i["session_id"] for i in listed["items"]] == alices[::-1]
    assert [i["title"] for i in listed["items"]] == ["two", "one"]
    assert [i["session_id"] for i in (await _list(h, OPERATOR))["items"]] == [own]

    # Paging an operator's listing of another user.
    page = await _list(h, OPERATOR, user_id="alice", limit=1)
    rest = await _list(h, OPERATOR, user_id="alice", limit=1, cursor=page["next_cursor"])
    assert [page["items"][0]["session_id"], rest["items"][0]["session_id"]] == alices[::-1]


async def test_the_operator_role_is_refused_while_disabled(harness: AppHarness) -> None:
    await _new_session(harness)
    response = await harness.client.get("/v1/sessions", params={"user_id": "alice"}, headers=OPERATOR)
    _assert_problem(response, 403)


# -- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "query.limit"),
        ({"limit": "201"}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"cursor": ""}, "query.cursor"),
        ({"cursor": "zzz"}, "query.cursor"),
        ({"cursor": "2026-01-01T00:00:00.000000Z"}, "query.cursor"),  # no session part
        ({"cursor": "~abc"}, "query.cursor"),  # no timestamp part
        ({"cursor": "2026-01-01T00:00:00.000000Z~a\nb"}, "query.cursor"),
        ({"cursor": "2026~" + "s" * 101}, "query.cursor"),
        ({"user_id": ""}, "query.user_id"),
        ({"user_id": "has space"}, "query.user_id"),
    ],
)
async def test_bad_query_is_422_naming_the_field(
    harness: AppHarness, params: dict[str, str], field: str
) -> None:
    _assert_problem(await harness.client.get("/v1/sessions", params=params, headers=ALICE), 422, field)


async def test_a_missing_user_header_is_422_naming_it(harness: AppHarness) -> None:
    _assert_problem(await harness.client.get("/v1/sessions"), 422, "header.X-User-Id")


async def test_any_cursor_of_the_documented_form_is_a_page(harness: AppHarness) -> None:
    sid = await _new_session(harness)
    for cursor, expected in [
        ("9999-12-31T23:59:59.999999Z~zzz", [sid]),
        ("0001-01-01T00:00:00.000000Z~0", []),
        ("9~x~y", [sid]),
        ("1999-11-25T18:26:14+00:00~a session id with spaces", []),
    ]:
        body = await _list(harness, cursor=cursor)
        assert [i["session_id"] for i in body["items"]] == expected, cursor


async def test_a_cursor_continues_after_a_session_id_holding_the_separator(harness: AppHarness) -> None:
    """Sessions that are not Parley's UUIDs (imported ones, say): the cursor's first ``~`` separates, and a
    session without messages is listed too, untitled."""
    stamp = "2026-01-01T00:00:00.000000Z"
    for n in range(3):
        harness.backend.execute(
            "INSERT INTO parley_sessions (session_id, user_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (f"imported~{n}", "alice", stamp, stamp),
        )
    assert await _all_pages(harness, limit=1) == [["imported~2"], ["imported~1"], ["imported~0"]]
    item = (await _list(harness))["items"][0]
    assert (item["title"], item["status"], item["message_count"]) == (None, "idle", 0)

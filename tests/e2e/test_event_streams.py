"""Event streams against the real server (``parley serve`` subprocess, and workers on the queue backend):
``GET /v1/messages/{id}/events`` and ``POST /v1/chat`` / ``…/resume`` with ``Accept: text/event-stream``."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.sse import STREAM, Event, Parser, aevents_of, events_of, read_all, tokens
from tests.waiting import wait_until

ALICE = {"X-User-Id": "alice"}
OPERATOR = {"X-User-Id": "op-1", "X-Role": "operator"}
# No review keywords: the bundled assistant's drafts stream live (with keywords they are held to the end).
LIVE = {"PARLEY_REVIEW_KEYWORDS": ""}
REPLY = "one two three four five six"
SLOW = f"[[pace:0.2]] [[reply:{REPLY}]] count"


def chat_stream(client: httpx.Client, message: str, **body: Any) -> Any:
    return client.stream(
        "POST", "/v1/chat", json={"user_id": "alice", "message": message, **body}, headers=STREAM
    )


def events_after(
    client: httpx.Client, message_id: str, last: int | None = None, **headers: str
) -> list[Event]:
    extra = {"Last-Event-ID": str(last)} if last is not None else {}
    with client.stream(
        "GET", f"/v1/messages/{message_id}/events", headers={**ALICE, **extra, **headers}
    ) as r:
        return read_all(r)


def message(client: httpx.Client, message_id: str, headers: dict[str, str] = ALICE) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/v1/messages/{message_id}", headers=headers).json()
    return body


def assert_consecutive(events: list[Event], first: int = 1) -> None:
    assert [e.id for e in events] == list(range(first, first + len(events)))


def test_streamed_tokens_add_up_to_the_reply_as_it_is_written(start_server: Any) -> None:
    server: ServerProcess = start_server(**LIVE)
    with server.client() as client, chat_stream(client, SLOW) as response:
        assert response.status_code == 200
        message_id = response.headers["X-Message-Id"]
        assert response.headers["Location"] == f"/v1/messages/{message_id}"
        events: list[Event] = []
        for event in events_of(response.iter_lines()):
            if event.event == "token" and not any(e.event == "token" for e in events):
                # The first word is here while the model is still writing the rest.
                assert message(client, message_id)["status"] == "running"
            events.append(event)
        final = message(client, message_id)
    assert_consecutive(events)
    assert (events[0].event, events[0].data) == ("status", {"status": "running", "attempt": 1})
    assert events[-1].event == "done"
    assert events[-1].data == final  # the message resource, as GET /v1/messages/{id} shows it
    assert tokens(events) == REPLY == final["reply"]
    assert [e.data["node"] for e in events if e.event == "token"] == ["agent"] * 6
    assert {"node": "agent", "namespace": []} in [e.data for e in events if e.event == "update"]


def test_a_reconnect_mid_turn_gets_exactly_what_was_missed(start_server: Any) -> None:
    server: ServerProcess = start_server(**LIVE)
    with server.client() as client:
        with chat_stream(client, SLOW) as response:
            message_id = response.headers["X-Message-Id"]
            first: list[Event] = []
            for event in events_of(response.iter_lines()):
                first.append(event)
                if len([e for e in first if e.event == "token"]) == 2:
                    break  # the connection drops mid-reply
        assert message(client, message_id)["status"] == "running"
        rest = events_after(client, message_id, last=first[-1].id)
    assert_consecutive(first)
    assert_consecutive(rest, first=len(first) + 1)  # no gap, no repeat
    assert rest[-1].event == "done"
    assert tokens(first) + tokens(rest) == REPLY


def test_a_reconnect_after_the_turn_replays_exactly_the_rest(start_server: Any) -> None:
    server: ServerProcess = start_server(**LIVE)
    with server.client() as client:
        with chat_stream(client, f"[[reply:{REPLY}]] count") as response:
            live = read_all(response)
        message_id = live[-1].data["message_id"]
        assert events_after(client, message_id) == live  # the same ids, kinds and data, replayed
        assert events_after(client, message_id, last=3) == live[3:]
        assert events_after(client, message_id, last=live[-1].id) == []  # had everything: ends at once


def test_a_stream_opened_before_the_turn_starts_gets_all_of_it(start_server: Any) -> None:
    server: ServerProcess = start_server(**LIVE)
    with server.client() as client:
        busy = client.post("/v1/chat", json={"user_id": "alice", "message": "[[sleep:1]] busy", "wait": 0})
        session = busy.json()["session_id"]
        queued = client.post(
            "/v1/chat",
            json={"user_id": "alice", "session_id": session, "message": f"[[reply:{REPLY}]] next", "wait": 0},
        ).json()
        assert queued["status"] == "queued"
        events = events_after(client, queued["message_id"])
    assert_consecutive(events)
    assert events[0].data == {"status": "running", "attempt": 1}
    assert tokens(events) == REPLY
    assert events[-1].data["status"] == "completed"


def test_a_client_that_disconnects_leaves_the_turn_to_complete(start_server: Any) -> None:
    server: ServerProcess = start_server(**LIVE)
    with server.client() as client:
        with chat_stream(client, SLOW) as response:
            message_id = response.headers["X-Message-Id"]
            for event in events_of(response.iter_lines()):
                if event.event == "token":
                    break
        assert message(client, message_id)["status"] == "running"
        wait_until(lambda: message(client, message_id)["status"] == "completed", what="the turn to end")
        assert message(client, message_id)["reply"] == REPLY


def test_heartbeats_keep_an_idle_stream_open(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_SSE_HEARTBEAT_SECONDS="0.2", **LIVE)
    parser = Parser()
    with server.client() as client, chat_stream(client, "[[sleep:1.2]] quiet") as response:
        events = list(events_of(response.iter_lines(), parser))
    assert parser.comments, "no heartbeat while the model was silent"
    assert events[-1].data["status"] == "completed"


def test_ownership_and_bad_last_event_id(start_server: Any) -> None:
    server: ServerProcess = start_server()
    with server.client() as client:
        done = client.post("/v1/chat", json={"user_id": "alice", "message": "hi"}).json()
        path = f"/v1/messages/{done['message_id']}/events"
        other = client.get(path, headers={"X-User-Id": "mallory"})
        assert other.status_code == 404
        assert other.headers["content-type"] == "application/problem+json"
        bad = client.get(path, headers={**ALICE, "Last-Event-ID": "-1"})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "header.Last-Event-ID"
        unknown = client.get("/v1/messages/nope/events", headers=ALICE)
        assert unknown.status_code == 404


def test_a_confirmation_is_streamed_and_the_resume_streams_its_turn(start_server: Any) -> None:
    server: ServerProcess = start_server(**LIVE)
    order = '[[tool:place_order|{"item": "notebook", "quantity": 3}]] three notebooks'
    with server.client() as client:
        with chat_stream(client, order) as response:
            asked = read_all(response)
        [pending] = [e.data for e in asked if e.event == "interrupt"]
        assert pending["kind"] == "confirm"
        assert pending["value"]["action"] == "place_order"
        assert asked[-1].event == "done"
        assert asked[-1].data["status"] == "interrupted"
        assert asked[-1].data["interrupt"] == [pending]
        session = asked[-1].data["session_id"]
        with client.stream(
            "POST",
            f"/v1/sessions/{session}/resume",
            json={"user_id": "alice", "interrupt_id": pending["id"], "value": "yes"},
            headers=STREAM,
        ) as response:
            assert response.headers["X-Session-Id"] == session
            answered = read_all(response)
    assert_consecutive(answered)
    assert answered[-1].data["status"] == "completed"
    assert {"node": "tools", "namespace": []} in [e.data for e in answered if e.event == "update"]
    assert tokens(answered) == answered[-1].data["reply"]


def test_a_draft_under_review_is_never_streamed_to_its_user(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_OPERATOR_HEADER_ENABLED="true")  # default review keywords
    draft = "Take a dosage of 400 mg twice a day."
    with server.client() as client:
        with chat_stream(client, f"[[reply:{draft}]] how much?") as response:
            seen = read_all(response)
        message_id = seen[-1].data["message_id"]
        as_operator = events_after(client, message_id, **OPERATOR)
    assert [e.event for e in seen if e.event == "token"] == []
    assert draft not in str([e.data for e in seen])
    [hidden] = [e.data for e in seen if e.event == "interrupt"]
    assert hidden["kind"] == "review"
    assert hidden["value"] == {"kind": "review", "question": "Your answer is being reviewed by an operator."}
    [shown] = [e.data for e in as_operator if e.event == "interrupt"]
    assert shown["value"]["draft"] == draft
    assert [e.id for e in as_operator] == [e.id for e in seen]


def test_a_failed_turn_streams_its_error(start_server: Any) -> None:
    server: ServerProcess = start_server()
    with server.client() as client, chat_stream(client, "[[fail]] break") as response:
        events = read_all(response)
    [error] = [e for e in events if e.event == "error"]
    assert error.data["type"] == "turn_failed"
    assert events[-1].event == "done"
    assert events[-1].data["status"] == "failed"
    assert error.id == events[-1].id - 1


def test_two_hundred_concurrent_streams_on_one_process_all_complete(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_MAX_CONCURRENT_TURNS="200", **LIVE)

    async def one(client: httpx.AsyncClient, index: int) -> tuple[str, list[Event]]:
        reply = f"stream {index} says hello"
        async with client.stream(
            "POST",
            "/v1/chat",
            json={"user_id": f"user-{index}", "message": f"[[pace:0.05]] [[reply:{reply}]] go"},
            headers=STREAM,
        ) as response:
            assert response.status_code == 200
            return reply, [event async for event in aevents_of(response)]

    async def all_of_them() -> list[tuple[str, list[Event]]]:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120, limits=limits) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    results = asyncio.run(all_of_them())
    for reply, events in results:
        assert events[-1].event == "done"
        assert events[-1].data["status"] == "completed"
        assert tokens(events) == reply
        assert_consecutive(events)


@pytest.mark.inprocess_only
def test_an_event_id_is_never_given_twice_across_a_crash(start_server: Any) -> None:
    """kill -9 mid-reply: the restarted process runs the turn again (attempt 2). A client reconnecting
    with the last id it saw gets what was stored after it and then the new attempt — ids go on, never
    repeat — and the reply is what the new attempt's tokens add up to."""
    server: ServerProcess = start_server(**LIVE)
    slower = f"[[pace:0.3]] [[reply:{REPLY}]] count"
    with server.client() as client, chat_stream(client, slower) as response:
        message_id = response.headers["X-Message-Id"]
        seen: list[Event] = []
        for event in events_of(response.iter_lines()):
            seen.append(event)
            if event.event == "token":
                server.sigkill()
                break
    server.start()
    with server.client() as client:
        rest = events_after(client, message_id, last=seen[-1].id)
    assert_consecutive(seen + rest)
    retries = [i for i, e in enumerate(rest) if e.event == "status" and e.data["attempt"] == 2]
    assert retries, [(e.event, e.data) for e in rest]  # the crash spent an attempt
    assert tokens(rest[retries[-1] :]) == REPLY
    assert rest[-1].data["status"] == "completed"


def test_old_events_are_pruned_after_the_retention_window(start_server: Any) -> None:
    server: ServerProcess = start_server(PARLEY_EVENT_RETENTION_SECONDS="1", **LIVE)
    with server.client() as client:
        with chat_stream(client, f"[[reply:{REPLY}]] count") as response:
            live = read_all(response)
        message_id = live[-1].data["message_id"]
        # Pruned within a few seconds of the window's end; what is left is the outcome, under its own id.
        wait_until(lambda: len(events_after(client, message_id)) == 1, timeout=20, what="the events pruned")
        [only] = events_after(client, message_id)
        assert (only.id, only.event, only.data) == (live[-1].id, "done", live[-1].data)
        assert events_after(client, message_id, last=2) == [only]
        assert events_after(client, message_id, last=live[-1].id) == []


@pytest.mark.queue_only
def test_a_stream_on_another_api_instance_shows_the_same_events(make_deployment: Any) -> None:
    """Two API processes and two workers: the turn runs on a worker; a stream opened on the API process
    that did not accept the message sees the events the accepting one streams: same ids, same data."""
    deployment = make_deployment(**LIVE)
    accepting, other = (httpx.Client(base_url=url, timeout=30) for url in deployment.base_urls)
    with accepting, other, chat_stream(accepting, SLOW) as response:
        message_id = response.headers["X-Message-Id"]
        with other.stream("GET", f"/v1/messages/{message_id}/events", headers=ALICE) as watched:
            assert watched.status_code == 200
            seen_there = list(events_of(watched.iter_lines()))
        seen_here = list(events_of(response.iter_lines()))
    assert seen_there == seen_here
    assert_consecutive(seen_here)
    assert tokens(seen_here) == REPLY


def test_a_stopping_server_ends_its_streams_and_they_resume_after_it(start_server: Any) -> None:
    """SIGTERM while a reply streams: the stream ends as a complete response (not cut), and the client
    picks up with Last-Event-ID once the server is back — its turn was put back in the queue (in-process)
    or went on in its worker (queue) — getting exactly the events after the last it had."""
    server: ServerProcess = start_server(**LIVE)
    with server.client() as client, chat_stream(client, SLOW) as response:
        message_id = response.headers["X-Message-Id"]
        seen: list[Event] = []
        for event in events_of(response.iter_lines()):
            seen.append(event)
            if event.event == "token":
                assert server.stop(), server.log()
        # The loop ended because the server ended the response, not because the connection broke.
    assert "ASGI callable returned without completing response" not in server.log()
    server.start()
    with server.client() as client:
        rest = events_after(client, message_id, last=seen[-1].id)
    stream = seen + rest
    assert_consecutive(stream)
    # Each start of the turn streams the reply from its beginning: what counts follows the last one.
    starts = [i for i, e in enumerate(stream) if e.event == "status" and e.data["status"] == "running"]
    assert tokens(stream[starts[-1] :]) == REPLY
    assert rest[-1].data["status"] == "completed"

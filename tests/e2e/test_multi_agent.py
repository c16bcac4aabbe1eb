"""The bundled graph of agents (``parley.bots.team``) on the real server: a supervisor routes to two agents
built as subgraphs, one of which asks the user to confirm inside its subgraph; every event of an agent says
which agent is speaking."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.server import ServerProcess
from tests.e2e.test_server import ALICE
from tests.sse import STREAM, Event, read_all

TEAM = "parley.bots.team:build_graph"
REFUND = '[[tool:transfer_to_refunds|{"order_id": "ord_1", "reason": "broken"}]] my mug arrived broken'
ORDERS = '[[tool:transfer_to_orders|{"order_id": "ord_1"}]] where is my order?'


def _events(client: httpx.Client, message_id: str) -> list[Event]:
    with client.stream("GET", f"/v1/messages/{message_id}/events", headers={**ALICE, **STREAM}) as stream:
        return read_all(stream)


def _speakers(events: list[Event], kind: str) -> set[tuple[str, tuple[str, ...]]]:
    return {(e.data["node"], tuple(e.data["namespace"])) for e in events if e.event == kind}


def test_a_supervisor_routes_to_agents_and_an_agent_asks_inside_its_subgraph(start_server: Any) -> None:
    server: ServerProcess = start_server(
        PARLEY_GRAPHS=f"assistant=parley.bots.assistant:build_graph,team={TEAM}"
    )
    with server.client() as client:
        [team] = [g for g in client.get("/v1/graphs", headers=ALICE).json()["items"] if g["name"] == "team"]
        assert (team["kind"], team["interrupts"]) == ("graph", ["confirm"])

        # The supervisor answers by itself when it hands over to nobody.
        hello = client.post("/v1/chat", json={"user_id": "alice", "message": "hello there", "graph": "team"})
        assert hello.json()["reply"] == "Echo: hello there"
        sid = hello.json()["session_id"]
        assert _speakers(_events(client, hello.json()["message_id"]), "token") == {("supervisor", ())}

        # Handed to the orders agent: its tokens and steps carry its namespace.
        orders = client.post(
            "/v1/chat", json={"user_id": "alice", "session_id": sid, "message": ORDERS}
        ).json()
        assert orders["reply"] == "Tool results: transfer_to_orders: Transferred to the orders agent."
        events = _events(client, orders["message_id"])
        assert ("agent", ("orders",)) in _speakers(events, "token")
        assert ("agent", ("orders",)) in _speakers(events, "update")
        assert ("orders", ()) in _speakers(events, "update")  # the subgraph's node in the root graph

        # Handed to the refunds agent, which asks the user to confirm from inside its subgraph.
        asked = client.post(
            "/v1/chat", json={"user_id": "alice", "session_id": sid, "message": REFUND}
        ).json()
        assert asked["status"] == "interrupted", asked
        [question] = asked["interrupt"]
        assert question["kind"] == "confirm"
        assert (question["value"]["action"], question["value"]["args"]) == (
            "issue_refund",
            {"order_id": "ord_1"},
        )
        assert ("propose", ("refunds",)) in _speakers(_events(client, asked["message_id"]), "update")
        session = client.get(f"/v1/sessions/{sid}", headers=ALICE).json()
        assert (session["status"], session["graph"]) == ("interrupted", "team")
        assert [i["id"] for i in session["pending_interrupts"]] == [question["id"]]

        # The answer resumes the agent where it paused; the refunds agent writes the reply.
        answered = client.post(
            f"/v1/sessions/{sid}/resume",
            json={"user_id": "alice", "interrupt_id": question["id"], "value": {"decision": "approve"}},
        ).json()
        assert answered["status"] == "completed", answered
        assert (
            answered["reply"] == "Tool results: issue_refund: Refund issued: the full amount on order ord_1."
        )
        events = _events(client, answered["message_id"])
        assert ("agent", ("refunds",)) in _speakers(events, "token")
        assert ("confirm", ("refunds",)) in _speakers(events, "update")

        # The other graph of the service is untouched by all this: a new session gets the default.
        other = client.post("/v1/chat", json={"user_id": "alice", "message": "hi"}).json()
        assert client.get(f"/v1/sessions/{other['session_id']}", headers=ALICE).json()["graph"] == "assistant"

"""The authorization matrix: every route of the app x every caller x a resource of the caller's own user and
one of another user's, each cell's exact status written down.

The rows are checked against the app's own route table (``app.routes``): a route added without a row, or a
row whose route is gone, fails ``test_the_matrix_has_a_row_for_every_route``. Bodies are valid and path
parameters are real resources (made in the fixture), so that a cell's status is the authorization's answer
and never a 422 or a 404 of a made-up id hiding it. The caller "alice" owns the "own" resources; "bob" the
others. Keys are looked up on every request (``key_cache_seconds=0``), so the revoked key is refused at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from parley.api.app import create_app
from parley.core.api_keys import create_key, revoke_key
from parley.core.auth import CallerRole
from parley.settings import Settings
from tests.conftest import AppHarness

pytestmark = pytest.mark.inprocess_only  # authorization is the API's; where turns run changes nothing

ORDER_MUGS = '[[tool:place_order|{"item": "mug", "quantity": 2}]] two mugs please'
CALLERS = ("none", "wrong", "revoked", "service", "user", "operator", "admin")
Cell = tuple[int, int]
"""The status for a resource of the caller's own user (alice), and for one of another user's (bob)."""


def row(
    *, none: Cell, wrong: Cell, revoked: Cell, service: Cell, user: Cell, operator: Cell, admin: Cell
) -> dict[str, Cell]:
    return {
        "none": none,
        "wrong": wrong,
        "revoked": revoked,
        "service": service,
        "user": user,
        "operator": operator,
        "admin": admin,
    }


U = (401, 401)
PUBLIC = row(
    none=(200, 200),
    wrong=(200, 200),
    revoked=(200, 200),
    service=(200, 200),
    user=(200, 200),
    operator=(200, 200),
    admin=(200, 200),
)
READ = row(
    none=U, wrong=U, revoked=U, service=(200, 404), user=(200, 404), operator=(200, 200), admin=(200, 200)
)
EXPECTED: dict[tuple[str, str], dict[str, Cell]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/"): PUBLIC,
    # Every user's activity in aggregate: an admin's (there is no other user's resource: both cells alike).
    ("GET", "/metrics"): row(
        none=U, wrong=U, revoked=U, service=(403, 403), user=(403, 403), operator=(403, 403), admin=(200, 200)
    ),
    ("GET", "/static"): PUBLIC,
    ("POST", "/v1/chat"): row(
        none=U, wrong=U, revoked=U, service=(200, 404), user=(200, 404), operator=(403, 403), admin=(200, 404)
    ),
    ("GET", "/v1/messages/{message_id}"): READ,
    ("GET", "/v1/messages/{message_id}/events"): READ,
    ("GET", "/v1/messages/{message_id}/deliveries"): READ,
    # The messages have ended: whoever may cancel is told so (409); an operator may not cancel at all.
    ("POST", "/v1/messages/{message_id}/cancel"): row(
        none=U, wrong=U, revoked=U, service=(409, 404), user=(409, 404), operator=(403, 403), admin=(409, 404)
    ),
    ("GET", "/v1/sessions/{session_id}/export"): READ,
    ("POST", "/v1/sessions/import"): row(
        none=U, wrong=U, revoked=U, service=(403, 403), user=(403, 403), operator=(403, 403), admin=(201, 201)
    ),
    # Own: the caller's own list; other: ?user_id=bob, which only those who read any session may ask for.
    ("GET", "/v1/sessions"): row(
        none=U, wrong=U, revoked=U, service=(200, 403), user=(200, 403), operator=(200, 200), admin=(200, 200)
    ),
    ("GET", "/v1/sessions/{session_id}"): READ,
    # A confirmation: the user's (or their service's) to answer; an operator key answers reviews only.
    ("POST", "/v1/sessions/{session_id}/resume"): row(
        none=U, wrong=U, revoked=U, service=(200, 404), user=(200, 404), operator=(403, 403), admin=(200, 200)
    ),
    ("GET", "/v1/sessions/{session_id}/messages"): READ,
    ("GET", "/v1/sessions/{session_id}/history"): READ,
    ("POST", "/v1/sessions/{session_id}/rewind"): row(
        none=U, wrong=U, revoked=U, service=(200, 404), user=(200, 404), operator=(403, 403), admin=(200, 404)
    ),
    ("DELETE", "/v1/sessions/{session_id}"): row(
        none=U, wrong=U, revoked=U, service=(204, 404), user=(204, 404), operator=(403, 403), admin=(204, 404)
    ),
    # Own: the whole queue; other: filtered to bob's session.
    ("GET", "/v1/interrupts"): row(
        none=U, wrong=U, revoked=U, service=(403, 403), user=(403, 403), operator=(200, 200), admin=(200, 200)
    ),
    ("GET", "/v1/interrupts/{interrupt_id}"): READ,
    # What graphs the service hosts: any caller with a key, no user's data.
    ("GET", "/v1/graphs"): row(
        none=U, wrong=U, revoked=U, service=(200, 200), user=(200, 200), operator=(200, 200), admin=(200, 200)
    ),
}
FRESH = {
    ("POST", "/v1/sessions/{session_id}/resume"),
    ("POST", "/v1/sessions/{session_id}/rewind"),
    ("DELETE", "/v1/sessions/{session_id}"),
}
"""Routes whose success uses its resource up (an answered interrupt, a deleted session): each of their cells
gets resources of its own."""


def _routes() -> set[tuple[str, str]]:
    app = create_app(Settings(model="scripted", auth="keys"))
    found = set()
    for context in iter_route_contexts(app.routes):
        # HEAD is GET without the body, answered by the same route.
        for method in (context.methods or {"GET"}) - {"HEAD"}:
            found.add((method, context.path))
    return found


def test_the_matrix_has_a_row_for_every_route() -> None:
    routes = _routes()
    assert sorted(routes - EXPECTED.keys()) == [], "routes without a row in the matrix"
    assert sorted(EXPECTED.keys() - routes) == [], "rows of the matrix whose route is gone"


@dataclass
class Resources:
    """One user's: a session that has answered (its message), and one waiting on a confirmation."""

    session_id: str
    message_id: str
    waiting_session_id: str
    interrupt_id: str
    checkpoint_id: str
    document: bytes


class World:
    def __init__(self, h: AppHarness, tokens: dict[str, str]) -> None:
        self.h = h
        self.tokens = tokens

    def auth(self, caller: str) -> dict[str, str]:
        token = self.tokens.get(caller)
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    async def resources(self, user: str) -> Resources:
        admin = self.auth("admin")
        chat = await self.h.client.post(
            "/v1/chat", json={"user_id": user, "message": "hi", "wait": 5}, headers=admin
        )
        assert chat.status_code == 200, chat.text
        sid, mid = chat.json()["session_id"], chat.json()["message_id"]
        waiting = await self.h.client.post(
            "/v1/chat", json={"user_id": user, "message": ORDER_MUGS, "wait": 5}, headers=admin
        )
        assert waiting.json()["status"] == "interrupted", waiting.text
        history = await self.h.client.get(f"/v1/sessions/{sid}/history", headers=admin)
        export = await self.h.client.get(f"/v1/sessions/{sid}/export", headers=admin)
        assert export.status_code == 200
        return Resources(
            session_id=sid,
            message_id=mid,
            waiting_session_id=waiting.json()["session_id"],
            interrupt_id=waiting.json()["interrupt"][0]["id"],
            checkpoint_id=history.json()["items"][0]["checkpoint_id"],
            document=export.content,
        )


CLAIMS = {"none": "alice", "wrong": "alice", "revoked": "alice", "service": "alice", "admin": "alice"}
"""The user each caller names in ``user_id`` / ``X-User-Id``: a user key is bound to alice and names nobody,
an operator key acts for nobody; the callers without a valid key name alice, so that only the key decides."""


def _request(
    method: str, path: str, r: Resources, caller: str, *, other: bool
) -> tuple[str, str, dict[str, Any]]:
    claimed = CLAIMS.get(caller)
    named: dict[str, Any] = {} if claimed is None else {"user_id": claimed}
    headers: dict[str, str] = {} if claimed is None else {"X-User-Id": claimed}
    url = path.format(
        message_id=r.message_id,
        session_id=r.waiting_session_id if path.endswith("/resume") else r.session_id,
        interrupt_id=r.interrupt_id,
    )
    kwargs: dict[str, Any] = {"headers": headers}
    if path == "/v1/chat":
        kwargs["json"] = {**named, "message": "hello", "session_id": r.session_id, "wait": 5}
    elif path.endswith("/resume"):
        kwargs["json"] = {**named, "interrupt_id": r.interrupt_id, "value": {"decision": "reject"}, "wait": 5}
    elif path.endswith("/rewind"):
        kwargs["json"] = {**named, "checkpoint_id": r.checkpoint_id, "wait": 5}
    elif path == "/v1/sessions/import":
        url += "?replace=true"
        kwargs["content"] = r.document
        headers["Content-Type"] = "application/json"
    elif path == "/v1/sessions":
        kwargs["params"] = {"user_id": "bob"} if other else {}
    elif path == "/v1/interrupts":
        kwargs["params"] = {"session_id": r.waiting_session_id} if other else {}
    elif path == "/static":
        url = "/static/main.js"
    return method, url, kwargs


@pytest.fixture
async def world(harness_factory: Any, make_settings: Any) -> World:
    h: AppHarness = await harness_factory(make_settings(auth="keys", key_cache_seconds=0))
    store = h.services.store
    tokens: dict[str, str] = {}
    for role in CallerRole:
        made = await create_key(
            store=store, role=role, user_id="alice" if role is CallerRole.USER else None, name=f"{role} key"
        )
        tokens[role.value] = made.token
    revoked = await create_key(store=store, role=CallerRole.ADMIN, user_id=None, name="gone")
    await revoke_key(store=store, key_id=revoked.record.key_id)
    tokens["revoked"] = revoked.token
    # A real key id with a secret that is not its own.
    tokens["wrong"] = tokens["admin"][:-6] + (
        "AAAAAA" if not tokens["admin"].endswith("AAAAAA") else "BBBBBB"
    )
    return World(h, tokens)


async def test_every_route_answers_every_caller_as_the_matrix_says(world: World) -> None:
    shared = {user: await world.resources(user) for user in ("alice", "bob")}
    mismatches = []
    for (method, path), expected in sorted(EXPECTED.items()):
        for caller in CALLERS:
            for other, status in zip((False, True), expected[caller], strict=True):
                owner = "bob" if other else "alice"
                resources = await world.resources(owner) if (method, path) in FRESH else shared[owner]
                verb, url, kwargs = _request(method, path, resources, caller, other=other)
                kwargs["headers"] = {**kwargs["headers"], **world.auth(caller)}
                response = await world.h.client.request(verb, url, **kwargs)
                if response.status_code != status:
                    mismatches.append(
                        (method, path, caller, owner, status, response.status_code, response.text[:200])
                    )
    assert mismatches == []

"""Who is calling, and what they may do: the ``Principal`` of a request and the rules of its role.

Pure functions, free of HTTP: ``api/auth.py`` resolves the principal of a request once (from its bearer
key, or — with ``PARLEY_AUTH=off`` — from what the caller claims) and every route asks these rules which
user it acts for and whether its role may do what it asks. The rules are written once, here, so that the
routes, the authorization matrix test and docs/api.md cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from parley.core.errors import Forbidden


class CallerRole(StrEnum):
    """The role of an API key.

    ``service`` is a trusted backend, acting for any user it names; ``user`` is bound to one end user;
    ``operator`` works the interrupt queue and reads any session; ``admin`` may do everything.
    """

    SERVICE = "service"
    USER = "user"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    """What a route does, as far as roles are concerned."""

    ACT = "act"
    """Change a session as its user: chat, rewind, cancel, delete."""
    READ = "read"
    """Read a session, its messages, events, history, export, or one interrupt."""
    RESUME = "resume"
    """Answer an interrupt (which ones, ``check_may_answer_kind`` says)."""
    QUEUE = "queue"
    """The operator queue of pending interrupts across sessions."""
    IMPORT = "import"
    """Create a session, of any user and with any content, from a document."""
    METRICS = "metrics"
    """Read the process's Prometheus metrics (every user's activity, in aggregate)."""


ALLOWED: dict[Action, frozenset[CallerRole]] = {
    Action.ACT: frozenset({CallerRole.SERVICE, CallerRole.USER, CallerRole.ADMIN}),
    Action.READ: frozenset(CallerRole),
    Action.RESUME: frozenset(CallerRole),
    Action.QUEUE: frozenset({CallerRole.OPERATOR, CallerRole.ADMIN}),
    # An import writes a session for whichever user its document names, with whatever history it holds:
    # nobody short of an admin may forge that.
    Action.IMPORT: frozenset({CallerRole.ADMIN}),
    Action.METRICS: frozenset({CallerRole.ADMIN}),
}
"""Which roles may do each action (docs/api.md, Authentication, has the same table)."""

SEES_ALL = frozenset({CallerRole.OPERATOR, CallerRole.ADMIN})
"""Roles that read any user's sessions (and see operator-only content, as ``X-Role: operator`` did)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request.

    With keys (``authenticated``): the key's id, name and role, and for a ``user`` key the user it is
    bound to. With ``PARLEY_AUTH=off`` nobody is authenticated: the caller acts for whichever user it
    claims, as a ``service`` would — or as an ``admin``, where ``X-Role: operator`` is trusted.
    """

    role: CallerRole
    authenticated: bool
    key_id: str | None = None
    key_name: str | None = None
    user_id: str | None = None
    """The user a ``user`` key is bound to; None for every other role."""
    callback_url: str | None = None
    """The key's default completion webhook, for messages it posts that name none."""

    @property
    def sees_all(self) -> bool:
        """Whether this caller reads any user's sessions (the operator's view)."""
        return self.role in SEES_ALL


UNAUTHENTICATED = Principal(role=CallerRole.SERVICE, authenticated=False)
"""The caller with ``PARLEY_AUTH=off``: whoever it says it is."""


class RoleForbidden(Forbidden):
    """The caller's key is valid, but its role may not do this."""

    type_slug = "role-forbidden"


def require(principal: Principal, action: Action) -> None:
    """``RoleForbidden``, naming the roles that may, unless the principal's role may do ``action``."""
    allowed = ALLOWED[action]
    if principal.role in allowed:
        return
    names = sorted(role.value for role in allowed)
    if principal.authenticated:
        raise RoleForbidden(
            f"A {principal.role.value} key may not do this; it needs the role {' or '.join(names)}.",
            required_roles=names,
        )
    # With auth off, the only role a caller can take is the operator's, by X-Role (api/deps.py).
    raise Forbidden("This needs the operator role (X-Role: operator).")


def claim_required(principal: Principal, action: Action) -> bool:
    """Whether the request must name the user it acts for (``user_id`` in the body, ``X-User-Id``).

    Unauthenticated callers always do, as they did before keys. A service key names the user it acts for
    on every request; an admin key when it acts as a user (chat, rewind, cancel, delete). A user key
    never needs to (it is bound), and operators read and answer without one.
    """
    if not principal.authenticated:
        return True
    if principal.role is CallerRole.SERVICE:
        return True
    return principal.role is CallerRole.ADMIN and action is Action.ACT


def acting_user(principal: Principal, claimed: str | None) -> str:
    """The user id a request acts for, given the one it ``claimed`` (None: it named none).

    A user key acts for its bound user: naming another is ``Forbidden``, naming none is naming its own.
    Every other caller acts for the user it claims; the caller checks ``claim_required`` first, and an
    operator or admin that names nobody reads as nobody in particular ("", which owns nothing: their
    reads go through the operator's view).
    """
    if principal.role is CallerRole.USER:
        assert principal.user_id is not None
        if claimed is not None and claimed != principal.user_id:
            raise RoleForbidden(
                f"This key acts for user {principal.user_id} only; it may not act for {claimed}.",
                required_roles=sorted(r.value for r in (CallerRole.SERVICE, CallerRole.ADMIN)),
            )
        return principal.user_id
    return "" if claimed is None else claimed


def answers_reviews_only(principal: Principal) -> bool:
    """With keys, an operator answers operators' reviews only: a confirmation asks the end user (or the
    service acting for them), and an operator saying yes for them would be acting as them. With auth off
    an operator (``X-Role``) answers anything, as before keys (``rules.check_may_answer`` applies it)."""
    return principal.authenticated and principal.role is CallerRole.OPERATOR


@dataclass(frozen=True, slots=True)
class Answerer:
    """Who answered an interrupt, as its row records it (never taken from a request body)."""

    via: str
    """``key`` (an authenticated key) or ``unauthenticated`` (``PARLEY_AUTH=off``: a claimed user id)."""
    role: str
    key_id: str | None
    key_name: str | None
    user_id: str | None
    """The user the answer was given for (the bound or claimed one; None for an operator's key)."""


def answerer_of(principal: Principal, *, user_id: str) -> Answerer:
    """What the interrupt row records of the ``principal`` answering it, acting for ``user_id``.

    The user is recorded where it says who the answer was given for: a user key's own, the one a service
    key acts for, or — auth off — the one claimed (marked unauthenticated). An operator's or admin's key
    answers as itself: whatever ``user_id`` its request named is not recorded.
    """
    if not principal.authenticated:
        return Answerer(
            via="unauthenticated",
            role="operator" if principal.sees_all else "user",
            key_id=None,
            key_name=None,
            user_id=user_id or None,
        )
    return Answerer(
        via="key",
        role=principal.role.value,
        key_id=principal.key_id,
        key_name=principal.key_name,
        user_id=None if principal.sees_all else user_id or None,
    )

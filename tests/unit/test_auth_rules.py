"""The role rules (core/auth.py), the key form and its cache (core/api_keys.py), the bind rule (settings)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime

import pytest

from parley.core.api_keys import KeyResolver, hash_secret, new_key, parse_token
from parley.core.auth import (
    UNAUTHENTICATED,
    Action,
    CallerRole,
    Principal,
    RoleForbidden,
    acting_user,
    answerer_of,
    claim_required,
    require,
)
from parley.core.errors import Forbidden, InvalidInput, InvalidToken
from parley.core.records import ApiKey
from parley.settings import Settings

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _key(role: CallerRole, user_id: str | None = None) -> Principal:
    return Principal(role=role, authenticated=True, key_id="k1", key_name="n", user_id=user_id)


def test_a_key_is_prefixed_random_and_stored_only_as_the_sha256_of_its_secret() -> None:
    made = new_key(role=CallerRole.SERVICE, user_id=None, name=None, now=NOW)
    prefix, key_id, secret = made.token.split("_", 2)
    assert (prefix, key_id) == ("parley", made.record.key_id)
    assert len(secret) >= 43  # 32 random bytes, url-safe base64
    assert made.record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(made.record)
    assert parse_token(made.token) == (key_id, secret)
    other = new_key(role=CallerRole.SERVICE, user_id=None, name=None, now=NOW)
    assert other.token != made.token
    assert other.record.key_id != made.record.key_id


@pytest.mark.parametrize("token", ["", "parley_", "parley_abc_def", "bearer", "parley_0123456789ab_short"])
def test_tokens_not_of_the_key_form_do_not_parse(token: str) -> None:
    assert parse_token(token) is None


def test_user_keys_need_a_user_and_no_other_role_takes_one() -> None:
    with pytest.raises(InvalidInput, match="needs the user"):
        new_key(role=CallerRole.USER, user_id=None, name=None, now=NOW)
    for role in (CallerRole.SERVICE, CallerRole.OPERATOR, CallerRole.ADMIN):
        with pytest.raises(InvalidInput, match="takes no --user"):
            new_key(role=role, user_id="alice", name=None, now=NOW)
    assert new_key(role=CallerRole.USER, user_id="alice", name="x", now=NOW).record.user_id == "alice"


class _Keys:
    """A key store holding one key, counting lookups."""

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.lookups = 0

    async def find_api_key(self, *, key_id: str) -> ApiKey | None:
        self.lookups += 1
        return self.key if key_id == self.key.key_id else None

    async def create_api_key(self, *, key: ApiKey) -> None:
        raise NotImplementedError

    async def list_api_keys(self) -> list[ApiKey]:
        raise NotImplementedError

    async def revoke_api_key(self, *, key_id: str, now: datetime) -> ApiKey | None:
        raise NotImplementedError


async def test_resolved_keys_are_cached_for_the_ttl_and_a_revocation_counts_after_it() -> None:
    made = new_key(role=CallerRole.USER, user_id="alice", name="phone", now=NOW)
    keys = _Keys(made.record)
    clock = [100.0]
    resolver = KeyResolver(store=keys, ttl_seconds=5, clock=lambda: clock[0])
    principal = await resolver.resolve(made.token)
    assert (principal.role, principal.user_id, principal.key_name) == (CallerRole.USER, "alice", "phone")
    await resolver.resolve(made.token)
    assert keys.lookups == 1  # the second request cost no query
    keys.key = dataclasses.replace(made.record, revoked_at=NOW)
    clock[0] += 4.9
    assert (await resolver.resolve(made.token)).key_id == made.record.key_id  # within the TTL
    clock[0] += 0.2
    with pytest.raises(InvalidToken, match="revoked"):
        await resolver.resolve(made.token)
    assert keys.lookups == 2


async def test_a_wrong_secret_or_unknown_id_is_an_invalid_token_and_no_ttl_means_no_cache() -> None:
    made = new_key(role=CallerRole.ADMIN, user_id=None, name=None, now=NOW)
    keys = _Keys(made.record)
    resolver = KeyResolver(store=keys, ttl_seconds=0)
    wrong = made.token[:-4] + ("AAAA" if not made.token.endswith("AAAA") else "BBBB")
    for token in (wrong, "parley_000000000000_" + "A" * 43, "not a key"):
        with pytest.raises(InvalidToken):
            await resolver.resolve(token)
    await resolver.resolve(made.token)
    await resolver.resolve(made.token)
    assert keys.lookups == 4  # wrong, unknown, then each valid request: nothing cached
    assert hash_secret("x") != hash_secret("y")


def test_which_roles_may_do_what() -> None:
    allowed = {
        action: {
            role
            for role in CallerRole
            if _allows(_key(role, "a" if role is CallerRole.USER else None), action)
        }
        for action in Action
    }
    assert allowed == {
        Action.ACT: {CallerRole.SERVICE, CallerRole.USER, CallerRole.ADMIN},
        Action.READ: set(CallerRole),
        Action.RESUME: set(CallerRole),
        Action.QUEUE: {CallerRole.OPERATOR, CallerRole.ADMIN},
        Action.IMPORT: {CallerRole.ADMIN},
        Action.METRICS: {CallerRole.ADMIN},
    }


def _allows(principal: Principal, action: Action) -> bool:
    try:
        require(principal, action)
    except Forbidden:
        return False
    return True


def test_a_refusal_names_the_roles_that_may() -> None:
    with pytest.raises(RoleForbidden) as refused:
        require(_key(CallerRole.OPERATOR), Action.ACT)
    assert refused.value.extensions["required_roles"] == ["admin", "service", "user"]
    assert "operator key may not" in refused.value.detail
    with pytest.raises(Forbidden, match="X-Role: operator"):
        require(UNAUTHENTICATED, Action.QUEUE)


def test_who_must_name_the_user_and_who_it_acts_for() -> None:
    user = _key(CallerRole.USER, "alice")
    assert not claim_required(user, Action.ACT)
    assert acting_user(user, None) == "alice"
    assert acting_user(user, "alice") == "alice"
    with pytest.raises(RoleForbidden, match="alice only"):
        acting_user(user, "bob")
    assert claim_required(_key(CallerRole.SERVICE), Action.READ)
    assert claim_required(_key(CallerRole.ADMIN), Action.ACT)
    assert not claim_required(_key(CallerRole.ADMIN), Action.READ)
    assert not claim_required(_key(CallerRole.OPERATOR), Action.RESUME)
    assert claim_required(UNAUTHENTICATED, Action.READ)
    assert acting_user(_key(CallerRole.SERVICE), "bob") == "bob"


def test_the_answerer_is_the_key_never_a_user_an_operator_names() -> None:
    operator = answerer_of(_key(CallerRole.OPERATOR), user_id="mallory")
    assert (operator.via, operator.role, operator.key_id, operator.user_id) == ("key", "operator", "k1", None)
    service = answerer_of(_key(CallerRole.SERVICE), user_id="bob")
    assert (service.role, service.user_id) == ("service", "bob")
    claimed = answerer_of(UNAUTHENTICATED, user_id="carol")
    assert (claimed.via, claimed.key_id, claimed.user_id) == ("unauthenticated", None, "carol")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_which_binds_are_loopback(host: str, loopback: bool) -> None:
    assert Settings(host=host).binds_loopback is loopback

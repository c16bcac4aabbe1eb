"""Who is calling, from the request: the bearer key (``PARLEY_AUTH=keys``) or, with auth off, whoever
the caller says it is. Resolved once per request by ``get_principal``, which every ``/v1`` router
declares; the rules of what a principal may do are ``core.auth``'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from parley.core.auth import UNAUTHENTICATED, Principal
from parley.core.errors import InvalidToken, Unauthorized
from parley.settings import Settings


async def get_principal(request: Request) -> Principal:
    """The caller of this request, also left in ``request.state.principal`` (for middleware that keys on
    it, such as a rate limit on ``principal.key_id``, None with auth off).

    ``Unauthorized`` without an ``Authorization: Bearer`` header, ``InvalidToken`` for a token that is
    not a valid, unrevoked key. With auth off the header is not read at all: there are no keys to check.
    """
    resolved: Principal | None = getattr(request.state, "principal", None)
    if resolved is not None:
        return resolved  # already resolved for this request (the rate limit asks first)
    settings: Settings = request.app.state.settings
    if settings.auth == "off":
        principal = UNAUTHENTICATED
    else:
        header = request.headers.get("authorization")
        if header is None:
            raise Unauthorized("This needs an API key: send Authorization: Bearer KEY.")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("Send the API key as Authorization: Bearer KEY.")
        if not token.strip():
            raise InvalidToken("The bearer token is empty.")
        principal = await request.app.state.services.keys.resolve(token.strip())
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
Authenticated = Depends(get_principal)
"""For ``APIRouter(dependencies=[...])``: every route of the router resolves its caller first, so a
request without a valid key is 401 before anything else is looked at."""

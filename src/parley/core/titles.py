"""A session's title: its first message, shortened to fit a line of a list.

Lists show one line per session, so whitespace (line breaks included) is collapsed and a long message
is cut — at a word's end where one is near, otherwise mid-word — and marked with an ellipsis.
"""

from __future__ import annotations

TITLE_CHARS = 60
"""A title's length at most, the ellipsis included."""

TITLE_SOURCE_CHARS = 1000
"""How much of the first message a title is made from. Storage reads this many characters and one
more (which says that the message goes on), not the whole message: a page lists up to 200 sessions,
and a message may be ``PARLEY_MAX_MESSAGE_CHARS`` long."""

ELLIPSIS = "…"

_NEAR = 2 * (TITLE_CHARS - len(ELLIPSIS)) // 3
"""A cut at a word's end keeps at least this many characters; with only one longer word before the
limit, the title is cut mid-word instead of becoming much shorter than the line."""


def title_of(start: str) -> str:
    """The title of a session whose first message starts with ``start``.

    ``start`` is the message's first ``TITLE_SOURCE_CHARS + 1`` characters, or the whole message if it
    is shorter: whitespace is collapsed to single spaces, and the result is at most ``TITLE_CHARS``
    characters, ending with "…" when anything was cut.
    """
    text = " ".join(start[:TITLE_SOURCE_CHARS].split())
    goes_on = len(start) > TITLE_SOURCE_CHARS
    if len(text) <= TITLE_CHARS and not goes_on:
        return text
    room = TITLE_CHARS - len(ELLIPSIS)
    if len(text) > room:
        # One character more than fits: a space there means the cut falls at a word's end.
        space = text.rfind(" ", 0, room + 1)
        text = text[:space] if space >= _NEAR else text[:room]
    return text + ELLIPSIS

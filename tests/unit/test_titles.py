"""A session's title: its first message on one line, at most 60 characters, "…" when cut."""

from __future__ import annotations

import pytest

from parley.core.titles import TITLE_CHARS, TITLE_SOURCE_CHARS, title_of


@pytest.mark.parametrize(
    ("message", "title"),
    [
        ("Hello", "Hello"),
        ("  two\n\nlines\r\n\tand a tab  ", "two lines and a tab"),
        ("a\u00a0non-breaking\u2028separator", "a non-breaking separator"),
        ("x" * TITLE_CHARS, "x" * TITLE_CHARS),
        ("x" * (TITLE_CHARS + 1), "x" * (TITLE_CHARS - 1) + "…"),
        # Cut at the end of a word when one is near the limit ...
        (
            "Please place an order for two blue mugs and a teapot, and ship them by Friday",
            "Please place an order for two blue mugs and a teapot, and…",
        ),
        ("a" * 54 + " bcd efgh", "a" * 54 + " bcd…"),
        # ... a word that ends right at the limit is kept whole ...
        ("a" * 54 + " bcde fgh", "a" * 54 + " bcde…"),
        # ... and mid-word when the only break is far back.
        ("short " + "y" * 80, "short " + "y" * 53 + "…"),
    ],
)
def test_titles(message: str, title: str) -> None:
    assert title_of(message) == title
    assert len(title_of(message)) <= TITLE_CHARS


def test_a_message_longer_than_what_storage_reads_is_marked_as_cut() -> None:
    # Storage hands over TITLE_SOURCE_CHARS + 1 characters at most: the last one says the message goes on.
    start = ("word " * 1000)[: TITLE_SOURCE_CHARS + 1]
    assert title_of(start) == "word " * 11 + "word…"
    # Even when what was read is short once its whitespace is collapsed.
    assert title_of("hi" + " " * TITLE_SOURCE_CHARS) == "hi…"
    assert title_of("hi" + " " * (TITLE_SOURCE_CHARS - 2)) == "hi"

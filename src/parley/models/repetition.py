"""Runaway repetition: a reply that says the same n-gram again and again ("la France, la France, …").

Small models fall into such loops and stay there until the token limit. ``LoopDetector`` watches a reply
token by token and says where the loop began, so that the reply can be cut there and generation stopped.

A loop is an n-gram of ``ngram`` tokens that occurs ``repeats`` times, each occurrence at most ``window``
tokens after the one before (a loop is dense; the same phrase once in a while across a long answer is
not). The cut is at the start of the n-gram's second occurrence of that run: what comes before it,
including one copy of the repeated text, is kept. Tokens are whatever the model streams (text pieces
here); only their equality matters.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class LoopDetector:
    """Fed one token at a time; ``add`` returns the cut position once a loop is seen (see the module)."""

    ngram: int = 4
    repeats: int = 4
    window: int = 64
    _tokens: list[Hashable] = field(default_factory=list)
    # The current run of each n-gram: positions of its occurrences, each within ``window`` of the last.
    _runs: dict[tuple[Hashable, ...], list[int]] = field(default_factory=dict)
    # The runs with two occurrences or more: the only ones that can still cut into what is written.
    _repeating: set[tuple[Hashable, ...]] = field(default_factory=set)
    # Every run of 1 to ngram-1 tokens before the newest token: the newest tokens can only be taken back if
    # they may begin another occurrence of an n-gram, that is if they are said again.
    _earlier: set[tuple[Hashable, ...]] = field(default_factory=set)
    _cut: int | None = None

    def __post_init__(self) -> None:
        if self.ngram < 1 or self.repeats < 2 or self.window < 1:
            raise ValueError("ngram >= 1, repeats >= 2 and window >= 1 are needed")

    @property
    def cut(self) -> int | None:
        """Where the loop began (tokens before it are kept); None while there is no loop."""
        return self._cut

    def add(self, token: Hashable) -> int | None:
        """Take the next token; the cut position once a loop is complete, else None."""
        if self._cut is not None:
            return self._cut
        end = len(self._tokens)
        self._earlier.update(tuple(self._tokens[end - k :]) for k in range(1, min(self.ngram, end + 1)))
        self._tokens.append(token)
        start = len(self._tokens) - self.ngram
        if start < 0:
            return None
        key = tuple(self._tokens[start:])
        run = self._runs.get(key)
        if run is None or start - run[-1] > self.window:
            self._runs[key] = [start]
            self._repeating.discard(key)
            return None
        run.append(start)
        self._repeating.add(key)
        if len(run) >= self.repeats:
            self._cut = run[1]
        return self._cut

    def settled(self) -> int:
        """How many tokens from the start no later loop can cut: the rest may still be taken back.

        A live run (its last occurrence within ``window``) with two or more occurrences may still
        complete, and would cut at its second; and a new run's second occurrence may be starting among the
        newest ngram-1 tokens if they repeat earlier ones. Anything else is settled: in ordinary text,
        every token but perhaps the last one or two."""
        if self._cut is not None:
            return self._cut
        end = len(self._tokens)
        bound = end
        for k in range(min(self.ngram - 1, end), 0, -1):
            if tuple(self._tokens[end - k :]) in self._earlier:
                bound = end - k
                break
        for key in list(self._repeating):
            run = self._runs[key]
            if end - self.ngram - run[-1] > self.window:
                self._repeating.discard(key)  # gone stale: its next occurrence starts a new run
            elif run[1] < bound:
                bound = run[1]
        return bound


def loop_cut(tokens: Iterable[Hashable], *, ngram: int = 4, repeats: int = 4, window: int = 64) -> int | None:
    """Where a repetition loop in ``tokens`` begins (keep ``tokens[:cut]``), or None if there is none."""
    detector = LoopDetector(ngram=ngram, repeats=repeats, window=window)
    for token in tokens:
        cut = detector.add(token)
        if cut is not None:
            return cut
    return None


def stop_at_loop(tokens: Iterable[str], detector: LoopDetector) -> Iterator[str]:
    """``tokens`` passed on as soon as no cut can take them back; at a loop, the rest of the text before it
    (the trailing spaces and commas of what was still held dropped) and then the end: ``detector.cut`` then
    says where it was, and the caller stops generating. What this yields is the final reply: nothing
    yielded is ever taken back."""
    held: list[str] = []
    handed = 0
    for token in tokens:
        held.append(token)
        cut = detector.add(token)
        if cut is not None:
            kept = "".join(held[: cut - handed]).rstrip(" \t\n,;:")
            if kept:
                yield kept
            return
        settled = detector.settled()
        if settled > handed:
            yield from held[: settled - handed]
            del held[: settled - handed]
            handed = settled
    yield from held

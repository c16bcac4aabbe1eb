"""The repetition stop on constructed token streams: where a loop is seen, and where the reply is cut."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from parley.models.repetition import LoopDetector, loop_cut, stop_at_loop

# "L'Étoile de la Cité, la France, la France, …" as SmolLM2's tokenizer splits it, roughly.
_HEAD = ["L'", "Étoile", " de", " la", " Cité", ","]
_UNIT = [" la", " France", ","]


def _text(tokens: list[str], cut: int | None) -> str:
    return "".join(tokens if cut is None else tokens[:cut])


def test_ordinary_text_is_no_loop() -> None:
    tokens = [
        "The",
        "capital",
        "of",
        "France",
        "is",
        "Paris",
        ".",
        "It",
        "is",
        "known",
        "for",
        "the",
        "Eiffel",
        "Tower",
        "and",
        "the",
        "Louvre",
        ".",
    ]
    assert loop_cut(tokens) is None


def test_a_phrase_said_over_and_over_is_cut_after_its_first_copy() -> None:
    tokens = _HEAD + _UNIT * 20
    cut = loop_cut(tokens)
    assert _text(tokens, cut) == "L'Étoile de la Cité, la France"


def test_the_loop_is_seen_as_soon_as_it_is_complete() -> None:
    detector = LoopDetector(ngram=4, repeats=4)
    tokens = _HEAD + _UNIT * 20
    seen_at = next(i for i, token in enumerate(tokens) if detector.add(token) is not None)
    # The 4-gram ", la France ," starts at 5, 8, 11 and 14: its fourth occurrence ends at token 17, and
    # the loop began with its second.
    assert seen_at == 17
    assert detector.cut == 8


def test_a_single_token_repeated_keeps_one() -> None:
    tokens = ["Wow", "!", "!", "!", "!", "!", "!", "!", "!", "!", "!"]
    assert _text(tokens, loop_cut(tokens)) == "Wow!"


def test_a_repeated_sentence_is_cut_before_its_second_copy() -> None:
    sentence = ["The", "sky", "is", "blue", "because", "of", "the", "way", "air", "scatters", "light", "."]
    tokens = ["Sure", ":", *sentence * 5]
    assert loop_cut(tokens) == 2 + len(sentence)


def test_a_numbered_list_of_one_item_again_and_again_is_a_loop() -> None:
    tokens: list[str] = []
    for n in range(1, 8):
        tokens += [f"{n}.", "The", "sky", "is", "blue", "\n"]
    cut = loop_cut(tokens)
    assert cut is not None
    assert " ".join(tokens[:cut]).startswith("1. The sky is blue \n 2.")
    assert "3." not in tokens[:cut]


def test_fewer_repeats_than_the_threshold_are_kept() -> None:
    tokens = _HEAD + _UNIT * 3
    assert loop_cut(tokens, ngram=3, repeats=4) is None
    assert loop_cut(tokens, ngram=3, repeats=3) is not None


def test_repeats_further_apart_than_the_window_are_not_a_loop() -> None:
    filler = [f"w{i}" for i in range(100)]
    phrase = ["as", "I", "said", "before"]
    tokens: list[str] = []
    for i in range(5):
        tokens += phrase + filler[i * 20 : i * 20 + 20]
    assert loop_cut(tokens, ngram=4, repeats=4, window=16) is None
    assert loop_cut(tokens, ngram=4, repeats=4, window=64) is not None


def test_settled_tokens_are_never_taken_back() -> None:
    # Random streams over a tiny vocabulary fall into loops of every shape; whatever the detector called
    # settled at any point must lie before the cut it makes later.
    rng = random.Random(7)
    loops = 0
    for _ in range(300):
        detector = LoopDetector(ngram=rng.randint(1, 5), repeats=rng.randint(2, 5), window=rng.randint(4, 40))
        settled: list[int] = []
        cut = None
        for i in range(200):
            if rng.random() < 0.1:
                token = rng.choice("abc")
            else:
                token = f"{rng.choice('abcdefgh')}{i % rng.randint(1, 9)}"
            cut = detector.add(token)
            if cut is not None:
                break
            settled.append(detector.settled())
        assert settled == sorted(settled)
        if cut is not None:
            loops += 1
            assert all(s <= cut for s in settled)
    assert loops > 50


def test_settled_follows_the_text_when_nothing_repeats() -> None:
    detector = LoopDetector(ngram=4, repeats=4)
    for i in range(10):
        detector.add(f"t{i}")
        assert detector.settled() == i + 1  # the first token is never held: nothing to repeat yet


def test_the_newest_tokens_wait_while_they_may_begin_a_repeat() -> None:
    detector = LoopDetector(ngram=4, repeats=4)
    for token in ["a", "b", "c", "d", "e", "a", "b"]:
        detector.add(token)
    assert detector.settled() == 5  # "a b" may be the start of "a b c d" again
    detector.add("x")
    assert detector.settled() == 8


@pytest.mark.parametrize(("ngram", "repeats", "window"), [(0, 4, 64), (4, 1, 64), (4, 4, 0)])
def test_nonsense_parameters_are_refused(ngram: int, repeats: int, window: int) -> None:
    with pytest.raises(ValueError, match="needed"):
        LoopDetector(ngram=ngram, repeats=repeats, window=window)


class _Stream:
    """A token stream that counts how many tokens were taken from it (as the model would generate them)."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.taken = 0

    def __iter__(self) -> Iterator[str]:
        for token in self.tokens:
            self.taken += 1
            yield token


def test_streaming_stops_at_the_loop_and_passes_on_only_the_cut_reply() -> None:
    stream = _Stream(_HEAD + _UNIT * 40)
    detector = LoopDetector(ngram=4, repeats=4)
    out = list(stop_at_loop(stream, detector))
    assert "".join(out) == "L'Étoile de la Cité, la France"  # nothing of the loop went out
    assert detector.cut == 8
    assert stream.taken == 18  # generation stopped as soon as the loop was complete


def test_streaming_passes_ordinary_text_on_whole_and_the_first_token_at_once() -> None:
    tokens = [
        "The",
        " capital",
        " of",
        " France",
        " is",
        " Paris",
        ".",
        " The",
        " Eiffel",
        " Tower",
        " is",
        " there",
        ".",
    ]
    stream = _Stream(tokens)
    out = stop_at_loop(stream, LoopDetector(ngram=4, repeats=4))
    assert next(out) == "The"
    assert stream.taken == 1  # not held back: the time to the first token does not change
    assert "The" + "".join(out) == "".join(tokens)

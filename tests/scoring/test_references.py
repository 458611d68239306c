"""The response-reference rule (scoring/references.py): each spelling, what is left alone, and two properties:
the rule is idempotent, and it never changes a text without a noun of its table."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rationalerm.scoring.outcome import normalize_label
from rationalerm.scoring.references import (
    LABEL_NOUNS,
    MARKS,
    NOUNS,
    ORDINALS,
    TEXT_NOUNS,
    canonical_references,
    mark_side,
)


@pytest.mark.parametrize(("text", "want"), [
    ("Response A correctly applies transitivity.", "Response 1 correctly applies transitivity."),
    ("Response B reverses it.", "Response 2 reverses it."),
    ("response 1 is short", "Response 1 is short"),
    ("RESPONSE B", "Response 2"),
    ("Response-A", "Response 1"),
    ("Response_B", "Response 2"),
    ("ResponseA and Response2", "Response 1 and Response 2"),
    ("Assistant A's answer is longer", "Response 1's answer is longer"),
    ("assistant 2 refuses", "Response 2 refuses"),
    ("Output (a) is better than Output (b).", "Response 1 is better than Response 2."),
    ("Output [B]", "Response 2"),
    ("Output 1 lists the steps", "Response 1 lists the steps"),
    ("Answer B is wrong", "Response 2 is wrong"),
    ("Model A cites a source; Model B does not", "Response 1 cites a source; Response 2 does not"),
    ("Response #2", "Response 2"),
    ("Response (1)", "Response 1"),
    ("The first response gives a recipe.", "Response 1 gives a recipe."),
    ("In the second response, the tone is rude", "In Response 2, the tone is rude"),
    ("the 1st answer and the 2nd output", "Response 1 and Response 2"),
    ("The second assistant's reply", "Response 2's reply"),
    ("the first model", "Response 1"),
    ("Responses A and B both answer", "Responses 1 and 2 both answer"),
    ("Response A or B", "Response 1 or 2"),
    ("Assistant A vs. B", "Response 1 vs. 2"),
    ("Outputs (a) & (b)", "Responses 1 & 2"),
    ("Response A, B", "Response 1, 2"),
])
def test_each_spelling_is_written_response_n(text: str, want: str) -> None:
    assert canonical_references(text) == want


@pytest.mark.parametrize("text", [
    "Response 1 correctly concludes yes by transitivity.",  # already canonical
    "Responses 1 and 2 agree",
    "answer a question", "output a list", "response a user expects",  # a lower-case bare 'a' is the article
    "response_b", "model b",
    "Output 1.5 GB of logs", "answer 12", "Answer 2,000 rows", "Response 3", "Response C", "Response AB",
    "Option B is the right choice", "candidate A won the election",  # label-only nouns: never in free text
    "the first step", "first response", "the first responses", "the second time the response",
    "Model A100 GPUs", "Output (a)_x", "the first response and B", "responsA", "correspondence A", "the answer",
    "both responses", "",
])
def test_what_is_left_alone(text: str) -> None:
    assert canonical_references(text) == text


def test_an_ordinal_before_a_marked_noun_leaves_the_mark_to_rule_one() -> None:
    assert canonical_references("the first Response A") == "the first Response 1"
    assert canonical_references("the first answer 2") == "the first Response 2"


def test_the_table() -> None:
    assert set(LABEL_NOUNS) == {"response", "output", "answer", "assistant", "option", "candidate"}
    assert set(TEXT_NOUNS) == {"response", "output", "answer", "assistant", "model"}
    assert set(NOUNS) == set(LABEL_NOUNS) | set(TEXT_NOUNS)
    assert MARKS == {"1": 1, "a": 1, "2": 2, "b": 2} and set(ORDINALS.values()) == {1, 2}
    assert [mark_side(m) for m in ("A", "(b)", "#2", "[1]", "C", "3")] == [1, 2, 2, 1, None, None]


@pytest.mark.parametrize("noun", LABEL_NOUNS)
def test_outcome_labels_read_the_same_table(noun: str) -> None:
    """A label noun then a mark is that side, as ``outcome.normalize_label`` reads it."""
    for mark, side in MARKS.items():
        assert normalize_label(f"{noun.title()} {mark.upper()}") == side
        assert normalize_label(f"{noun}-{mark}") == side


def test_text_only_nouns_are_not_labels() -> None:
    """``model`` counts in free text only: outcome results stay those of earlier versions."""
    from rationalerm.errors import Unparseable

    with pytest.raises(Unparseable):
        normalize_label("Model A")
    assert canonical_references("Model A") == "Response 1"


# Text built from the words the rule looks at, glued in every way it cares about.
_WORDS = [*NOUNS, *(n.title() for n in NOUNS), *(n.upper() for n in NOUNS), *(n + "s" for n in NOUNS),
          *ORDINALS, "the", "The", "THE", "1", "2", "3", "12", "1.5", "A", "B", "C", "a", "b", "(a)", "(B)", "[2]",
          "#1", "#", "(", ")", "and", "or", "&", "vs", "vs.", "versus", ",", ".", "'s", "x", "é", "0"]
_GLUE = ["", " ", "  ", "_", "-", "\n", ", "]
_texts = st.lists(st.tuples(st.sampled_from(_WORDS), st.sampled_from(_GLUE)), max_size=14).map(
    lambda parts: "".join(w + g for w, g in parts))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_texts, st.text(max_size=60)))
@example("The first Answer-(a)_The")  # a bracketed mark followed by '_' once left 'Response 1_' to the ordinal rule
@example("the 1st Model, (B)")  # an ordinal rewrite once left 'Response 1, (B)' for a second mark
def test_the_rule_is_idempotent(text: str) -> None:
    once = canonical_references(text)
    assert canonical_references(once) == once


def _has_noun(text: str) -> bool:
    low = text.lower()
    return any(n in low for n in TEXT_NOUNS)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_texts, st.text(max_size=80)).filter(lambda t: not _has_noun(t)))
def test_a_text_without_a_response_noun_is_never_changed(text: str) -> None:
    assert canonical_references(text) == text

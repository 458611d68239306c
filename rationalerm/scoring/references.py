"""Response references: the one table of how a text names the first or second response of a pair.

Human rationales say "Response 1" / "Response 2"; judges and policy models write "Response A", "Assistant B",
"Output (a)", "Answer 2", "Model A", "the first response", ... A matcher compares those as different words
(issue 22: on ``examples/`` the embedded default scores ex-10's "Response 1 correctly concludes yes by
transitivity" against "Response A correctly applies transitivity" 0). Two readers share the table below:

- ``scoring/outcome.py`` reads a whole *label* ("[[A]]", "Response 2", "option-1") as 1 or 2: a noun with
  ``label=True`` may lead, then a mark (``MARKS``);
- ``canonical_references(text)`` rewrites every reference *inside a free text* as ``Response 1`` /
  ``Response 2`` before a judge sees it (judges/canonical.py; the judge config key ``canonical_references``).

The table (``NOUNS``: noun -> where it counts; ``MARKS``; ``ORDINALS``):

- nouns ``response``, ``output``, ``answer``, ``assistant``: labels and text; ``option``, ``candidate``: labels
  only (in free text "option B" is far more often a multiple-choice option, "candidate A" a person); ``model``:
  text only (kept out of labels so that outcome results stay those of earlier versions: "Model A" as a label is
  still unparseable);
- marks ``1``, ``A`` -> 1 and ``2``, ``B`` -> 2; ordinals (text only) ``first``, ``1st`` -> 1, ``second``,
  ``2nd`` -> 2.

The text rule. A reference is either

1. a text noun (any case, singular or plural), at most one space, ``_`` or ``-``, then a mark: a digit 1 or 2,
   a capital A or B (a lower-case bare "a" is the article: "answer a question", "output a list"), a mark in
   brackets, any case ("(a)", "[B]", "(2)"), or "#1", "#2"; a mark is never followed by a letter, a digit,
   ``_`` or a decimal part ("Output 1.5 GB", "answer 12", "Model A100" hold none). A second mark may follow
   after ``and``, ``or``, ``&``, ``vs``, ``versus`` or a comma ("Responses A and B"). Rewritten ``Response N``
   (plural noun: ``Responses N and M``, the joining word kept);
2. ``the`` (any case), an ordinal, a singular text noun, and no mark after it, nor a joining word and a mark
   ("the first response", "The second assistant"; not "the first response and B"): rewritten ``Response N``.

Everything else is kept byte for byte: the rule changes no text without a noun of the table, and it is
idempotent (``tests/scoring/test_references.py``, property tests). Known limits, by design of a word rule: a
math rationale's "the answer 2" reads as Response 2, and a third response ("Response C", "Output 3") is left
as written. ``REFERENCE_RULE`` is the rule's version: judge fingerprints record it, so changing the rule (bump
it) never reuses scores cached under the old one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Side = Literal[1, 2]

REFERENCE_RULE = 1
"""The version of the text rule, recorded in the judge fingerprint when the rule is on."""


@dataclass(frozen=True)
class Noun:
    """A word that names a response when a mark follows it; where it counts (module docstring)."""

    label: bool
    text: bool


NOUNS: dict[str, Noun] = {
    "response": Noun(label=True, text=True),
    "output": Noun(label=True, text=True),
    "answer": Noun(label=True, text=True),
    "assistant": Noun(label=True, text=True),
    "option": Noun(label=True, text=False),
    "candidate": Noun(label=True, text=False),
    "model": Noun(label=False, text=True),
}
MARKS: dict[str, Side] = {"1": 1, "a": 1, "2": 2, "b": 2}
ORDINALS: dict[str, Side] = {"first": 1, "1st": 1, "second": 2, "2nd": 2}

LABEL_NOUNS = tuple(n for n, where in NOUNS.items() if where.label)
TEXT_NOUNS = tuple(n for n, where in NOUNS.items() if where.text)


def _alternatives(words: tuple[str, ...] | list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_NOUN = _alternatives(TEXT_NOUNS)
_SEP = r"[ _-]?"
_MARK = r"(?:[12]|[AB]|[(\[][12ABab][)\]]|\#[12])(?!\w|[.,]\d)"
_JOIN = r"\s*(?:,|&|(?i:and|or|versus|vs\.?)\s)\s*"
_REFERENCE = re.compile(
    rf"\b(?P<noun>(?i:{_NOUN}))(?P<plural>(?i:s)?){_SEP}(?P<mark>{_MARK})(?:(?P<join>{_JOIN})(?P<mark2>{_MARK}))?"
    rf"|\b(?i:the)\s+(?P<ordinal>(?i:{_alternatives(list(ORDINALS))}))\s+(?i:{_NOUN})\b(?!{_SEP}{_MARK}|{_JOIN}{_MARK})")


def mark_side(mark: str) -> Side | None:
    """1 or 2 for a mark as written ("A", "(b)", "#2"); None for anything else."""
    return MARKS.get(mark.strip("()[]#").lower())


def _rewrite(m: re.Match[str]) -> str:
    if m["ordinal"] is not None:
        return f"Response {ORDINALS[m['ordinal'].lower()]}"
    noun = "Responses" if m["plural"] else "Response"
    out = f"{noun} {mark_side(m['mark'])}"
    if m["mark2"] is not None:
        out += f"{m['join']}{mark_side(m['mark2'])}"
    return out


def canonical_references(text: str) -> str:
    """``text`` with every response reference written ``Response 1`` / ``Response 2`` (rule: module docstring)."""
    return _REFERENCE.sub(_rewrite, text)

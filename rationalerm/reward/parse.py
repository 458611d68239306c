"""Reading a policy's output: its checklist of reasons and its preference label.

Default format (``parse_output``; a ``<think>...</think>`` part is ignored)::

    <checklist>
    1. Response 1 keeps the original order; Response 2's set() loses it.
    2. Response 1 runs in linear time.
    </checklist>
    <label>Response 1</label>

Each non-blank line of the checklist block is one item (a leading ``1.``, ``1)``, ``-``, ``*`` or ``•`` is
dropped); the label is any spelling ``normalize_label`` accepts (``1``, ``A``, ``Response 2``, ``tie``, ...).
A JSON object ``{"checklist": [...], "label": ...}`` (optionally in a ```json fence) is accepted too. A
user regex (named groups ``checklist`` and ``label``) or a function ``text -> (items, label)`` replaces it.
An output that cannot be read is a ``ParseFailure`` saying why: the reward turns it into 0 and a reason, never
an exception in the trainer's loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rationalerm.errors import ConfigError, ParseFailure
from rationalerm.scoring.outcome import Unparseable, normalize_label

ParserFn = Callable[[str], tuple[Sequence[str], Any]]
"""A user parser: policy output text -> (checklist items, label). It may raise: the output then scores 0."""
ParserSpec = ParserFn | str | re.Pattern[str] | None
"""What chooses the parser: None (the default format), a regex, or a user function."""


@dataclass(frozen=True)
class Parsed:
    checklist: tuple[str, ...]
    label: Any


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_MARKER = re.compile(r"^\s*(?:\d+\s*[.)]|[-*\u2022])\s*")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _block(text: str, tag: str) -> str:
    opens = text.count(f"<{tag}>")
    if opens == 0:
        raise ParseFailure(f"no <{tag}> block")
    if opens > 1:
        raise ParseFailure(f"more than one <{tag}> block")
    start = text.index(f"<{tag}>") + len(tag) + 2
    end = text.find(f"</{tag}>", start)
    if end < 0:
        raise ParseFailure(f"<{tag}> block is not closed")
    return text[start:end]


def split_items(block: str) -> list[str]:
    """One item per non-blank line, list markers dropped."""
    items = (_MARKER.sub("", line, count=1).strip() for line in block.splitlines())
    return [item for item in items if item]


def _parse_json(candidate: str) -> Parsed:
    try:
        obj = json.loads(candidate)
    except json.JSONDecodeError as e:
        raise ParseFailure(f"invalid JSON object ({e.msg} at char {e.pos})") from None
    if not isinstance(obj, dict) or "checklist" not in obj or "label" not in obj:
        raise ParseFailure("JSON output needs the keys 'checklist' and 'label'")
    items = obj["checklist"]
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ParseFailure("'checklist' must be a list of strings")
    return Parsed(tuple(x.strip() for x in items if x.strip()), obj["label"])


def parse_output(text: str) -> Parsed:
    """The default format (module docstring); raises ``ParseFailure`` saying why not."""
    if not isinstance(text, str):
        raise ParseFailure(f"output is {type(text).__name__}, not text")
    body = _THINK.sub("", text).strip()
    fenced = _FENCE.match(body)
    candidate = fenced.group(1) if fenced else body
    if candidate.startswith("{"):
        return _parse_json(candidate)
    return Parsed(tuple(split_items(_block(body, "checklist"))), _block(body, "label").strip())


def regex_parser(pattern: str | re.Pattern[str]) -> Callable[[str], Parsed]:
    """A parser from a regex with named groups ``checklist`` (items one per line) and ``label`` (searched, DOTALL)."""
    rx = re.compile(pattern, re.DOTALL) if isinstance(pattern, str) else pattern
    missing = {"checklist", "label"} - set(rx.groupindex)
    if missing:
        raise ConfigError(f"reward parser regex lacks the named group(s) {', '.join(sorted(missing))}")

    def parse(text: str) -> Parsed:
        mt = rx.search(text) if isinstance(text, str) else None
        if mt is None:
            raise ParseFailure("output does not match the parser regex")
        return Parsed(tuple(split_items(mt.group("checklist") or "")), (mt.group("label") or "").strip())

    return parse


def function_parser(fn: ParserFn) -> Callable[[str], Parsed]:
    """A parser from a user function; whatever it raises or returns wrongly becomes a ``ParseFailure``."""

    def parse(text: str) -> Parsed:
        try:
            items, label = fn(text)
        except Exception as e:  # noqa: BLE001 - a user parser's failure is this output's reason, not a crash
            raise ParseFailure(f"parser raised {type(e).__name__}: {e}") from None
        if isinstance(items, str) or not all(isinstance(x, str) for x in items):
            raise ParseFailure("parser must return a list of strings as the checklist")
        return Parsed(tuple(x.strip() for x in items if x.strip()), label)

    return parse


def make_parser(spec: ParserSpec) -> Callable[[str], Parsed]:
    """The parser ``spec`` names: the default format (None), a regex, or a user function."""
    if spec is None:
        return parse_output
    if isinstance(spec, (str, re.Pattern)):
        return regex_parser(spec)
    return function_parser(spec)


def read_output(parse: Callable[[str], Parsed], text: str) -> Parsed | str:
    """The output parsed, its label normalised (1, 2 or "tie"), or why it has no usable (checklist, label): never
    raises, so one bad output (or a parser bug) cannot stop the trainer's loop."""
    try:
        p = parse(text)
    except ParseFailure as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - a parser bug must not stop the trainer's loop
        return f"parser error {type(e).__name__}: {e}"
    try:
        label = normalize_label(p.label)
    except Unparseable:
        return f"label {p.label!r} is not response 1, response 2 or a tie"
    return Parsed(p.checklist, label) if label is not None else "no label"

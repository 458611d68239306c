"""Reading a policy's output: its checklist of reasons and its preference label.

Default format (``parse_output``; a ``<think>...</think>`` part is ignored)::

    <checklist>
    1. Response 1 keeps the original order; Response 2's set() loses it.
    2. Response 1 runs in linear time.
    </checklist>
    <label>Response 1</label>

Each non-blank line of the checklist block is one item (a leading ``1.``, ``1)``, ``-``, ``*`` or ``•`` is
dropped); the label is any spelling ``normalize_label`` accepts (``1``, ``A``, ``Response 2``, ``tie``, ...) in
the ``<label>`` block after the checklist. A JSON object ``{"checklist": [...], "label": ...}`` (optionally in a
```json fence) at the end of the output is accepted too. When an output holds more than one answer (a prompt's
own format example before the answer, as in the prompt + response OpenRLHF hands over) the LAST one counts;
special tokens at the end (``<|im_end|>``, ``</s>``, ...) are ignored; a ``</think>`` with no ``<think>`` before
it (a template that opens the thought in the prompt) ends the thought. A user regex (named groups ``checklist``
and ``label``) or a function ``text -> (items, label)`` replaces the format.

It runs in a trainer's hot loop, so it cannot hang: the default format is read with ``str.find`` scans and
anchored per-line matches (linear time), and ``ParseLimits`` bound what is read (the last ``max_output_chars``
characters, ``max_items`` items of at most ``max_item_chars`` characters; a user regex or function gets the same
window). Items are cleaned of what a tokenizer cannot take (lone surrogates become U+FFFD). An output that cannot
be read, or whose checklist is empty, is a reason, never an exception: the reward turns it into 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from pydantic import Field

from rationalerm.errors import ConfigError, ParseFailure
from rationalerm.registry import ConfigSection
from rationalerm.scoring.outcome import Unparseable, normalize_label

ParserFn = Callable[[str], tuple[Sequence[str], Any]]
"""A user parser: policy output text -> (checklist items, label). It may raise: the output then scores 0."""
ParserSpec = ParserFn | str | re.Pattern[str] | None
"""What chooses the parser: None (the default format), a regex, or a user function."""


class ParseLimits(ConfigSection):
    """The caps on reading one output (keys of the ``reward:`` section): what a pathological output can cost."""

    max_output_chars: int = Field(200_000, ge=1, description="only the last N characters of an output are read "
                                  "(the answer is at its end)")
    max_items: int = Field(100, ge=1, description="checklist items read; the ones after are dropped")
    max_item_chars: int = Field(2000, ge=1, description="an item longer than this is cut to it")


@dataclass(frozen=True)
class Parsed:
    checklist: tuple[str, ...]
    label: Any


_DEFAULT_LIMITS = ParseLimits()
_MARKER = re.compile(r"(?:\d+\s*[.)]|[-*\u2022])\s*")
"""A list marker at the start of a stripped line (used with ``match``: anchored, one try per line, linear)."""
_JSON_START = re.compile(r'\{\s*"(?:checklist|label)"')
"""Where a JSON answer object may start."""
_JSON_TRIES = 8
"""JSON answer starts tried, last first (each try is one linear decode)."""
_TAIL_TOKENS = ("</s>", "<eos>", "<end_of_turn>", "<pad>")
"""End-of-text tokens without the ``<|...|>`` shape, ignored at the end of an output."""
_MAX_TOKEN = 40
"""The longest ``<|...|>`` token taken for a special token."""
_MAX_TAIL_TOKENS = 64
"""Trailing special tokens dropped at most (each drop copies the text once)."""


def _drop_thoughts(text: str) -> str:
    """``text`` without its closed ``<think>...</think>`` parts; a ``</think>`` before any ``<think>`` drops all
    before it. Linear: every scan starts where the last one ended."""
    first_close, first_open = text.find("</think>"), text.find("<think>")
    if first_close >= 0 and (first_open < 0 or first_close < first_open):
        text = text[first_close + len("</think>"):]
    kept, pos = [], 0
    while (start := text.find("<think>", pos)) >= 0:
        end = text.find("</think>", start + len("<think>"))
        if end < 0:
            break
        kept.append(text[pos:start])
        pos = end + len("</think>")
    kept.append(text[pos:])
    return "".join(kept)


def _strip_tail(text: str) -> str:
    """``text`` without trailing white space and end-of-text special tokens (``<|im_end|>``, ``</s>``, ...; at most
    ``_MAX_TAIL_TOKENS`` of them, so the cost stays linear)."""
    for _ in range(_MAX_TAIL_TOKENS):
        text = text.rstrip()
        if text.endswith("|>"):
            start = text.rfind("<|", max(0, len(text) - _MAX_TOKEN))
            if start < 0 or any(c.isspace() or c == "<" for c in text[start + 2:-2]):
                break
            text = text[:start]
        elif text.endswith(_TAIL_TOKENS):
            text = text[:text.rfind("<")]
        else:
            break
    return text.rstrip()


def split_items(block: str, max_items: int | None = None) -> list[str]:
    """One item per non-blank line, list markers dropped; at most ``max_items`` (None: all). Lines are split and
    stripped by C-level steps, so blank lines cost no Python step; each other line one anchored match."""
    lines = filter(None, map(str.strip, block.splitlines()))
    return list(islice(filter(None, map(_unmarked, lines)), max_items))


def _unmarked(line: str) -> str:
    """A stripped line without its list marker."""
    marker = _MARKER.match(line)
    return line[marker.end():].strip() if marker else line


def _last_block(text: str, tag: str, start: int = 0) -> tuple[str, int]:
    """The content of the last ``<tag>`` block at or after ``start``, and where the block ends."""
    open_at = text.rfind(f"<{tag}>", start)
    if open_at < 0:
        raise ParseFailure(f"no <{tag}> block" + (" after the <checklist> block" if start else ""))
    begin = open_at + len(tag) + 2
    end = text.find(f"</{tag}>", begin)
    if end < 0:
        raise ParseFailure(f"<{tag}> block is not closed")
    return text[begin:end], end + len(tag) + 3


def _parse_tags(body: str, max_items: int) -> Parsed:
    """The last ``<checklist>`` block and the one ``<label>`` block after it."""
    block, end = _last_block(body, "checklist")
    if body.count("<label>", end) > 1:
        raise ParseFailure("more than one <label> block")
    label, _ = _last_block(body, "label", end)
    return Parsed(tuple(split_items(block, max_items)), label.strip())


def _json_object(candidate: str) -> dict[str, Any]:
    """The JSON object that makes up all of ``candidate``."""
    try:
        obj, end = json.JSONDecoder().raw_decode(candidate)
    except json.JSONDecodeError as e:
        raise ParseFailure(f"invalid JSON object ({e.msg} at char {e.pos})") from None
    except RecursionError:
        raise ParseFailure("invalid JSON object (nested too deeply)") from None
    if candidate[end:].strip():
        raise ParseFailure(f"invalid JSON object (Extra data at char {end})")
    if not isinstance(obj, dict):
        raise ParseFailure("JSON output needs the keys 'checklist' and 'label'")
    return obj


def _from_json(obj: dict[str, Any], max_items: int) -> Parsed:
    if "checklist" not in obj or "label" not in obj:
        raise ParseFailure("JSON output needs the keys 'checklist' and 'label'")
    items = obj["checklist"]
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ParseFailure("'checklist' must be a list of strings")
    return Parsed(tuple(islice(filter(None, (x.strip() for x in items)), max_items)), obj["label"])


def _last_json(body: str, after: int) -> dict[str, Any] | None:
    """The last JSON answer object that runs to the end of ``body`` and starts after ``after``; None if none."""
    starts = [m.start() for m in _JSON_START.finditer(body, after + 1)][-_JSON_TRIES:]
    for start in reversed(starts):
        try:
            return _json_object(body[start:])
        except ParseFailure:
            continue
    return None


def _fenced(body: str) -> str | None:
    """The content of a ``` fence that closes the output (its ``json`` tag dropped), or None."""
    if not body.endswith("```"):
        return None
    start = body.rfind("```", 0, len(body) - 3)
    if start < 0:
        return None
    inner = body[start + 3:len(body) - 3]
    return (inner[4:] if inner.startswith("json") else inner).strip()


def parse_output(text: str, limits: ParseLimits | None = None) -> Parsed:
    """The default format (module docstring); raises ``ParseFailure`` saying why not."""
    if not isinstance(text, str):
        raise ParseFailure(f"output is {type(text).__name__}, not text")
    max_items = (limits or _DEFAULT_LIMITS).max_items
    body = _strip_tail(_drop_thoughts(text)).lstrip()
    fenced = _fenced(body)
    if fenced is not None and fenced.startswith("{"):
        return _from_json(_json_object(fenced), max_items)
    if body.endswith("}"):
        found = _last_json(body, body.rfind("<checklist>"))
        if found is not None:
            return _from_json(found, max_items)
    if body.startswith("{"):
        return _from_json(_json_object(body), max_items)
    return _parse_tags(body, max_items)


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


def make_parser(spec: ParserSpec, limits: ParseLimits | None = None) -> Callable[[str], Parsed]:
    """The parser ``spec`` names: the default format (None, reading at most ``limits.max_items`` items), a regex,
    or a user function."""
    if spec is None:
        return partial(parse_output, limits=limits)
    if isinstance(spec, (str, re.Pattern)):
        return regex_parser(spec)
    return function_parser(spec)


def clean_text(text: str) -> str:
    """``text`` as a tokenizer (and SQLite, and JSON) takes it: a surrogate pair joined, a lone surrogate U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _bounded(items: Sequence[str], limits: ParseLimits) -> tuple[str, ...]:
    """The first ``max_items`` items, each cut to ``max_item_chars`` and cleaned; empty ones dropped."""
    cut = (clean_text(x[:limits.max_item_chars].strip()).strip() for x in items)
    return tuple(islice(filter(None, cut), limits.max_items))


def _window(text: Any, limits: ParseLimits) -> tuple[Any, str]:
    """The part of an output that is read (its last ``max_output_chars`` characters), and the note a failure gets
    when the output was longer."""
    if not isinstance(text, str) or len(text) <= limits.max_output_chars:
        return text, ""
    return text[-limits.max_output_chars:], (f" (only the last {limits.max_output_chars:,} characters of an output "
                                             "are read: reward.max_output_chars)")


def _label_of(raw: Any) -> Any:
    """``raw`` normalised (1, 2 or "tie"); None when absent (a pandas NaN too)."""
    if isinstance(raw, float) and math.isnan(raw):
        return None
    return normalize_label(raw)


def read_output(parse: Callable[[str], Parsed], text: str, limits: ParseLimits | None = None) -> Parsed | str:
    """The output parsed within ``limits``, its items cleaned and its label normalised (1, 2 or "tie"), or why it
    has no usable (non-empty checklist, label): never raises, so one bad output (or a parser bug) cannot stop the
    trainer's loop."""
    limits = limits or _DEFAULT_LIMITS
    window, note = _window(text, limits)
    try:
        p = parse(window)
    except ParseFailure as e:
        return f"{e}{note}"
    except Exception as e:  # noqa: BLE001 - a parser bug must not stop the trainer's loop
        return f"parser error {type(e).__name__}: {e}{note}"
    try:
        label = _label_of(p.label)
    except Unparseable:
        return f"label {clean_text(repr(p.label))[:200]} is not response 1, response 2 or a tie"
    except Exception as e:  # noqa: BLE001 - e.g. a user parser's label of an odd type
        return f"label error {type(e).__name__}: {e}"
    if label is None:
        return "no label"
    checklist = _bounded(p.checklist, limits)
    return Parsed(checklist, label) if checklist else "empty checklist"

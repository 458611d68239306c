"""The decomposition prompt (versioned like the judge prompts), its answer schema, and the strict answer parser.

The answer is one JSON object ``{"items": [ ... ]}``: at most ``max_items`` strings, most important first. Where
the backend supports it (vLLM structured outputs, in-process or behind a vLLM server) the output is forced into
that schema by ``answer_regex`` (the schema written as a regular expression, with each item at most
``max_item_chars`` characters so that a generation always ends); every answer, forced or not, then goes through
``parse_answer``, which accepts only that object and says why it rejects anything else. An empty list is a
valid answer: the rationale makes no concrete, checkable point (it is never padded with invented items).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rationalerm._util.hashing import stable_hash
from rationalerm.errors import ConfigError
from rationalerm.judges.llm.prompts import fence

PROMPT_VERSIONS = ("v1",)

SYSTEM_V1 = (
    "You turn a free-text critique of two responses to a user request into a checklist of atomic rationale "
    "items, as an expert annotator would.\n\n"
    "Rules for every item:\n"
    "- One point per item: a single strength, flaw or difference that the critique states.\n"
    "- Specific: say exactly what is right or wrong and where (the passage, step, number or requirement), not "
    "just that something is good or bad.\n"
    "- Self-contained: understandable without the critique or the other items; never 'it', 'this', 'as above'.\n"
    "- Checkable: someone reading the two responses could verify it.\n"
    "- Name the responses exactly as the critique does (\"Response 1\" / \"Response 2\", or \"Response A\" / "
    "\"Response B\"), the same way in every item.\n"
    "- No vague verdicts: never an item like \"Response A is better\" or \"Response 2 is more helpful\" without "
    "the concrete reason; state the reason instead.\n"
    "- Only points the critique makes; never add your own.\n\n"
    "Order the items by how much they matter for the critique's final judgement, most important first, and give "
    "at most {max_items}. If the critique makes no concrete point, give an empty list.\n\n"
    "Answer with one JSON object and nothing else: {{\"items\": [\"first item\", \"second item\"]}}"
)
USER_V1 = "Critique:\n{text}"

_VAGUE = re.compile(
    r"^(?:overall,?\s*)?(?:response|output|answer|assistant)\s*[\"'(]?[12ab][\"')]?\s+is\s+"
    r"(?:(?:much|slightly|clearly|a bit|somewhat)\s+)?"
    r"(?:better|worse|preferred|preferable|superior|inferior|the better one|the winner|more helpful|less helpful)"
    r"(?:\s+(?:overall|than\s+(?:response|output|answer|assistant)\s*[\"'(]?[12ab][\"')]?))?\s*[.!]?$",
    re.IGNORECASE,
)
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def check_version(version: str) -> None:
    if version not in PROMPT_VERSIONS:
        raise ConfigError(f"unknown decompose prompt version {version!r}; known: {', '.join(PROMPT_VERSIONS)}")


def messages(text: str, max_items: int, version: str = "v1") -> list[dict[str, str]]:
    """System (the rules, the same for every rationale: a shared prefix) and the rationale as a JSON string."""
    check_version(version)
    return [{"role": "system", "content": SYSTEM_V1.format(max_items=max_items)},
            {"role": "user", "content": USER_V1.format(text=fence(text))}]


def prompt_hash(version: str = "v1") -> str:
    """Content hash of the prompt, part of the cache fingerprint (an edited prompt never reuses a cache)."""

    check_version(version)
    return stable_hash([SYSTEM_V1, USER_V1, "json-string"])


def answer_regex(max_items: int, max_item_chars: int = 300) -> str:
    """The answer schema as a regular expression (vLLM structured outputs): ``{"items": [...]}`` with 0 to
    ``max_items`` JSON strings of 1 to ``max_item_chars`` characters (no control characters; JSON escapes)."""
    char = r'([^"\\\x00-\x1f]|\\["\\/nt])'
    item = f'"{char}{{1,{max_item_chars}}}"'
    rest = f"(, {item}){{0,{max_items - 1}}}" if max_items > 1 else ""
    return r'\{"items": \[(' + item + rest + r')?\]\}'


@dataclass(frozen=True)
class ParsedAnswer:
    items: list[str] | None
    error: str | None = None

    @property
    def valid(self) -> bool:
        return self.items is not None


def is_vague_verdict(item: str) -> bool:
    """An item that only says which response is better (no reason): never a checklist item."""
    return bool(_VAGUE.match(item.strip()))


def parse_answer(text: str, max_items: int, finish_reason: str | None = None) -> ParsedAnswer:
    """The items of one answer, or why it is rejected (module docstring); never raises."""
    if finish_reason == "length":
        return ParsedAnswer(None, "truncated: generation hit max_tokens (finish_reason=length)")
    body = _THINK.sub("", text, count=1).strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as e:
        return ParsedAnswer(None, f"not one JSON object ({e.msg} at char {e.pos})")
    if not isinstance(obj, dict):
        return ParsedAnswer(None, f"answer is a JSON {type(obj).__name__}, not an object")
    if set(obj) != {"items"}:
        return ParsedAnswer(None, f"answer keys are {sorted(obj)}, expected exactly ['items']")
    items = obj["items"]
    if not isinstance(items, list):
        return ParsedAnswer(None, f"'items' is a {type(items).__name__}, not a list")
    if len(items) > max_items:
        return ParsedAnswer(None, f"{len(items)} items, more than the {max_items} asked for")
    out: list[str] = []
    for k, item in enumerate(items, 1):
        if not isinstance(item, str):
            return ParsedAnswer(None, f"item {k} is a {type(item).__name__}, not a string")
        item = " ".join(item.split())
        if not item:
            return ParsedAnswer(None, f"item {k} is blank")
        if is_vague_verdict(item):
            return ParsedAnswer(None, f"item {k} is a vague verdict with no reason: {item!r}")
        if item in out:
            return ParsedAnswer(None, f"item {k} repeats item {out.index(item) + 1}")
        out.append(item)
    return ParsedAnswer(out)

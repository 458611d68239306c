"""Prompts of the open Qwen judge: the paper's strict five-level rubric, pairwise and listwise.

Pairwise prompts put the rubric first, then the human item, then the model item, so every prompt of
a run shares the rubric prefix and all pairs of one human item share rubric + human item (vLLM prefix
caching computes them once). The answer is one digit label, 0..4, mapping to 0 / 0.25 / 0.5 / 0.75 / 1.

The listwise prompt reproduces the paper's MetaJudge prompt (arXiv 2602.04649): the model's list as S1..Sm,
the human list as R1..Rn, and one line ``- Rx@Sy: score`` per human item between ``<RESULT_START>`` and
``<RESULT_END>`` (``S0`` = no matching item).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rationalerm._util.hashing import stable_hash
from rationalerm.errors import ConfigError

if TYPE_CHECKING:
    from rationalerm.judges.llm.config import LLMJudgeConfig

LEVELS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
LABELS: tuple[str, ...] = ("0", "1", "2", "3", "4")
"""Answer labels of the pairwise protocol; each is a single token in the Qwen tokenizers."""

PROMPT_VERSIONS = ("v1",)

_STRICTNESS = (
    "Different wording with the same meaning counts as the same point, but merely mentioning the topic "
    "without achieving the purpose counts as not achieved. Abstract or vague descriptions of a shortcoming "
    "count as not achieved, and so does a statement that only says which response is better or worse: the "
    "purpose counts as achieved only when the specific issue is pointed out concretely (for example, which "
    "passage lacks coherence). When the two critiques agree on which response is better but give different "
    "reasons, the purpose is not achieved.\n\n"
    "\"Response 1\" and \"Response A\" name the same response, and \"Response 2\" and \"Response B\" name "
    "the same response."
)

_LEVEL_TEXT = (
    (
        "not achieved or contradictory",
        "the critique does not address the purpose, reaches the opposite conclusion, merely lists elements "
        "without achieving the purpose, or describes the problem abstractly or vaguely without pinpointing it "
        "(e.g. only says which response is better without a reason, or says the logic is incoherent without "
        "saying where)",
    ),
    (
        "slightly involved",
        "only some elements are mentioned; nothing is carried through, so the purpose is not shown to be achieved",
    ),
    (
        "partially achieved",
        "there is analysis related to the purpose, but several key steps are missing or no verifiable "
        "conclusion is reached",
    ),
    (
        "mostly achieved",
        "the main purpose is achieved and the key conclusion agrees, but secondary conditions, boundaries or "
        "some supporting detail are missing",
    ),
    (
        "fully achieved",
        "the purpose is clearly achieved: the specific issue, the necessary evidence and the conclusion are all "
        "there, and the key conditions and constraints are satisfied",
    ),
)

_NUMERIC = (
    "For quantitative claims, check the numbers, ranges, thresholds and conditions; if a key constraint is "
    "not satisfied, do not judge it fully achieved. Judge as strictly as possible: when in doubt, choose the "
    "lower level."
)

PAIRWISE_SYSTEM_V1 = (
    "You are a rigorous analyst of critique alignment. Two responses to a user request were compared. "
    "A human expert wrote a reference critique R: one point about the responses. A model wrote a candidate "
    "critique S. Decide to what extent S achieves the purpose of R, that is, the specific problem, strength or "
    "improvement objective that R points out.\n\n"
    + _STRICTNESS
    + "\n\nLevels (answer with the digit):\n"
    + "\n".join(
        f"{label} = {name} ({level:.2f}): {text}."
        for label, level, (name, text) in zip(LABELS, LEVELS, _LEVEL_TEXT)
    )
    + "\n\n"
    + _NUMERIC
    + "\n\nAnswer with a single digit from 0 to 4 and nothing else."
)

PAIRWISE_USER_V1 = "Reference critique R:\n{human}\n\nCandidate critique S:\n{model}"
_PAIR_HEAD, _PAIR_TAIL = PAIRWISE_USER_V1.split("{model}")
assert _PAIR_TAIL == ""  # the model item ends the message (pairwise_split relies on it)

FENCE = "json-string"
"""How an item is put into the project's prompts: as a JSON string literal (quotes, backslashes, newlines and
control characters escaped), so no item text can end its section, start another one or fake an answer."""


def fence(text: str) -> str:
    return json.dumps(text.strip(), ensure_ascii=False)

LISTWISE_V1 = (
    "You are a rigorous analyst of critique alignment. You are given an original evaluation list S and a "
    "reference evaluation list R; both are lists of critique points about two responses. For each item of the "
    "reference list, determine to what extent a single item of the original list achieves the expected purpose "
    "(the improvement objective) of that reference critique, and give it an achievement score between 0 and 1.\n\n"
    + _STRICTNESS
    + "\n\n[Original evaluation list start]\n{model_list}\n[Original evaluation list end]\n\n"
    "[Reference evaluation list start]\n{human_list}\n[Reference evaluation list end]\n\n"
    "For each item of the reference list, find the single best-matching item of the original list (if none "
    "matches, the critique is not achieved: use S0). Match as strictly as possible and prefer the lower score.\n\n"
    + "\n".join(f"- {name.capitalize()}: {level:.2f} ({text})" for level, (name, text) in zip(LEVELS, _LEVEL_TEXT))
    + "\n\n"
    + _NUMERIC
    + "\n\n"
    "Output format (fixed, so the scores can be extracted; Rx@Sy means item x of the reference list R best "
    "matches item y of the original list S):\n"
    "<RESULT_START>\n"
    "Scores corresponding to claims:\n"
    "- R1@Sy: a decimal between 0 and 1 with two decimal places, e.g. 0.75\n"
    "- R2@Sy: a decimal between 0 and 1 with two decimal places, e.g. 0.75\n"
    "- R3@S0: 0.00 (no matching item)\n"
    "... one line per reference item, in order\n"
    "<RESULT_END>"
)


def check_version(version: str) -> None:
    if version not in PROMPT_VERSIONS:
        raise ConfigError(f"unknown prompt_version {version!r}; known: {', '.join(PROMPT_VERSIONS)}")


def pairwise_messages(human: str, model: str, version: str = "v1") -> list[dict[str, str]]:
    """Chat messages for one (human item, model item) pair: rubric (system), then R, then S."""
    check_version(version)
    return [
        {"role": "system", "content": PAIRWISE_SYSTEM_V1},
        {"role": "user", "content": _PAIR_HEAD.format(human=fence(human)) + fence(model)},
    ]


def pairwise_split(human: str, model: str, version: str = "v1") -> tuple[str, str]:
    """The user message of a pair as (part ending with the human item, the model item).

    The first part is the same for every pair of one human item, so a backend can tokenise it once
    (``backend.encode_chats``); the two parts concatenate to the user message content.
    """
    check_version(version)
    return _PAIR_HEAD.format(human=fence(human)), fence(model)


def numbered(items: tuple[str, ...] | list[str], prefix: str, fenced: bool = True) -> str:
    """``S1: "..."`` lines; ``fenced=False`` writes items bare, as the reference script does (``S1: ...``)."""
    return "\n".join(f"{prefix}{i}: {fence(text) if fenced else text.strip()}"
                     for i, text in enumerate(items, 1)).strip()


BUILTIN_FIELDS = ("model_list", "human_list")
"""Placeholders of the project's own listwise template."""
REFERENCE_FIELDS = ("source_list", "target_list")
"""Placeholders of the reference script's ``EVAL_PROMPT_TEMPLATE`` (source = model list S, target = human list R)."""


@dataclass(frozen=True)
class ListwiseTemplate:
    text: str
    fields: tuple[str, str]
    """(model list placeholder, human list placeholder)."""
    source: str = "built-in"


def fill_template(text: str, values: dict[str, str]) -> str:
    """Fill ``{name}`` placeholders in one pass (a value is never searched again), with str.format's
    ``{{`` / ``}}`` escapes; any other brace is kept as written."""
    def sub(mt: re.Match[str]) -> str:
        token = mt.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values[mt.group(1)]

    names = "|".join(re.escape(k) for k in values)
    return re.sub(r"\{\{|\}\}|\{(" + names + r")\}", sub, text)


def load_template_file(path: str | Path) -> ListwiseTemplate:
    """A listwise prompt template from a file: a text file with ``{source_list}`` / ``{target_list}``, or the
    reference script that defines ``EVAL_PROMPT_TEMPLATE`` (parsed as text with ``ast``, never executed)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read judge.listwise.prompt_file ({e.strerror or e})") from e
    if p.suffix == ".py":
        text = _template_from_script(p, text)
    missing = [f"{{{f}}}" for f in REFERENCE_FIELDS if f"{{{f}}}" not in text]
    if missing:
        raise ConfigError(f"{p}: the listwise prompt template lacks {' and '.join(missing)} "
                          f"(the model list S and the human list R)")
    return ListwiseTemplate(text, REFERENCE_FIELDS, str(p))


def _template_from_script(path: Path, source: str) -> str:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: not valid Python ({e.msg})") from e
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EVAL_PROMPT_TEMPLATE"
                                                for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            raise ConfigError(f"{path}:{node.lineno}: EVAL_PROMPT_TEMPLATE is not a plain string literal")
    raise ConfigError(f"{path}: defines no EVAL_PROMPT_TEMPLATE")


def listwise_template(cfg: LLMJudgeConfig) -> ListwiseTemplate:
    """The judge's listwise template: ``judge.prompt_file`` if set, else the project's own wording."""
    if cfg.listwise.prompt_file:
        return load_template_file(cfg.listwise.prompt_file)
    check_version(cfg.prompt_version)
    return ListwiseTemplate(LISTWISE_V1, BUILTIN_FIELDS)


def listwise_messages(
    human: tuple[str, ...] | list[str], model: tuple[str, ...] | list[str], version: str = "v1",
    template: ListwiseTemplate | None = None,
) -> list[dict[str, str]]:
    """The single-message listwise prompt: model list as S1..Sm, human list as R1..Rn."""
    if template is None:
        check_version(version)
        template = ListwiseTemplate(LISTWISE_V1, BUILTIN_FIELDS)
    model_field, human_field = template.fields
    # The project's own template fences every item; a user's template file (e.g. the reference prompt verbatim)
    # gets the items as the reference writes them. Both are filled in one pass.
    fenced = template.fields == BUILTIN_FIELDS
    text = fill_template(template.text, {model_field: numbered(model, "S", fenced),
                                         human_field: numbered(human, "R", fenced)})
    return [{"role": "user", "content": text}]


def prompt_hash(protocol: str, version: str = "v1", template: str | None = None) -> str:
    """Content hash of the prompt templates, part of the fingerprint (an edited prompt never reuses a cache)."""

    check_version(version)
    if protocol == "pairwise":
        return stable_hash([PAIRWISE_SYSTEM_V1, PAIRWISE_USER_V1, list(LABELS), list(LEVELS), FENCE])
    return stable_hash([LISTWISE_V1, FENCE] if template is None else [template])


def judge_fingerprint(cfg: LLMJudgeConfig, protocol: str, **extra: Any) -> dict[str, Any]:
    """What a cached judgement depends on, shared by both protocols (the backend is deliberately left out)."""
    own_template = listwise_template(cfg).text if protocol == "listwise" and cfg.listwise.prompt_file else None
    return {
        "judge": "llm", "model": cfg.model, "tokenizer": cfg.tokenizer, "protocol": protocol,
        "prompt_version": cfg.prompt_version,
        "prompt_hash": prompt_hash(protocol, cfg.prompt_version, own_template),
        "temperature": cfg.temperature, "seed": cfg.seed, "enable_thinking": cfg.enable_thinking, **extra,
    }

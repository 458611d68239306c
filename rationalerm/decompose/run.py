"""``rationalerm decompose``: free-text rationales -> ``{model}-checklist`` (and ``human-checklist``) items.

Records are read as the loader reads them (JSONL or Parquet, bad lines reported as ``file:line``) and written back
whole, in input order, with the checklists filled. Each distinct rationale text is decomposed once, on the
judge's LLM backend (``judge: {type: llm, ...}`` in the config: vllm, openai or transformers), through
``Backend.generate``: schema-forced where the backend can, strictly parsed always, re-asked ``max_retries`` times
(at ``retry_temperature``) while the answer is rejected. Answers are committed to the SQLite cache as they
arrive, keyed by (fingerprint: model, prompt version and hash, settings; text), so an interrupted run resumes
and a rerun asks nothing twice. A rationale that cannot be decomposed gets no checklist: its record keeps the
reason under ``decompose-errors`` and is counted. A rejected answer (after the re-asks) is cached like a good
one (the same settings would reject it again); a request that got no answer at all (a server that kept failing)
is never cached, so the next run retries it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import Field

from rationalerm._util.files import iter_records, write_jsonl
from rationalerm._util.hashing import text_hash
from rationalerm._util.sqlite_store import FingerprintStore
from rationalerm.config import RunConfig
from rationalerm.decompose.prompt import ParsedAnswer, answer_regex, check_version, messages, parse_answer, prompt_hash
from rationalerm.errors import ConfigError, LoadError
from rationalerm.inputs.load import HUMAN_KEY, Skipped
from rationalerm.judges.base import ProgressFactory, null_progress
from rationalerm.judges.llm import make_backend
from rationalerm.judges.llm.backend import Backend, Generation
from rationalerm.judges.llm.config import LLMJudgeConfig
from rationalerm.judges.llm.reask import Final, ask_until_accepted
from rationalerm.registry import ConfigSection

ERRORS_KEY = "decompose-errors"
"""Per record: ``{target key: reason}`` for each rationale that got no checklist."""
Target = tuple[int, str, str]
"""A rationale to decompose: (record index, source key, target key)."""


class DecomposeSettings(ConfigSection):
    """What ``rationalerm decompose`` asks for and how often it re-asks (its command-line options)."""

    max_items: int = Field(5, ge=1, description="at most this many items per checklist, most important first")
    max_item_chars: int = Field(300, ge=1, description="the longest item the answer schema allows")
    max_tokens: int = Field(1024, ge=1, description="generation budget per answer")
    max_retries: int = Field(2, ge=0, description="re-asks of a rejected answer")
    retry_temperature: float = Field(0.7, ge=0.0, description="temperature of the re-asks")
    structured: bool = Field(True, description="force the answer schema where the backend supports it (vLLM "
                             "structured outputs)")
    prompt_version: str = "v1"


@dataclass(frozen=True)
class Decomposition:
    items: list[str] | None
    error: str | None = None
    raw: str = ""
    attempts: int = 1
    fault: str | None = None
    """Set when no answer came at all (never cached)."""


@dataclass
class DecomposeOutcome:
    records: int
    targets: int
    """Rationales found (record x field)."""
    decomposed: int
    generated: int
    """Distinct texts sent to the model in this run."""
    cached: int
    failures: Counter[str] = field(default_factory=Counter)
    """Rationales without a checklist, by reason kind."""
    skipped: list[Skipped] = field(default_factory=list)
    faults: int = 0


_SCHEMA = ("CREATE TABLE IF NOT EXISTS decompositions (fp TEXT NOT NULL, key TEXT NOT NULL, "
           "result BLOB NOT NULL, PRIMARY KEY (fp, key)) WITHOUT ROWID")


class DecomposeCache:
    """SQLite cache of decompositions: ``(fingerprint id, text hash) -> result``, committed per answer."""

    def __init__(self, path: str | Path, fingerprint: dict[str, Any]) -> None:
        self.store = FingerprintStore(path, fingerprint, _SCHEMA)
        self.fp = self.store.fp

    @staticmethod
    def key(text: str) -> str:
        return text_hash(text, 40)

    def get(self, texts: Sequence[str]) -> dict[str, Decomposition]:
        keys = {self.key(t): t for t in texts}
        found = self.store.get_many("decompositions", "result", list(keys))
        return {keys[k]: Decomposition(**orjson.loads(blob)) for k, (blob,) in found.items()}

    def put(self, text: str, d: Decomposition) -> None:
        """Commit one result now; one that got no answer at all (``fault``) is never stored."""
        if not d.fault:
            self.store.put_many("decompositions", [(self.key(text), orjson.dumps(d.__dict__))])

    def close(self) -> None:
        self.store.close()


def fingerprint(cfg: LLMJudgeConfig, s: DecomposeSettings, grammar: bool) -> dict[str, Any]:
    """What a cached decomposition depends on (the backend itself is left out, as for the judge)."""
    return {"task": "decompose", "model": cfg.model, "tokenizer": cfg.tokenizer, "prompt_version": s.prompt_version,
            "prompt_hash": prompt_hash(s.prompt_version), "max_items": s.max_items,
            "max_item_chars": s.max_item_chars if grammar else None, "max_tokens": s.max_tokens,
            "max_retries": s.max_retries, "retry_temperature": s.retry_temperature, "temperature": cfg.temperature,
            "seed": cfg.seed, "enable_thinking": cfg.enable_thinking, "grammar": grammar}


def decompose_texts(backend: Backend, cfg: LLMJudgeConfig, texts: Sequence[str], s: DecomposeSettings,
                    on_result: Callable[[int, Decomposition], None]) -> None:
    """Decompose each text (re-asking rejected answers); ``on_result(i, result)`` gets each final result once."""
    regex = answer_regex(s.max_items, s.max_item_chars) if s.structured and backend.supports_grammar else None
    prompts = [messages(t, s.max_items, s.prompt_version) for t in texts]

    def check(i: int, gen: Generation) -> tuple[ParsedAnswer, bool]:
        parsed = ParsedAnswer(None, gen.error) if gen.error else parse_answer(gen.text, s.max_items, gen.finish_reason)
        return parsed, parsed.valid

    ask_until_accepted(backend, prompts, [regex] * len(prompts) if regex else None, call=cfg, budget=s,
                       check=check, on_final=lambda i, f: on_result(i, _decomposition(f)))


def _decomposition(f: Final[ParsedAnswer]) -> Decomposition:
    """A text's result from its final answer (``fault`` set when no answer came: never cached)."""
    gen, parsed = f.gen, f.parsed
    if parsed is None:
        return Decomposition(None, gen.error or gen.fault, attempts=f.attempts, fault=gen.fault)
    if parsed.valid:
        return Decomposition(parsed.items, None, gen.text, f.attempts)
    return Decomposition(None, parsed.error, gen.text, f.attempts)


def _field_regex(pattern: str) -> re.Pattern[str]:
    if pattern.count("{model}") != 1:
        raise ConfigError(f"--field {pattern!r} must contain '{{model}}' once (e.g. '{{model}}-generated_text')")
    head, tail = pattern.split("{model}")
    return re.compile(re.escape(head) + "(?P<model>.+)" + re.escape(tail), re.IGNORECASE)


def _targets(rec: dict[str, Any], field_rx: re.Pattern[str], human: str | None) -> list[tuple[str, str]]:
    """(source key, target key) of each rationale of a record, in key order."""
    out = []
    for key in rec:
        if human is not None and key.lower() == human.lower():
            out.append((key, HUMAN_KEY))
            continue
        mt = field_rx.fullmatch(key)
        if mt and mt.group("model").lower() != "human":
            out.append((key, f"{mt.group('model')}-checklist"))
    return out


def _set(rec: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key``, replacing a key that differs only in case (the loader would call the two ambiguous)."""
    for k in [k for k in rec if k.lower() == key.lower() and k != key]:
        del rec[k]
    rec[key] = value


def decompose_file(
    inputs: str | Path | Sequence[str | Path], cfg: RunConfig, out: str | Path, *,
    field: str = "{model}-generated_text", human: str | None = None, settings: DecomposeSettings | None = None,
    cache: str | Path | None = None, progress: ProgressFactory = null_progress, backend: Backend | None = None,
) -> DecomposeOutcome:
    """Decompose every rationale of ``inputs`` and write the records to ``out`` (JSONL, atomically)."""
    s = settings or DecomposeSettings()
    judge = _llm_judge(cfg)
    check_version(s.prompt_version)
    field_rx = _field_regex(field)
    records, skipped = _read_records(inputs)
    tasks = [(r, src, dst) for r, rec in enumerate(records) for src, dst in _targets(rec, field_rx, human)]
    if not tasks:
        what = f"'{field}'" + (f" or '{human}'" if human else "")
        raise LoadError(f"{inputs}: no rationale field {what} in any record")
    results, unique = _texts(records, tasks)
    own_backend = backend is None
    if backend is None:
        backend = make_backend(judge)
    grammar = bool(s.structured and backend.supports_grammar)
    store = DecomposeCache(cache or Path(out).with_suffix(".cache.sqlite"), fingerprint(judge, s, grammar))
    try:
        known = store.get(unique)
        todo = [t for t in unique if t not in known]

        def arrived(text: str, d: Decomposition) -> None:
            known[text] = d
            store.put(text, d)

        _decompose_all(backend, judge, s, todo, progress, arrived)
    finally:
        store.close()
        if own_backend:
            backend.close()
    decomposed, failures, faults = _write_checklists(records, tasks, results, known)
    write_jsonl(out, records)
    return DecomposeOutcome(len(records), len(tasks), decomposed, len(todo), len(unique) - len(todo), failures,
                            skipped, faults)


def _llm_judge(cfg: RunConfig) -> LLMJudgeConfig:
    if not isinstance(cfg.judge, LLMJudgeConfig):
        raise ConfigError(f"decompose runs on an LLM: the config's judge must be 'type: llm' (model and backend), "
                          f"not {cfg.judge.type!r}")
    return cfg.judge


def _read_records(inputs: str | Path | Sequence[str | Path]) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """The JSON-object records of every input file, and the lines skipped (``file:line`` and why)."""
    records: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for path in [Path(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]:
        if not path.is_file():
            raise LoadError(f"{path}: no such file")
        for record in iter_records(path):
            line, rec, err = record.line, record.value, record.error
            if err is None and not isinstance(rec, dict):
                err = f"record must be a JSON object, got {type(rec).__name__}"
            if err is not None:
                skipped.append(Skipped(str(path), line, err))
            else:
                records.append(rec)
    return records, skipped


def _texts(records: list[dict[str, Any]], tasks: list[Target]) -> tuple[dict[tuple[int, str], Decomposition],
                                                                         list[str]]:
    """The results known without asking (no rationale text), and the distinct texts to decompose, in order."""
    results: dict[tuple[int, str], Decomposition] = {}
    texts: list[str] = []
    for r, src, dst in tasks:
        value = records[r][src]
        if not isinstance(value, str) or not value.strip():
            results[(r, dst)] = Decomposition(None, "no rationale text" if value is None or isinstance(value, str)
                                              else f"rationale is a {type(value).__name__}, not text", attempts=0)
        else:
            texts.append(value.strip())
    return results, list(dict.fromkeys(texts))


def _decompose_all(backend: Backend, cfg: LLMJudgeConfig, s: DecomposeSettings, texts: list[str],
                   progress: ProgressFactory, on_result: Callable[[str, Decomposition], None]) -> None:
    """Decompose ``texts`` in batches of the judge's ``batch_size``; each result is handed over as it arrives."""
    with progress("decomposing rationales", len(texts)) as advance:
        step = max(1, cfg.batch_size)
        for lo in range(0, len(texts), step):
            part = texts[lo:lo + step]

            def arrived(i: int, d: Decomposition, part: list[str] = part) -> None:
                on_result(part[i], d)
                advance(1)

            decompose_texts(backend, cfg, part, s, arrived)


def _write_checklists(records: list[dict[str, Any]], tasks: list[Target], results: dict[tuple[int, str], Decomposition],
          known: dict[str, Decomposition]) -> tuple[int, Counter[str], int]:
    """Write each checklist (or its reason under ``ERRORS_KEY``) into its record: (decomposed, failures by
    reason kind, faults)."""
    failures: Counter[str] = Counter()
    decomposed = faults = 0
    for r, src, dst in tasks:
        rec = records[r]
        d = results.get((r, dst)) or known[rec[src].strip()]
        if d.items is not None:
            _set(rec, dst, d.items)
            decomposed += 1
            continue
        reason = d.error or "no answer"
        rec.setdefault(ERRORS_KEY, {})[dst] = reason
        failures[d.fault or re.sub(r"\d+", "N", reason.split(" (")[0].split(":")[0])] += 1
        faults += bool(d.fault)
    return decomposed, failures, faults

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

from rationalerm._util.files import iter_records, write_jsonl
from rationalerm._util.hashing import text_hash
from rationalerm._util.sqlite_store import FingerprintStore
from rationalerm.config import RunConfig
from rationalerm.decompose.prompt import answer_regex, messages, parse_answer, prompt_hash
from rationalerm.errors import ConfigError, LoadError
from rationalerm.inputs.load import HUMAN_KEY, Skipped
from rationalerm.judges.base import ProgressFactory, null_progress

ERRORS_KEY = "decompose-errors"
"""Per record: ``{target key: reason}`` for each rationale that got no checklist."""


@dataclass(frozen=True)
class DecomposeSettings:
    max_items: int = 5
    max_item_chars: int = 300
    max_tokens: int = 1024
    max_retries: int = 2
    retry_temperature: float = 0.7
    structured: bool = True
    """Force the answer schema where the backend supports it (vLLM structured outputs)."""
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


def fingerprint(cfg: Any, s: DecomposeSettings, grammar: bool) -> dict[str, Any]:
    """What a cached decomposition depends on (the backend itself is left out, as for the judge)."""
    return {"task": "decompose", "model": cfg.model, "tokenizer": cfg.tokenizer, "prompt_version": s.prompt_version,
            "prompt_hash": prompt_hash(s.prompt_version), "max_items": s.max_items,
            "max_item_chars": s.max_item_chars if grammar else None, "max_tokens": s.max_tokens,
            "max_retries": s.max_retries, "retry_temperature": s.retry_temperature, "temperature": cfg.temperature,
            "seed": cfg.seed, "enable_thinking": cfg.enable_thinking, "grammar": grammar}


def decompose_texts(backend: Any, cfg: Any, texts: Sequence[str], s: DecomposeSettings,
                    on_result: Callable[[int, Decomposition], None]) -> None:
    """Decompose each text (re-asking rejected answers); ``on_result(i, result)`` gets each final result once."""
    grammar = bool(s.structured and backend.supports_grammar)
    regex = answer_regex(s.max_items, s.max_item_chars) if grammar else None
    prompts = [messages(t, s.max_items, s.prompt_version) for t in texts]
    pending = list(range(len(texts)))
    for attempt in range(s.max_retries + 1):
        if not pending:
            return
        still: list[int] = []

        def arrived(k: int, gen: Any, asked: list[int] = pending, attempt: int = attempt,
                    still: list[int] = still) -> None:
            i = asked[k]
            if gen.fault:
                on_result(i, Decomposition(None, gen.error or gen.fault, attempts=attempt + 1, fault=gen.fault))
                return
            parsed = parse_answer(gen.text, s.max_items, gen.finish_reason) if not gen.error else None
            if parsed is not None and parsed.valid:
                on_result(i, Decomposition(parsed.items, None, gen.text, attempt + 1))
            elif attempt == s.max_retries:
                on_result(i, Decomposition(None, gen.error or (parsed.error if parsed else None), gen.text, attempt + 1))
            else:
                still.append(i)

        temperature = cfg.temperature if attempt == 0 else max(cfg.temperature, s.retry_temperature)
        backend.generate([prompts[i] for i in pending], regexes=[regex] * len(pending) if regex else None,
                         max_tokens=s.max_tokens, temperature=temperature, seed=cfg.seed + attempt, settings=cfg,
                         on_answer=arrived)
        pending = sorted(still)


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
    inputs: str | Path | list[str | Path], cfg: RunConfig, out: str | Path, *, field: str = "{model}-generated_text",
    human: str | None = None, settings: DecomposeSettings | None = None, cache: str | Path | None = None,
    progress: ProgressFactory = null_progress, backend: Any = None,
) -> DecomposeOutcome:
    """Decompose every rationale of ``inputs`` and write the records to ``out`` (JSONL, atomically)."""
    from rationalerm.judges.llm.config import LLMJudgeConfig

    s = settings or DecomposeSettings()
    if s.max_items < 1:
        raise ConfigError(f"--max-items must be at least 1, not {s.max_items}")
    judge = cfg.judge
    if not isinstance(judge, LLMJudgeConfig):
        raise ConfigError(f"decompose runs on an LLM: the config's judge must be 'type: llm' (model and backend), "
                          f"not {judge.type!r}")
    from rationalerm.decompose.prompt import check_version

    check_version(s.prompt_version)
    field_rx = _field_regex(field)
    records: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for path in [Path(p) for p in (inputs if isinstance(inputs, list) else [inputs])]:
        if not path.is_file():
            raise LoadError(f"{path}:0: no such file")
        for record in iter_records(path):
            line, rec, err = record.line, record.value, record.error
            if err is None and not isinstance(rec, dict):
                err = f"record must be a JSON object, got {type(rec).__name__}"
            if err is not None:
                skipped.append(Skipped(str(path), line, err))
            else:
                records.append(rec)
    tasks: list[tuple[int, str, str]] = []  # (record index, source key, target key)
    for r, rec in enumerate(records):
        tasks.extend((r, src, dst) for src, dst in _targets(rec, field_rx, human))
    if not tasks:
        what = f"'{field}'" + (f" or '{human}'" if human else "")
        raise LoadError(f"{inputs}:0: no rationale field {what} in any record")

    results: dict[tuple[int, str], Decomposition] = {}
    texts: list[str] = []
    for r, src, dst in tasks:
        value = records[r][src]
        if not isinstance(value, str) or not value.strip():
            results[(r, dst)] = Decomposition(None, "no rationale text" if value is None or isinstance(value, str)
                                              else f"rationale is a {type(value).__name__}, not text", attempts=0)
        else:
            texts.append(value.strip())
    unique = list(dict.fromkeys(texts))
    own_backend = backend is None
    if own_backend:
        from rationalerm.judges.llm import make_backend

        backend = make_backend(judge)
    grammar = bool(s.structured and backend.supports_grammar)
    store = DecomposeCache(cache or Path(out).with_suffix(".cache.sqlite"), fingerprint(judge, s, grammar))
    try:
        known = store.get(unique)
        todo = [t for t in unique if t not in known]
        with progress("decomposing rationales", len(todo)) as advance:
            def arrived(i: int, d: Decomposition) -> None:
                known[todo[i]] = d
                store.put(todo[i], d)
                advance(1)

            step = max(1, judge.batch_size)
            for lo in range(0, len(todo), step):
                part = todo[lo:lo + step]
                decompose_texts(backend, judge, part, s, lambda i, d, lo=lo: arrived(lo + i, d))
    finally:
        store.close()
        if own_backend:
            backend.close()

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
    write_jsonl(out, records)
    return DecomposeOutcome(len(records), len(tasks), decomposed, len(todo), len(unique) - len(todo), failures,
                            skipped, faults)

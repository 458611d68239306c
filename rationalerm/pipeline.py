"""The run: load -> pairs -> prefilter -> judge (cached) -> assign -> score -> files (DESIGN.md data flow)."""

from __future__ import annotations

import platform
import time
from datetime import datetime, timezone
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm import __version__
from rationalerm.cache import JudgeCache, fingerprint_id
from rationalerm.config import EmbeddingJudgeConfig, RunConfig
from rationalerm.io import write_json, write_jsonl
from rationalerm.judges import ListJudge, ListTask, PairJudge, PairScore, make_judge
from rationalerm.load import LoadResult, Sample, load_samples
from rationalerm.outcome import add_outcome
from rationalerm.prefilter import PrefilterStats, topk_keep
from rationalerm.score import score_sample, summarize_rows

ProgressFactory = Callable[[str, int], Callable[[int], None]]


@dataclass
class Unit:
    """One sample x model grid."""

    sample: Sample
    model: str

    @property
    def human(self) -> list[str]:
        return self.sample.human

    @property
    def items(self) -> list[str]:
        return self.sample.models[self.model]


@dataclass
class RunOutcome:
    out_dir: Path
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    judged: int = 0
    cached: int = 0
    prefilter: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _null_progress(_label: str, _total: int) -> Iterator[Callable[[int], None]]:
    yield lambda n: None


def build_units(loaded: LoadResult) -> list[Unit]:
    return [Unit(s, m) for s in loaded.samples for m in loaded.models if m in s.models]


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def prefilter_masks(
    units: Sequence[Unit], cfg: RunConfig, progress: Any = _null_progress
) -> tuple[list[np.ndarray], PrefilterStats]:
    """Per-unit keep masks from embedding cosines; every unique item is embedded once."""
    from rationalerm.judges.embedding import Embedder

    pf = cfg.prefilter
    embedder = Embedder(pf.model, pf.batch_size, getattr(cfg.judge, "device", None))
    texts = list(dict.fromkeys(t for u in units for t in (*u.human, *u.items)))
    with progress("prefilter: embedding texts", len(texts)) as advance:
        embedder.embed(texts, advance)
    masks, stats = [], PrefilterStats()
    for u in units:
        mask = topk_keep(embedder.cosine(u.human, u.items), pf.top_k, pf.min_cosine, pf.mode)
        masks.append(mask)
        stats.cells_total += mask.size
        stats.cells_kept += int(mask.sum())
    stats.unique_pairs_total = len({(h, s) for _, _, _, h, s in _kept_cells(units, None)})
    stats.unique_pairs_kept = len({(h, s) for _, _, _, h, s in _kept_cells(units, masks)})
    return masks, stats


def _kept_cells(
    units: Sequence[Unit], masks: list[np.ndarray] | None
) -> Iterator[tuple[int, int, int, str, str]]:
    """``(unit, i, j, human text, model text)`` for every grid cell the prefilter (if any) kept."""
    for k, u in enumerate(units):
        for i, h in enumerate(u.human):
            for j, s in enumerate(u.items):
                if masks is None or masks[k][i, j]:
                    yield k, i, j, h, s


def judge_pairwise(
    judge: PairJudge, cache: JudgeCache, units: Sequence[Unit], masks: list[np.ndarray] | None,
    chunk_size: int, progress: Any,
) -> tuple[list[np.ndarray], list[list[list[Any]]], int, int]:
    """Fill every unit's matrix; only pairs missing from the cache reach the judge, chunk by chunk."""
    pairs = list(dict.fromkeys((h, s) for _, _, _, h, s in _kept_cells(units, masks)))
    known: dict[tuple[str, str], PairScore] = cache.get_pairs(pairs)
    todo = [p for p in pairs if p not in known]
    prepare = getattr(judge, "prepare", None)
    if todo and prepare is not None:
        # Embed the run's whole text set in one call: batches (and so the floats) then do not depend on
        # where an interrupted run stopped, and a resumed run writes byte-identical files.
        texts = list(dict.fromkeys(t for p in pairs for t in p))
        with progress("embedding texts", len(texts)) as advance:
            prepare(texts, advance)
    with progress("judging pairs", len(todo)) as advance:
        for chunk in _chunks(todo, chunk_size):
            scores = judge.score_pairs(list(chunk))
            cache.put_pairs(chunk, scores)
            known.update(zip(chunk, scores))
            advance(len(chunk))
    matrices = [np.zeros((len(u.human), len(u.items))) for u in units]
    details: list[list[list[Any]]] = [[[None] * len(u.items) for _ in u.human] for u in units]
    for k, i, j, h, s in _kept_cells(units, masks):
        ps = known[(h, s)]
        matrices[k][i, j], details[k][i][j] = ps.score, ps.detail
    return matrices, details, len(todo), len(pairs) - len(todo)


def judge_listwise(
    judge: ListJudge, cache: JudgeCache, units: Sequence[Unit], chunk_size: int, progress: Any,
) -> tuple[list[np.ndarray | None], list[dict[str, Any]], int, int]:
    from rationalerm.cache import task_key

    tasks = [ListTask(tuple(u.human), tuple(u.items), u.sample.extra.get("context")) for u in units]
    unique = list({task_key(t): t for t in tasks}.items())
    known = cache.get_lists([t for _, t in unique])
    todo = [(k, t) for k, t in unique if k not in known]
    with progress("judging lists", len(todo)) as advance:
        for chunk in _chunks(todo, chunk_size):
            results = judge.judge_lists([t for _, t in chunk])
            cache.put_lists([t for _, t in chunk], results)
            known.update((k, r) for (k, _), r in zip(chunk, results))
            advance(len(chunk))
    matrices, infos = [], []
    for t in tasks:
        r = known[task_key(t)]
        matrices.append(np.asarray(r.matrix, dtype=float) if r.valid and r.matrix is not None else None)
        infos.append({"valid": r.valid, "attempts": r.attempts, "error": r.error, "raw": r.raw})
    return matrices, infos, len(todo), len(unique) - len(todo)


def unit_row(u: Unit, w: np.ndarray | None, cfg: RunConfig, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": u.sample.id, "domain": u.sample.domain, "model": u.model,
        "source": f"{u.sample.source}:{u.sample.line}",
        "human": u.human, "items": u.items,
        "matrix": None if w is None else np.round(w, 6).tolist(),
        "labels": {k: v for k, v in u.sample.labels.items()
                   if k.lower() in ("label", cfg.outcome.label_field.lower(), u.model.lower())},
    }
    row.update(extra)
    return rescore_row(row, cfg)


def rescore_row(row: dict[str, Any], cfg: RunConfig) -> dict[str, Any]:
    """(Re)compute a row's pairs and metrics from its saved matrix; judge-invalid rows stay invalid."""
    sc = cfg.scoring
    if row.get("matrix") is None:
        row.update(pairs=[], precision=0.0, recall=0.0, f1=0.0, ap=0.0, valid=False,
                   excluded=row.get("excluded") or "invalid judge output")
        return row
    s = score_sample(row["matrix"], max_model_items=sc.max_model_items, min_score=sc.min_score, compat=sc.compat)
    row.update(pairs=[[i, j, round(v, 6)] for i, j, v in s.pairs], **s.metrics(), valid=s.valid, excluded=s.excluded)
    return row


def versions() -> dict[str, str]:
    out = {"rationalerm": __version__, "python": platform.python_version()}
    for mod in ("numpy", "scipy", "torch", "transformers", "sentence_transformers", "vllm"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # not installed or broken: recorded as absent
            continue
    return out


def run(
    inputs: str | Path | list[str | Path], cfg: RunConfig, out_dir: str | Path,
    progress: ProgressFactory | None = None, log: Callable[[str], None] = lambda _m: None,
) -> RunOutcome:
    progress = progress or _null_progress
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    loaded = load_samples(inputs if isinstance(inputs, list) else [inputs], cfg.models, cfg.strict,
                          cfg.outcome.label_field)
    for bad in loaded.skipped:
        log(f"skipped {bad}")
    units = build_units(loaded)
    timings = {"load": time.perf_counter() - t0}
    judge = make_judge(cfg.judge)
    fingerprint = judge.fingerprint()
    cache = JudgeCache(cfg.cache or out / "cache.sqlite", fingerprint)
    pf_stats: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    try:
        t1 = time.perf_counter()
        if judge.kind == "listwise":
            if cfg.prefilter.enabled:
                raise ValueError("the prefilter applies to pairwise judges only (judge.protocol: pairwise)")
            mats, infos, judged, hits = judge_listwise(judge, cache, units, cfg.resolved_chunk_size(), progress)
            for u, w, info in zip(units, mats, infos):
                rows.append(unit_row(u, w, cfg, judge_output=info))
        else:
            masks = None
            if cfg.prefilter.enabled:
                masks, stats = prefilter_masks(units, cfg, progress)
                pf_stats = stats.as_dict()
                log(f"prefilter kept {stats.cells_kept}/{stats.cells_total} pairs; "
                    f"judge calls saved: {stats.judge_calls_saved}")
            mats_p, details, judged, hits = judge_pairwise(judge, cache, units, masks, cfg.resolved_chunk_size(), progress)
            for u, w, d in zip(units, mats_p, details):
                rows.append(unit_row(u, w, cfg, details=d))
        timings["judge"] = time.perf_counter() - t1
    finally:
        judge.close()
        cache.close()
    metrics = add_outcome(summarize_rows(rows, loaded.models, cfg.scoring), rows, cfg)
    metrics["skipped"] = loaded.skipped_summary()
    metrics["judge"] = {"fingerprint": fingerprint_id(fingerprint), "judged": judged, "cache_hits": hits}
    if pf_stats is not None:
        metrics["prefilter"] = pf_stats
    write_jsonl(out / "results.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    write_json(out / "run.json", {
        "inputs": [str(p) for p in (inputs if isinstance(inputs, list) else [inputs])],
        "config": cfg.model_dump(mode="json"), "judge_fingerprint": fingerprint,
        "fingerprint_id": fingerprint_id(fingerprint), "versions": versions(), "models": loaded.models,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    timings["total"] = time.perf_counter() - t0
    return RunOutcome(out, rows, metrics, judged, hits, pf_stats, timings)

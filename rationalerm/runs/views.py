"""Saved runs as the report and the exports see them: run.json, metrics.json and results.jsonl of a directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rationalerm._util.files import read_json, read_jsonl
from rationalerm.errors import OutputError
from rationalerm.scoring.rows import ResultRow
from rationalerm.scoring.settings import OutcomeConfig
from rationalerm.scoring.summary import add_outcome


@dataclass
class RunView:
    name: str
    """Short display name, unique among the runs shown together."""
    path: Path
    meta: dict[str, Any]
    metrics: dict[str, Any]
    rows: list[ResultRow]

    @property
    def models(self) -> list[str]:
        return list(self.metrics.get("models", {})) or list(self.meta.get("models", []))

    @property
    def label_field(self) -> str:
        return OutcomeConfig.saved(self.meta.get("config")).label_field

    @property
    def threshold(self) -> float:
        return float((self.metrics.get("outcome") or {}).get("deceptive_threshold",
                                                             OutcomeConfig.saved(self.meta.get("config")).deceptive_threshold))

    @property
    def date(self) -> str:
        """run.json's date, or (runs written before it was recorded) the time results.jsonl was written."""
        if self.meta.get("date"):
            return str(self.meta["date"])
        stamp = os.stat(self.path / "results.jsonl").st_mtime
        return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds") + " (file time)"


def load_view(path: str | Path, name: str | None = None, deceptive_threshold: float | None = None) -> RunView:
    """Read a run directory; OA is recomputed from the rows when metrics.json predates it or a threshold is given."""
    path = Path(path)
    for fname in ("results.jsonl", "metrics.json", "run.json"):
        if not (path / fname).exists():
            raise OutputError(f"{path / fname}: missing; is {path} a run directory?")
    meta = read_json(path / "run.json")
    metrics = read_json(path / "metrics.json")
    rows = read_jsonl(path / "results.jsonl")
    has_oa = all("oa" in m for m in metrics.get("models", {}).values()) and "outcome" in metrics
    if not has_oa or deceptive_threshold is not None:
        from rationalerm.config import RunConfig

        try:
            cfg: Any = RunConfig.model_validate(meta.get("config") or {})
        except Exception:  # a hand-made or foreign run.json: defaults
            cfg = RunConfig()
        if deceptive_threshold is not None:
            cfg.outcome.deceptive_threshold = deceptive_threshold
        add_outcome(metrics, rows, cfg.scoring, cfg.outcome)
    return RunView(name or path.name or str(path), path, meta, metrics, rows)


def load_views(paths: list[str | Path], deceptive_threshold: float | None = None) -> list[RunView]:
    """Several runs, named by their directory (with enough parent folders to tell them apart)."""
    paths = [Path(p) for p in paths]
    names = _short_names(paths)
    return [load_view(p, n, deceptive_threshold) for p, n in zip(paths, names)]


def _short_names(paths: list[Path]) -> list[str]:
    resolved = [p.resolve() for p in paths]
    for depth in range(1, 8):
        names = ["/".join(p.parts[-depth:]) for p in resolved]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]

"""Audit a run: draw (sample, model) units at random for people to label, and read their labels back.

A unit is one row of ``results.jsonl`` with a grid to label (a human list and a model list, both non-empty);
rows without one (an empty model checklist, a skipped row) score the same under any matcher and need no
label. The draw is uniform without replacement, or stratified (``model`` or ``domain``) with proportional
allocation; each drawn unit records its inclusion probability, so estimates can weight strata by their share.

Labels are the format ``compare --gold`` reads: one cell a line, ``{"id", "model", "i", "j", "label"}`` with
``label`` in [0, 1]. A unit counts as audited only when every cell of its grid is labelled (the annotation page
writes explicit 0s). People who label elsewhere get ``labels.template.jsonl`` (every cell, label null) and
Label Studio tasks (one per human item: pick the model item that expresses it, or none) with the labelling
config to paste; ``read_label_studio`` turns Label Studio's JSON export back into cells.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm._util.files import iter_records, read_json, write_json, write_jsonl
from rationalerm.errors import LoadError

STRATA = ("model", "domain")
"""What a stratified draw may stratify on."""

LABEL_STUDIO_CONFIG = """<View>
  <Header value="Does a model item express this human rationale? (id $id, model $model, human item $i)"/>
  <Text name="human" value="$human"/>
  <Choices name="match" toName="human" choice="single" showInline="false" value="$options"/>
</View>
"""


@dataclass(frozen=True)
class AuditUnit:
    """One drawn (sample, model) unit, with what a person needs to label its grid."""

    id: str
    model: str
    domain: str | None
    human: list[str]
    items: list[str]
    inclusion: float
    """Probability that the draw picks this unit (n_h / N_h of its stratum)."""
    stratum: str | None = None
    context: str | None = None
    response1: str | None = None
    response2: str | None = None


def gradeable(row: Mapping[str, Any]) -> bool:
    """A row with a grid to label."""
    return bool(row.get("human")) and bool(row.get("items"))


def draw(rows: Sequence[Mapping[str, Any]], n: int, seed: int, stratify: str | None = None) -> list[AuditUnit]:
    """``n`` gradeable units drawn without replacement (all of them if fewer), in the run's row order."""
    if stratify is not None and stratify not in STRATA:
        raise LoadError(f"--stratify must be one of {', '.join(STRATA)}, got {stratify!r}")
    pool = [r for r in rows if gradeable(r)]
    if not pool:
        raise LoadError("the run has no unit with a grid to label (every row lacks human or model items)")
    rng = np.random.default_rng(seed)
    groups: dict[str | None, list[int]] = defaultdict(list)
    for k, row in enumerate(pool):
        groups[None if stratify is None else str(row.get(stratify))].append(k)
    quotas = _allocate(min(n, len(pool)), {g: len(ks) for g, ks in groups.items()})
    chosen: dict[int, tuple[float, str | None]] = {}
    for g, ks in groups.items():
        picked: list[int] = rng.choice(len(ks), size=quotas[g], replace=False).tolist() if quotas[g] else []
        for p in picked:
            chosen[ks[int(p)]] = (quotas[g] / len(ks), g)
    return [_unit(pool[k], *chosen[k]) for k in sorted(chosen)]


def _allocate(n: int, sizes: Mapping[str | None, int]) -> dict[str | None, int]:
    """Proportional allocation of ``n`` over strata (largest remainders), at most each stratum's size."""
    total = sum(sizes.values())
    exact = {g: n * s / total for g, s in sizes.items()}
    quota = {g: min(sizes[g], int(v)) for g, v in exact.items()}
    for g in sorted(exact, key=lambda g: (-(exact[g] - int(exact[g])), str(g))):
        if sum(quota.values()) >= n:
            break
        if quota[g] < sizes[g]:
            quota[g] += 1
    return quota


def _unit(row: Mapping[str, Any], inclusion: float, stratum: str | None) -> AuditUnit:
    found = row.get("extra")
    extra: Mapping[str, Any] = found if isinstance(found, dict) else {}
    return AuditUnit(
        id=str(row["id"]), model=str(row["model"]), domain=row.get("domain"), human=list(row["human"]),
        items=list(row["items"]), inclusion=inclusion, stratum=stratum,
        **{k: extra.get(k) for k in ("context", "response1", "response2")},
    )


def write_audit(units: Sequence[AuditUnit], out: Path) -> None:
    """``audit.jsonl`` (the units), ``labels.template.jsonl`` and the Label Studio tasks and config."""
    write_jsonl(out / "audit.jsonl", [asdict(u) for u in units])
    write_jsonl(out / "labels.template.jsonl", (
        {"id": u.id, "model": u.model, "i": i, "j": j, "human": h, "item": s, "label": None}
        for u in units for i, h in enumerate(u.human) for j, s in enumerate(u.items)))
    write_json(out / "labelstudio.tasks.json", [
        {"data": {"id": u.id, "model": u.model, "i": i, "human": h,
                  "options": [{"value": "none"}] + [{"value": f"{j + 1}: {s}"} for j, s in enumerate(u.items)]}}
        for u in units for i, h in enumerate(u.human)])
    (out / "labelstudio.config.xml").write_text(LABEL_STUDIO_CONFIG, encoding="utf-8")


def read_units(path: Path) -> list[AuditUnit]:
    """The units of an ``audit.jsonl``."""
    return [AuditUnit(**rec.decoded()) for rec in iter_records(path)]


_CHOICE = re.compile(r"\s*(\d+)\s*:")


def read_label_studio(path: Path, units: Iterable[AuditUnit]) -> list[dict[str, Any]]:
    """Label Studio's JSON export of our tasks -> label cells (every cell of each answered human item)."""
    grid = {(u.id, u.model): len(u.items) for u in units}
    cells: list[dict[str, Any]] = []
    for k, task in enumerate(read_json(path), start=1):
        data, where = task.get("data", {}), f"{path}: task {k}"
        key = (str(data.get("id")), str(data.get("model")))
        if key not in grid:
            raise LoadError(f"{where}: id {key[0]!r} model {key[1]!r} is not a unit of this audit")
        choice = _choice(task, where)
        if choice is None:
            continue
        m = _CHOICE.match(choice)
        pick = int(m.group(1)) - 1 if m else -1
        cells.extend({"id": key[0], "model": key[1], "i": int(data["i"]), "j": j, "label": float(j == pick)}
                     for j in range(grid[key]))
    return cells


def _choice(task: Mapping[str, Any], where: str) -> str | None:
    """The chosen option of a task's last annotation (None: not annotated yet)."""
    for ann in reversed(task.get("annotations") or []):
        for res in ann.get("result") or []:
            if res.get("from_name") == "match":
                picked = (res.get("value") or {}).get("choices") or []
                if len(picked) != 1:
                    raise LoadError(f"{where}: one choice expected, got {picked!r}")
                return str(picked[0])
    return None

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

The page and the tasks show the sample's context and responses when the input has them: each results row
names its input record (``source`` = "path:line"), read back here when that file is still readable.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm._util.files import ensure_dir, iter_records, read_json, write_json, write_jsonl
from rationalerm.errors import LoadError

STRATA = ("model", "domain")
"""What a stratified draw may stratify on."""

LEVELS = {"fully (1)": 1.0, "mostly (0.75)": 0.75, "partially (0.5)": 0.5, "slightly (0.25)": 0.25}
"""The paper's levels above 0 (0 is "none"), as the Label Studio config spells them."""

NONE_CHOICE = "none"

LABEL_STUDIO_CONFIG = """<View>
  <Header value="Which model item expresses this human rationale? (id $id, model $model, human item $i)"/>
  <Text name="context" value="$context"/>
  <Text name="human" value="$human"/>
  <Choices name="match" toName="human" choice="single" showInline="false" value="$options"/>
  <Header value="How fully (optional, default fully)"/>
  <Choices name="level" toName="human" choice="single" showInline="true">
""" + "".join(f'    <Choice value="{v}"/>\n' for v in LEVELS) + """  </Choices>
</View>
"""
"""Label Studio labelling config for ``labelstudio.tasks.json``: one task per human item, the options are
"none" and "j: item text" (1-based), dynamic (``value="$options"``)."""


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
    source: str | None = None
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
    if n < 1:
        raise LoadError(f"--n must be at least 1, got {n}")
    pool = [r for r in rows if gradeable(r)]
    if not pool:
        raise LoadError("the run has no unit with a grid to label (every row lacks human or model items)")
    groups: dict[str | None, list[int]] = defaultdict(list)
    for k, row in enumerate(pool):
        groups[None if stratify is None else str(row.get(stratify))].append(k)
    quotas = allocate(min(n, len(pool)), {g: len(ks) for g, ks in groups.items()})
    rng = np.random.default_rng(seed)
    chosen: dict[int, tuple[float, str | None]] = {}
    for g in sorted(groups, key=str):  # a fixed order: the draw depends on the seed only
        ks = groups[g]
        for p in rng.choice(len(ks), size=quotas[g], replace=False).tolist():
            chosen[ks[int(p)]] = (quotas[g] / len(ks), g)
    return [_unit(pool[k], *chosen[k]) for k in sorted(chosen)]


def allocate(n: int, sizes: Mapping[str | None, int]) -> dict[str | None, int]:
    """Proportional allocation of ``n`` (at most the total) over strata by largest remainders: each stratum
    gets floor or ceil of ``n * size / total``, never more than its size, and the quotas sum to ``n``."""
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
    domain = row.get("domain")
    return AuditUnit(id=str(row["id"]), model=str(row["model"]), domain=None if domain is None else str(domain),
                     human=[str(h) for h in row["human"]], items=[str(s) for s in row["items"]],
                     inclusion=inclusion, stratum=stratum, source=row.get("source"))


def with_context(units: Sequence[AuditUnit], run_dir: Path) -> list[AuditUnit]:
    """The units with ``context``/``response1``/``response2`` of their input records, where readable.

    ``source`` is "path:line" as the run saw it (relative to where it ran): tried as given, then beside the
    run directory. An input that is gone or changed leaves the unit without context (labels need none)."""
    wanted: dict[str, set[int]] = defaultdict(set)
    for u in units:
        if u.source and (split := _split_source(u.source)):
            wanted[split[0]].add(split[1])
    found = {path: _records_at(path, lines, run_dir) for path, lines in wanted.items()}
    out = []
    for u in units:
        split = _split_source(u.source) if u.source else None
        rec = found.get(split[0], {}).get(split[1]) if split else None
        out.append(replace(u, context=_text(rec, "context"), response1=_text(rec, "response1"),
                           response2=_text(rec, "response2")) if rec else u)
    return out


def _text(rec: Mapping[str, Any], key: str) -> str | None:
    value = rec.get(key)
    return None if value is None or value == "" else str(value)


def _split_source(source: str) -> tuple[str, int] | None:
    path, _, line = source.rpartition(":")
    return (path, int(line)) if path and line.isdigit() else None


def _records_at(path: str, lines: set[int], run_dir: Path) -> dict[int, Mapping[str, Any]]:
    """The records of ``path`` at ``lines`` (a Parquet row counts as a line), or none if it cannot be read."""
    for candidate in (Path(path), run_dir / path, run_dir.parent / path):
        if candidate.is_file():
            try:
                return {r.line: r.value for r in iter_records(candidate)
                        if r.line in lines and isinstance(r.value, dict)}
            except LoadError:
                return {}
    return {}


def write_audit(units: Sequence[AuditUnit], out: Path) -> list[Path]:
    """``audit.jsonl`` (the units), ``labels.template.jsonl`` and the Label Studio tasks and config."""
    ensure_dir(out)
    write_jsonl(out / "audit.jsonl", [asdict(u) for u in units])
    write_jsonl(out / "labels.template.jsonl", (
        {"id": u.id, "model": u.model, "i": i, "j": j, "human": h, "item": s, "label": None}
        for u in units for i, h in enumerate(u.human) for j, s in enumerate(u.items)))
    write_json(out / "labelstudio.tasks.json", [
        {"data": {"id": u.id, "model": u.model, "i": i, "human": h, "context": u.context or "",
                  "options": [{"value": NONE_CHOICE}] + [{"value": f"{j + 1}: {s}"} for j, s in enumerate(u.items)]}}
        for u in units for i, h in enumerate(u.human)])
    (out / "labelstudio.config.xml").write_text(LABEL_STUDIO_CONFIG, encoding="utf-8")
    return [out / name for name in ("audit.jsonl", "labels.template.jsonl", "labelstudio.tasks.json",
                                    "labelstudio.config.xml")]


def read_units(path: Path) -> list[AuditUnit]:
    """The units of an ``audit.jsonl``."""
    units = []
    for rec in iter_records(path):
        value = rec.decoded()
        try:
            units.append(AuditUnit(**value))
        except TypeError as e:
            raise LoadError(f"{rec.where}: not an audit unit ({e})") from e
    return units


_CHOICE = re.compile(r"\s*(\d+)\s*:")


def read_label_studio(path: Path, units: Iterable[AuditUnit]) -> list[dict[str, Any]]:
    """Label Studio's JSON export of our tasks -> label cells, every cell of each answered human item (the
    picked item gets its level, default 1; every other item 0). Unanswered tasks give no cell."""
    grid = {(u.id, u.model): u for u in units}
    export = read_json(path)
    if not isinstance(export, list):
        raise LoadError(f"{path}: a Label Studio JSON export (a list of tasks) expected")
    answers: dict[tuple[str, str, int], tuple[int, float]] = {}
    for k, task in enumerate(export, start=1):
        where = f"{path}: task {k}"
        key, i = _task_key(task, grid, where)
        answer = _answer(task, len(grid[key].items), where)
        if answer is None:
            continue
        if answers.setdefault((*key, i), answer) != answer:
            raise LoadError(f"{where}: id {key[0]!r} model {key[1]!r} human item {i} answered twice, differently")
    return [{"id": ident, "model": model, "i": i, "j": j, "label": level if j == pick else 0.0}
            for (ident, model, i), (pick, level) in answers.items() for j in range(len(grid[ident, model].items))]


def fully_labelled(units: Iterable[AuditUnit], cells: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """The units every cell of whose grid has a label: only they count as audited."""
    have = {(c["id"], c["model"], c["i"], c["j"]) for c in cells if c.get("label") is not None}
    return {(u.id, u.model) for u in units
            if all((u.id, u.model, i, j) in have for i in range(len(u.human)) for j in range(len(u.items)))}


def _task_key(task: Any, grid: Mapping[tuple[str, str], AuditUnit], where: str) -> tuple[tuple[str, str], int]:
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        raise LoadError(f"{where}: a task with 'data' expected")
    key = (str(data.get("id")), str(data.get("model")))
    if key not in grid:
        raise LoadError(f"{where}: id {key[0]!r} model {key[1]!r} is not a unit of this audit")
    i = data.get("i")
    if not isinstance(i, int) or not 0 <= i < len(grid[key].human):
        raise LoadError(f"{where}: human item {i!r} is outside the unit's {len(grid[key].human)} human items")
    return key, i


def _answer(task: Mapping[str, Any], n_items: int, where: str) -> tuple[int, float] | None:
    """(picked item, -1 for none; level) of a task's last kept annotation; None: not annotated yet."""
    chosen = _choices(task, where)
    if "match" not in chosen:
        return None
    pick_text = chosen["match"]
    m = _CHOICE.match(pick_text)
    pick = int(m.group(1)) - 1 if m else -1
    if (m is None and pick_text != NONE_CHOICE) or pick >= n_items:
        raise LoadError(f"{where}: {pick_text!r} is not one of the task's options")
    level = chosen.get("level")
    if level is not None and level not in LEVELS:
        raise LoadError(f"{where}: level {level!r} is not one of {', '.join(LEVELS)}")
    return pick, (LEVELS[level] if level is not None and pick >= 0 else 1.0)


def _choices(task: Mapping[str, Any], where: str) -> dict[str, str]:
    """``from_name -> choice`` of the task's last annotation that was not cancelled."""
    kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return {}
    out: dict[str, str] = {}
    for res in kept[-1].get("result") or []:
        picked = (res.get("value") or {}).get("choices") or []
        if len(picked) != 1:
            raise LoadError(f"{where}: one choice expected for {res.get('from_name')!r}, got {picked!r}")
        out[str(res.get("from_name"))] = str(picked[0])
    return out

"""IBM Debater ArgKP (key point matching, v1): real human match labels for matcher quality checks.

Crowd annotators labelled (argument, key point) pairs as matching (1) or not (0). We read it two ways
(see ../shared/data/README.md):

- **pairs**: key point = reference (human) item, argument = candidate (model) item, label = gold match.
  Only labelled pairs are kept; pairs absent from ``labels_*.csv`` were undecided and are left out,
  never counted as 0.
- **tasks**: one per (topic, stance): the key points play the human checklist, the arguments the model
  items; ``gold`` is the n_kp x n_arg label matrix with NaN where a pair is unlabelled.

Files: ``arguments_{split}.csv`` (arg_id, argument, topic, stance), ``key_points_{split}.csv``
(key_point_id, key_point, topic, stance), ``labels_{split}.csv`` (arg_id, key_point_id, label).
Malformed rows raise :class:`ArgKPError` naming the file and line.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from rationalerm.errors import ArgKPError

SPLITS = ("train", "dev")
Split = Literal["train", "dev", "all"]

_ARG_COLS = ("arg_id", "argument", "topic", "stance")
_KP_COLS = ("key_point_id", "key_point", "topic", "stance")
_LABEL_COLS = ("arg_id", "key_point_id", "label")


@dataclass(frozen=True)
class PairRecord:
    """One labelled (key point, argument) pair. ``key_point`` is the reference item, ``argument`` the candidate."""

    split: str
    topic: str
    stance: int
    key_point_id: str
    key_point: str
    arg_id: str
    argument: str
    label: int

    @property
    def reference(self) -> str:
        return self.key_point

    @property
    def candidate(self) -> str:
        return self.argument


@dataclass
class MatchTask:
    """One (topic, stance) group as a one-to-one matching task.

    Rows are key points (the human checklist), columns arguments (the model items). ``gold[i, j]`` is 1.0 or
    0.0 for labelled pairs and NaN for unlabelled ones.
    """

    split: str
    topic: str
    stance: int
    key_point_ids: list[str]
    key_points: list[str]
    arg_ids: list[str]
    arguments: list[str]
    gold: np.ndarray = field(repr=False)

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.gold)

    @property
    def n_labelled(self) -> int:
        return int(self.labelled.sum())

    @property
    def n_matches(self) -> int:
        return int(np.nansum(self.gold))

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.gold.shape
        return int(rows), int(cols)

    def pairs(self) -> Iterator[tuple[int, int]]:
        """(row, column) of every labelled cell."""
        rows, cols = np.nonzero(self.labelled)
        yield from zip(rows.tolist(), cols.tolist())

    def subset_columns(self, cols: Sequence[int]) -> MatchTask:
        cols = list(cols)
        return MatchTask(
            split=self.split,
            topic=self.topic,
            stance=self.stance,
            key_point_ids=list(self.key_point_ids),
            key_points=list(self.key_points),
            arg_ids=[self.arg_ids[c] for c in cols],
            arguments=[self.arguments[c] for c in cols],
            gold=self.gold[:, cols].copy(),
        )


@dataclass
class ArgKP:
    """The loaded split(s): labelled pairs and per-(topic, stance) matching tasks."""

    split: str
    path: Path
    pairs: list[PairRecord]
    tasks: list[MatchTask]

    @property
    def topics(self) -> list[str]:
        return sorted({p.topic for p in self.pairs})

    @property
    def n_matches(self) -> int:
        return sum(p.label for p in self.pairs)

    def task_of(self, topic: str, stance: int) -> MatchTask:
        for t in self.tasks:
            if t.topic == topic and t.stance == stance:
                return t
        raise KeyError((topic, stance))

    def sample(self, max_pairs: int | None, seed: int = 0) -> ArgKP:
        """A reproducible subsample of at most ``max_pairs`` labelled pairs, stratified by label.

        Tasks are restricted to the arguments that keep at least one sampled pair, and their gold matrices
        to the sampled pairs (everything else becomes NaN), so pairwise and task metrics see the same labels.
        """
        if max_pairs is None or max_pairs >= len(self.pairs):
            return self
        if max_pairs < 1:
            raise ValueError("max_pairs must be >= 1")
        rng = random.Random(seed)
        pos = [i for i, p in enumerate(self.pairs) if p.label == 1]
        neg = [i for i, p in enumerate(self.pairs) if p.label == 0]
        n_pos = round(max_pairs * len(pos) / len(self.pairs))
        n_pos = min(len(pos), max(1 if pos else 0, n_pos))
        n_neg = min(len(neg), max_pairs - n_pos)
        keep = sorted(rng.sample(pos, n_pos) + rng.sample(neg, n_neg))
        pairs = [self.pairs[i] for i in keep]
        return ArgKP(split=self.split, path=self.path, pairs=pairs, tasks=_restrict_tasks(self.tasks, pairs))


def _read_csv(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number where the record starts, {column: raw value}) for each non-blank record."""
    if not path.is_file():
        raise ArgKPError(f"{path}: no such file")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise ArgKPError(f"{path}:1: empty file, expected header {','.join(columns)}") from None
        except csv.Error as e:
            raise ArgKPError(f"{path}:1: malformed CSV header ({e})") from None
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise ArgKPError(f"{path}:1: header lacks column(s) {', '.join(missing)} (got {','.join(header)})")
        index = {c: header.index(c) for c in columns}
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise ArgKPError(f"{path}:{start}: malformed CSV ({e})") from None
            line = start
            start = reader.line_num + 1
            if not row or all(not c.strip() for c in row):
                continue  # blank line
            if len(row) != len(header):
                raise ArgKPError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
            yield line, {c: row[i] for c, i in index.items()}


def _nonempty(path: Path, line: int, row: dict[str, str], col: str) -> str:
    value = row[col].strip()
    if not value:
        raise ArgKPError(f"{path}:{line}: empty {col}")
    return value


def _stance(path: Path, line: int, raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if value not in (1, -1):
        raise ArgKPError(f"{path}:{line}: stance must be 1 or -1, got {raw!r}")
    return value


def _read_items(path: Path, columns: Sequence[str]) -> dict[str, tuple[str, str, int, int]]:
    """id -> (text, topic, stance, line) for an arguments or key points file."""
    id_col, text_col = columns[0], columns[1]
    items: dict[str, tuple[str, str, int, int]] = {}
    for line, row in _read_csv(path, columns):
        item_id = _nonempty(path, line, row, id_col)
        text = _nonempty(path, line, row, text_col)
        topic = _nonempty(path, line, row, "topic")
        stance = _stance(path, line, row["stance"])
        if item_id in items:
            raise ArgKPError(f"{path}:{line}: duplicate {id_col} {item_id!r} (first on line {items[item_id][3]})")
        items[item_id] = (text, topic, stance, line)
    return items


def _load_split(root: Path, split: str) -> tuple[list[PairRecord], list[MatchTask]]:
    args_path = root / f"arguments_{split}.csv"
    kps_path = root / f"key_points_{split}.csv"
    labels_path = root / f"labels_{split}.csv"
    args = _read_items(args_path, _ARG_COLS)
    kps = _read_items(kps_path, _KP_COLS)

    labels: dict[tuple[str, str], int] = {}
    label_line: dict[tuple[str, str], int] = {}
    for line, row in _read_csv(labels_path, _LABEL_COLS):
        arg_id = _nonempty(labels_path, line, row, "arg_id")
        kp_id = _nonempty(labels_path, line, row, "key_point_id")
        raw = row["label"].strip()
        if raw not in ("0", "1"):
            raise ArgKPError(f"{labels_path}:{line}: label must be 0 or 1, got {row['label']!r}")
        if arg_id not in args:
            raise ArgKPError(f"{labels_path}:{line}: unknown arg_id {arg_id!r} (not in {args_path.name})")
        if kp_id not in kps:
            raise ArgKPError(f"{labels_path}:{line}: unknown key_point_id {kp_id!r} (not in {kps_path.name})")
        a, k = args[arg_id], kps[kp_id]
        if (a[1], a[2]) != (k[1], k[2]):
            raise ArgKPError(
                f"{labels_path}:{line}: {arg_id} ({a[1]!r}, stance {a[2]}) and {kp_id} ({k[1]!r}, stance {k[2]}) "
                "belong to different topic/stance groups"
            )
        key = (arg_id, kp_id)
        if key in labels:
            raise ArgKPError(
                f"{labels_path}:{line}: duplicate label for {arg_id}/{kp_id} (first on line {label_line[key]})"
            )
        labels[key] = int(raw)
        label_line[key] = line

    # Pairs in labels-file order (deterministic).
    pairs = [
        PairRecord(split=split, topic=kps[k][1], stance=kps[k][2], key_point_id=k, key_point=kps[k][0],
                   arg_id=a, argument=args[a][0], label=lab)
        for (a, k), lab in labels.items()
    ]

    # Tasks: one per (topic, stance) that has key points; items in file order.
    groups: dict[tuple[str, int], tuple[list[str], list[str]]] = {}
    for kp_id, (_, topic, stance, _) in kps.items():
        groups.setdefault((topic, stance), ([], []))[0].append(kp_id)
    for arg_id, (_, topic, stance, _) in args.items():
        if (topic, stance) in groups:
            groups[(topic, stance)][1].append(arg_id)
    tasks = []
    for (topic, stance), (kp_ids, arg_ids) in groups.items():
        gold = np.full((len(kp_ids), len(arg_ids)), np.nan)
        col = {a: j for j, a in enumerate(arg_ids)}
        for i, kp in enumerate(kp_ids):
            for arg in arg_ids:
                lab = labels.get((arg, kp))
                if lab is not None:
                    gold[i, col[arg]] = lab
        # Keep only arguments with at least one labelled pair in the group.
        keep = np.nonzero((~np.isnan(gold)).any(axis=0))[0]
        tasks.append(
            MatchTask(split=split, topic=topic, stance=stance, key_point_ids=kp_ids,
                      key_points=[kps[k][0] for k in kp_ids], arg_ids=[arg_ids[j] for j in keep],
                      arguments=[args[arg_ids[j]][0] for j in keep], gold=gold[:, keep])
        )
    return pairs, tasks


def _restrict_tasks(tasks: Sequence[MatchTask], pairs: Sequence[PairRecord]) -> list[MatchTask]:
    keep_pairs = {(p.split, p.arg_id, p.key_point_id) for p in pairs}
    out = []
    for t in tasks:
        gold = np.full_like(t.gold, np.nan)
        for i, j in t.pairs():
            if (t.split, t.arg_ids[j], t.key_point_ids[i]) in keep_pairs:
                gold[i, j] = t.gold[i, j]
        cols = np.nonzero((~np.isnan(gold)).any(axis=0))[0]
        if len(cols) == 0:
            continue
        sub = t.subset_columns(cols.tolist())
        sub.gold = gold[:, cols]
        out.append(sub)
    return out


def load_argkp(split: Split, path: str | Path) -> ArgKP:
    """Load ArgKP ``split`` (``train``, ``dev`` or ``all``) from the folder ``path`` (the ``*_{split}.csv`` files)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ArgKPError(f"{root}: ArgKP folder not found (pass the folder that holds arguments_*.csv)")
    if split not in (*SPLITS, "all"):
        raise ArgKPError(f"split must be train, dev or all, got {split!r}")
    pairs: list[PairRecord] = []
    tasks: list[MatchTask] = []
    for s in SPLITS if split == "all" else (split,):
        p, t = _load_split(root, s)
        pairs += p
        tasks += t
    return ArgKP(split=split, path=root, pairs=pairs, tasks=tasks)


def label_records(data: ArgKP, undecided: float | None = None) -> list[dict[str, object]]:
    """Training labels for ``rationalerm train``: key point = human, argument = item, the crowd label.

    ``undecided``: also emit every unlabelled (key point, argument) cell of a topic-stance group, with this
    label. ArgKP leaves out the pairs its annotators were undecided on (15-60% said "match"); the KPA-2021
    strict metric counts them as no match, the relaxed one as a match.
    """
    rows: list[dict[str, object]] = [{"human": p.key_point, "item": p.argument, "label": p.label} for p in data.pairs]
    if undecided is not None:
        for t in data.tasks:
            for i, j in zip(*np.nonzero(np.isnan(t.gold))):
                rows.append({"human": t.key_points[i], "item": t.arguments[j], "label": undecided})
    return rows

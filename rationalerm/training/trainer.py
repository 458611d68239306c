"""``rationalerm train``: fit a cross-encoder matcher on pair labels (DESIGN.md step 9).

Labels come from human pair labels (JSONL or Parquet, ``{"human", "item", "label"}``, label 0/1 or a float in
[0, 1]) or from a run directory of any judge (distillation: every judged cell of ``results.jsonl`` becomes a
soft label, its score). The model is a sentence-transformers ``CrossEncoder`` (one logit, human item first)
trained with binary cross-entropy (``BinaryCrossEntropyLoss`` with ``pos_weight``); a held-out validation split
*by human item* (no human item on both sides) gives the AUC, best-F1 and kappa at the threshold the
cross-encoder judge uses by default (0.5 on the calibrated probability, or the validation best-F1 one).

Calibration. With positive weighting w, the loss is minimised at ``logit = log(w) + logit(q)`` (q the true match
probability, or the soft label), so after training the classifier bias is shifted by ``-log(w)``: the saved
model's plain sigmoid output is then an estimate of q itself (for distillation: of the teacher's score), with
no fitted calibration and nothing extra to load.

Output folder: the sentence-transformers CrossEncoder files plus ``training.json`` (the model card: base model,
data hash and size, recipe, seed, versions, validation metrics, threshold), written last.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from rationalerm._util.hashing import file_sha256, stable_hash
from rationalerm.errors import ConfigError, LabelError, TrainError

TRAINING_JSON = "training.json"
CARD_FORMAT = "rationalerm-cross-encoder/1"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# ------------------------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairLabel:
    human: str
    item: str
    label: float
    source: str  # file:line (or run dir's results.jsonl:line) of the first occurrence


@dataclass
class LabelSet:
    """Unique (human, item) pairs with their label (the mean where a pair is labelled more than once)."""

    pairs: list[PairLabel]
    sources: list[str]
    kinds: list[str]  # "labels" or "run" per source
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count (run cells that are not labels)

    @property
    def soft(self) -> bool:
        """True when any label is strictly between 0 and 1 (distillation, or averaged duplicates)."""
        return any(0.0 < p.label < 1.0 for p in self.pairs)

    def sha256(self) -> str:
        """Content hash of the label set (order-independent): the model card's data identity."""
        rows = sorted((p.human, p.item, round(p.label, 6)) for p in self.pairs)
        return stable_hash(rows, 64)


def _label_value(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LabelError(f"{where}: 'label' must be 0, 1 or a number in [0, 1], got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise LabelError(f"{where}: 'label' must be in [0, 1], got {value!r}")
    return v


def _text(rec: dict[str, Any], key: str, where: str) -> str:
    value = rec.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in rec else f"a {type(value).__name__}"
        raise LabelError(f"{where}: '{key}' must be a string, got {got}")
    if not value.strip():
        raise LabelError(f"{where}: '{key}' is blank")
    return value


def _label_records(path: Path) -> Iterable[tuple[str, Any]]:
    """``(where, record)`` of a JSONL or Parquet label file; an unreadable line raises at once."""
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise LabelError(f"{path}:0: not a readable Parquet file ({e})") from e
        for i, row in enumerate(table.to_pylist(), start=1):
            yield f"{path}:{i}", row
        return
    with path.open("rb") as f:
        for i, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                yield f"{path}:{i}", orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                raise LabelError(f"{path}:{i}: invalid JSON ({e.args[0] if e.args else e})") from None


def read_label_file(path: str | Path) -> list[PairLabel]:
    """Human pair labels: one ``{"human": str, "item": str, "label": 0|1|float in [0, 1]}`` per line or row."""
    path = Path(path)
    out = []
    for where, rec in _label_records(path):
        if not isinstance(rec, dict):
            raise LabelError(f"{where}: expected an object with human, item and label, got {type(rec).__name__}")
        if "label" not in rec:
            raise LabelError(f"{where}: missing 'label'")
        if "human" not in rec and {"id", "model", "i", "j"} <= rec.keys():
            raise LabelError(f"{where}: training needs the texts: {{\"human\", \"item\", \"label\"}} "
                             "(id/model/i/j labels only make sense beside their run)")
        out.append(PairLabel(_text(rec, "human", where), _text(rec, "item", where),
                             _label_value(rec["label"], where), where))
    return out


def read_run_labels(run_dir: str | Path) -> tuple[list[PairLabel], dict[str, int]]:
    """Distillation labels: every judged cell of a run's ``results.jsonl``, its score as a soft label.

    Skipped (counted by reason): rows without a usable matrix (a failed listwise answer), cells the prefilter
    dropped or blank items (never judged), and failed cells (no number).
    """
    run_dir = Path(run_dir)
    results = run_dir / "results.jsonl"
    if not results.is_file():
        raise LabelError(f"{run_dir}: not a run directory (no results.jsonl)")
    out: list[PairLabel] = []
    skipped: dict[str, int] = {}

    def skip(reason: str, n: int = 1) -> None:
        skipped[reason] = skipped.get(reason, 0) + n

    with results.open("rb") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            where = f"{results}:{line}"
            try:
                row = orjson.loads(raw)
            except orjson.JSONDecodeError as e:
                raise LabelError(f"{where}: invalid JSON ({e.args[0] if e.args else e})") from None
            if not isinstance(row, dict) or not isinstance(row.get("human"), list) or not isinstance(row.get("items"), list):
                raise LabelError(f"{where}: not a results row (needs 'human' and 'items' lists)")
            human, items, matrix = row["human"], row["items"], row.get("matrix")
            if matrix is None:
                skip("row without a matrix (failed judgement)", len(human) * len(items))
                continue
            if len(matrix) != len(human) or any(not isinstance(r, list) or len(r) != len(items) for r in matrix):
                raise LabelError(f"{where}: matrix shape does not match human x items")
            details = row.get("details")  # pairwise runs: None where the cell was never judged
            for i, h in enumerate(human):
                for j, s in enumerate(items):
                    if not (isinstance(h, str) and isinstance(s, str) and h.strip() and s.strip()):
                        skip("blank item")
                        continue
                    if details is not None and details[i][j] is None:
                        skip("not judged (prefilter)")
                        continue
                    d = details[i][j] if details is not None else None
                    value = matrix[i][j]
                    if (value is None or (isinstance(d, dict) and (d.get("failed") or d.get("error")))
                            or not isinstance(value, (int, float)) or not math.isfinite(value)):
                        skip("failed cell")
                        continue
                    out.append(PairLabel(h, s, min(1.0, max(0.0, float(value))), f"{where}[{i},{j}]"))
    return out, skipped


def read_labels(sources: Sequence[str | Path]) -> LabelSet:
    """Read every source (a label file or a run directory) into one set of unique pairs."""
    if not sources:
        raise LabelError("no label source given")
    merged: dict[tuple[str, str], list[Any]] = {}
    kinds, skipped, total = [], {}, 0
    for src in sources:
        p = Path(src)
        if p.is_dir():
            labels, sk = read_run_labels(p)
            kinds.append("run")
            for k, v in sk.items():
                skipped[k] = skipped.get(k, 0) + v
        elif p.is_file():
            labels = read_label_file(p)
            kinds.append("labels")
        else:
            raise LabelError(f"{p}: no such file or run directory")
        total += len(labels)
        for lab in labels:
            slot = merged.setdefault((lab.human, lab.item), [0.0, 0, lab.source])
            slot[0] += lab.label
            slot[1] += 1
    pairs = [PairLabel(h, s, total_ / n, src) for (h, s), (total_, n, src) in merged.items()]
    if not pairs:
        raise LabelError(f"{', '.join(map(str, sources))}: no labelled pair")
    return LabelSet(pairs, [str(s) for s in sources], kinds, duplicates=total - len(pairs), skipped=skipped)


def split_by_human(pairs: Sequence[PairLabel], val_fraction: float, seed: int) -> tuple[list[PairLabel], list[PairLabel]]:
    """Hold out a seeded share of the *human items* (with all their pairs): no human item is on both sides."""
    if val_fraction <= 0:
        return list(pairs), []
    humans = sorted({p.human for p in pairs})
    if len(humans) < 2:
        return list(pairs), []
    rng = random.Random(seed)
    rng.shuffle(humans)
    n_val = min(len(humans) - 1, max(1, round(val_fraction * len(humans))))
    val_h = set(humans[:n_val])
    return [p for p in pairs if p.human not in val_h], [p for p in pairs if p.human in val_h]


# ------------------------------------------------------------------------------------------------------------
# Metrics (numpy only: no scikit-learn at run time)
# ------------------------------------------------------------------------------------------------------------


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Mann-Whitney AUC with average ranks for ties; None without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and Cohen's kappa of ``score >= threshold``."""
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(scores, dtype=float) >= threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    po = float((pred == y).mean()) if y.size else 0.0
    pe = float(pred.mean() * y.mean() + (1 - pred.mean()) * (1 - y.mean())) if y.size else 0.0
    kappa = (po - pe) / (1 - pe) if pe < 1 else (1.0 if po == 1 else 0.0)
    return {"threshold": float(threshold), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0, "kappa": float(kappa)}


def best_f1_threshold(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The score cut ``score >= t`` with the highest F1 (ties: the higher t), over every distinct score."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), len(s_sorted) - 1]  # end of each run of equal scores
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    pos = y.sum()
    f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + pos, 1), 0.0)
    best = int(np.flatnonzero(f1 == f1.max())[0])  # first = highest threshold among the best
    return float(s_sorted[last[best]])


def validation_metrics(labels: Sequence[float], scores: Sequence[float]) -> dict[str, Any]:
    """AUC, best-F1 threshold (with P/R/F1/kappa there) against labels >= 0.5; correlations for soft labels."""
    lab = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    y = (lab >= 0.5).astype(int)
    out: dict[str, Any] = {"n": int(len(y)), "positives": int(y.sum()), "auc": roc_auc(y, s)}
    if len(y) and 0 < y.sum() < len(y):
        out["best"] = binary_metrics(y, s, best_f1_threshold(y, s))
    else:
        out["best"] = None
    if np.any((lab > 0) & (lab < 1)) and len(lab) >= 3 and np.std(lab) > 0 and np.std(s) > 0:
        from scipy.stats import pearsonr, spearmanr

        out["spearman"] = float(spearmanr(lab, s)[0])
        out["pearson"] = float(pearsonr(lab, s)[0])
        out["mae"] = float(np.abs(lab - s).mean())
    return out


# ------------------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """The training recipe (defaults: the measured CPU recipe of benchmarks/RESULTS.md)."""

    epochs: float = 2.0
    lr: float = 1e-4
    batch_size: int = 16
    max_length: int = 128
    pos_weight: float | str = "auto"  # "auto" = negatives / positives (label mass), or a number; 1 = none
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs)
    precision: str = "auto"  # "auto" (bf16 autocast where the CPU/GPU has bf16 units), "bf16" or "fp32"
    threshold: float | str = 0.5  # the judge's threshold on the calibrated probability, or "best-f1" (validation)
    val_fraction: float = 0.1
    seed: int = 0


ProgressFn = Callable[[int, int, float], None]
"""Called after each optimizer step with (step, total steps, running loss)."""


def _cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matrix units (AVX512-BF16 or AMX), where bf16 autocast trains ~2x faster."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: str) -> str:
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision != "auto":
        return precision
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device == "cpu" and _cpu_has_bf16() else "fp32"


def _auto_device(device: str | None) -> str:
    if device:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


def weights_sha256(folder: str | Path) -> str | None:
    """sha256 of a model folder's weights file (the content identity of a trained model); None if absent."""
    for name in WEIGHT_FILES:
        p = Path(folder) / name
        if p.is_file():
            return file_sha256(p)
    return None


def load_cross_encoder(model: str, device: str | None = None, max_length: int | None = None, *,
                       what: str = "cross-encoder", **kwargs: Any) -> Any:
    """A sentence-transformers CrossEncoder by path (never touches a hub) or name, one output logit; a model that
    is not on this machine is a one-line error that says so."""
    if Path(model).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers.cross_encoder import CrossEncoder
    from transformers.utils import logging as hf_logging

    from rationalerm._util.local_models import loading

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    with loading(model, what):
        return CrossEncoder(model, device=_auto_device(device), max_length=max_length, **kwargs)


def predict_probs(model: Any, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Sigmoid of the model's logit for each (human, item) pair; length-sorted batches (little padding).

    The batches depend only on ``pairs`` (not on what ran before), so a resumed run scores its remaining
    chunks exactly as an uninterrupted one did.
    """
    import torch

    out = np.empty(len(pairs), dtype=np.float64)
    order = sorted(range(len(pairs)), key=lambda k: (len(pairs[k][0]) + len(pairs[k][1]), k))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        logits = model.predict([list(pairs[k]) for k in idx], batch_size=len(idx), activation_fn=torch.nn.Identity(),
                               show_progress_bar=False, convert_to_numpy=True)
        out[idx] = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))
        if progress:
            progress(len(idx))
    return out


def _classifier_bias(model: Any) -> Any:
    """The bias of the model's final single-logit layer (BERT-like: ``classifier``; RoBERTa-like:
    ``classifier.out_proj``; decoder-style: ``score``), or None."""
    import torch

    hf = model.model
    head = getattr(hf, "classifier", None) or getattr(hf, "score", None)
    head = getattr(head, "out_proj", head)
    if isinstance(head, torch.nn.Linear) and head.out_features == 1 and head.bias is not None:
        return head.bias
    return None


@dataclass
class TrainResult:
    out_dir: Path
    card: dict[str, Any]


def train(
    labels: LabelSet, out_dir: str | Path, *, base: str | None = None, recipe: Recipe | None = None,
    device: str | None = None, overwrite: bool = False, progress: ProgressFn | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> TrainResult:
    """Fit a cross-encoder on ``labels`` and save it (CrossEncoder folder + training.json) to ``out_dir``."""
    import tempfile

    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import PrinterCallback

    from rationalerm.runs.directory import versions
    from rationalerm.training.parts import LengthGroupedBatchSampler, StepWatcher

    recipe = recipe or Recipe()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise TrainError(f"{out}: exists and is not empty (use --overwrite to replace it)")
        if out.is_dir() and not (out / TRAINING_JSON).exists() and not (out / "config.json").exists():
            raise TrainError(f"{out}: not a model folder; refusing to overwrite it")
    if recipe.epochs <= 0 and not recipe.max_steps:
        raise TrainError("epochs must be > 0 (or give max_steps)")
    if isinstance(recipe.pos_weight, (int, float)) and recipe.pos_weight <= 0:
        raise TrainError("pos_weight must be > 0")
    if recipe.threshold != "best-f1" and not (isinstance(recipe.threshold, (int, float)) and 0 <= recipe.threshold < 1):
        raise TrainError(f"threshold must be in [0, 1) or 'best-f1', not {recipe.threshold!r}")

    from rationalerm.judges.embedding import default_model_path

    base_name = base or default_model_path()
    train_set, val_set = split_by_human(labels.pairs, recipe.val_fraction, recipe.seed)
    if not train_set:
        raise TrainError("no training pair left after the validation split")
    mass_pos = sum(p.label for p in train_set)
    mass_neg = len(train_set) - mass_pos
    if recipe.pos_weight == "auto":
        pos_weight = mass_neg / mass_pos if mass_pos > 0 and mass_neg > 0 else 1.0
    else:
        pos_weight = float(recipe.pos_weight)

    dev = _auto_device(device)
    if dev.startswith("cuda:") and dev != "cuda:0":  # the trainer always trains on the first visible GPU
        raise TrainError(f"--device {dev}: pick the GPU with CUDA_VISIBLE_DEVICES={dev.split(':', 1)[1]} and --device cuda")
    precision = resolve_precision(recipe.precision, dev)
    from transformers import set_seed

    set_seed(recipe.seed)  # the classifier head is initialised when the base loads
    log(f"base {base_name}; {len(train_set)} training pairs, {len(val_set)} validation pairs "
        f"({len({p.human for p in val_set})} held-out human items); pos_weight {pos_weight:.3f}; device {dev} ({precision})")
    t_load = time.perf_counter()
    model = load_cross_encoder(base_name, dev, recipe.max_length, what="train --base", num_labels=1)
    model.max_seq_length = recipe.max_length
    load_s = time.perf_counter() - t_load

    loss_fn = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(pos_weight))
    steps_per_epoch = math.ceil(len(train_set) / recipe.batch_size)
    total = recipe.max_steps or max(1, math.ceil(steps_per_epoch * recipe.epochs))
    dataset = Dataset.from_dict({"human": [p.human for p in train_set], "item": [p.item for p in train_set],
                                 "label": [float(p.label) for p in train_set]})
    watcher = StepWatcher(progress)
    with tempfile.TemporaryDirectory(prefix="rationalerm-train-") as scratch:  # the trainer saves nothing here
        args = CrossEncoderTrainingArguments(
            output_dir=scratch, max_steps=total, per_device_train_batch_size=recipe.batch_size,
            learning_rate=recipe.lr, lr_scheduler_type="linear", warmup_steps=recipe.warmup_ratio,
            weight_decay=recipe.weight_decay, max_grad_norm=1.0, seed=recipe.seed, data_seed=recipe.seed,
            bf16=precision == "bf16", use_cpu=dev == "cpu", batch_sampler=LengthGroupedBatchSampler,
            logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_pin_memory=False,
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss_fn,
                                      callbacks=[watcher])
        trainer.remove_callback(PrinterCallback)  # the rich bar shows the loss; no dict per step on stdout
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
    step, losses, running = trainer.state.global_step, watcher.losses, watcher.running
    model.eval()

    # Prior shift: undo the positive weighting so that sigmoid(logit) estimates the label itself.
    offset = -math.log(pos_weight)
    bias = _classifier_bias(model)
    calibration: dict[str, Any] = {"method": "none"}
    if bias is not None and offset != 0.0:
        with torch.no_grad():
            bias.add_(offset)
        calibration = {"method": "prior shift: classifier bias += -log(pos_weight)", "logit_offset": offset}
    elif offset != 0.0:
        calibration = {"method": "none (no single-logit classifier bias found; scores stay weighted)",
                       "logit_offset": 0.0}

    if out.exists() and overwrite:
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    del trainer, model  # the trainer's mixed-precision wrapper stays on the in-memory model's forward

    # Validation scores the saved folder itself, exactly as the cross-encoder judge will load it.
    t_val = time.perf_counter()
    val_metrics: dict[str, Any] | None = None
    # The default 0.5 on the calibrated probability ("more likely a match than not"): on ArgKP dev it agreed
    # with people as well as the dev-optimal threshold, while the validation best-F1 one drifted (RESULTS.md).
    threshold = 0.5 if recipe.threshold == "best-f1" else float(recipe.threshold)
    if val_set:
        saved = load_cross_encoder(str(out), dev, recipe.max_length)
        probs = predict_probs(saved, [(p.human, p.item) for p in val_set], batch_size=max(32, recipe.batch_size))
        val_metrics = validation_metrics([p.label for p in val_set], probs.tolist())
        if recipe.threshold == "best-f1" and val_metrics.get("best"):
            threshold = float(val_metrics["best"]["threshold"])
        y_val = (np.array([p.label for p in val_set]) >= 0.5).astype(int)
        val_metrics["at_threshold"] = binary_metrics(y_val, probs, threshold) if 0 < y_val.sum() < len(y_val) else None
    val_s = time.perf_counter() - t_val

    soft = labels.soft
    card = {
        "format": CARD_FORMAT,
        "base_model": base_name,
        "base_model_sha256": weights_sha256(base_name) if Path(base_name).is_dir() else None,
        "data": {
            "sources": labels.sources, "kinds": labels.kinds, "sha256": labels.sha256(),
            "pairs": len(labels.pairs), "duplicates_merged": labels.duplicates, "skipped": labels.skipped,
            "soft_labels": soft, "label_mean": float(np.mean([p.label for p in labels.pairs])),
            "train_pairs": len(train_set), "val_pairs": len(val_set),
        },
        "split": {"by": "human item", "val_fraction": recipe.val_fraction,
                  "train_human_items": len({p.human for p in train_set}),
                  "val_human_items": len({p.human for p in val_set})},
        "recipe": {**asdict(recipe), "pos_weight_value": pos_weight, "loss": "BinaryCrossEntropyLoss",
                   "trainer": "sentence-transformers CrossEncoderTrainer", "optimizer": "AdamW",
                   "schedule": "linear warmup then linear decay", "grad_clip": 1.0,
                   "batches": "length-grouped (rationalerm.train_sampler)", "steps": step,
                   "steps_per_epoch": steps_per_epoch},
        "seed": recipe.seed,
        "device": dev,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "timing": {"load_s": round(load_s, 3), "train_s": round(train_s, 3), "validate_s": round(val_s, 3)},
        "loss": {"first": losses[0] if losses else None, "last_running": running,
                 "mean_last_10pct": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None},
        "calibration": calibration,
        "validation": val_metrics,
        "threshold": threshold,
        "mapping": "raw" if soft else "linear",
        "model_sha256": weights_sha256(out),
    }
    from rationalerm._util.files import write_json

    write_json(out / TRAINING_JSON, card)
    return TrainResult(out, card)


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """A model folder's training.json, or None when it has none (e.g. a CrossEncoder from elsewhere)."""
    p = Path(folder) / TRAINING_JSON
    if not p.is_file():
        return None
    try:
        card = orjson.loads(p.read_bytes())
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{p}: invalid JSON ({e})") from e
    if not isinstance(card, dict):
        raise ConfigError(f"{p}: expected a JSON object")
    return card


# ------------------------------------------------------------------------------------------------------------
# Terminal output (rationalerm train)
# ------------------------------------------------------------------------------------------------------------


def _f(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


@contextmanager
def training_progress(console: Any) -> Iterator[ProgressFn]:
    """A progress bar for ``rationalerm train``: steps, running loss, elapsed and remaining time."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task("training", total=None, loss="—")

        def update(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, loss=f"{loss:.4f}")

        yield update


def training_table(card: dict[str, Any]) -> Any:
    """Validation figures of a trained cross-encoder (its training.json)."""
    from rich.table import Table

    val = card.get("validation") or {}
    t = Table(title="Cross-encoder on its held-out human items")
    for col in ("validation", "value"):
        t.add_column(col, justify="left" if col == "validation" else "right")
    best, at = val.get("best") or {}, val.get("at_threshold") or {}
    rows = [("AUC", _f(val.get("auc"))), ("best F1 (at threshold)", f"{_f(best.get('f1'))} ({_f(best.get('threshold'))})"),
            ("chosen threshold", _f(card.get("threshold"))),
            ("precision / recall / F1 at it", f"{_f(at.get('precision'))} / {_f(at.get('recall'))} / {_f(at.get('f1'))}"),
            ("kappa at the chosen threshold", _f(at.get("kappa"))), ("default mapping", str(card.get("mapping")))]
    if "spearman" in val:
        rows += [("Spearman vs soft labels", _f(val["spearman"])), ("mean abs. error", _f(val["mae"]))]
    if not val:
        rows = [("(no validation split)", "—"), ("chosen threshold", _f(card.get("threshold")))]
    for row in rows:
        t.add_row(*row)
    return t

"""``rationalerm train``: fit a cross-encoder matcher on pair labels (DESIGN.md step 9).

Labels (``rationalerm.training.labels``) come from human pair labels or from a run directory of any judge
(distillation: every judged cell becomes a soft label, its score). The model is a sentence-transformers
``CrossEncoder`` (one logit, human item first) trained with binary cross-entropy (``BinaryCrossEntropyLoss``
with ``pos_weight``); a held-out validation split *by human item* (no human item on both sides) gives the AUC,
best-F1 and kappa at the threshold the cross-encoder judge uses by default (0.5 on the calibrated probability,
or the validation best-F1 one).

Calibration. With positive weighting w, the loss is minimised at ``logit = log(w) + logit(q)`` (q the true match
probability, or the soft label), so after training the classifier bias is shifted by ``-log(w)``: the saved
model's plain sigmoid output is then an estimate of q itself (for distillation: of the teacher's score), with
no fitted calibration and nothing extra to load. A cross-encoder base's head, which already estimates q, is first
moved to the weighted scale (bias ``+log(w)``), so that what training leaves alone keeps its probability.

Output folder: the sentence-transformers CrossEncoder files plus ``training.json`` (the model card: base model,
data hash and size, recipe, seed, versions, validation metrics, threshold), written last.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

import numpy as np

from rationalerm._util.files import read_json, write_json
from rationalerm._util.versions import versions
from rationalerm.analysis.agreement import threshold_metrics
from rationalerm.judges.compute import has_bf16_units
from rationalerm.judges.cross_encoder import (
    TRAINING_JSON,
    auto_device,
    load_cross_encoder,
    predict_probs,
    weights_sha256,
)
from rationalerm.training.labels import LabelSet, PairLabel, split_by_human
from rationalerm.training.recipe import Recipe, TrainError
from rationalerm.training.validation import ValidationFigures, chance_verdict, validation_metrics

if TYPE_CHECKING:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from rationalerm.training.parts import StepWatcher

CARD_FORMAT = "rationalerm-cross-encoder/1"

ProgressFn = Callable[[int, int, float], None]
"""Called after each optimizer step with (step, total steps, running loss)."""

Precision = Literal["bf16", "fp32"]


# ------------------------------------------------------------------------------------------------------------
# The model card (training.json), section by section, keys in the order they are written
# ------------------------------------------------------------------------------------------------------------


class DataCard(TypedDict):
    sources: list[str]
    kinds: list[str]
    sha256: str
    pairs: int
    duplicates_merged: int
    canonical_references: int | None  # the reference rule's version the texts were rewritten by, or None
    skipped: dict[str, int]
    soft_labels: bool
    label_mean: float
    train_pairs: int
    val_pairs: int


class SplitCard(TypedDict):
    by: str
    val_fraction: float
    train_human_items: int
    val_human_items: int


class TimingCard(TypedDict):
    load_s: float
    train_s: float
    validate_s: float


class LossCard(TypedDict):
    first: float | None
    last_running: float | None
    mean_last_10pct: float | None


class Calibration(TypedDict):
    method: str
    logit_offset: NotRequired[float]


BaseKind = Literal["rationalerm cross-encoder", "cross-encoder", "encoder", "name"]


class BaseLineage(TypedDict):
    """A fine-tuned model's base, when ``rationalerm train`` wrote it: from the base's own training.json."""

    base_model: object
    model_sha256: object
    data_sha256: object


class TrainingCard(TypedDict):
    format: str
    base_model: str
    base_model_sha256: str | None
    base_model_kind: BaseKind
    base_model_card: BaseLineage | None
    data: DataCard
    split: SplitCard
    recipe: dict[str, object]  # every Recipe field, then what the run settled (pos_weight_value, steps, ...)
    seed: int
    device: str
    precision: Precision
    threads: int
    versions: dict[str, str]
    timing: TimingCard
    loss: LossCard
    calibration: Calibration
    validation: ValidationFigures | None
    threshold: float
    mapping: Literal["raw", "linear"]
    model_sha256: str | None
    warnings: list[str]  # e.g. a model no better than chance saved with --force


@dataclass
class TrainResult:
    out_dir: Path
    card: TrainingCard


# ------------------------------------------------------------------------------------------------------------
# Training, step by step
# ------------------------------------------------------------------------------------------------------------


def train(
    labels: LabelSet, out_dir: str | Path, *, base: str | None = None, recipe: Recipe | None = None,
    device: str | None = None, overwrite: bool = False, force: bool = False, progress: ProgressFn | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> TrainResult:
    """Fit a cross-encoder on ``labels`` and save it (CrossEncoder folder + training.json) to ``out_dir``.

    The model is trained and validated in a staging folder beside ``out_dir`` and moved into place only when it
    ranks held-out pairs better than chance (``validation.chance_verdict``), or with ``force`` (the card then
    records the warning): a model no better than a coin is a ``TrainError`` and ``out_dir`` is left as it was."""
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    plan = plan_training(labels, recipe or Recipe(), base, device)
    log(plan.describe())
    with _staging(out) as stage:
        fitted = _fit_and_save(plan, stage, progress)
        validated = _validate(stage, plan)
        warnings = _verdict(validated, force)
        card = model_card(labels, plan, fitted, validated, stage, warnings)
        write_json(stage / TRAINING_JSON, card)
        _move_into_place(stage, out)
    return TrainResult(out, card)


NOT_CHECKED = "no held-out pairs of both classes: whether the model ranks pairs better than chance is unknown"


def _verdict(validated: Validated, force: bool) -> list[str]:
    """The card's warnings; a model no better than chance is a ``TrainError`` unless forced."""
    reason = chance_verdict(validated.figures)
    if reason is None:
        figures = validated.figures
        return [NOT_CHECKED] if figures is None or figures["auc"] is None else []
    if not force:
        raise TrainError(f"{reason}; not saved as a matcher. Try more labels, --base a trained cross-encoder, "
                         "or more steps (--epochs / --max-steps); --force saves it anyway")
    return [f"{reason} (saved with --force)"]


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A fresh folder beside ``out`` (same file system: the final move is a rename), removed unless moved; made
    with ``mkdir`` so that the model folder gets the usual permissions (``mkdtemp``'s are owner-only)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.training-{uuid.uuid4().hex[:12]}"
    stage.mkdir()
    try:
        yield stage
    finally:
        if stage.exists():
            shutil.rmtree(stage)


def _move_into_place(stage: Path, out: Path) -> None:
    """Replace ``out`` (already checked by ``_check_out_dir``) with the finished staging folder."""
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    stage.rename(out)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty ``out`` unless told to overwrite, and never overwrite what is not a model folder."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise TrainError(f"{out}: exists and is not empty (use --overwrite to replace it)")
        if out.is_dir() and not (out / TRAINING_JSON).exists() and not (out / "config.json").exists():
            raise TrainError(f"{out}: not a model folder; refusing to overwrite it")


@dataclass(frozen=True)
class Plan:
    """What a training run will do, settled and checked before anything heavy loads."""

    recipe: Recipe
    base: str
    train_set: list[PairLabel]
    val_set: list[PairLabel]
    pos_weight: float
    device: str
    precision: Precision

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_set) / self.recipe.batch_size)

    @property
    def epochs(self) -> float:
        """The epochs this run settles on (``Recipe.epochs_for``: the recipe's, or the ``auto`` rule's)."""
        return self.recipe.epochs_for(self.steps_per_epoch)

    @property
    def total_steps(self) -> int:
        return self.recipe.max_steps or max(1, math.ceil(self.steps_per_epoch * self.epochs))

    def describe(self) -> str:
        return (f"base {self.base}; {len(self.train_set)} training pairs, {len(self.val_set)} validation pairs "
                f"({len({p.human for p in self.val_set})} held-out human items); pos_weight {self.pos_weight:.3f}; "
                f"device {self.device} ({self.precision})")


def plan_training(labels: LabelSet, recipe: Recipe, base: str | None, device: str | None) -> Plan:
    """The split, the positive weight, the device and the precision of a run; a ``TrainError`` when it cannot
    start."""
    from rationalerm.judges.embedding import default_model_path

    base_name = base or default_model_path()
    train_set, val_set = split_by_human(labels.pairs, recipe.val_fraction, recipe.seed)
    if not train_set:
        raise TrainError("no training pair left after the validation split")
    dev = auto_device(device)
    if dev.startswith("cuda:") and dev != "cuda:0":  # the trainer always trains on the first visible GPU
        raise TrainError(f"--device {dev}: pick the GPU with CUDA_VISIBLE_DEVICES={dev.split(':', 1)[1]} "
                         "and --device cuda")
    return Plan(recipe, base_name, train_set, val_set, _pos_weight(recipe, train_set), dev,
                resolve_precision(recipe.precision, dev))


def _pos_weight(recipe: Recipe, train_set: list[PairLabel]) -> float:
    """The recipe's weight, or for ``auto`` the negative / positive label mass (1 with a single class)."""
    if recipe.pos_weight != "auto":
        return float(recipe.pos_weight)
    mass_pos = sum(p.label for p in train_set)
    mass_neg = len(train_set) - mass_pos
    return mass_neg / mass_pos if mass_pos > 0 and mass_neg > 0 else 1.0


@dataclass(frozen=True)
class Fitted:
    """What the optimisation did: steps, per-step losses (and their running mean), timings, the prior shift."""

    steps: int
    losses: list[float]
    running: float | None
    load_s: float
    train_s: float
    calibration: Calibration


def _fit_and_save(plan: Plan, out: Path, progress: ProgressFn | None) -> Fitted:
    """Load the base, train it, shift its prior and save it to the (empty) folder ``out`` (the in-memory model is
    dropped here: validation reads the saved folder, exactly as the judge will)."""
    from rationalerm.training.parts import StepWatcher  # the trainer stack loads here, outside the timings

    watcher = StepWatcher(progress)
    t_load = time.perf_counter()
    model = _load_base(plan)
    load_s = time.perf_counter() - t_load
    _weight_existing_head(model, plan)
    steps, train_s = _fit(model, plan, watcher)
    calibration = _shift_prior(model, plan.pos_weight)
    model.save_pretrained(str(out))
    return Fitted(steps, watcher.losses, watcher.running, load_s, train_s, calibration)


def _load_base(plan: Plan) -> CrossEncoder:
    """The base: a bare encoder gets a fresh single-logit head (initialised from the recipe's seed); a
    cross-encoder folder (``--base`` a trained matcher) keeps its own head and is fine-tuned from there."""
    from transformers import set_seed

    set_seed(plan.recipe.seed)  # the classifier head is initialised when the base loads
    model = load_cross_encoder(plan.base, plan.device, plan.recipe.max_length, what="train --base", num_labels=1)
    model.max_seq_length = plan.recipe.max_length
    return model


def _weight_existing_head(model: CrossEncoder, plan: Plan) -> None:
    """A cross-encoder base's head already estimates the match probability: move its bias to where the weighted
    loss puts that probability (``+log(pos_weight)``), so the shift back after training (``_shift_prior``) leaves
    what training did not change as it was. Without it a short fine-tune divided every odds by ``pos_weight`` (on
    ArgKP dev, 58 steps from a trained matcher: no held-out probability reached 0.5). A fresh head (bare encoder)
    learns the weighted scale from scratch and is left alone."""
    import torch

    bias = _classifier_bias(model)
    if bias is None or plan.pos_weight == 1.0 or base_kind(plan.base) not in ("rationalerm cross-encoder",
                                                                              "cross-encoder"):
        return
    with torch.no_grad():
        bias.add_(math.log(plan.pos_weight))


def _fit(model: CrossEncoder, plan: Plan, watcher: StepWatcher) -> tuple[int, float]:
    """Run the optimizer steps (the watcher keeps the losses); (steps done, seconds)."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoderTrainer
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import PrinterCallback

    from rationalerm.training.parts import pair_dataset, training_arguments

    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(plan.pos_weight))
    with tempfile.TemporaryDirectory(prefix="rationalerm-train-") as scratch:  # the trainer saves nothing here
        args = training_arguments(plan.recipe, steps=plan.total_steps, precision=plan.precision,
                                  device=plan.device, scratch=scratch)
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=pair_dataset(plan.train_set), loss=loss,
                                      callbacks=[watcher])
        trainer.remove_callback(PrinterCallback)  # the rich bar shows the loss; no dict per step on stdout
        t0 = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - t0
    model.eval()
    return trainer.state.global_step, train_s


def _shift_prior(model: CrossEncoder, pos_weight: float) -> Calibration:
    """Undo the positive weighting (classifier bias += -log(pos_weight)) so that sigmoid(logit) estimates the
    label itself."""
    import torch

    offset = -math.log(pos_weight)
    if offset == 0.0:
        return {"method": "none"}
    bias = _classifier_bias(model)
    if bias is None:
        return {"method": "none (no single-logit classifier bias found; scores stay weighted)", "logit_offset": 0.0}
    with torch.no_grad():
        bias.add_(offset)
    return {"method": "prior shift: classifier bias += -log(pos_weight)", "logit_offset": offset}


def _classifier_bias(model: CrossEncoder) -> torch.Tensor | None:
    """The bias of the model's final single-logit layer (BERT-like: ``classifier``; RoBERTa-like:
    ``classifier.out_proj``; decoder-style: ``score``), or None."""
    import torch

    hf = model.model
    head = getattr(hf, "classifier", None) or getattr(hf, "score", None)  # the head's name varies by architecture
    head = getattr(head, "out_proj", head)
    if isinstance(head, torch.nn.Linear) and head.out_features == 1 and head.bias is not None:
        return head.bias
    return None


@dataclass(frozen=True)
class Validated:
    figures: ValidationFigures | None  # None without a validation split
    threshold: float  # the judge's default threshold
    seconds: float


def _validate(out: Path, plan: Plan) -> Validated:
    """Score the held-out pairs with the saved folder itself, exactly as the cross-encoder judge will load it;
    settle the judge's default threshold."""
    t0 = time.perf_counter()
    # The default 0.5 on the calibrated probability ("more likely a match than not"): on ArgKP dev it agreed
    # with people as well as the dev-optimal threshold, while the validation best-F1 one drifted (RESULTS.md).
    threshold = 0.5 if plan.recipe.threshold == "best-f1" else float(plan.recipe.threshold)
    if not plan.val_set:
        return Validated(None, threshold, time.perf_counter() - t0)
    saved = load_cross_encoder(str(out), plan.device, plan.recipe.max_length)
    probs = predict_probs(saved, [(p.human, p.item) for p in plan.val_set],
                          batch_size=max(32, plan.recipe.batch_size))
    figures = validation_metrics([p.label for p in plan.val_set], probs.tolist())
    best = figures["best"]
    if plan.recipe.threshold == "best-f1" and best:
        threshold = float(best["threshold"])
    y_val = (np.array([p.label for p in plan.val_set]) >= 0.5).astype(int)
    figures["at_threshold"] = threshold_metrics(y_val, probs, threshold) if 0 < y_val.sum() < len(y_val) else None
    return Validated(figures, threshold, time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------------------------
# Device detection
# ------------------------------------------------------------------------------------------------------------


def resolve_precision(precision: Literal["auto", "bf16", "fp32"], device: str) -> Precision:
    """``auto``: bf16 where the GPU or CPU has bf16 units, else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if has_bf16_units(device) else "fp32"


# ------------------------------------------------------------------------------------------------------------
# The model card
# ------------------------------------------------------------------------------------------------------------


def model_card(labels: LabelSet, plan: Plan, fitted: Fitted, validated: Validated, out: Path,
               warnings: list[str]) -> TrainingCard:
    """``training.json``: where the model came from, how it was trained, and how it did on held-out items."""
    import torch

    return {
        "format": CARD_FORMAT,
        "base_model": plan.base,
        "base_model_sha256": weights_sha256(plan.base) if Path(plan.base).is_dir() else None,
        "base_model_kind": base_kind(plan.base),
        "base_model_card": _base_lineage(plan.base),
        "data": _data_card(labels, plan),
        "split": {"by": "human item", "val_fraction": plan.recipe.val_fraction,
                  "train_human_items": len({p.human for p in plan.train_set}),
                  "val_human_items": len({p.human for p in plan.val_set})},
        "recipe": _recipe_card(plan, fitted),
        "seed": plan.recipe.seed,
        "device": plan.device,
        "precision": plan.precision,
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "timing": {"load_s": round(fitted.load_s, 3), "train_s": round(fitted.train_s, 3),
                   "validate_s": round(validated.seconds, 3)},
        "loss": _loss_card(fitted),
        "calibration": fitted.calibration,
        "validation": validated.figures,
        "threshold": validated.threshold,
        "mapping": "raw" if labels.soft else "linear",
        "model_sha256": weights_sha256(out),
        "warnings": warnings,
    }


def base_kind(base: str) -> BaseKind:
    """What ``--base`` names: a model folder ``rationalerm train`` wrote (it has a training.json), another
    cross-encoder folder (a sequence-classification config), a bare encoder folder, or a name to resolve."""
    folder = Path(base)
    if (folder / TRAINING_JSON).is_file():
        return "rationalerm cross-encoder"
    config = folder / "config.json"
    if not config.is_file():
        return "encoder" if folder.is_dir() else "name"
    try:
        architectures = read_json(config).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return "encoder"
    return "cross-encoder" if any(str(a).endswith("ForSequenceClassification") for a in architectures) else "encoder"


def _base_lineage(base: str) -> BaseLineage | None:
    """The identity of a ``rationalerm train`` base (its weights, data and own base), from its card."""
    path = Path(base) / TRAINING_JSON
    if not path.is_file():
        return None
    try:
        card = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(card, dict):
        return None
    data = card.get("data")
    return {"base_model": card.get("base_model"), "model_sha256": card.get("model_sha256"),
            "data_sha256": data.get("sha256") if isinstance(data, dict) else None}


def _data_card(labels: LabelSet, plan: Plan) -> DataCard:
    return {"sources": labels.sources, "kinds": labels.kinds, "sha256": labels.sha256(), "pairs": len(labels.pairs),
            "duplicates_merged": labels.duplicates,
            "canonical_references": labels.canonical_references, "skipped": labels.skipped, "soft_labels": labels.soft,
            "label_mean": float(np.mean([p.label for p in labels.pairs])),
            "train_pairs": len(plan.train_set), "val_pairs": len(plan.val_set)}


def _recipe_card(plan: Plan, fitted: Fitted) -> dict[str, object]:
    from rationalerm.training.parts import BATCHES

    return {**plan.recipe.model_dump(), "pos_weight_value": plan.pos_weight, "loss": "BinaryCrossEntropyLoss",
            "trainer": "sentence-transformers CrossEncoderTrainer", "optimizer": "AdamW",
            "schedule": "linear warmup then linear decay", "grad_clip": 1.0, "batches": BATCHES,
            "steps": fitted.steps, "steps_per_epoch": plan.steps_per_epoch, "epochs_value": plan.epochs}


def _loss_card(fitted: Fitted) -> LossCard:
    losses = fitted.losses
    return {"first": losses[0] if losses else None, "last_running": fitted.running,
            "mean_last_10pct": float(np.mean(losses[-max(1, len(losses) // 10):])) if losses else None}

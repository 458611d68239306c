"""The training recipe of ``rationalerm train``: a config section (unknown keys are errors, values checked when
the recipe is made), its defaults the measured CPU recipe of benchmarks/RESULTS.md.

Epochs. ``epochs: auto`` (the default) picks the count from the label count: enough passes for at least
``AUTO_MIN_STEPS`` optimizer steps (a few thousand pair updates: what a base needs to adapt, README "Better
matching"), never fewer than ``AUTO_MIN_EPOCHS`` (the measured recipe on ArgKP's 20k pairs) nor more than
``AUTO_MAX_EPOCHS`` (a few hundred labels seen more often than that only memorise them). ``epochs_for``.

The model card records it whole (``training.json``'s ``recipe``: every field, in this order).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from rationalerm.errors import TrainError
from rationalerm.registry import ConfigSection

AUTO_MIN_STEPS = 300
"""``epochs: auto``: at least this many optimizer steps (4,800 pair updates at batch 16) ..."""
AUTO_MIN_EPOCHS = 2
"""... never fewer epochs than this (the measured recipe on large label sets) ..."""
AUTO_MAX_EPOCHS = 20
"""... nor more than this (small label sets)."""


class Recipe(ConfigSection):
    """How to train: optimisation, batches, precision, the validation split and the judge's default threshold."""

    model_config = ConfigDict(frozen=True)  # a value: the trainer and the card read the same one

    epochs: float | Literal["auto"] = Field(
        "auto", description="passes over the training pairs (fractions allowed), or 'auto' (from the label count)")
    lr: float = Field(1e-4, gt=0.0, description="AdamW learning rate (linear warm-up, then linear decay)")
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(128, ge=1, description="tokens per (human, item) pair; longer pairs are truncated")
    pos_weight: float | Literal["auto"] = Field(
        "auto", description="'auto' = negatives / positives (label mass), or a number; 1 = none")
    warmup_ratio: float = Field(0.1, ge=0.0, le=1.0)
    weight_decay: float = Field(0.01, ge=0.0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto = bf16 autocast where the CPU/GPU has bf16 units")
    threshold: float | Literal["best-f1"] = Field(
        0.5, description="the judge's threshold on the calibrated probability, or 'best-f1' (validation best F1)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of human items held out for validation")
    seed: int = 0

    def __init__(self, **values: Any) -> None:
        """As pydantic's, but a value that does not validate is a ``TrainError`` (one line, every reason): a bad
        recipe is a reason training cannot start like any other."""
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise TrainError("; ".join(_reason(x) for x in e.errors())) from None

    @field_validator("pos_weight", mode="before")
    @classmethod
    def _positive_weight(cls, value: object) -> object:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"pos_weight must be 'auto' or a number, not {value!r}")
        if not value > 0:
            raise ValueError("pos_weight must be > 0")
        return value

    @field_validator("epochs", mode="before")
    @classmethod
    def _epochs(cls, value: object) -> object:
        if value == "auto" or value is None:
            return "auto"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"epochs must be 'auto' or a number, not {value!r}")
        return value

    def epochs_for(self, steps_per_epoch: int) -> float:
        """The epochs to run: the recipe's number, or for ``auto`` the rule of the module docstring."""
        if self.epochs != "auto":
            return float(self.epochs)
        wanted = math.ceil(AUTO_MIN_STEPS / max(1, steps_per_epoch))
        return float(min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, wanted)))

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold(cls, value: object) -> object:
        if value == "best-f1":
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"threshold must be in [0, 1) or 'best-f1', not {value!r}")
        return value

    @model_validator(mode="after")
    def _some_training(self) -> Recipe:
        if self.epochs != "auto" and self.epochs <= 0 and not self.max_steps:
            raise ValueError("epochs must be > 0 (or give max_steps)")
        return self


def _reason(error: ErrorDetails) -> str:
    """Our own validators' messages as they are; pydantic's prefixed with the field."""
    if error["type"] == "value_error" and "ctx" in error:
        return str(error["ctx"]["error"])
    field = ".".join(str(p) for p in error["loc"]) or "recipe"
    return f"{field}: {error['msg']}"

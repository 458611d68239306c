"""The training recipe: a config section with the measured defaults, checked when it is made; a bad value is a
``TrainError`` (one line, every reason), which the CLI prints as one ``error:`` line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rationalerm.errors import RationaleRMError
from rationalerm.registry import ConfigSection
from rationalerm.training.recipe import Recipe, TrainError

DEFAULTS = {"epochs": "auto", "lr": 1e-4, "batch_size": 16, "max_length": 128, "pos_weight": "auto",
            "warmup_ratio": 0.1, "weight_decay": 0.01, "max_steps": None, "precision": "auto", "threshold": 0.5,
            "val_fraction": 0.1, "seed": 0}


def test_defaults_and_the_card_s_key_order() -> None:
    recipe = Recipe()
    assert isinstance(recipe, ConfigSection)
    assert list(recipe.model_dump().items()) == list(DEFAULTS.items())  # training.json's "recipe", in this order
    assert Recipe(threshold="best-f1", pos_weight=3, max_steps=2, epochs=0).model_dump()["pos_weight"] == 3.0


@pytest.mark.parametrize(("values", "message"), [
    ({"threshold": 1.5}, "threshold must be in [0, 1) or 'best-f1', not 1.5"),
    ({"threshold": "high"}, "threshold must be in [0, 1) or 'best-f1', not 'high'"),
    ({"threshold": True}, "threshold must be in [0, 1) or 'best-f1', not True"),
    ({"threshold": float("nan")}, "threshold must be in [0, 1) or 'best-f1', not nan"),
    ({"pos_weight": 0}, "pos_weight must be > 0"),
    ({"epochs": "many"}, "epochs must be 'auto' or a number, not 'many'"),
    ({"pos_weight": "lots"}, "pos_weight must be 'auto' or a number, not 'lots'"),
    ({"epochs": 0}, "epochs must be > 0 (or give max_steps)"),
    ({"precision": "fp16"}, "precision: Input should be 'auto', 'bf16' or 'fp32'"),
    ({"val_fraction": 1.0}, "val_fraction: Input should be less than 1"),
    ({"max_steps": 0}, "max_steps: Input should be greater than or equal to 1"),
    ({"epochs": 1, "typo": 3}, "typo: Extra inputs are not permitted"),
])
def test_bad_values_are_one_train_error(values: dict[str, object], message: str) -> None:
    with pytest.raises(TrainError) as e:
        Recipe(**values)
    assert str(e.value) == message and isinstance(e.value, RationaleRMError)


def test_every_reason_in_one_line_and_a_recipe_is_a_value() -> None:
    with pytest.raises(TrainError) as e:
        Recipe(batch_size=0, lr=-1.0)
    assert str(e.value) == "lr: Input should be greater than 0; batch_size: Input should be greater than or equal to 1"
    recipe = Recipe(seed=3)
    with pytest.raises(ValidationError, match="frozen"):
        recipe.seed = 4
    assert Recipe(**{**recipe.model_dump(), "seed": 4}).seed == 4 and recipe == Recipe(seed=3)


@pytest.mark.parametrize(("steps_per_epoch", "epochs"), [
    (1, 20.0),  # 300 steps would take 300 epochs: capped
    (15, 20.0),  # exactly 300 steps
    (16, 19.0),  # ceil(300 / 16) = 19 epochs: 304 steps
    (50, 6.0),  # 800 labels at batch 16: 300 steps
    (150, 2.0),  # exactly 300 steps, at the floor
    (1250, 2.0),  # 20k labels: the measured 2 epochs, not fewer
])
def test_auto_epochs_reach_a_minimum_of_steps_within_bounds(steps_per_epoch: int, epochs: float) -> None:
    from rationalerm.training.recipe import AUTO_MAX_EPOCHS, AUTO_MIN_EPOCHS, AUTO_MIN_STEPS

    assert (AUTO_MIN_STEPS, AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS) == (300, 2, 20)
    assert Recipe().epochs_for(steps_per_epoch) == epochs
    assert Recipe(epochs=None).epochs == "auto"  # the CLI without --epochs
    assert Recipe(epochs=3).epochs_for(steps_per_epoch) == 3.0  # a given count is kept as it is
    assert Recipe(epochs=0.5).epochs_for(steps_per_epoch) == 0.5

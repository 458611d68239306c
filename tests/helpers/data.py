"""Where the human-labelled data lives: the tests' copy in tests/data (a fresh clone passes without ../shared),
the benchmarks' in ../shared (the package readers take a path)."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

from tests.helpers.paths import TEST_DATA

REPO = Path(__file__).resolve().parents[2]
ARGKP_ENV = "RATIONALERM_ARGKP"
METAJUDGE_REFERENCE = TEST_DATA / "metajudge_reference"


def default_argkp_path() -> Path:
    """``$RATIONALERM_ARGKP`` or the copy in ``tests/data/argkp`` (for the tests)."""
    env = os.environ.get(ARGKP_ENV)
    return Path(env).expanduser() if env else TEST_DATA / "argkp"


def shared_argkp_path() -> Path:
    """``$RATIONALERM_ARGKP`` or ``../shared/data/argkp`` next to the checkout (for the benchmarks)."""
    env = os.environ.get(ARGKP_ENV)
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "argkp"


def metajudge_reference_rows(name: str, into: Path) -> Path:
    """Unpack ``{name}.jsonl.gz`` (the reference-oracle rows, stored gzipped) as ``into/{name}.jsonl``."""
    into.mkdir(parents=True, exist_ok=True)
    out = into / f"{name}.jsonl"
    with gzip.open(METAJUDGE_REFERENCE / f"{name}.jsonl.gz", "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return out

"""Where the shared human-labelled data lives on this machine (the package readers take a path)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARGKP_ENV = "RATIONALERM_ARGKP"


def default_argkp_path() -> Path:
    """``$RATIONALERM_ARGKP`` or ``../shared/data/argkp`` next to the checkout (the repository root)."""
    env = os.environ.get(ARGKP_ENV)
    if env:
        return Path(env).expanduser()
    return REPO.parent / "shared" / "data" / "argkp"

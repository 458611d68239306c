"""Optional packages (an engine, a cluster client): imported when a component is built, and a missing one is one
``ConfigError`` that names the extra installing it, never a bare ImportError from deep inside a run."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

from rationalerm.errors import ConfigError


def install_hint(extra: str | Sequence[str] | None) -> str:
    """How to install the extra (or, for None, the package itself: a core dependency that is missing)."""
    if extra is None:
        return "pip install -e . (it is a core dependency; the installation is incomplete)"
    extras = [extra] if isinstance(extra, str) else list(extra)
    first, *others = extras
    alternatives = "".join(f" or '.[{e}]'" for e in others)
    return f"pip install -e '.[{first}]'" + alternatives


def require(module: str, extra: str | Sequence[str] | None, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` (e.g. "judge backend 'vllm'"); missing, it is a ``ConfigError`` naming
    the extra(s) that install it (the first is the usual one). A module that is there but fails to import for
    another reason keeps its own error."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ConfigError(f"{purpose} needs the Python package {module!r}, which cannot be imported ({e}); "
                          f"install it with: {install_hint(extra)}") from e

"""Say clearly when a model is not on this machine, instead of a loader's long traceback.

No machine is assumed to reach a model hub: a judge's model is a local folder or an entry of the Hugging Face
cache. When loading fails and the model is neither, the error names the model, where it looked and how to get it.
A load takes seconds to a minute: within ``announcing(show)`` (the CLI passes a rich status) each load shows what
it loads while it runs, instead of a progress bar that sits at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from rationalerm.errors import JudgeError


def missing_model(name: str) -> str | None:
    """Why ``name`` cannot be loaded without a network, or None when it is a local folder or cached."""
    if Path(name).exists():
        return None
    from huggingface_hub import constants, snapshot_download

    try:
        snapshot_download(name, local_files_only=True)
        return None
    except Exception:  # not cached, or not even a valid repo id: either way it is not here
        return (f"model {name!r} is neither a local folder nor in the Hugging Face cache ({constants.HF_HUB_CACHE}); "
                f"download it where there is internet (`huggingface-cli download {name}`) and copy that cache here "
                f"(or set HF_HOME), or set the config's model to a local folder")


Show = Callable[[str], AbstractContextManager[Any]]
"""Shows a message for the duration of a block (e.g. a rich ``Console.status``)."""

_SHOW: ContextVar[Show | None] = ContextVar("rationalerm_show_load", default=None)


@contextmanager
def announcing(show: Show) -> Iterator[None]:
    """Within this block every model load (:func:`loading`) runs inside ``show("loading <what> model <name>")``;
    outside, loads are silent (a library caller, the RL reward in a trainer, prints nothing)."""
    token = _SHOW.set(show)
    try:
        yield
    finally:
        _SHOW.reset(token)


@contextmanager
def loading(name: str, what: str, label: str | None = None) -> Iterator[None]:
    """Around a model load: says what loads (:func:`announcing`), and a failure for a model that is not on this
    machine becomes a one-line JudgeError. ``label`` names a model whose folder name says little (``from name``)."""
    show = _SHOW.get()
    message = f"loading {what} model {label} from {name}" if label else f"loading {what} model {name}"
    try:
        with show(message) if show else nullcontext():
            yield
    except (JudgeError, ImportError):  # a missing library is not a missing model
        raise
    except Exception as e:
        problem = missing_model(name)
        if problem is None:
            raise
        raise JudgeError(f"{what}: {problem}") from e

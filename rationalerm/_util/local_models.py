"""Say clearly when a model is not on this machine, instead of a loader's long traceback.

No machine is assumed to reach a model hub: a judge's model is a local folder or an entry of the Hugging Face
cache. When loading fails and the model is neither, the error names the model, where it looked and how to get it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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


@contextmanager
def loading(name: str, what: str) -> Iterator[None]:
    """Around a model load: a failure for a model that is not on this machine becomes a one-line JudgeError."""
    try:
        yield
    except JudgeError:
        raise
    except Exception as e:
        problem = missing_model(name)
        if problem is None:
            raise
        raise JudgeError(f"{what}: {problem}") from e

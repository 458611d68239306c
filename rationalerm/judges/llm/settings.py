"""What the LLM backends and the judge's config both need, in a leaf module so that neither imports the other:
the backend config base (``judge.backend``), the backend registry, and ``CallSettings``, the part of the judge's
config a backend reads on each call.

``config.py`` builds the ``judge.backend`` union from ``BACKENDS``; ``backend.py`` and the ``*_backend.py``
modules take ``CallSettings`` (an ``LLMJudgeConfig`` is one) and never import ``config.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

from pydantic import model_validator

from rationalerm.errors import JudgeError
from rationalerm.registry import ConfigSection, Registry


class BackendConfig(ConfigSection):
    """Base of an LLM backend's config section (``judge.backend``); ``type`` is the backend's registered name."""

    type: str

    def device_hint(self) -> str | None:
        """The device the backend runs on, if its config says; None = the backend decides."""
        return None

    @model_validator(mode="before")
    @classmethod
    def _name_the_right_backend(cls, data: Any) -> Any:
        """A key that belongs to another backend's section gets an error naming that backend."""
        if not isinstance(data, dict):
            return data
        for key in data:
            if key in cls.model_fields:
                continue
            if key == "server":
                raise ValueError("'server' settings are now the openai backend's own keys: "
                                 "backend: {type: openai, base_url: ..., concurrency: ..., max_retries: ...}")
            owners = [name for name in BACKENDS.names() if key in BACKENDS.config(name).model_fields]
            if owners:
                raise ValueError(f"{key!r} is a setting of backend type {' / '.join(owners)}, "
                                 f"not {data.get('type', cls.model_fields['type'].default)}")
        return data


class CallSettings(Protocol):
    """What a backend reads of the calling judge's config (``LLMJudgeConfig``): the model it loads, and the
    settings that apply per call (so judges with different settings share one engine)."""

    model: str
    tokenizer: str | None
    backend: BackendConfig
    temperature: float
    seed: int
    batch_size: int
    enable_thinking: bool
    protocol: Literal["pairwise", "listwise"]


BACKENDS: Registry[Callable[[CallSettings], object]] = Registry(
    "LLM backend", package="rationalerm.judges.llm", pattern="*_backend"
)
"""Backend type -> backend class (a ``backend.Backend`` taking the judge's config): each
``judges/llm/*_backend.py`` registers one."""

C = TypeVar("C", bound=BackendConfig)
ENGINE_EXTRAS = ("vllm", "gpu")
"""The extras that install vllm and the openai client (pyproject.toml): ``vllm`` (the CPU build), ``gpu`` (CUDA)."""


def backend_section(cfg: CallSettings, kind: type[C]) -> C:
    """``cfg.backend`` as the section class of the backend being built (the one its ``type`` names)."""
    section = cfg.backend
    if not isinstance(section, kind):
        raise JudgeError(f"judge.backend is a {section.type!r} block, not the {kind.__name__} this backend reads")
    return section

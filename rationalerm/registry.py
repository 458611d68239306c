"""Registries: judges and LLM backends are found by name, never by an if-chain.

A judge (or backend) module defines its config section beside itself and registers its factory with it::

    class EmbeddingJudgeConfig(JudgeConfig):
        type: Literal["embedding"] = "embedding"
        ...

    @JUDGES.register("embedding", config=EmbeddingJudgeConfig)
    class EmbeddingJudge: ...

A registry finds its modules itself: on first use it imports every module of its package whose name matches
its pattern (``rationalerm.judges``: every module; ``rationalerm.judges.llm``: ``*_backend``), so adding a
judge or a backend is adding its one file. Those modules are light (a factory imports its heavy dependencies
-- torch, vllm, openai -- only when it runs), so the config union is built from what is registered without
loading any engine. An unknown name is a ``ConfigError`` listing the registered ones. ``config``, built from
them, is above those packages in the layer order (README "Layout"; ``tests/test_layers.py``).
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field

from rationalerm.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


class ConfigSection(BaseModel):
    """Base of every config section: unknown keys are errors, so a typo never falls back to a default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Registry(Generic[F]):
    """Name -> (factory, config class) for one kind of component (``kind`` is used in messages)."""

    def __init__(self, kind: str, package: str | None, pattern: str = "*", exclude: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.package = package
        """Every module of this package whose name matches ``pattern`` is imported to register (None: none)."""
        self.pattern = pattern
        self.exclude = exclude
        """Modules of ``package`` that are not components (the stage code that lives beside them)."""
        self._factories: dict[str, F] = {}
        self._configs: dict[str, type[ConfigSection]] = {}
        self._loaded = False

    def register(self, name: str, *, config: type[ConfigSection]) -> Callable[[F], F]:
        """Decorator: register ``factory`` (a class or function taking its config) under ``name``."""

        def add(factory: F) -> F:
            if self._factories.get(name, factory) is not factory:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            tag = config.model_fields.get("type")
            if tag is None or tag.default != name:
                raise ValueError(f"{config.__name__}.type must default to {name!r}, the name it is registered under")
            self._factories[name] = factory
            self._configs[name] = config
            return factory

        return add

    def _load(self) -> None:
        if self._loaded or self.package is None:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if (not info.name.startswith("_") and info.name not in self.exclude
                    and fnmatch.fnmatchcase(info.name, self.pattern)):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._factories)

    def get(self, name: str) -> F:
        """The factory registered under ``name``; an unknown name is a ``ConfigError`` that lists the known ones."""
        self._load()
        try:
            return self._factories[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}") from None

    def config(self, name: str) -> type[ConfigSection]:
        self.get(name)
        return self._configs[name]

    def config_union(self) -> Any:
        """The registered config classes as one pydantic union, discriminated on their ``type`` field."""
        classes = tuple(self._configs[name] for name in self.names())
        if len(classes) == 1:
            return classes[0]
        return Annotated[Union[classes], Field(discriminator="type")]  # noqa: UP007 - a runtime-built union

"""Run configuration: one pydantic model tree, loaded from YAML, overridable from the CLI.

Unknown keys are errors (``extra="forbid"``) so a typo in a config never silently falls back
to a default. The ``judge:`` section is the config class of the judge its ``type`` names: each judge
(and each LLM backend) defines its section beside itself and registers it (``rationalerm.registry``), and
the union below is built from the registry, so a new judge never edits this file.

``load_config`` is the one way a YAML file becomes a ``RunConfig`` (``read_config_file`` reads the mapping for a
file that holds more sections, e.g. a reward config; ``validate`` checks any section with the same messages).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from rationalerm.errors import ConfigError
from rationalerm.inputs.load import MAX_ITEM_CHARS
from rationalerm.judges.base import JUDGES, JudgeConfig
from rationalerm.judges.embedding import EmbeddingJudgeConfig
from rationalerm.judges.llm.config import ListwiseConfig, LLMJudgeConfig
from rationalerm.judges.prefilter import PrefilterConfig
from rationalerm.judges.runners import RUNNERS, RunnerConfig
from rationalerm.registry import ConfigSection
from rationalerm.scoring.settings import OutcomeConfig, ScoringConfig

M = TypeVar("M", bound=BaseModel)

DEFAULT_JUDGE = "embedding"
if TYPE_CHECKING:  # the unions are built at run time from what is registered; a checker sees their base
    JudgeSection: TypeAlias = JudgeConfig
    RunnerSection: TypeAlias = RunnerConfig
else:
    JudgeSection = JUDGES.config_union()
    """The ``judge:`` section: the config class of the judge its ``type`` names (any registered judge)."""
    RunnerSection = RUNNERS.config_union()
    """The ``runner:`` section: where the judge stage runs (``local``, default, or ``ray``)."""


class RunConfig(ConfigSection):
    judge: JudgeSection = Field(default_factory=lambda: cast(JudgeSection, JUDGES.config(DEFAULT_JUDGE)()))
    prefilter: PrefilterConfig = Field(default_factory=PrefilterConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    outcome: OutcomeConfig = Field(default_factory=OutcomeConfig)
    models: list[str] | None = Field(None, description="evaluated models; None = every *-checklist key")
    strict: bool = False
    max_item_chars: int = Field(
        MAX_ITEM_CHARS, ge=1, description="longest checklist item (characters); a longer one makes its record a bad "
        "record, before anything embeds or tokenises it")
    cache: str | None = Field(None, description="SQLite cache path; None = OUT/cache.sqlite")
    chunk_size: int | None = Field(
        None, ge=1, description="pairs (or lists) per judge call and cache commit; None = the LLM's batch_size, or 2048"
    )
    shard_size: int = Field(
        1000, ge=1, description="samples read, scored and written at a time (memory is bounded by a shard)")
    runner: RunnerSection = Field(default_factory=lambda: cast(RunnerSection, RUNNERS.config("local")()))

    def resolved_chunk_size(self) -> int:
        """Big enough to keep an LLM engine's batches full, small enough that a kill loses little work."""
        if self.chunk_size is not None:
            return self.chunk_size
        hint = self.judge.preferred_chunk_size()
        return hint if hint is not None else 2048

    @model_validator(mode="after")
    def _compat_format_check(self) -> RunConfig:
        """Under compat: metajudge a listwise judge re-asks as the reference does, unless told otherwise."""
        j = self.judge
        if (self.scoring.compat == "metajudge" and isinstance(j, LLMJudgeConfig) and j.protocol == "listwise"
                and "format_check" not in j.listwise.model_fields_set):
            j.listwise.format_check = "metajudge"
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_judge_type(cls, data: Any) -> Any:
        """A judge section without ``type`` is the embedding judge, as when no section is given."""
        if isinstance(data, dict) and isinstance(data.get("judge"), dict) and "type" not in data["judge"]:
            data = {**data, "judge": {**data["judge"], "type": DEFAULT_JUDGE}}
        if isinstance(data, dict) and isinstance(data.get("runner"), dict) and "type" not in data["runner"]:
            data = {**data, "runner": {**data["runner"], "type": "local"}}
        return data


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config classes an annotation can hold (through Optional, unions, Annotated, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = get_args(annotation)
    if get_origin(annotation) is dict and len(args) == 2:
        return _models_in(args[1])
    return [m for arg in args for m in _models_in(arg)]


def _tag(model: type[BaseModel]) -> set[str]:
    """The ``type`` values that select ``model`` in a discriminated union (pydantic puts one in the error path)."""
    field = model.model_fields.get("type")
    return {str(v) for v in get_args(field.annotation)} if field is not None else set()


def _keys_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The keys the config section at ``path`` (an error's location less its last key) accepts."""
    classes: list[type[BaseModel]] = [model]
    for part in path:
        tagged = [c for c in classes if str(part) in _tag(c)]
        if tagged:
            classes = tagged
            continue
        classes = [m for c in classes if (f := c.model_fields.get(str(part))) for m in _models_in(f.annotation)]
    return [name for c in classes for name in c.model_fields]


def _did_you_mean(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    """For an unknown key: the closest key the section accepts, as typer does for an option."""
    close = difflib.get_close_matches(str(loc[-1]), _keys_at(model, loc[:-1]), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _format_validation(err: ValidationError, source: str, model: type[BaseModel]) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        hint = _did_you_mean(model, e["loc"]) if e["type"] == "extra_forbidden" and e["loc"] else ""
        lines.append(f"  {loc}: {e['msg']}{hint}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The one way a YAML config (or, without ``path``, the built-in default) becomes a ``RunConfig``: read,
    dotted-key ``overrides`` applied (a None value leaves its key alone), validated."""
    data = read_config_file(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    return validate(RunConfig, data, str(path) if path is not None else "<default>")


MAX_CONFIG_BYTES = 1 << 20
"""The largest config file read (1 MiB; a real one is a few hundred bytes): a larger file is refused before the
YAML parser spends minutes on it."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file's top-level mapping (empty for an empty file); a missing, unreadable or oversized file,
    bad YAML (nested too deeply included) or another top level is a ``ConfigError`` naming the file (and the
    line)."""
    raw = _parse_yaml(Path(path), _read_config_text(Path(path)))
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(raw).__name__}")
    return raw


def _read_config_text(path: Path) -> str:
    try:
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory, not a config file")
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {size:,} bytes; a config file may have at most {MAX_CONFIG_BYTES:,}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such config file") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a YAML text file (not valid UTF-8 at byte {e.start})") from e


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        where = f":{e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({e.problem})") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    except RecursionError:  # the parser recurses once per level of nesting
        raise ConfigError(f"{path}: not valid YAML (nested too deeply)") from None


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data[a][b] = value`` for ``key`` ``a.b`` (sections created as needed)."""
    *sections, name = key.split(".")
    node = data
    for section in sections:
        node = node.setdefault(section, {})
    node[name] = value


def validate(model: type[M], data: Any, source: str) -> M:
    """Validate ``data`` as config section ``model``; a failure is a ``ConfigError`` naming ``source`` and each key."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source, model)) from e



__all__ = [  # the judges' sections and ConfigError stay importable from here, as before they moved
    "DEFAULT_JUDGE", "ConfigError", "EmbeddingJudgeConfig", "JudgeSection", "LLMJudgeConfig", "ListwiseConfig",
    "OutcomeConfig", "PrefilterConfig", "RunConfig", "RunnerSection", "ScoringConfig", "load_config",
    "read_config_file", "validate",
]

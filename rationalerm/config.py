"""Run configuration: one pydantic model tree, loaded from YAML, overridable from the CLI.

Unknown keys are errors (``extra="forbid"``) so a typo in a config never silently falls back
to a default.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EmbeddingJudgeConfig(_Strict):
    """Cosine similarity of normalised sentence embeddings, mapped to [0, 1].

    ``mapping: linear`` gives ``(cos - threshold) / (1 - threshold)`` clipped to [0, 1] (so identical
    texts score 1 and anything at or below the threshold scores 0); ``mapping: binary`` gives 1 at or
    above the threshold and 0 below.
    """

    type: Literal["embedding"] = "embedding"
    model: str | None = Field(None, description="sentence-transformers path or name; None = packaged all-MiniLM-L6-v2")
    threshold: float = Field(0.5, ge=-1.0, lt=1.0)
    mapping: Literal["linear", "binary"] = "linear"
    batch_size: int = Field(64, ge=1)
    device: str | None = None


class OpenAIServerConfig(_Strict):
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key (never logged)")
    concurrency: int = Field(32, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_s: float = Field(0.5, ge=0)
    structured_outputs: bool = Field(
        True,
        description="the server is vLLM: send structured_outputs (listwise grammar) and allowed_token_ids / "
        "logprob_token_ids (pairwise labels)",
    )
    chat_template_kwargs: bool = Field(True, description="send chat_template_kwargs {enable_thinking: ...}")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="extra request fields, sent as is")


class LLMJudgeConfig(_Strict):
    """An open Qwen judge (DESIGN.md step 4)."""

    type: Literal["llm"] = "llm"
    backend: Literal["vllm", "openai", "transformers"] = "vllm"
    model: str = Field(..., description="local path or hub name of the judge model")
    tokenizer: str | None = None
    protocol: Literal["pairwise", "listwise"] = "pairwise"
    prompt_version: str = "v1"
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    max_tokens: int = Field(8192, ge=1, description="listwise generation budget")
    max_retries: int = Field(2, ge=0, description="listwise: re-asks on an unparsable or truncated output")
    retry_temperature: float = Field(
        0.7, ge=0.0, description="listwise: temperature of the re-asks (a greedy re-ask would repeat the output)"
    )
    batch_size: int = Field(1024, ge=1, description="prompts per submitted batch")
    enable_thinking: bool = False
    structured_outputs: bool = True
    engine_args: dict[str, Any] = Field(default_factory=dict, description="passed through to vllm.LLM")
    device: str | None = Field(None, description="transformers backend: cpu, cuda, auto")
    dtype: str | None = None
    server: OpenAIServerConfig = Field(default_factory=OpenAIServerConfig)


JudgeConfig = Annotated[EmbeddingJudgeConfig | LLMJudgeConfig, Field(discriminator="type")]


class PrefilterConfig(_Strict):
    """Embedding prefilter in front of any judge: keep per human item its top-k and/or items above a floor."""

    enabled: bool = False
    model: str | None = None
    top_k: int | None = Field(3, ge=1)
    min_cosine: float | None = Field(None, ge=-1.0, le=1.0)
    mode: Literal["union", "intersection"] = "union"
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _some_rule(self) -> "PrefilterConfig":
        if self.enabled and self.top_k is None and self.min_cosine is None:
            raise ValueError("prefilter needs top_k and/or min_cosine")
        return self


class ScoringConfig(_Strict):
    min_score: float = Field(0.0, ge=0.0, le=1.0, description="scores below this are masked before assignment")
    max_model_items: int | None = Field(None, ge=1, description="precision denominator cap (paper: 5)")
    compat: Literal["metajudge"] | None = None
    bootstrap: int = Field(1000, ge=0)
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = 0


class OutcomeConfig(_Strict):
    """Outcome accuracy beside RC (rationalerm/outcome.py): which field holds the human label, and the RC at
    or below which a right answer counts as a deceptive-alignment case."""

    label_field: str = Field("label", min_length=1, description="the human preference label's field")
    deceptive_threshold: float = Field(0.25, ge=0.0, le=1.0)


class RunConfig(_Strict):
    judge: JudgeConfig = Field(default_factory=EmbeddingJudgeConfig)
    prefilter: PrefilterConfig = Field(default_factory=PrefilterConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    outcome: OutcomeConfig = Field(default_factory=OutcomeConfig)
    models: list[str] | None = Field(None, description="evaluated models; None = every *-checklist key")
    strict: bool = False
    cache: str | None = Field(None, description="SQLite cache path; None = OUT/cache.sqlite")
    chunk_size: int | None = Field(
        None, ge=1, description="pairs (or lists) per judge call and cache commit; None = the LLM's batch_size, or 2048"
    )

    def resolved_chunk_size(self) -> int:
        """Big enough to keep an LLM engine's batches full, small enough that a kill loses little work."""
        if self.chunk_size is not None:
            return self.chunk_size
        return self.judge.batch_size if isinstance(self.judge, LLMJudgeConfig) else 2048

    @model_validator(mode="before")
    @classmethod
    def _default_judge_type(cls, data: Any) -> Any:
        """A judge section without ``type`` is the embedding judge, as when no section is given."""
        if isinstance(data, dict) and isinstance(data.get("judge"), dict) and "type" not in data["judge"]:
            data = {**data, "judge": {**data["judge"], "type": "embedding"}}
        return data


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names the file."""


def _format_validation(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load a YAML config (or the built-in default) and apply dotted-key overrides."""
    data: dict[str, Any] = {}
    source = "<default>"
    if path is not None:
        source = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise ConfigError(f"{source}: no such config file") from e
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}{where}: not valid YAML ({getattr(e, 'problem', e)})") from e
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
        data = raw
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from e


def stable_hash(obj: Any) -> str:
    """Short content hash of a JSON-able object (sorted keys), used for fingerprints and ids."""
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

"""The LLM judge's config section (``judge: {type: llm, ...}``): what the judge is, its backend block, and the
listwise protocol's own block.

```yaml
judge:
  type: llm
  model: Qwen/Qwen3-8B
  protocol: pairwise            # or listwise
  backend:                      # one block per backend, chosen by its type (default vllm)
    type: vllm
    dtype: bfloat16
    engine_args: {max_model_len: 4096}
  listwise: {max_tokens: 8192, max_retries: 2, retry_temperature: 0.7, structured_outputs: true,
             prompt_file: null, format_check: paper}
```

Each backend's block is defined beside the backend (``vllm_backend.py``, ``openai_backend.py``,
``transformers_backend.py``) and registered in ``BACKENDS``; ``backend: NAME`` is short for ``{type: NAME}``.
A key from the old flat shape gets an error naming its new place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from rationalerm.judges.base import JudgeConfig
from rationalerm.judges.llm.settings import BACKENDS, BackendConfig
from rationalerm.registry import ConfigSection

DEFAULT_BACKEND = "vllm"
if TYPE_CHECKING:  # the union is built at run time from the registry; to a type checker it is the base
    BackendSection = BackendConfig
else:
    BackendSection = BACKENDS.config_union()
"""The ``judge.backend`` block: the config class of the backend its ``type`` names."""

MOVED = {
    "engine_args": "backend.engine_args (backend: {type: vllm, engine_args: ...})",
    "dtype": "backend.dtype (backend: {type: vllm or transformers, dtype: ...})",
    "device": "backend.device (backend: {type: transformers, device: ...})",
    "server": "the openai backend block (backend: {type: openai, base_url: ..., concurrency: ..., max_retries: ...})",
    "max_tokens": "listwise.max_tokens",
    "max_retries": "listwise.max_retries (re-asks of an invalid output; a server's request retries are "
                   "backend.max_retries)",
    "retry_temperature": "listwise.retry_temperature",
    "structured_outputs": "listwise.structured_outputs (whether to force the result grammar; whether an OpenAI "
                          "server is vLLM is backend.structured_outputs)",
}
"""Keys of the old flat ``judge:`` section -> where they live now."""


class ListwiseConfig(ConfigSection):
    """Settings of the listwise protocol (the paper's prompt over the two whole lists)."""

    max_tokens: int = Field(8192, ge=1, description="generation budget")
    max_retries: int = Field(2, ge=0, description="re-asks on an unparsable or truncated output")
    retry_temperature: float = Field(
        0.7, ge=0.0, description="temperature of the re-asks (a greedy re-ask would repeat the output)"
    )
    structured_outputs: bool = Field(True, description="force the output into the result grammar where the backend can")
    prompt_file: str | None = Field(
        None,
        description="the prompt template from this file: text with {source_list} (model list) and {target_list} "
        "(human list), or the reference script defining EVAL_PROMPT_TEMPLATE (read as text, never run)",
    )
    format_check: Literal["paper", "metajudge"] = Field(
        "paper",
        description="when to re-ask: 'paper' = the answer fails the strict parser; 'metajudge' = the reference "
        "inference script's check (the default when scoring.compat is metajudge)",
    )


def _default_backend() -> BackendConfig:
    """The default backend's block with its defaults (``judge.backend`` left out)."""
    section = BACKENDS.config(DEFAULT_BACKEND)()
    assert isinstance(section, BackendConfig)  # every registered backend section is one
    return section


class LLMJudgeConfig(JudgeConfig):
    """An open Qwen judge (DESIGN.md step 4)."""

    type: Literal["llm"] = "llm"
    model: str = Field(..., description="local path or hub name of the judge model (the served name for openai)")
    tokenizer: str | None = None
    backend: BackendSection = Field(default_factory=_default_backend,
                                    description="the engine: vllm, openai or transformers, with its own settings")
    protocol: Literal["pairwise", "listwise"] = "pairwise"
    prompt_version: str = "v1"
    temperature: float = Field(0.0, ge=0.0)
    seed: int = 0
    batch_size: int = Field(1024, ge=1, description="prompts per submitted batch")
    enable_thinking: bool = False
    listwise: ListwiseConfig = Field(default_factory=ListwiseConfig)

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        """Name the new place of an old key; ``backend: NAME`` (or a block without type) is that backend's block."""
        if not isinstance(data, dict):
            return data
        moved = [key for key in data if key in MOVED]
        if moved:
            raise ValueError("; ".join(f"judge.{key} is now judge.{MOVED[key]}" for key in moved))
        backend = data.get("backend")
        if isinstance(backend, str):
            data = {**data, "backend": {"type": backend}}
        elif isinstance(backend, dict) and "type" not in backend:
            data = {**data, "backend": {**backend, "type": DEFAULT_BACKEND}}
        return data

    @model_validator(mode="after")
    def _listwise_only(self) -> LLMJudgeConfig:
        if self.listwise.prompt_file is not None and self.protocol != "listwise":
            raise ValueError("listwise.prompt_file applies to protocol: listwise only")
        return self

    def device_hint(self) -> str | None:
        return self.backend.device_hint()

    def preferred_chunk_size(self) -> int | None:
        return self.batch_size

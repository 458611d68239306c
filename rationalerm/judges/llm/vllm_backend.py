"""In-process vLLM backend (``vllm.LLM``): large batches ordered by shared prefix, prefix caching on."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import Field

from rationalerm._util.optional import require
from rationalerm.errors import JudgeError
from rationalerm.judges.base import Progress
from rationalerm.judges.llm.backend import Backend, GenerateBatch, Generation, LabelBatch
from rationalerm.judges.llm.settings import BACKENDS, ENGINE_EXTRAS, BackendConfig, CallSettings, backend_section
from rationalerm.judges.llm.tokenize import Messages, Split, prefix_order

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

log = logging.getLogger(__name__)
_CALLS = itertools.count()
CPU_PAIRWISE_BLOCK = 32
"""KV block size of a pairwise engine on the CPU build (unless ``engine_args.block_size`` says otherwise).

vLLM caches prefixes in whole blocks, so a shared prefix's tokens past its last full block are computed again
for every pair: on average half a block. The CPU build's default block (128) recomputes ~64 tokens per pair,
its smallest (32, its kernels' multiple) ~16, against ~20 unique tokens per pair on ``examples/``. GPU builds
keep their default (16)."""


class VLLMBackendConfig(BackendConfig):
    """``backend: {type: vllm}``: an in-process ``vllm.LLM`` engine."""

    type: Literal["vllm"] = "vllm"
    dtype: str | None = None
    engine_args: dict[str, Any] = Field(default_factory=dict, description="passed through to vllm.LLM")


def _sampling_fields() -> set[str]:
    from vllm import SamplingParams

    try:
        return {f.name for f in dataclasses.fields(SamplingParams)}
    except TypeError:  # msgspec struct
        return set(getattr(SamplingParams, "__struct_fields__", ()))


class PairRequests(NamedTuple):
    """A pairwise batch as the engine gets it (the benchmark submits exactly these to bare ``LLM.generate``)."""

    order: list[int]
    """Prompt index of each request, in submission order (shared prefixes side by side)."""
    prompts: list[TokensPrompt]
    params: SamplingParams
    label_ids: list[int]


@BACKENDS.register("vllm", config=VLLMBackendConfig)
class VLLMBackend(Backend):
    supports_grammar = True
    context_setting = "backend.engine_args.max_model_len"

    def __init__(self, cfg: CallSettings):
        require("vllm", ENGINE_EXTRAS, "judge backend 'vllm'")
        from vllm import LLM

        super().__init__(cfg)
        options = backend_section(cfg, VLLMBackendConfig)
        self._fields = _sampling_fields()
        # Recent vLLM returns the logprobs of exactly the given token ids; older releases need the processed
        # (post allowed_token_ids) distribution instead, whose top-5 is then exactly the five labels.
        self._token_ids_logprobs = "logprob_token_ids" in self._fields
        kwargs: dict[str, Any] = {"model": cfg.model, "seed": cfg.seed, "enable_prefix_caching": True}
        if cfg.tokenizer:
            kwargs["tokenizer"] = cfg.tokenizer
        if options.dtype:
            kwargs["dtype"] = options.dtype
        if self._token_ids_logprobs:
            # Raw logits are enough: the five label values are renormalised by a softmax over the five, which
            # is the same with logits or log-probabilities; this skips a log-softmax over the whole vocabulary.
            kwargs["logprobs_mode"] = "raw_logits"
        else:
            kwargs["logprobs_mode"] = "processed_logprobs"
        from vllm.platforms import current_platform

        self._cpu = bool(current_platform.is_cpu())
        if self._cpu and cfg.protocol == "pairwise":
            kwargs["block_size"] = CPU_PAIRWISE_BLOCK
        kwargs.update(options.engine_args)
        from rationalerm._util.local_models import loading

        with loading(cfg.model, "vllm backend"):
            self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)

    def context_length(self) -> int:
        return self.max_model_len

    def prefix_cache_tokens(self) -> tuple[float, float] | None:
        """(queried, served from the prefix cache) prompt tokens so far, from the engine's own counters; None when
        it keeps no statistics (``engine_args: {disable_log_stats: false}`` turns them on)."""
        queried = hit = None
        for metric in self.llm.get_metrics():
            if metric.name == "vllm:prefix_cache_queries":
                queried = (queried or 0.0) + float(getattr(metric, "value", 0.0))
            elif metric.name == "vllm:prefix_cache_hits":
                hit = (hit or 0.0) + float(getattr(metric, "value", 0.0))
        return None if queried is None or hit is None else (queried, hit)

    # -- prompt preparation (public so that benchmarks can submit the identical requests) --------------------
    def pair_sampling_params(self, labels: Sequence[str], seed: int | None = None) -> tuple[SamplingParams, list[int]]:
        from vllm import SamplingParams

        ids = self.label_token_ids(labels)
        assert ids is not None  # found with the engine's own tokenizer
        seed = self.cfg.seed if seed is None else seed
        kw: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "seed": seed, "allowed_token_ids": ids}
        if "detokenize" in self._fields:
            kw["detokenize"] = False  # only the label logprobs are read, by token id
        if self._token_ids_logprobs:
            kw["logprob_token_ids"] = ids
        else:
            kw["logprobs"] = len(ids)
        return SamplingParams(**kw), ids

    def pair_requests(
        self,
        prompts: Sequence[Messages],
        labels: Sequence[str],
        settings: CallSettings | None = None,
        splits: Sequence[Split] | None = None,
    ) -> PairRequests:
        """The engine requests of a pairwise batch."""
        c = self.settings(settings)
        return self._requests(LabelBatch(prompts, tuple(labels), c, splits, self.encode(prompts, c, splits)))

    def _requests(self, batch: LabelBatch) -> PairRequests:
        from vllm.inputs import TokensPrompt

        assert batch.token_ids is not None  # the base tokenises: this backend has a tokenizer
        order = prefix_order(batch.prompts)  # shared prefixes side by side (prefix caching)
        sp, label_ids = self.pair_sampling_params(batch.labels, batch.settings.seed)
        return PairRequests(order, [TokensPrompt(prompt_token_ids=batch.token_ids[i]) for i in order], sp, label_ids)

    # -- Backend hooks -----------------------------------------------------------------------------------------
    def _label_logprobs(self, batch: LabelBatch, progress: Progress | None) -> list[list[float | None]]:
        """Stream the prompts through the engine in prefix order.

        Requests are added to the engine as earlier ones finish, keeping ``batch_size`` in flight: no
        barrier between batches (the scheduler batches continuously), and progress is reported as
        requests finish.
        """
        order, requests, sp, label_ids = self._requests(batch)
        out: list[list[float | None]] = [[] for _ in batch.prompts]
        engine = self.llm.llm_engine
        tag = f"rationalerm-{next(_CALLS)}-"
        live: dict[str, int] = {}
        nxt = 0
        try:
            while True:
                while nxt < len(order) and len(live) < batch.settings.batch_size:
                    rid = f"{tag}{nxt}"
                    engine.add_request(rid, requests[nxt], sp)
                    live[rid] = order[nxt]
                    nxt += 1
                if not live:
                    break
                finished = 0
                for res in engine.step():
                    if not res.finished:
                        continue
                    i = live.pop(res.request_id)
                    assert isinstance(res.outputs, list)  # a generation request's completions
                    lps = res.outputs[0].logprobs
                    first = lps[0] if lps else {}
                    out[i] = [first[t].logprob if t in first else None for t in label_ids]
                    batch.answer(i, out[i])  # e.g. cached at once, not when the whole batch is done
                    finished += 1
                if progress and finished:
                    progress(finished)
        except BaseException:
            if live:
                engine.abort_request(list(live))
            raise
        return out

    def _generate(self, batch: GenerateBatch) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = batch.token_ids
        assert ids is not None  # the base tokenises: this backend has a tokenizer
        runnable = []
        for i in prefix_order(batch.prompts):
            kw: dict[str, Any] = {"max_tokens": batch.max_tokens[i], "temperature": batch.temperature}
            if not (self._cpu and batch.temperature > 0):
                # vLLM's CPU build cannot rewind a per-request generator when a chunked prefill is discarded
                # ("CPU Generator does not use offset"): there, sampling uses the engine's seeded generator.
                kw["seed"] = batch.seed
            if batch.regexes is not None:
                kw.update(_structured(batch.regexes[i], self._fields))
            runnable.append((i, TokensPrompt(prompt_token_ids=ids[i]), SamplingParams(**kw)))
        results: list[Generation | None] = [None] * len(ids)
        step = batch.settings.batch_size
        for lo in range(0, len(runnable), step):
            chunk = runnable[lo : lo + step]
            outs = self.llm.generate([r[1] for r in chunk], [r[2] for r in chunk], use_tqdm=False)
            for (i, _, _), res in zip(chunk, outs):
                o = res.outputs[0]
                results[i] = Generation(o.text, o.finish_reason, len(ids[i]), len(o.token_ids))
        return [r for r in results if r is not None]

    def close(self) -> None:
        llm = self.__dict__.pop("llm", None)  # closed twice: nothing left to release
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception:  # pragma: no cover - best effort
            log.debug("vLLM engine shutdown failed", exc_info=True)
        del llm
        gc.collect()


def _structured(regex: str, fields: set[str]) -> dict[str, Any]:
    if "structured_outputs" in fields:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(regex=regex)}
    if "guided_decoding" in fields:  # vLLM < 0.11
        from vllm.sampling_params import GuidedDecodingParams  # type: ignore[attr-defined]

        return {"guided_decoding": GuidedDecodingParams(regex=regex)}
    raise JudgeError("this vLLM has no structured outputs; set judge.listwise.structured_outputs: false")


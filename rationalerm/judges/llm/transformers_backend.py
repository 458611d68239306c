"""Hugging Face transformers backend (CPU or GPU): batched forward passes and ``generate``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from rationalerm._util.optional import require
from rationalerm.judges.base import Progress
from rationalerm.judges.llm.backend import Backend, GenerateBatch, Generation, LabelBatch
from rationalerm.judges.llm.settings import BACKENDS, BackendConfig, CallSettings, backend_section

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)
TOKEN_BUDGET = 16384
"""Padded tokens per forward batch (the batch also holds at most ``batch_size`` prompts)."""

_DTYPES = {"float32": "float32", "float": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "half": "float16", "fp16": "float16"}


class TransformersBackendConfig(BackendConfig):
    """``backend: {type: transformers}``: a Hugging Face model in this process."""

    type: Literal["transformers"] = "transformers"
    device: str | None = Field(None, description="cpu, cuda or auto (None: cuda when available)")
    dtype: str | None = None

    def device_hint(self) -> str | None:
        return self.device


@BACKENDS.register("transformers", config=TransformersBackendConfig)
class TransformersBackend(Backend):
    supports_grammar = False

    def __init__(self, cfg: CallSettings):
        torch = require("torch", None, "judge backend 'transformers'")
        require("transformers", None, "judge backend 'transformers'")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        super().__init__(cfg)
        options = backend_section(cfg, TransformersBackendConfig)
        self.torch = torch
        device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        from rationalerm._util.local_models import loading

        with loading(cfg.tokenizer or cfg.model, "transformers backend (tokenizer)"):
            self.tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype: Any = "auto"
        if options.dtype and options.dtype != "auto":
            dtype = getattr(torch, _DTYPES.get(options.dtype, options.dtype))
        kwargs: dict[str, Any] = {"dtype": dtype}
        if device == "auto":
            kwargs["device_map"] = "auto"
        # Any: transformers' own annotations of to() and generate() do not type-check on the Auto class's result
        self.model: Any
        with loading(cfg.model, "transformers backend"):
            self.model = AutoModelForCausalLM.from_pretrained(cfg.model, **kwargs)
        if device != "auto":
            self.model.to(device)
        self.model.eval()
        self.device = self.model.device
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)

    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def _batches(self, lengths: list[int], batch_size: int, extra: int = 0) -> list[list[int]]:
        """Indices grouped into batches of similar length (longest first) under the token budget."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        cur: list[int] = []
        for i in order:
            width = (lengths[cur[0]] if cur else lengths[i]) + extra
            if cur and (len(cur) + 1 > batch_size or (len(cur) + 1) * width > TOKEN_BUDGET):
                batches.append(cur)
                cur = []
            cur.append(i)
        if cur:
            batches.append(cur)
        return batches

    def _pad_left(self, seqs: list[list[int]]) -> tuple[Tensor, Tensor]:
        torch = self.torch
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[r, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _label_logprobs(self, batch: LabelBatch, progress: Progress | None) -> list[list[float | None]]:
        torch = self.torch
        label_ids = self.label_token_ids(batch.labels)
        ids = batch.token_ids
        assert ids is not None  # the base tokenises: this backend has a tokenizer
        out: list[list[float | None]] = [[] for _ in ids]
        for group in self._batches([len(x) for x in ids], batch.settings.batch_size):
            input_ids, mask = self._pad_left([ids[i] for i in group])
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=input_ids, attention_mask=mask, position_ids=position_ids, logits_to_keep=1
                ).logits[:, -1, :]
                logprobs = torch.log_softmax(logits.float(), dim=-1)[:, label_ids].cpu().tolist()
            for i, row in zip(group, logprobs):
                out[i] = list(row)
                batch.answer(i, out[i])
            if progress:
                progress(len(group))
        return out

    def _generate(self, batch: GenerateBatch) -> list[Generation]:
        torch = self.torch
        ids = batch.token_ids
        assert ids is not None  # the base tokenises: this backend has a tokenizer
        results: list[Generation | None] = [None] * len(ids)
        for group in self._batches([len(x) for x in ids], batch.settings.batch_size, extra=max(batch.max_tokens)):
            input_ids, mask = self._pad_left([ids[i] for i in group])
            # Each budget fits its own prompt in the context, so the group's smallest fits them all.
            kw: dict[str, Any] = {"max_new_tokens": min(batch.max_tokens[i] for i in group),
                                  "pad_token_id": self.tokenizer.pad_token_id, "eos_token_id": self.eos_ids}
            if batch.temperature > 0:
                kw.update(do_sample=True, temperature=batch.temperature, top_p=1.0, top_k=0)
            else:
                kw.update(do_sample=False)
            torch.manual_seed(batch.seed)
            with torch.inference_mode():
                seqs = self.model.generate(input_ids=input_ids, attention_mask=mask, **kw)
            new = seqs[:, input_ids.shape[1]:].cpu().tolist()
            for i, toks in zip(group, new):
                n = len(toks)
                for k, t in enumerate(toks):
                    if t in self.eos_ids:
                        n = k
                        break
                finish = "stop" if n < len(toks) or len(toks) < kw["max_new_tokens"] else "length"
                text = self.tokenizer.decode(toks[:n], skip_special_tokens=True)
                results[i] = Generation(text, finish, len(ids[i]), n + (1 if finish == "stop" else 0))
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.model = None
        import gc

        gc.collect()

"""Hugging Face transformers backend (CPU or GPU): pairwise prompts as batched prefill over shared-prefix caches,
listwise prompts through ``generate``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import Field

from rationalerm._util.optional import require
from rationalerm.judges.base import Progress
from rationalerm.judges.llm.backend import Backend, GenerateBatch, Generation, LabelBatch
from rationalerm.judges.llm.settings import BACKENDS, BackendConfig, CallSettings, backend_section
from rationalerm.judges.llm.tokenize import prefix_groups

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)
TOKEN_BUDGET = 16384
"""Padded tokens per forward batch (the batch also holds at most ``batch_size`` prompts)."""
PREFIX_TOKEN_BUDGET = 65536
"""Rows x (longest prefix + longest suffix) of a pairwise batch: bounds the cached keys and values it holds."""

KV = list[tuple["Tensor", "Tensor"]]
"""Cached keys and values, one (keys, values) pair per layer, each ``[rows, kv heads, tokens, head dim]``."""


class _Row(NamedTuple):
    """A pairwise prompt in a prefill batch: its index, its shared prefix length and that prefix's cache."""

    prompt: int
    prefix: int
    kv: KV | None

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
        self.prompt_tokens = 0
        """Pairwise prompt tokens sent so far."""
        self.computed_tokens = 0
        """Of those, the tokens run through the model (the rest came from a shared prefix's cache)."""

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
        """Batched prefill over shared prefixes, one forward pass per token and never a decoding step.

        The tokens every prompt shares (template + rubric) are computed once, each human item's prefix once on
        top of them (the pairwise split's first part groups the prompts), and the suffixes (model item + answer
        cue) of many prompts are batched on those cached keys and values; the next-token logits are read at
        each suffix's last token. ``prompt_tokens`` / ``computed_tokens`` count what was sent and computed.
        """
        ids = batch.token_ids
        assert ids is not None  # the base tokenises: this backend has a tokenizer
        label_ids = self.label_token_ids(batch.labels)
        assert label_ids is not None  # found with the local tokenizer
        keys: list[object] = [a for a, _ in batch.splits] if batch.splits is not None else [tuple(x) for x in ids]
        root, groups = prefix_groups(ids, keys)
        out: list[list[float | None]] = [[] for _ in ids]
        self.prompt_tokens += sum(len(x) for x in ids)
        root_kv = self._prefill(ids[0][:root], None)
        rows: list[_Row] = []
        for idx, prefix in groups:
            kv = self._prefill(ids[idx[0]][root:prefix], root_kv)  # one pass per human item
            for i in idx:
                row = _Row(i, prefix, kv)
                if rows and not self._fits([*rows, row], ids, batch.settings.batch_size):
                    self._score_rows(rows, ids, label_ids, out, batch, progress)
                    rows = []
                rows.append(row)
        if rows:
            self._score_rows(rows, ids, label_ids, out, batch, progress)
        return out

    def _prefill(self, tokens: list[int], past: KV | None) -> KV | None:
        """Keys and values (one row) of ``tokens`` appended to ``past``."""
        if not tokens:
            return past
        from transformers import DynamicCache

        torch = self.torch
        start = past[0][0].shape[-2] if past else 0
        cache = DynamicCache(past) if past else DynamicCache()
        with torch.inference_mode():
            self.model(input_ids=torch.tensor([tokens], device=self.device), past_key_values=cache, use_cache=True,
                       position_ids=torch.arange(start, start + len(tokens), device=self.device).unsqueeze(0),
                       logits_to_keep=1)
        self.computed_tokens += len(tokens)
        return [(keys, values) for keys, values, _ in cache]

    @staticmethod
    def _fits(rows: list[_Row], ids: Sequence[list[int]], batch_size: int) -> bool:
        suffix = max(len(ids[r.prompt]) - r.prefix for r in rows)
        prefix = max(r.prefix for r in rows)
        return (len(rows) <= batch_size and len(rows) * suffix <= TOKEN_BUDGET
                and len(rows) * (prefix + suffix) <= PREFIX_TOKEN_BUDGET)

    def _score_rows(self, rows: list[_Row], ids: Sequence[list[int]], label_ids: list[int],
                    out: list[list[float | None]], batch: LabelBatch, progress: Progress | None) -> None:
        """One forward pass over the suffixes of ``rows``, each on its own prefix's cached keys and values.

        Each row is [prefix padding][prefix][suffix padding][suffix]: prefixes and suffixes are left-padded to
        one width each, the padding masked out and positions continuing each row's own prefix, so every suffix
        ends in the last column and only that column's logits are computed.
        """
        from transformers import DynamicCache

        torch = self.torch
        n = len(rows)
        suffixes = [ids[r.prompt][r.prefix:] for r in rows]
        width_p, width_s = max(r.prefix for r in rows), max(len(s) for s in suffixes)
        input_ids = torch.full((n, width_s), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, width_p + width_s), dtype=torch.long)
        positions = torch.zeros((n, width_s), dtype=torch.long)
        for r, (row, s) in enumerate(zip(rows, suffixes)):
            pad = width_s - len(s)
            input_ids[r, pad:] = torch.tensor(s, dtype=torch.long)
            mask[r, width_p - row.prefix:width_p] = 1
            mask[r, width_p + pad:] = 1
            positions[r, pad:] = torch.arange(row.prefix, row.prefix + len(s))
        cache = DynamicCache(self._stack_prefixes(rows, width_p)) if width_p else None
        with torch.inference_mode():
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=positions.to(self.device), past_key_values=cache,
                                use_cache=cache is not None, logits_to_keep=1).logits[:, -1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, label_ids].cpu().tolist()
        self.computed_tokens += sum(len(s) for s in suffixes)
        for row, values in zip(rows, logprobs):
            out[row.prompt] = list(values)
            batch.answer(row.prompt, out[row.prompt])
        if progress:
            progress(n)

    def _stack_prefixes(self, rows: list[_Row], width: int) -> KV:
        """Each layer's cached keys and values of ``rows``, left-padded with zeros to ``width`` tokens."""
        first = next(r.kv for r in rows if r.kv)
        stacked: KV = []
        for layer, (k0, v0) in enumerate(first):
            keys = k0.new_zeros((len(rows), k0.shape[1], width, k0.shape[3]))
            values = v0.new_zeros((len(rows), v0.shape[1], width, v0.shape[3]))
            for r, row in enumerate(rows):
                if row.kv and row.prefix:
                    keys[r, :, width - row.prefix:] = row.kv[layer][0][0]
                    values[r, :, width - row.prefix:] = row.kv[layer][1][0]
            stacked.append((keys, values))
        return stacked

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

"""What ``rationalerm train`` hands sentence-transformers' ``CrossEncoderTrainer``: the pairs as a dataset, the
training arguments, a length-grouped batch sampler and a callback that watches the steps. Imported only when
training starts, so that the trainer stack is never loaded by a scoring run.

Length-grouped batches: sentence-transformers' samplers shuffle uniformly, so a batch pads every pair to its
longest one; rationale items vary from a few words to a paragraph, and grouping pairs of similar length cut the
compute of a CPU epoch by about a third on ArgKP with no loss of quality (benchmarks/RESULTS.md E).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import DefaultBatchSampler
from sentence_transformers.cross_encoder import CrossEncoderTrainingArguments
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from rationalerm.training.labels import PairLabel
from rationalerm.training.recipe import Recipe


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Per epoch: shuffle (seed + epoch), sort each run of ``group`` batches by length, cut into batches, shuffle
    the batch order. The same seed and epoch always give the same batches."""

    group = 50

    def __init__(self, dataset: Dataset, batch_size: int, drop_last: bool, valid_label_columns: list[str] | None = None,
                 generator: torch.Generator | None = None, seed: int = 0) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        self.lengths = [len(h) + len(s) for h, s in zip(dataset["human"], dataset["item"])]

    def _batches(self) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=gen).tolist()
        size = self.batch_size * self.group
        batches: list[list[int]] = []
        for start in range(0, len(perm), size):
            chunk = sorted(perm[start:start + size], key=self.lengths.__getitem__)
            batches += [chunk[b:b + self.batch_size] for b in range(0, len(chunk), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        n, size = len(self.lengths), self.batch_size * self.group
        full, rest = divmod(n, size)
        tail = rest // self.batch_size + (0 if self.drop_last or rest % self.batch_size == 0 else 1)
        return full * self.group + tail


BATCHES = f"length-grouped ({LengthGroupedBatchSampler.__module__})"
"""How the batches are formed, as the model card says it (the module named is this one)."""


class StepWatcher(TrainerCallback):
    """Feeds the rich progress bar (step, total, smoothed loss) and keeps every step's loss for the model card."""

    def __init__(self, progress: Callable[[int, int, float], None] | None) -> None:
        self.progress = progress
        self.losses: list[float] = []
        self.running: float | None = None

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            v = float(logs["loss"])
            self.losses.append(v)
            self.running = v if self.running is None else 0.98 * self.running + 0.02 * v
            if self.progress:
                self.progress(state.global_step, state.max_steps, self.running)


def pair_dataset(pairs: Sequence[PairLabel]) -> Dataset:
    """The training pairs as the trainer reads them: human item first, the label a float."""
    return Dataset.from_dict({"human": [p.human for p in pairs], "item": [p.item for p in pairs],
                              "label": [float(p.label) for p in pairs]})


def training_arguments(recipe: Recipe, *, steps: int, precision: str, device: str,
                       scratch: str) -> CrossEncoderTrainingArguments:
    """The recipe as trainer arguments: AdamW, linear warm-up then decay, gradient clipping at 1, length-grouped
    batches, a log entry (for the watcher) every step, nothing saved and nothing reported."""
    return CrossEncoderTrainingArguments(
        output_dir=scratch, max_steps=steps, per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.lr, lr_scheduler_type="linear", warmup_steps=recipe.warmup_ratio,
        weight_decay=recipe.weight_decay, max_grad_norm=1.0, seed=recipe.seed, data_seed=recipe.seed,
        bf16=precision == "bf16", use_cpu=device == "cpu", batch_sampler=LengthGroupedBatchSampler,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_pin_memory=False,
    )

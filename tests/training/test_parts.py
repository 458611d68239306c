"""What ``rationalerm train`` hands the trainer: the length-grouped batch sampler, and the module the model
card names for it."""

from __future__ import annotations

import importlib

from hypothesis import given, settings
from hypothesis import strategies as st

from rationalerm.training.parts import BATCHES, LengthGroupedBatchSampler


def test_the_card_names_the_sampler_s_real_module() -> None:
    assert BATCHES == "length-grouped (rationalerm.training.parts)"
    module = BATCHES.split("(", 1)[1].rstrip(")")
    assert importlib.import_module(module).LengthGroupedBatchSampler is LengthGroupedBatchSampler


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 400), batch_size=st.integers(1, 17), drop_last=st.booleans(), seed=st.integers(0, 3))
def test_length_grouped_batches_cover_every_pair_once(n: int, batch_size: int, drop_last: bool, seed: int) -> None:
    """Each epoch: every pair at most once (exactly once unless drop_last), len() equals what iterates, seeded."""
    from datasets import Dataset

    ds = Dataset.from_dict({"human": ["h" * (k % 7) for k in range(n)], "item": ["i" * (k % 13) for k in range(n)],
                            "label": [0.0] * n})
    sampler = LengthGroupedBatchSampler(ds, batch_size=batch_size, drop_last=drop_last, seed=seed)
    first = list(sampler)
    assert len(first) == len(sampler) and list(sampler) == first
    flat = [k for b in first for k in b]
    assert len(flat) == len(set(flat)) and all(1 <= len(b) <= batch_size for b in first)
    assert set(flat) == set(range(n)) if not drop_last else all(len(b) == batch_size for b in first)
    sampler.set_epoch(1)
    second = [k for b in sampler for k in b]
    assert len(second) == len(flat) and (drop_last or sorted(second) == sorted(flat))

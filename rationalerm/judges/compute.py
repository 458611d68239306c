"""How a local encoder computes: its precision (``fp32`` | ``int8``) and the torch threads it uses.

The encoders (MiniLM, a trained cross-encoder) already run at the CPU's matrix-multiply rate, so the levers left
are fewer FLOPs and the thread count (``benchmarks/limits.py``; README "Speed"). ``int8`` is torch's dynamic
quantization of the ``Linear`` layers (weights int8 per output channel, activations quantized per batch): no new
dependency (ONNX Runtime's quantizer would need ``onnxruntime``, which this project does not install), about 2.4x
the fp32 rate on one core, at a measured cost in agreement (README "Speed": why fp32 stays the default).
``threads`` sets torch's intra-op threads around the judge's own work only, and puts them back after: OpenMP
threads stalling on a shared machine swing throughput far more than any kernel does.

``fp32`` is left out of every fingerprint (so fp32 caches keep the keys they always had); ``int8`` is recorded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import Field

from rationalerm.errors import ConfigError
from rationalerm.registry import ConfigSection

Precision = Literal["fp32", "int8"]


class ComputeOptions(ConfigSection):
    """The ``precision`` and ``threads`` keys of a judge (or the prefilter) that runs a local encoder."""

    precision: Precision = Field("fp32", description="int8 = torch dynamic quantization of the Linear layers "
                                                     "(CPU; recorded in the judge fingerprint)")
    threads: int | None = Field(None, ge=1, description="torch threads for the judge's work; None = the cores "
                                                        "this process may use")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's or ``taskset``'s share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def precision_fingerprint(precision: Precision) -> dict[str, Any]:
    """The fingerprint entry for ``precision``: none for fp32 (the keys of every earlier version), else its name."""
    return {} if precision == "fp32" else {"precision": precision}


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None = the available cores), then restore."""
    import torch

    want = threads or available_cores()
    before = torch.get_num_threads()
    if want != before:
        torch.set_num_threads(want)
    try:
        yield
    finally:
        if want != before:
            torch.set_num_threads(before)


def quantize(module: Any, precision: Precision, device: str) -> Any:
    """``module`` with its ``Linear`` layers dynamically quantized to int8 (CPU only), or unchanged for fp32."""
    if precision == "fp32":
        return module
    if device != "cpu":
        raise ConfigError(f"precision: int8 runs on the CPU only (torch dynamic quantization); device is {device}")
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantization warns of its move to torchao on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)

"""How a local encoder computes: its precision (``fp32`` | ``bf16`` | ``int8``) and the torch threads it uses.

The encoders (MiniLM, a trained cross-encoder) already run at the CPU's matrix-multiply rate, so the levers left
are cheaper arithmetic and the thread count (``benchmarks/limits.py``; README "Speed"). ``bf16`` casts the weights
to bfloat16, for CPUs with bf16 matrix units (AVX512-BF16 or AMX) and GPUs that have them: about 3x the fp32 rate on
one such core with vectors at cosine 0.9999 to fp32's; it is refused where the device has no bf16 units (it
would run slower than fp32 there). ``int8`` is torch's dynamic quantization of the ``Linear`` layers (weights int8
per output channel, activations quantized per batch): no new dependency (ONNX Runtime's quantizer would need
``onnxruntime``, which this project does not install), 2.4-3.8x the fp32 rate on one core, at a measured cost in
agreement (README "Speed": which to choose, and why fp32 stays the default).
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

Precision = Literal["fp32", "bf16", "int8"]


class ComputeOptions(ConfigSection):
    """The ``precision`` and ``threads`` keys of a judge (or the prefilter) that runs a local encoder."""

    precision: Precision = Field("fp32", description="bf16 = bfloat16 weights (CPUs with AVX512-BF16/AMX, GPUs with "
                                                     "bf16 units); int8 = torch dynamic quantization of the Linear "
                                                     "layers (CPU); either is recorded in the judge fingerprint")
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


def has_bf16_units(device: str) -> bool:
    """True where bf16 matrix multiplies run natively: a CUDA GPU of compute capability 8.0 or later (the one
    ``cuda:N`` names; torch's own answer on ROCm), a CPU with AVX512-BF16 or AMX (read from ``/proc/cpuinfo``);
    elsewhere, False."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return False
        if torch.version.hip:  # ROCm: torch's own answer
            return bool(torch.cuda.is_bf16_supported())
        index = int(device.split(":", 1)[1]) if ":" in device else torch.cuda.current_device()
        return torch.cuda.get_device_capability(index) >= (8, 0)  # Ampere and later: native bf16 (no emulation)
    if device != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="ignore") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def check_precision(precision: Precision, device: str | None) -> None:
    """Refuse bf16 where it would run slower than fp32 (no bf16 units on ``device``; None = the GPU when one is
    visible, else the CPU), when the judge is built: before any model loads or any text is embedded."""
    if precision != "bf16":
        return
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not has_bf16_units(device):
        raise ConfigError(f"precision: bf16 needs bf16 units (a CPU with AVX512-BF16 or AMX, or a GPU that "
                          f"supports bf16); {device} has none, where bf16 runs slower than fp32: use fp32 or int8")


def quantize(module: Any, precision: Precision, device: str) -> Any:
    """``module`` in ``precision``: unchanged for fp32, its weights in bfloat16 for bf16 (converted in place, on a
    device with bf16 units), a copy with its ``Linear`` layers dynamically quantized for int8 (CPU only)."""
    if precision == "fp32":
        return module
    if precision == "bf16":
        check_precision(precision, device)
        import torch

        return module.to(torch.bfloat16)
    if device != "cpu":
        raise ConfigError(f"precision: int8 runs on the CPU only (torch dynamic quantization); device is {device}")
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantization warns of its move to torchao on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)

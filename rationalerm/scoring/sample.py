"""One sample's score and its status: the leaf every scoring module builds on (it imports none of them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Match = tuple[int, int, float]
"""``(human item, model item, score)``, 0-based."""
Status = Literal["valid", "skipped", "error", "failed"]
"""``valid`` (scored), ``skipped`` (by rule), ``error`` (the judge's answer is unusable: an invalid listwise output),
``failed`` (some judge call got no answer that could be scored; the next run of the same command retries it)."""
MetricName = Literal["precision", "recall", "f1", "ap"]
METRICS: tuple[MetricName, ...] = ("precision", "recall", "f1", "ap")


@dataclass(frozen=True)
class SampleScore:
    precision: float
    recall: float
    f1: float
    ap: float
    pairs: list[Match] = field(default_factory=list)
    excluded: str | None = None
    """Why the sample does not count (skipped, an error such as an invalid judge answer, or failed judge calls);
    metrics are then 0."""
    status: Status = "valid"

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def metrics(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in METRICS}

    @classmethod
    def failed(cls, status: Status, reason: str) -> SampleScore:
        """A sample that is not scored: ``skipped`` (by rule), ``error`` (no usable judgement) or ``failed``."""
        return cls(0.0, 0.0, 0.0, 0.0, [], excluded=reason, status=status)


def f1_of(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)

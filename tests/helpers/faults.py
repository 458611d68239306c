"""The fault scenarios shared by ``tests/test_faults.py`` and ``benchmarks/faults.py``: a small generated dataset,
a run config for the openai backend against ``tests/helpers/fault_server.py``, and the per-cell audit of a run's
``results.jsonl`` against the server's intended answers."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rationalerm.judges.llm.listwise import parse_listwise
from rationalerm.judges.llm.prompts import listwise_messages, pairwise_messages
from tests.helpers.fault_server import intended_listwise, intended_score

MODELS = ("Alpha", "Beta")
WORDS = ("coherence", "fact", "safety", "style", "math", "code", "tone", "length", "source", "logic", "format",
         "detail")


def write_dataset(path: Path, n_samples: int = 30, seed: int = 0) -> Path:
    """JSONL samples with 3 human items and 2-3 items per model; texts repeat across samples (deduplicated pairs)."""
    rng = random.Random(seed)

    def item() -> str:
        return f"Response {rng.choice('12')} lacks {rng.choice(WORDS)} in part {rng.randint(1, 4)}."

    with path.open("w", encoding="utf-8") as f:
        for k in range(n_samples):
            rec: dict[str, Any] = {"id": f"s{k}", "domain": rng.choice(("chat", "code")),
                                   "human-checklist": [item() for _ in range(3)]}
            for m in MODELS:
                rec[f"{m}-checklist"] = [item() for _ in range(rng.randint(2, 3))]
            f.write(json.dumps(rec) + "\n")
    return path


def write_config(path: Path, base_url: str, *, protocol: str = "pairwise", timeout_s: float = 1.0,
                 max_retries: int = 3, concurrency: int = 8, batch_size: int = 64, **backend: Any) -> Path:
    """A run config: the ``llm`` judge on the openai backend (labels read by token string: no tokenizer)."""
    import yaml

    server = {"type": "openai", "base_url": base_url, "timeout_s": timeout_s, "max_retries": max_retries,
              "backoff_s": 0.01, "concurrency": concurrency, "structured_outputs": False,
              "api_key_env": "RATIONALERM_FAULTS_KEY", **backend}
    judge: dict[str, Any] = {"type": "llm", "model": "fault-judge", "protocol": protocol, "backend": server,
                             "batch_size": batch_size}
    if protocol == "listwise":
        judge["listwise"] = {"max_retries": 1, "max_tokens": 256}
    path.write_text(yaml.safe_dump({"judge": judge}), encoding="utf-8")
    return path


@dataclass
class Audit:
    """Per cell of a run: the intended score, an explicit failure, or silently wrong (must never happen)."""

    ok: int = 0
    failed: int = 0
    wrong: int = 0
    failed_kinds: Counter[str] = field(default_factory=Counter)
    failed_pairs: set[tuple[str, str]] = field(default_factory=set)
    """Distinct (human, model item) texts of the failed cells (pairwise) or (human list, model list) (listwise)."""
    failed_kind_of: dict[tuple[str, str], str] = field(default_factory=dict)
    """Pairwise: each failed pair's reason."""
    invalid_rows: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.failed_kinds.items()))
        return (f"cells ok {self.ok} / failed explicitly {self.failed} ({kinds or 'none'}) / "
                f"silently wrong {self.wrong}")


def audit_pairwise(rows: list[dict[str, Any]], tol: float = 1e-6) -> Audit:
    a = Audit()
    for row in rows:
        failed_here = 0
        for i, h in enumerate(row["human"]):
            for j, s in enumerate(row["items"]):
                x, d = row["matrix"][i][j], row["details"][i][j]
                if x is None:
                    if not (isinstance(d, dict) and d.get("failed") and d.get("error")):
                        a.problems.append(f"{row['id']}/{row['model']} [{i},{j}]: null cell without a reason")
                    a.failed += 1
                    failed_here += 1
                    a.failed_kinds[d.get("failed") if isinstance(d, dict) else "?"] += 1
                    a.failed_pairs.add((h, s))
                    a.failed_kind_of[(h, s)] = d.get("failed") if isinstance(d, dict) else "?"
                elif abs(x - intended_score(pairwise_messages(h, s))) <= tol:
                    a.ok += 1
                else:
                    a.wrong += 1
                    a.problems.append(f"{row['id']}/{row['model']} [{i},{j}]: {x} != "
                                      f"{intended_score(pairwise_messages(h, s))}")
        want = "failed" if failed_here else "valid"
        if row["status"] != want or (failed_here and "failed" not in (row.get("excluded") or "")):
            a.problems.append(f"{row['id']}/{row['model']}: status {row['status']!r} ({row.get('excluded')}), "
                              f"{failed_here} failed cells")
    return a


def audit_listwise(rows: list[dict[str, Any]]) -> Audit:
    """A row is valid with the server's intended matrix, failed (no answer: every cell failed), or an error
    (an invalid answer after the re-asks, recorded as such): never a matrix the server did not mean."""
    a = Audit()
    for row in rows:
        cells = len(row["human"]) * len(row["items"])
        out = row.get("judge_output") or {}
        intended = parse_listwise(intended_listwise(listwise_messages(row["human"], row["items"])),
                                  len(row["human"]), len(row["items"])).matrix
        if out.get("failed"):
            a.failed += cells
            a.failed_kinds[out["failed"]] += cells
            a.failed_pairs.add((tuple(row["human"]), tuple(row["items"])))
            if row["status"] != "failed" or row["matrix"] is not None:
                a.problems.append(f"{row['id']}/{row['model']}: failed request but status {row['status']!r}")
        elif row["matrix"] is None:
            a.invalid_rows += 1
            if row["status"] != "error":
                a.problems.append(f"{row['id']}/{row['model']}: no matrix but status {row['status']!r}")
        elif row["matrix"] == intended:
            a.ok += cells
        else:
            a.wrong += cells
            a.problems.append(f"{row['id']}/{row['model']}: {row['matrix']} != {intended}")
    return a


def read_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]

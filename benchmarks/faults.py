"""Judging under faults: per-cell audit of runs of the llm judge (openai backend) against the fault-injecting server.

Every cell of every run is compared with the server's intended answer: the intended score (within 1e-6), an
explicit failure (``null`` with its reason), or silently wrong (must be 0). Scenarios, on a generated dataset:

- ``mixed 1%``: every fault kind mixed at 1% of requests, plus 1% of prompts that never get a score;
- ``mixed 10%``: every fault kind at 10%, plus 5% of prompts answered HTTP 500 on every attempt;
- ``killed``: the CLI under mixed faults (5%) killed with SIGKILL mid-run, then resumed under the same faults;
- then, for each, the same command with the faults off: it must judge exactly the failed pairs, and its outputs
  must equal an uninterrupted fault-free run's.

    PYTHONPATH=. python benchmarks/faults.py [--samples 100]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rationalerm.config import load_config  # noqa: E402
from rationalerm.pipeline import run  # noqa: E402
from tests.helpers.fault_server import FaultServer  # noqa: E402
from tests.helpers.faults import audit_pairwise, read_rows, write_config, write_dataset  # noqa: E402


def outputs(out: Path) -> tuple[str, dict]:
    metrics = json.loads((out / "metrics.json").read_text())
    return (out / "results.jsonl").read_text(), metrics


def cached(out: Path) -> int:
    try:
        with sqlite3.connect(out / "cache.sqlite") as db:
            return db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def finish(name: str, server: FaultServer, cfg_path: Path, data: Path, out: Path, clean: tuple[str, dict]) -> bool:
    """Audit the run in ``out``, then run again with the faults off and check it judged exactly the failed pairs."""
    audit = audit_pairwise(read_rows(out))
    print(f"{name:>10}: {audit.line()}", flush=True)
    server.rate = server.permanent = 0.0
    t0 = time.perf_counter()
    again = run(data, load_config(cfg_path), out)
    after = audit_pairwise(read_rows(out))
    same = outputs(out) == clean
    ok = again.judged == len(audit.failed_pairs) and not again.failed and after.wrong == 0 and same
    print(f"{'rerun':>10}: faults off: judged {again.judged} pairs (failed before: {len(audit.failed_pairs)} "
          f"distinct), {after.line()}; outputs equal a fault-free run's: {same}  [{time.perf_counter() - t0:.1f}s]",
          flush=True)
    return ok and audit.wrong == 0 and not audit.problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="rationalerm-faults-"))
    data = write_dataset(tmp / "data.jsonl", n_samples=args.samples)
    good = True

    server = FaultServer()
    cfg = write_config(tmp / "clean.yaml", server.base_url, timeout_s=1.0, concurrency=16)
    t0 = time.perf_counter()
    base = run(data, load_config(cfg), tmp / "clean")
    clean = outputs(tmp / "clean")
    print(f"{args.samples} samples, {base.judged} distinct pairs, "
          f"{sum(len(r['human']) * len(r['items']) for r in read_rows(tmp / 'clean'))} cells; fault-free run "
          f"{time.perf_counter() - t0:.1f}s", flush=True)
    server.close()

    for name, rate, permanent, kind in (("mixed 1%", 0.01, 0.01, "nolabels"), ("mixed 10%", 0.10, 0.05, "500")):
        server = FaultServer(rate=rate, permanent=permanent, permanent_kind=kind, stall_s=1.5, seed=7)
        cfg = write_config(tmp / f"{rate}.yaml", server.base_url, timeout_s=1.0, concurrency=16, max_retries=3)
        out = tmp / f"run-{rate}"
        t0 = time.perf_counter()
        first = run(data, load_config(cfg), out)
        print(f"{name:>10}: {sum(server.injected.values())} faults injected in {server.requests} requests "
              f"({', '.join(f'{k} {n}' for k, n in sorted(server.injected.items()))}); "
              f"{first.failure_message()}  [{time.perf_counter() - t0:.1f}s]", flush=True)
        good &= finish(name, server, cfg, data, out, clean)
        server.close()

    server = FaultServer(rate=0.05, permanent=0.02, permanent_kind="onelabel", stall_s=1.5, seed=3, delay_s=0.01)
    cfg = write_config(tmp / "killed.yaml", server.base_url, timeout_s=1.0, concurrency=8, batch_size=1024)
    out = tmp / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "rationalerm", "run", str(data), "--config", str(cfg), "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and cached(out) < base.judged // 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = cached(out)
    server.delay_s = 0.0
    resumed = run(data, load_config(cfg), out)
    print(f"{'killed':>10}: SIGKILL with {kept} pairs cached (one 1,024-pair chunk in flight); resumed under the "
          f"same faults: judged {resumed.judged}, {resumed.cached} from cache; {resumed.failure_message()}",
          flush=True)
    good &= finish("resumed", server, cfg, data, out, clean)
    server.close()
    print("all cells intended or explicitly failed; reruns judged exactly the failed pairs" if good else "FAILED")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())

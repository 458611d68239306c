"""Test-only builders for the report: a generated run directory (no judge) and a headless-browser helper.

``make_run`` writes ``results.jsonl``, ``metrics.json`` and ``run.json`` the way ``rationalerm run`` does, for
any number of samples: item texts are sentences drawn from a fixed vocabulary (70-130 characters, like real
checklist items), matrices are sparse five-level scores, scored by the real ``score_rows``; metrics come
from the real ``summarize``. ``benchmarks/report_size.py`` uses it too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rationalerm._util.files import write_json, write_jsonl
from rationalerm.config import RunConfig
from rationalerm.scoring.rows import score_rows
from rationalerm.scoring.summary import summarize
from tests.helpers.paths import ROOT

CHROMIUM = os.environ.get("RATIONALERM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_WORDS = (
    "response one two correctly explains the answer code function returns value list order user asks "
    "question because example error handles edge case clear concise detailed safe harmful refuses request "
    "politely offers alternative step proof formula derivative integral result units missing wrong claim "
    "cites source accurate relevant tone friendly formal structure bullet summary complete partial ignores "
    "constraint instruction format length shorter longer test input output loop variable scope memory time "
    "complexity linear quadratic sorted stable unique duplicate removes keeps preserves original assumes "
    "context previous turn follow clarifies ambiguity hedges overconfident verifies checks computes total"
).split()
LEVELS = np.array([0.25, 0.5, 0.75, 1.0])


class _Sentences:
    """Random checklist-like sentences, drawn in bulk (one numpy call per 4,096)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.buf = rng, []  # type: ignore[var-annotated]

    def __call__(self) -> str:
        if not self.buf:
            words = self.rng.integers(0, len(_WORDS), size=(4096, 18))
            lengths = self.rng.integers(11, 19, size=4096)
            sides = self.rng.random(4096) < 0.6
            self.buf = [("Response 1 " if sd else "Response 2 ") + " ".join(_WORDS[w] for w in ws[:n]) + "."
                        for ws, n, sd in zip(words.tolist(), lengths.tolist(), sides.tolist())]
        return self.buf.pop()


def make_run(out: str | Path, n_samples: int = 200, models: tuple[str, ...] = ("judge-a", "judge-b", "judge-c"),
             seed: int = 0, bootstrap: int = 200, hostile: bool = False,
             domains: tuple[str, ...] = ("chat", "code", "math", "safety", "stem")) -> Path:
    """A run directory with ``n_samples`` x ``len(models)`` rows; model k matches humans less as k grows."""
    rng = np.random.default_rng(seed)
    _sentence = _Sentences(np.random.default_rng(seed + 1))
    out = Path(out)
    cfg = RunConfig.model_validate({"scoring": {"bootstrap": bootstrap}})
    rows: list[dict[str, Any]] = []
    for s in range(n_samples):
        human = [_sentence() for _ in range(int(rng.integers(3, 6)))]
        if hostile and s == 0:
            human[0] = "<script>alert('x')</script> & \"quoted\" </script><!-- 'single' -->"
        label = int(rng.integers(1, 3))
        domain = domains[s % len(domains)]
        for k, model in enumerate(models):
            m = int(rng.integers(3, 7))
            items = [_sentence() for _ in range(m)]
            if hostile and s == 0 and k == 0:
                items[0] = "<img src=x onerror=alert(1)> \"Response 1\" is <b>better</b>"
            w = np.zeros((len(human), m))
            p_match = 0.75 - 0.2 * k
            for i in range(len(human)):
                if rng.random() < p_match:
                    w[i, int(rng.integers(0, m))] = max(w[i].max(), float(rng.choice(LEVELS)))
            right = rng.random() < 0.85 - 0.1 * k
            mlabel: Any = label if right else 3 - label
            r = rng.random()
            if r < 0.01:
                mlabel = None
            elif r < 0.015:
                mlabel = "both are fine"
            elif r < 0.3:
                mlabel = f"Response {mlabel}"
            details = [[{"level": float(c), "probs": [0.0, 0.05, 0.1, 0.15, 0.7]} if c > 0 else None for c in line]
                       for line in w]
            row: dict[str, Any] = {
                "id": f"s{s:05d}", "domain": domain, "model": model, "source": f"generated.jsonl:{s + 1}",
                "human": human, "items": items, "matrix": np.round(w, 6).tolist(),
                "labels": {"label": label, **({} if mlabel is None else {model: mlabel})},
                "details": details,
            }
            rows.append(row)
    score_rows(rows, cfg.scoring)
    metrics = summarize(rows, list(models), cfg.scoring, cfg.outcome)
    metrics["skipped"] = {"count": 0, "records": []}
    metrics["judge"] = {"fingerprint": "generated", "judged": 0, "cache_hits": 0}
    write_jsonl(out / "results.jsonl", rows)
    write_json(out / "metrics.json", metrics)
    write_json(out / "run.json", {
        "inputs": ["generated.jsonl"], "config": cfg.model_dump(mode="json"),
        "judge_fingerprint": {"judge": "llm", "model": "generated", "protocol": "pairwise"},
        "fingerprint_id": "generated", "versions": {"rationalerm": "test"}, "models": list(models),
        "date": "2026-01-01T00:00:00+00:00",
    })
    return out


def browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists()


@contextmanager
def browser_page(color_scheme: str = "light", width: int = 1300, height: int = 900) -> Iterator[Any]:
    """A page in Debian's headless chromium (fresh profile), with ``page.errors`` collecting console errors."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="rationalerm-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": width, "height": height}, color_scheme=color_scheme)
            try:
                page = ctx.new_page()
                errors: list[str] = []
                requests: list[str] = []
                page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type in (
                    "error", "warning") else None)
                page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
                page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
                page.on("request", lambda r: requests.append(r.url))
                page.errors = errors  # type: ignore[attr-defined]
                page.requests = requests  # type: ignore[attr-defined]
                yield page
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_report(page: Any, path: Path, timeout_ms: int = 60000) -> float:
    """Open the page from disk; returns the load time in ms: navigation start to the later of the load event
    and the end of the page's script (table, plots and the first page of samples on screen)."""
    page.goto(path.resolve().as_uri(), timeout=timeout_ms, wait_until="load")
    page.wait_for_selector("body[data-ready='1']", timeout=timeout_ms)
    return float(page.evaluate(
        "Math.max(window.rationalermReadyMs, performance.getEntriesByType('navigation')[0].loadEventEnd)"))


# ---- session fixtures (registered by conftest.py's pytest_plugins) ----

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

EXAMPLE = ROOT / "examples" / "rationales.jsonl"
LABELLED = ROOT / "tests" / "data" / "labelled.jsonl"
BIG_SAMPLES = 20_000


def cli(*args: str, check: bool = True, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "rationalerm", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/ scored by the default embedding judge (in process)."""
    from rationalerm.config import load_config
    from rationalerm.pipeline import run

    out = tmp_path_factory.mktemp("example") / "run"
    run(EXAMPLE, load_config(ROOT / "configs" / "default.yaml"), out)
    return out


@pytest.fixture(scope="session")
def labelled_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """tests/data/labelled.jsonl through the real CLI: labels in many spellings, a model without labels,
    hostile item text."""
    out = tmp_path_factory.mktemp("labelled") / "run"
    return out, cli("run", str(LABELLED), "--out", str(out))


@pytest.fixture(scope="session")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("big") / "run", BIG_SAMPLES)


@pytest.fixture(scope="session")
def big_report(big_run: Path) -> tuple[Path, float]:
    """The report of the generated 20,000 x 3 run and the seconds it took to write."""
    import time

    from rationalerm.reporting.html import write_report

    t0 = time.perf_counter()
    path = write_report([big_run], big_run.parent / "report.html")
    return path, time.perf_counter() - t0

"""Size and load time of the HTML report for a generated run (default 20,000 samples x 3 models).

    .venv/bin/python benchmarks/report_size.py                       # 20,000 x 3, three loads in headless chromium
    .venv/bin/python benchmarks/report_size.py --samples 2000 --loads 5

The run is generated without a judge (tests/report_fixtures.make_run: checklist-like sentences of 70-130
characters, sparse five-level matrices scored by the real score_sample, metrics by the real summarize_rows).
Load time = navigation start to the later of the load event and the end of the page's script (table, plots
and the first 20 sample cards on screen), measured by the page itself (performance.now()) in Debian's
chromium driven by playwright, each load in a fresh browser profile.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from rationalerm.reporting.html import write_report  # noqa: E402
from tests.helpers.report_fixtures import browser_page, make_run, open_report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--models", type=int, default=3)
    ap.add_argument("--loads", type=int, default=3, help="page loads to time (median reported)")
    ap.add_argument("--out", type=Path, default=None, help="keep the run and report here (default: a temp dir)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="rationalerm-report-size-"))
    models = tuple(f"judge-{chr(97 + k)}" for k in range(args.models))
    t0 = time.perf_counter()
    run = make_run(out / "run", args.samples, models=models)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = write_report([run], out / "report.html")
    write_s = time.perf_counter() - t0
    results_mb = (run / "results.jsonl").stat().st_size / 1e6
    size_mb = report.stat().st_size / 1e6
    loads = []
    for _ in range(args.loads):
        with browser_page() as page:
            loads.append(open_report(page, report))
            if page.errors:
                raise SystemExit(f"console errors: {page.errors}")
            t0 = time.perf_counter()
            page.fill("#f-text", "s01234")
            page.wait_for_function(  # one sample: one row per model
                f"document.querySelector('#pager .count').textContent.indexOf(' of {args.models} (') >= 0")
            filter_ms = (time.perf_counter() - t0) * 1000
    print(f"run: {args.samples:,} samples x {args.models} models = {args.samples * args.models:,} rows "
          f"(results.jsonl {results_mb:.1f} MB, generated in {gen_s:.1f} s)")
    print(f"report: {size_mb:.1f} MB, written in {write_s:.1f} s -> {report}")
    print(f"load in headless chromium: median {statistics.median(loads):.0f} ms "
          f"(runs: {', '.join(f'{x:.0f}' for x in loads)} ms); text filter to 1 sample: {filter_ms:.0f} ms "
          f"(incl. 180 ms input debounce)")


if __name__ == "__main__":
    main()

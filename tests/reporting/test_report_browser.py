"""The HTML report in a real headless browser: Debian's chromium driven by playwright (``executable_path``).

``scripts/test.sh`` installs chromium with apt-get when it is absent and sets RATIONALERM_REQUIRE_BROWSER=1, so in
CI a missing browser fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from rationalerm._util.files import read_json
from rationalerm.reporting.html import write_report
from tests.helpers.report_fixtures import CHROMIUM, browser_available, browser_page, make_run, open_report

if not browser_available():
    if os.environ.get("RATIONALERM_REQUIRE_BROWSER"):
        raise RuntimeError(f"the browser tests need playwright (dev extra) and chromium at {CHROMIUM}")
    pytest.skip(f"needs playwright and chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


def _count(page: Any, pager: str = "#pager") -> int:
    text = page.inner_text(f"{pager} .count")
    m = re.search(r"of ([\d,]+) \(", text)
    assert m, text
    return int(m.group(1).replace(",", ""))


def _only_local_requests(page: Any) -> None:
    assert all(u.startswith(("file:", "data:")) for u in page.requests), page.requests


def test_example_report_in_chromium(example_run: Path, tmp_path: Path) -> None:
    report = write_report([example_run], tmp_path / "example.html")
    metrics = read_json(example_run / "metrics.json")
    with browser_page() as page:
        ms = open_report(page, report)
        assert page.errors == []
        _only_local_requests(page)
        # the results table is visible, with one row per model, and sorts on a click
        assert page.is_visible("#results-table")
        models = page.eval_on_selector_all("#results-table tbody tr", "rs => rs.map(r => r.dataset.model)")
        assert sorted(models) == sorted(metrics["models"])
        page.click("#results-table th:has-text('OA')")
        page.click("#results-table th:has-text('OA')")  # second click: ascending
        asc = page.eval_on_selector_all("#results-table tbody tr", "rs => rs.map(r => r.dataset.model)")
        assert asc == sorted(metrics["models"], key=lambda m: metrics["models"][m]["oa"]["accuracy"])
        # the plots are inline SVG and follow the page's text colour
        assert page.locator("figure svg.plot").count() == 4
        # the sample browser: every row, then narrowed by each filter
        assert _count(page) == 28
        assert page.locator("#sample-list .card").count() == 20
        page.select_option("#f-model", label="Qwen3-8B")
        assert _count(page) == 14
        page.select_option("#f-domain", label="math")
        assert _count(page) == 3
        page.select_option("#f-domain", label="all domains")
        page.fill("#f-lo", "0.3")
        page.wait_for_timeout(400)
        want = sum(1 for line in (example_run / "results.jsonl").read_text().splitlines()
                   if (r := json.loads(line))["model"] == "Qwen3-8B" and r["recall"] >= 0.3)
        assert _count(page) == want
        page.fill("#f-lo", "0")
        page.select_option("#f-model", label="all models")
        page.fill("#f-text", "sleep schedule")
        page.wait_for_timeout(400)
        assert _count(page) == 2  # one sample, two models
        assert "sleep schedule" in page.inner_text("#sample-list .card")
        page.fill("#f-text", "")
        page.select_option("#f-outcome", value="dec")
        page.wait_for_timeout(200)
        assert _count(page) == sum(m["oa"]["deceptive"]["count"] for m in metrics["models"].values())
        # a card: human and model items side by side, matched pairs with their scores, details on demand
        card = page.locator("#sample-list .card").first
        assert card.locator(".sbs > div").count() == 2
        assert card.locator(".details").is_hidden()
        card.locator("button:has-text('judge details')").first.click()
        assert card.locator(".details table.mx").is_visible()
        assert "No pair was matched" in card.locator(".details").inner_text()  # RC 0
        page.select_option("#f-outcome", value="any")
        page.select_option("#f-sort", value="rc-desc")
        card = page.locator("#sample-list .card").first
        assert card.locator(".sbs li .m").count() > 0  # matched pairs carry the other side's index and score
        card.locator("button:has-text('judge details')").first.click()
        assert "cosine similarity" in card.locator(".details").inner_text()
        assert card.locator(".details td.hit").count() == card.locator(".sbs > div").first.locator(".m").count()
        # the deceptive-alignment list
        assert _count(page, "#dec-pager") == sum(m["oa"]["deceptive"]["count"] for m in metrics["models"].values())
        page.screenshot(path=str(tmp_path / "report-light.png"))
        # dark theme: the page and the plots' text turn light
        page.click("#theme")  # auto -> light
        page.click("#theme")  # light -> dark
        bg = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        svg_text = page.evaluate("getComputedStyle(document.querySelector('figure svg.plot text')).fill")
        assert bg == "rgb(21, 24, 28)" and svg_text == page.evaluate("getComputedStyle(document.body).color")
        page.screenshot(path=str(tmp_path / "report-dark.png"), full_page=False)
        assert page.errors == []
    for name in ("report-light.png", "report-dark.png"):
        assert (tmp_path / name).stat().st_size > 20_000
    print(f"\nexample report: loaded in {ms:.0f} ms; screenshots in {tmp_path}")


def test_hostile_text_renders_as_text(labelled_cli: tuple[Path, Any], tmp_path: Path) -> None:
    run, _ = labelled_cli
    hostile = make_run(tmp_path / "hostile", 20, models=("m<b>1</b>",), hostile=True)
    report = write_report([run, hostile], tmp_path / "hostile.html")
    with browser_page() as page:
        open_report(page, report)
        page.fill("#f-text", "alert")
        page.wait_for_timeout(400)
        assert _count(page) == 3  # l1 for alpha, beta, gamma in run A
        text = page.inner_text("#sample-list")
        assert 'message <script>alert("x")</script> the user can copy.' in text
        assert 'is "dishonest" advice.' in text
        page.select_option("#f-run", index=1)
        page.wait_for_timeout(200)
        assert _count(page) == 1
        text = page.inner_text("#sample-list")
        assert "<script>alert('x')</script> & \"quoted\" </script><!-- 'single' -->" in text
        assert '<img src=x onerror=alert(1)> "Response 1" is <b>better</b>' in text
        assert page.locator("#sample-list img, #sample-list b, #sample-list script").count() == 0
        assert page.errors == []  # no alert dialog, no script error
        page.screenshot(path=str(tmp_path / "hostile.png"))


def test_20000_sample_report_loads_fast(big_report: tuple[Path, float], tmp_path: Path) -> None:
    report, _ = big_report
    with browser_page() as page:
        ms = open_report(page, report)
        assert page.errors == []
        _only_local_requests(page)
        assert page.is_visible("#results-table")
        assert _count(page) == 60_000 and page.locator("#sample-list .card").count() == 20
        page.select_option("#f-model", label="judge-b")
        assert _count(page) == 20_000
        page.fill("#f-text", "s01234")
        page.wait_for_timeout(600)
        assert _count(page) == 1
        page.fill("#f-text", "")
        page.fill("#f-hi", "0.1")
        page.wait_for_timeout(600)
        assert 0 < _count(page) < 20_000
        page.screenshot(path=str(tmp_path / "big.png"))
        assert page.errors == []
    print(f"\n20,000 x 3 report ({report.stat().st_size / 1e6:.1f} MB): loaded in {ms:.0f} ms")
    assert ms < 15_000


PLOT_TEXT_PX = """() => Array.from(document.querySelectorAll('figure svg.plot')).map(svg => {
  let min = Infinity, text = '';
  for (const t of svg.querySelectorAll('text')) {
    if (!t.textContent.trim()) continue;
    const m = t.getScreenCTM();  // the SVG's scale to the screen (and any rotation of the text)
    const px = parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
    if (px < min) { min = px; text = t.textContent; }
  }
  return [svg.closest('figure').id, min, text];
})"""


@pytest.mark.parametrize("n_runs", [1, 2])
def test_plot_text_is_readable_on_a_phone(tmp_path: Path, n_runs: int) -> None:
    """At a 375 px viewport every plot's smallest text renders at 10 px or more (font size x the SVG's scale)."""
    runs = [make_run(tmp_path / f"r{k}", n_samples=40, seed=k, bootstrap=20) for k in range(n_runs)]
    report = write_report(runs, tmp_path / "report.html")
    with browser_page(width=375, height=800) as page:
        open_report(page, report)
        sizes = page.evaluate(PLOT_TEXT_PX)
        assert page.errors == []
    assert len(sizes) == 4 and all(px >= 10 for _, px, _ in sizes), sizes

"""The audit page in a real headless browser (Debian's chromium through playwright, as test_report_browser.py):
a scripted annotator labels every unit with the keyboard, reloads, exports; the file is what it picked."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rationalerm._util.files import read_jsonl
from rationalerm.analysis.audit import read_units
from rationalerm.runs.directory import load_run
from rationalerm.runs.gold import gold_cells, load_gold
from tests.helpers.report_fixtures import CHROMIUM, EXAMPLE, browser_available, browser_page, cli, make_run

if not browser_available():
    if os.environ.get("RATIONALERM_REQUIRE_BROWSER"):
        raise RuntimeError(f"the browser tests need playwright (dev extra) and chromium at {CHROMIUM}")
    pytest.skip(f"needs playwright and chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

LEVEL_KEYS = {"a": 0.25, "s": 0.5, "d": 0.75, "f": 1.0}


def _open(page: Any, path: Path) -> None:
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_selector("body[data-ready='1']")


def _label_unit(page: Any, n_human: int, n_items: int, rng: np.random.Generator) -> list[tuple[int, float]]:
    """Label one unit with the keyboard; returns (picked item or -1, level) per human item."""
    picks = []
    for _ in range(n_human):
        pick = int(rng.integers(-1, min(n_items, 9)))
        page.keyboard.press("0" if pick < 0 else str(pick + 1))
        level = 1.0
        if pick >= 0 and rng.random() < 0.5:
            key = str(rng.choice(list(LEVEL_KEYS)))
            page.keyboard.press(key)  # grades the item just picked, though the focus moved on
            level = LEVEL_KEYS[key]
        picks.append((pick, level))
    return picks


def _expected(units: list[Any], picks: list[list[tuple[int, float]]]) -> list[dict[str, Any]]:
    return [{"id": u.id, "model": u.model, "i": i, "j": j, "label": level if j == pick else 0}
            for u, unit_picks in zip(units, picks) for i, (pick, level) in enumerate(unit_picks)
            for j in range(len(u.items))]


def test_annotator_labels_reloads_and_exports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", str(EXAMPLE), "--out", str(run))
    cli("audit", str(run), "--n", "20", "--seed", "5", "--out", str(tmp_path / "audit"))
    units = read_units(tmp_path / "audit" / "audit.jsonl")
    assert len(units) == 20
    assert all(u.context for u in units)  # every example record has a context, read back through `source`
    rng = np.random.default_rng(0)
    picks: list[list[tuple[int, float]]] = []
    with browser_page() as page:
        _open(page, tmp_path / "audit" / "audit.html")
        assert page.inner_text("#progress") == "0 / 20 units labelled"
        assert units[0].context and units[0].context in page.inner_text("#ctxbox")
        for k, u in enumerate(units):
            if k == 10:  # halfway: reload; the work and the position are kept
                page.reload(wait_until="load")
                page.wait_for_selector("body[data-ready='1']")
                assert page.inner_text("#progress") == "10 / 20 units labelled"
                assert page.inner_text("#pos") == "unit 11 of 20"
            assert page.locator("#human li").count() == len(u.human)
            assert page.locator("#items li").count() == len(u.items)
            picks.append(_label_unit(page, len(u.human), len(u.items), rng))
            page.keyboard.press("n")
        assert page.inner_text("#progress") == "20 / 20 units labelled"
        page.reload(wait_until="load")
        page.wait_for_selector("body[data-ready='1']")
        assert page.inner_text("#progress") == "20 / 20 units labelled"
        with page.expect_download() as info:
            page.keyboard.press("e")
        info.value.save_as(tmp_path / "labels.jsonl")
        assert page.errors == []
        assert all(r.startswith(("file:", "data:", "blob:")) for r in page.requests), page.requests
    assert read_jsonl(tmp_path / "labels.jsonl") == _expected(units, picks)
    assert {p for unit_picks in picks for p, _ in unit_picks} >= {-1, 0, 1}  # nones and picks both exercised
    assert {lv for unit_picks in picks for p, lv in unit_picks if p >= 0} == {0.25, 0.5, 0.75, 1.0}  # all levels
    gold = load_gold(tmp_path / "labels.jsonl")
    cells = gold_cells(load_run(run), gold)
    assert len(cells) == 20 and all(not np.isnan(g).any() for g in cells.values())  # every unit fully labelled


def test_unfinished_units_are_left_out_and_500_units_stay_fast(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", n_samples=200, bootstrap=20, hostile=True)
    cli("audit", str(run), "--n", "500", "--stratify", "model", "--out", str(tmp_path / "audit"))
    units = read_units(tmp_path / "audit" / "audit.jsonl")
    assert len(units) == 500
    assert "<script>" in units[0].human[0] and "<img" in units[0].items[0]  # shown first: text, never markup
    with browser_page() as page:
        t0 = time.perf_counter()
        _open(page, tmp_path / "audit" / "audit.html")
        opened = time.perf_counter() - t0
        assert "<img src=x onerror=alert(1)>" in page.inner_text("#items")
        assert page.locator("#items img, #human script").count() == 0
        page.keyboard.press("0")  # unit 1: only its first human item: not finished, so not exported
        page.keyboard.press("n")
        t0 = time.perf_counter()
        for _ in range(100):
            page.keyboard.press("n")
        per_unit = (time.perf_counter() - t0) / 100
        assert page.inner_text("#pos") == "unit 102 of 500"
        for _ in range(len(units[101].human)):
            page.keyboard.press("0")
        page.keyboard.press("u")  # the next unfinished unit
        assert page.inner_text("#pos") == "unit 103 of 500"
        assert page.inner_text("#progress") == "1 / 500 units labelled"
        with page.expect_download() as info:
            page.click("#export")
        info.value.save_as(tmp_path / "labels.jsonl")
        assert page.errors == []
    u = units[101]
    assert read_jsonl(tmp_path / "labels.jsonl") == [
        {"id": u.id, "model": u.model, "i": i, "j": j, "label": 0} for i in range(len(u.human))
        for j in range(len(u.items))]
    assert opened < 5 and per_unit < 0.25, (opened, per_unit)

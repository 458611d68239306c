"""The figures' colour convention: one meaning per report, the same in every figure, named in each legend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex

from rationalerm.reporting.plots import FIGURES, color, colour_key
from rationalerm.runs.directory import load_runs
from tests.helpers.report_fixtures import make_run


def _colour(handle: Any) -> str:
    """A legend entry's colour: a line's or marker's colour, a bar's fill, an unfilled histogram's edge."""
    if hasattr(handle, "get_color"):
        return to_hex(handle.get_color())
    face = handle.get_facecolor()
    return to_hex(face if face[3] > 0 else handle.get_edgecolor())


def _legend(fig: Any) -> tuple[str, dict[str, str]]:
    """The figure's legend: its title and label -> colour."""
    (legend,) = fig.legends
    return legend.get_title().get_text(), {t.get_text(): _colour(h) for t, h in zip(legend.texts,
                                                                                    legend.legend_handles)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("plots")
    return [make_run(base / name, n_samples=40, seed=seed, bootstrap=20) for seed, name in enumerate(("a", "b"))]


def test_side_by_side_colours_mean_the_run_in_every_figure(runs: list[Path]) -> None:
    views = load_runs(runs)
    want = {f"{v.name} (llm)": color(k).lower() for k, v in enumerate(views)}
    for name, make in FIGURES.items():
        fig = make(views)
        assert fig is not None, name
        assert _legend(fig) == ("run (colour, marker)", want), name
        plt.close(fig)
    assert colour_key(views) == ("Colours and markers: one per run, the same in every plot (a (llm): blue, "
                                 "b (llm): orange).")


def test_one_run_colours_mean_the_model_in_every_figure(runs: list[Path]) -> None:
    views = load_runs(runs[:1])
    fig = FIGURES["rc_by_domain"](views)
    models = ("judge-a", "judge-b", "judge-c")
    assert _legend(fig) == ("model (colour)", {m: color(k).lower() for k, m in enumerate(models)})
    for name in ("oa_vs_rc", "rc_by_model"):  # the models are named beside their points; their colours match
        fig = FIGURES[name](views)
        points = [to_hex(line.get_color()) for line in fig.axes[0].lines if line.get_marker() not in (None, "None")
                  and line.get_marker() != "|"]
        assert points and set(points) <= {color(k).lower() for k in range(3)}, name
        plt.close(fig)
    assert colour_key(views) == "Colours: one per model, the same in every plot."

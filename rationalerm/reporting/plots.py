"""Figures of one or more runs (matplotlib): the HTML report inlines them as SVG, ``export --plots`` writes PNG + SVG.

- ``oa_vs_rc``: outcome accuracy (x) against rationale consistency (y) per model, both with their intervals
  (the paper's Figure 1);
- ``rc_by_model``: RC per model with its interval, one marker per run;
- ``rc_distribution``: the distribution of per-sample RC, one panel per model, one line per run;
- ``rc_by_domain``: RC per domain with intervals: one run's models as bars; several runs: one panel per model,
  the runs as bars.

One colour convention per report (``colour_key`` says it in words, every legend names it): one run, a colour
per model; several runs side by side, a colour (and a marker) per run in every figure, the models on the axes
and in the panel titles.

Sized for a phone: every figure is ``WIDTH`` inches wide and no text is smaller than ``SMALLEST`` points, so
text rendered at a 375 px viewport (about 315 px of figure) is at least ~10 px (the browser test measures it).

For the report the text, axes and ticks are drawn in a placeholder colour that becomes ``currentColor`` in
the inline SVG, so a figure follows the page's light or dark theme; the series colours are mid-luminance
hues readable on both. The exported files use dark ink on white.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

from rationalerm._util.files import ensure_dir
from rationalerm._util.numbers import fmt

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rationalerm.runs.directory import SavedRun  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

INK_PLACEHOLDER = "#010203"
PAPER_INK = "#222222"
PALETTE = ["#3D8BD9", "#E8871E", "#2CA58D", "#D1495B", "#9B6BD6", "#8C9A3C", "#C7689F", "#7F8C8D",
           "#4FB3BF", "#B5651D"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]
BINS = np.linspace(0.0, 1.0, 21)
WIDTH = 4.2
"""Inches: the figure's width; text scales with width / WIDTH wherever the page shows it."""
SMALLEST = 10
"""Points: the smallest text of any figure (ticks, value labels, legends)."""


def _t(s: Any) -> str:
    """User text for matplotlib: '$' would start mathtext."""
    return str(s).replace("$", r"\$")


def color(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


@contextmanager
def _style(ink: str) -> Iterator[None]:
    rc: dict[RcKeyType, Any] = {
        "text.color": ink, "axes.labelcolor": ink, "axes.edgecolor": ink, "xtick.color": ink, "ytick.color": ink,
        "axes.titlecolor": ink, "font.size": SMALLEST, "axes.titlesize": SMALLEST + 1, "svg.fonttype": "none",
        "xtick.labelsize": SMALLEST, "ytick.labelsize": SMALLEST, "legend.fontsize": SMALLEST,
        "legend.title_fontsize": SMALLEST, "figure.titlesize": SMALLEST + 1,
        "svg.hashsalt": "rationalerm", "font.family": ["DejaVu Sans", "sans-serif"], "axes.grid": True,
        "grid.color": "#808080", "grid.alpha": 0.3, "grid.linewidth": 0.6, "legend.frameon": False,
        "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100,
    }
    with plt.rc_context(rc):
        yield


def by_run(views: Sequence[SavedRun]) -> bool:
    """Whether colours stand for runs (several side by side) rather than models (one run)."""
    return len(views) > 1


def colour_key(views: Sequence[SavedRun]) -> str:
    """The report's colour convention in words (the same in every figure)."""
    if by_run(views):
        return "Colours and markers: one per run, the same in every plot (" + ", ".join(
            f"{_run_label(v, views)}: {NAMES.get(color(k), color(k))}" for k, v in enumerate(views)) + ")."
    return "Colours: one per model, the same in every plot."


NAMES = dict(zip(PALETTE, ["blue", "orange", "green", "red", "purple", "olive", "pink", "grey", "teal", "brown"]))


def _run_legend(fig: Figure, views: Sequence[SavedRun], axes: Sequence[Any] | None = None) -> None:
    """The legend of the runs (several runs: colour = run), below the axes; each run once, however many panels
    show it."""
    runs: dict[str, Any] = {}
    for ax in axes if axes is not None else fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            runs.setdefault(label, handle)
    fig.legend(list(runs.values()), list(runs), loc="outside lower center", ncol=1 if len(views) > 2 else len(views),
               title="run (colour, marker)")


def _models(views: Sequence[SavedRun]) -> list[str]:
    return list(dict.fromkeys(m for v in views for m in v.models))


def _run_label(v: SavedRun, views: Sequence[SavedRun]) -> str:
    judge = (v.meta.get("judge_fingerprint") or {}).get("judge")
    return _t(f"{v.name} ({judge})" if judge and len(views) > 1 else v.name)


def oa_vs_rc(views: Sequence[SavedRun]) -> Figure | None:
    """OA (x) against RC (y), one point per run x model, with both intervals; None when no model has labels."""
    pts = []
    for k, v in enumerate(views):
        for name, m in v.metrics.get("models", {}).items():
            oa = (m.get("oa") or {})
            if oa.get("accuracy") is None or not m.get("n_samples"):
                continue
            pts.append((k, name, oa["accuracy"], oa["ci"], m["recall"], m["ci"]["recall"]))
    if not pts:
        return None
    many = by_run(views)
    fig = plt.figure(figsize=(WIDTH, 4.0 + (0.35 * len(views) + 0.3 if many else 0)), layout="constrained")
    ax = fig.add_subplot()
    models = _models(views)
    seen: set[int] = set()
    for k, name, oa, oa_ci, rc, rc_ci in pts:
        c = color(k) if many else color(models.index(name))
        ax.errorbar(oa, rc, xerr=[[oa - oa_ci[0]], [oa_ci[1] - oa]], yerr=[[rc - rc_ci[0]], [rc_ci[1] - rc]],
                    fmt=MARKERS[k % len(MARKERS)], color=c, ms=7, capsize=3, lw=1.2,
                    label=_run_label(views[k], views) if many and k not in seen else None)
        seen.add(k)
        right = oa > 0.5 * (min(p[2] for p in pts) + max(p[2] for p in pts)) and len({p[2] for p in pts}) > 1
        ax.annotate(_t(name), (oa, rc), textcoords="offset points", xytext=(-7, 5) if right else (7, 5),
                    ha="right" if right else "left")
    ax.set_xlabel("Outcome accuracy\n(label agrees with the human label)")
    ax.set_ylabel("RC (mean recall)")
    ax.set_title("Outcome accuracy vs RC")
    xs = [p[2] for p in pts] + [p[3][0] for p in pts] + [p[3][1] for p in pts]
    ys = [p[4] for p in pts] + [p[5][0] for p in pts] + [p[5][1] for p in pts]
    ax.set_xlim(max(0.0, min(xs) - 0.08), min(1.0, max(xs) + 0.08) + 0.02)
    ax.set_ylim(max(0.0, min(ys) - 0.08), min(1.0, max(ys) + 0.08) + 0.02)
    if many:
        _run_legend(fig, views)
    return fig


def rc_by_model(views: Sequence[SavedRun]) -> Figure | None:
    """RC per model with its bootstrap interval, models ordered by the first run's RC."""
    models = _models(views)
    if not models:
        return None
    order = list(models)
    first = views[0].metrics.get("models", {})
    models.sort(key=lambda n: -((first.get(n) or {}).get("recall") or -1.0))
    fig = plt.figure(figsize=(WIDTH, 1.6 + 0.5 * len(models) * max(1, len(views) ** 0.5)
                              + (0.35 * len(views) + 0.3 if by_run(views) else 0)), layout="constrained")
    ax = fig.add_subplot()
    off = np.linspace(-0.22, 0.22, len(views)) if len(views) > 1 else [0.0]
    for k, v in enumerate(views):
        ms = v.metrics.get("models", {})
        labelled = False
        for y, name in enumerate(models):
            m = ms.get(name)
            if not m or not m.get("n_samples"):
                continue
            lo, hi = m["ci"]["recall"]
            c = color(k) if by_run(views) else color(order.index(name))
            ax.errorbar(m["recall"], y + off[k], xerr=[[m["recall"] - lo], [hi - m["recall"]]],
                        fmt=MARKERS[k % len(MARKERS)], color=c, ms=6, capsize=3, lw=1.4,
                        label=None if labelled else _run_label(v, views))
            labelled = True
            ax.annotate(fmt(m["recall"]), (hi, y + off[k]), textcoords="offset points", xytext=(5, -3))
    ax.set_yticks(range(len(models)), [_t(n) for n in models])
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("RC (mean recall, 95% bootstrap interval)")
    ax.set_title("RC per model")
    ax.grid(axis="y", visible=False)
    if by_run(views):
        _run_legend(fig, views)
    return fig


def _valid_rc(v: SavedRun, model: str) -> np.ndarray:
    return np.array([float(r["recall"]) for r in v.rows if r["model"] == model and r.get("matrix") is not None
                     and r.get("valid", True)], dtype=float)


def rc_distribution(views: Sequence[SavedRun]) -> Figure | None:
    """Histogram (share of samples, bins of 0.05) of per-sample RC, one panel per model, mean dashed."""
    models = _models(views)
    if not models:
        return None
    cols = min(2, len(models))
    nrows = math.ceil(len(models) / cols)
    fig = plt.figure(figsize=(WIDTH, 2.2 * nrows + 1.0 + (0.35 * len(views) + 0.3 if by_run(views) else 0)),
                     layout="constrained")
    axes = fig.subplots(nrows, cols, sharex=True, sharey=True, squeeze=False)
    legend_done: set[int] = set()
    for idx, name in enumerate(models):
        ax = axes[idx // cols][idx % cols]
        for k, v in enumerate(views):
            rc = _valid_rc(v, name)
            if not rc.size:
                continue
            c = color(k) if by_run(views) else color(idx)
            w = np.full(rc.size, 1.0 / rc.size)
            ax.hist(np.clip(rc, 0, 1), bins=BINS, weights=w, histtype="stepfilled" if len(views) == 1 else "step",
                    color=c, alpha=0.55 if len(views) == 1 else 1.0, lw=1.6,
                    label=_run_label(v, views) if by_run(views) and k not in legend_done else None)
            legend_done.add(k)
            ax.axvline(float(rc.mean()), color=c, ls="--", lw=1.2)
        ax.set_title(_t(name) if by_run(views) else f"{_t(name)} (n={_valid_rc(views[0], name).size})")
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
    for idx in range(len(models), nrows * cols):
        axes[idx // cols][idx % cols].set_visible(False)
        above = axes[idx // cols - 1][idx % cols]  # now the lowest panel of its column: it shows the x axis
        above.xaxis.set_tick_params(labelbottom=True)
        above.set_xlabel("per-sample RC")
    for r in range(nrows):
        axes[r][0].set_ylabel("share of samples")
    for col in range(len(models) - (nrows - 1) * cols):
        axes[nrows - 1][col].set_xlabel("per-sample RC")
    if by_run(views):
        _run_legend(fig, views)
    fig.suptitle("Per-sample RC (dashed: mean)")
    return fig


def _domain_bars(ax: Any, series: Sequence[tuple[str, dict[str, Any], str]], domains: Sequence[str]) -> None:
    """Bars of RC per domain with intervals: one bar per (label, per-domain figures, colour) in ``series``."""
    bar = 0.8 / len(series)
    for k, (label, by_domain, c) in enumerate(series):
        ys, xs, lo, hi = [], [], [], []
        for d_i, d in enumerate(domains):
            dm = by_domain.get(d)
            if not dm or not dm.get("n_samples"):
                continue
            ys.append(d_i - 0.4 + bar * (k + 0.5))
            xs.append(dm["recall"])
            lo.append(dm["recall"] - dm["ci"]["recall"][0])
            hi.append(dm["ci"]["recall"][1] - dm["recall"])
        if ys:
            ax.barh(ys, xs, height=bar * 0.9, color=c, alpha=0.85, label=label)
            ax.errorbar(xs, ys, xerr=[lo, hi], fmt="none", ecolor=plt.rcParams["text.color"], capsize=2, lw=1)
    ax.set_yticks(range(len(domains)), [_t(d) for d in domains])
    ax.set_ylim(len(domains) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.grid(axis="y", visible=False)


def _by_domain(v: SavedRun, model: str) -> dict[str, Any]:
    return ((v.metrics.get("models", {}).get(model) or {}).get("by_domain")) or {}


def rc_by_domain(views: Sequence[SavedRun]) -> Figure | None:
    """RC per domain with intervals; None without domains. One run: its models as bars (colour = model). Several
    runs: one panel per model, the runs as bars (colour = run, as in every other figure of the report)."""
    models = _models(views)
    domains = sorted({d for v in views for m in v.metrics.get("models", {}).values() for d in m.get("by_domain", {})})
    if not domains or not models:
        return None
    panels, per_panel = (models, len(views)) if by_run(views) else ([None], len(models))
    h = 1.2 + len(panels) * (0.5 + len(domains) * (0.18 * per_panel + 0.2)) + (0.35 * len(views) if by_run(views)
                                                                              else 0.3 * len(models))
    fig = plt.figure(figsize=(WIDTH, h), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, model in zip(axes, panels):
        if model is None:  # one run: a bar per model
            v = views[0]
            _domain_bars(ax, [(_t(name), _by_domain(v, name), color(k)) for k, name in enumerate(models)], domains)
        else:  # several runs: a panel per model, a bar per run
            _domain_bars(ax, [(_run_label(v, views), _by_domain(v, model), color(k)) for k, v in enumerate(views)],
                         domains)
            ax.set_title(_t(model))
    axes[-1].set_xlabel("RC (mean recall, 95% interval)")
    if by_run(views):
        _run_legend(fig, views, list(axes))
    else:
        fig.legend(loc="outside lower center", ncol=min(len(models), 3), title="model (colour)")
    fig.suptitle("RC per domain")
    return fig


FIGURES: dict[str, Callable[[Sequence[SavedRun]], Figure | None]] = {
    "oa_vs_rc": oa_vs_rc, "rc_by_model": rc_by_model, "rc_distribution": rc_distribution,
    "rc_by_domain": rc_by_domain,
}


_SIZE = re.compile(r'<svg([^>]*?) width="[^"]*" height="[^"]*"')


def _inline_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", transparent=True, metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(?::xlink)?="[^"]*"', "", svg)  # inline SVG in HTML needs no namespace URLs
    svg = _SIZE.sub(r'<svg\1 class="plot"', svg, count=1)
    return svg.replace(INK_PLACEHOLDER, "currentColor")


def inline_svgs(views: Sequence[SavedRun]) -> dict[str, str]:
    """name -> inline SVG text (theme-following), for the figures that have data."""
    out = {}
    with _style(INK_PLACEHOLDER):
        for name, make in FIGURES.items():
            fig = make(views)
            if fig is not None:
                out[name] = _inline_svg(fig)
                plt.close(fig)
    return out


def write_plots(views: Sequence[SavedRun], out_dir: str | Path, dpi: int = 200) -> list[Path]:
    """Each figure as NAME.png (``dpi``) and NAME.svg, dark ink on white, for papers."""
    out = ensure_dir(out_dir)
    written = []
    with _style(PAPER_INK):
        for name, make in FIGURES.items():
            fig = make(views)
            if fig is None:
                continue
            for ext in ("png", "svg"):
                path = out / f"{name}.{ext}"
                fig.savefig(path, format=ext, dpi=dpi, facecolor="white",
                            metadata={"Date": None, "Creator": None} if ext == "svg" else {"Software": None})
                written.append(path)
            plt.close(fig)
    return written

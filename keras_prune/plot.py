"""Plots (the `plot` extra: `pip install "keras-prune[plot]"`).

Each function draws on `ax` (a new figure when None) and returns the Axes; save
with `keras_prune.plot.save(ax, "file.png")`, which writes atomically.

```python
from keras_prune import plot
plot.schedule(keras_prune.schedules.PolynomialDecay(0.0, 0.8, 0, 1000), steps=1200)
plot.sparsity(pruned_model)
plot.tradeoff([{"sparsity": 0.0, "accuracy": 0.98, "bytes": 600_000}, ...])
plot.sensitivity(keras_prune.sensitivity.scan(model, (x, y)))
plot.budget(keras_prune.structured.prune_to_budget(model, latency=0.5, data=x)[1])
```
"""

import numbers

import numpy as np

from keras_prune import _io
from keras_prune.report import sparsity_report
from keras_prune.schedules.base import PruningSchedule


def _pyplot():
    try:
        import matplotlib.pyplot as plt  # picks Agg by itself on a machine without a display
    except ImportError:
        raise ImportError(
            "keras_prune.plot needs matplotlib: pip install \"keras-prune[plot]\" "
            "(or pip install matplotlib)."
        ) from None
    return plt


def _axes(ax, size=(6, 3.5)):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=size, layout="constrained")
    return ax


def schedule(schedule, steps, ax=None):
    """Target sparsity over training steps, with the steps where masks update marked.

    Args:
        schedule: a `keras_prune.schedules.PruningSchedule` (or tfmot-style object
            with the same call: `schedule(step) -> (should_prune, sparsity)`).
        steps: the number of training steps to draw (an int > 0): steps 1..steps,
            since the first training batch is step 1 (as in tfmot), so a mask update
            at step 0 never happens and is not drawn.
    """
    if not callable(schedule):
        raise TypeError(
            "Argument `schedule` must be a pruning schedule, e.g. "
            "keras_prune.schedules.PolynomialDecay(0.0, 0.8, 0, 1000). "
            f"Received: {schedule!r} of type {type(schedule).__name__}."
        )
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ValueError(f"Argument `steps` must be an integer >= 1. Received: steps={steps!r}.")
    xs = np.arange(1, int(steps) + 1)
    values, updates = [], []
    for step in xs:
        should, sparsity = schedule(int(step))
        values.append(float(np.asarray(sparsity)))
        if bool(np.asarray(should)):
            updates.append(int(step))
    values = np.array(values)
    ax = _axes(ax)
    ax.plot(xs, values, color="tab:blue", label="target sparsity")
    if updates:
        ax.plot(updates, values[np.array(updates) - 1], "o", color="tab:orange", markersize=3,
                label=f"mask updates ({len(updates)})")
    name = type(schedule).__name__ if isinstance(schedule, PruningSchedule) else "schedule"
    ax.set(xlabel="training step", ylabel="sparsity", ylim=(0, 1), title=name)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def sparsity(model, ax=None):
    """Per-layer bars: the fraction of each layer's prunable weights that is zero.

    Each bar is labelled with its percentage; the tick labels give the layer's
    number of prunable weights. Works on a wrapped (pruning) model and on a
    stripped or plain one.
    """
    report = sparsity_report(model)
    layers = {}
    for row in report.rows:
        size, zeros = layers.get(row.layer, (0, 0))
        layers[row.layer] = (size + row.size, zeros + row.zeros)
    if not layers:
        raise ValueError(
            f"Argument `model` ({getattr(model, 'name', model)}) has no kernel weights to plot."
        )
    names = [name.removeprefix("prune_low_magnitude_") for name in layers]  # wrapper -> layer
    fractions = [zeros / size for size, zeros in layers.values()]
    ax = _axes(ax, size=(max(4, 0.6 * len(names) + 2), 3.5))
    bars = ax.bar(range(len(names)), fractions, color="tab:blue")
    ax.bar_label(bars, [f"{f:.0%}" for f in fractions], fontsize=7, padding=1)
    ticks = [f"{name}\n{size:,} w" for name, (size, _) in zip(names, layers.values())]
    ax.set_xticks(range(len(names)), ticks, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="fraction of weights = 0", ylim=(0, 1),
           xlabel="layer (and its number of prunable weights)",
           title=f"{getattr(model, 'name', '')}: {report.sparsity:.1%} of weights are zero")
    ax.yaxis.set_major_formatter(_percent())
    ax.grid(axis="y", alpha=0.3)
    return ax


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0, decimals=0)


def tradeoff(results, ax=None, accuracy_label="accuracy", size_label="file size"):
    """Accuracy (left axis) and file size (right axis) of each model against sparsity.

    Each result is one measured model, drawn as a marker (not joined: nothing was
    measured between two points).

    Args:
        results: a list of dicts, one per model, with "sparsity" and "accuracy" and
            optionally "bytes" (e.g. the .tflite size) and "label".
        accuracy_label: what the accuracy is, e.g. "LiteRT accuracy (test set)".
        size_label: what the bytes are, e.g. ".tflite size".
    """
    if not isinstance(results, (list, tuple)) or not results or not all(
        isinstance(r, dict) and "sparsity" in r and "accuracy" in r for r in results
    ):
        raise ValueError(
            "Argument `results` must be a non-empty list of dicts with 'sparsity' and "
            "'accuracy' (and optionally 'bytes', 'label'). "
            f"Received: {results!r:.200}."
        )
    rows = sorted(results, key=lambda r: r["sparsity"])
    xs = [r["sparsity"] for r in rows]
    accuracies = [r["accuracy"] for r in rows]
    ax = _axes(ax)
    ax.plot(xs, accuracies, "o", color="tab:blue", label=accuracy_label)
    for row in rows:
        if "label" in row:
            ax.annotate(row["label"], (row["sparsity"], row["accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
    low = min(accuracies)
    ax.set_ylim(max(0.0, low - 0.1 * max(1.0 - low, 0.05)) if low <= 1 else None,
                1.0 if max(accuracies) <= 1 else None)  # accuracy never shows above 100%
    ax.set_xlim(-0.05, 1.0)
    ax.set(xlabel="sparsity (fraction of weights = 0)", ylabel=accuracy_label,
           title="accuracy and size vs sparsity" if all("bytes" in r for r in rows)
           else "accuracy vs sparsity")
    ax.xaxis.set_major_formatter(_percent())
    ax.grid(alpha=0.3)
    if all("bytes" in r for r in rows):
        size_ax = ax.twinx()
        size_ax.plot(xs, [r["bytes"] / 1e3 for r in rows], "s", color="tab:orange",
                     label=f"{size_label} (kB)")
        size_ax.set_ylabel(f"{size_label} (kB)")
        size_ax.set_ylim(bottom=0)
        lines = ax.get_legend_handles_labels()
        more = size_ax.get_legend_handles_labels()
        # Below the axes: inside, it would cover the points at the corners (the dense one).
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), fontsize=8, ncol=2)
    else:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8)
    return ax


def sensitivity(scan, ax=None):
    """One line per layer: the metric with that layer alone pruned, against sparsity.

    Args:
        scan: a `keras_prune.sensitivity.SensitivityScan` (from `sensitivity.scan`).
    """
    needed = ("results", "sparsities", "baseline", "metric")
    if not all(hasattr(scan, name) for name in needed):
        raise TypeError(
            "Argument `scan` must be the result of keras_prune.sensitivity.scan(model, data). "
            f"Received: {scan!r:.100} of type {type(scan).__name__}."
        )
    ax = _axes(ax, size=(6, 4))
    xs = [0.0, *scan.sparsities]
    for name, values in scan.results.items():
        ax.plot(xs, [scan.baseline, *values], "o-", markersize=3, label=name)
    ax.axhline(scan.baseline, color="gray", linestyle="--", linewidth=1, label="unpruned")
    ax.set(xlabel="sparsity of the one pruned layer", ylabel=scan.metric, xlim=(0, 1),
           title="sensitivity: each layer pruned alone, no retraining")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7, ncol=1 + len(scan.results) // 12)
    return ax


def budget(report, ax=None):
    """The candidates `prune_to_budget` tried: their cost (x dense) against their output
    change on the calibration data (or their parameter count without data), the budget
    as a line and the chosen candidate marked.

    Args:
        report: the `BudgetReport` from `keras_prune.structured.prune_to_budget`.
    """
    needed = ("candidates", "chosen", "dense_cost", "target", "kind")
    if not all(hasattr(report, name) for name in needed):
        raise TypeError(
            "Argument `report` must be the BudgetReport of "
            "keras_prune.structured.prune_to_budget(...). "
            f"Received: {report!r:.100} of type {type(report).__name__}.")
    with_error = all(c.output_error is not None for c in report.candidates)
    ys = [c.output_error if with_error else c.params for c in report.candidates]
    xs = [c.cost / report.dense_cost for c in report.candidates]
    ax = _axes(ax)
    meets = [c.meets for c in report.candidates]
    ax.plot([x for x, m in zip(xs, meets) if m], [y for y, m in zip(ys, meets) if m], "o",
            color="tab:blue", label="meets the budget")
    ax.plot([x for x, m in zip(xs, meets) if not m], [y for y, m in zip(ys, meets) if not m],
            "x", color="tab:gray", label="over the budget")
    chosen = report.candidates.index(report.chosen)
    ax.plot([xs[chosen]], [ys[chosen]], "*", color="tab:red", markersize=14, label="chosen")
    ax.axvline(report.target / report.dense_cost, color="tab:red", linestyle="--",
               linewidth=1, label="budget")
    ax.set(xlabel=f"{report.kind} (x dense model)",
           ylabel="calibration loss (output change, or next-token loss)" if with_error else "parameters",
           title=f"prune_to_budget: {len(xs)} candidates, {report.kind} measured")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return ax


def save(ax, path, dpi=120):
    """Writes the figure of `ax` to `path` (PNG, SVG, ... by extension), atomically."""
    figure = ax.figure if hasattr(ax, "figure") else ax
    with _io.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
    _pyplot().close(figure)
    return str(path)

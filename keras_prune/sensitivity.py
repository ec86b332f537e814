"""Per-layer sensitivity to pruning, and per-layer sparsity allocation.

`scan` prunes one layer at a time (by magnitude, no training) and evaluates the
model; `allocate` turns a model-wide target into {layer name: sparsity}, which
`prune_low_magnitude(model, schedule, layer_sparsity=...)` accepts.

```python
result = keras_prune.sensitivity.scan(model, (x_val, y_val))
print(result)                                    # a table, one row per layer
alloc = keras_prune.sensitivity.allocate(model, 0.9, method="sensitivity", scan=result)
pruned = keras_prune.prune_low_magnitude(model, schedule, layer_sparsity=alloc)
```
"""

import dataclasses

import numpy as np
from keras import ops

from keras_prune import _text, _training, _validation
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.masking.magnitude import num_kept
from keras_prune.masking.scores import erk_densities, global_masks
from keras_prune.masks import prunable_layers

DEFAULT_SPARSITIES = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
METHODS = ("uniform", "global", "erk", "sensitivity")


@dataclasses.dataclass
class SensitivityScan:
    """What `scan` measured: the metric with each layer alone pruned to each sparsity.

    `results[layer][i]` is the metric with `layer` pruned to `sparsities[i]` and
    every other layer dense; `baseline` is the unpruned model's; `sizes[layer]` is
    the layer's count of prunable weights.
    """

    metric: str
    higher_is_better: bool
    baseline: float
    sparsities: list
    results: dict
    sizes: dict

    def drop(self, layer):
        """How much worse than the baseline the metric gets, per sparsity (>= 0 is worse)."""
        values = np.asarray(self.results[layer], np.float64)
        return (self.baseline - values) if self.higher_is_better else (values - self.baseline)

    def table(self):
        header = ["layer", "weights", *(f"{s:g}" for s in self.sparsities)]
        rows = [[name, f"{self.sizes[name]:,}", *(f"{v:.4f}" for v in values)]
                for name, values in self.results.items()]
        lines = [f"Sensitivity scan: {self.metric} with one layer pruned "
                 f"(unpruned {self.baseline:.4f})"]
        right = tuple(range(1, len(header)))
        return "\n".join(lines + _text.table(header, rows, right=right))

    __str__ = table

    def to_dict(self):
        return dataclasses.asdict(self)


def _evaluate(model, data, metric, batch_size):
    logs = _training.evaluate(model, data, batch_size)
    if metric not in logs:
        raise ValueError(
            f"Argument `metric` must be one of the model's compiled metrics {sorted(logs)}. "
            f"Received: metric={metric!r}."
        )
    return logs[metric]


def _pick_metric(model, data, metric, batch_size):
    if metric != "auto":
        return metric
    if isinstance(data, tuple) and len(data) == 2:
        logs = model.evaluate(data[0][:1], data[1][:1], verbose=0, return_dict=True)
    else:
        logs = model.evaluate(data, steps=1, verbose=0, return_dict=True)
    accuracies = [name for name in logs if "acc" in name]
    return accuracies[0] if accuracies else "loss"


def scan(model, data, sparsities=DEFAULT_SPARSITIES, *, metric="auto", layers=None,
         batch_size=256, verbose=False):
    """Evaluates `model` with each layer alone pruned by magnitude to each sparsity.

    No training happens; the model's weights are restored after each evaluation,
    so `model` ends unchanged.

    Args:
        model: A compiled Keras model (plain, not wrapped).
        data: Evaluation data: `(x, y)` arrays or anything `model.evaluate` takes.
        sparsities: The sparsities to try, each in (0, 1).
        metric: A key of `model.evaluate(..., return_dict=True)`; "auto" picks the
            first accuracy metric, else "loss".
        layers: Names of the layers to scan (default: every prunable layer).
        batch_size: Evaluation batch size for array data.
        verbose: Print each layer's row as it is measured.

    Returns:
        A `SensitivityScan` (print it for a table; plot it with `plot.sensitivity`).
    """
    if collect_wrappers(model):
        raise ValueError(
            f"Argument `model` ({model.name}) holds pruning wrappers; scan a plain model "
            "(keras_prune.strip_pruning(model) first)."
        )
    if getattr(model, "compiled", False) is False and getattr(model, "optimizer", None) is None:
        raise ValueError(
            f"Argument `model` ({model.name}) must be compiled with the loss and metrics to "
            "measure, e.g. model.compile(loss=..., metrics=['accuracy'])."
        )
    sparsities = [_validation.check_fraction("sparsities[]", s) for s in sparsities]
    if not sparsities:
        raise ValueError("Argument `sparsities` must hold at least one sparsity, e.g. (0.5, 0.9).")
    found = prunable_layers(model)
    if layers is not None:
        names = {layer.name for layer, _ in found}
        unknown = sorted(set(layers) - names)
        if unknown:
            raise ValueError(
                f"Argument `layers` names layers without prunable weights: {unknown[:5]}. "
                f"Prunable layers: {sorted(names)[:10]}."
            )
        found = [(layer, weights) for layer, weights in found if layer.name in set(layers)]
    metric = _pick_metric(model, data, metric, batch_size)
    result = SensitivityScan(
        metric=metric, higher_is_better=metric != "loss" and "loss" not in metric,
        baseline=_evaluate(model, data, metric, batch_size), sparsities=sparsities,
        results={}, sizes={},
    )
    for layer, weights in found:
        saved = [ops.convert_to_numpy(w) for w in weights]
        values = []
        try:
            for sparsity in sparsities:
                for weight, value in zip(weights, saved):
                    weight.assign(value * _magnitude_mask(value, sparsity))
                values.append(_evaluate(model, data, metric, batch_size))
        finally:
            for weight, value in zip(weights, saved):
                weight.assign(value)
        result.results[layer.name] = values
        result.sizes[layer.name] = int(sum(v.size for v in saved))
        if verbose:
            print(f"{layer.name}: " + ", ".join(f"{s:g} -> {v:.4f}"
                                              for s, v in zip(sparsities, values)))
    return result


_scan = scan  # `allocate` has an argument named `scan`


def _magnitude_mask(value, sparsity):
    keep = num_kept(value.size, sparsity)
    flat = np.abs(value).ravel()
    mask = np.zeros(flat.size, value.dtype)
    mask[np.argsort(-flat, kind="stable")[:keep]] = 1
    return mask.reshape(value.shape)


def allocate(model, target_sparsity, method="uniform", *, scan=None, data=None,
             max_sparsity=None):
    """Per-layer sparsities whose weighted mean is `target_sparsity`.

    Methods:
        "uniform": every layer at the target.
        "global": the sparsity each layer gets under one magnitude threshold
            across the model (its current weights).
        "erk": Erdős–Rényi-Kernel (Evci et al. 2020): small layers keep more.
        "sensitivity": layers whose `scan` shows little loss are pruned harder:
            one tolerated drop in the metric for all layers, raised until the
            total reaches the target (each layer's curve interpolated linearly).

    Args:
        model: A plain or wrapped Keras model.
        target_sparsity: The model-wide fraction of prunable weights to remove.
        method: One of "uniform", "global", "erk", "sensitivity".
        scan: A `SensitivityScan` for method="sensitivity" (else one is run on `data`).
        data: Evaluation data for a scan when `scan` is None.
        max_sparsity: Cap per layer for "sensitivity" (default: the highest
            sparsity scanned).

    Returns:
        {layer name: sparsity} for every prunable layer (the weighted mean, by
        prunable weight count, equals `target_sparsity`).
    """
    target = _validation.check_fraction("target_sparsity", target_sparsity)
    if method not in METHODS:
        raise ValueError(
            f"Argument `method` must be one of {list(METHODS)}. Received: method={method!r}."
        )
    found = prunable_layers(model)
    names = [layer.name for layer, _ in found]
    sizes = np.array([sum(int(np.prod(w.shape)) for w in weights) for _, weights in found],
                     np.float64)
    if method == "uniform":
        values = np.full(len(found), target)
    elif method == "global":
        magnitudes = [np.abs(ops.convert_to_numpy(w)) for _, ws in found for w in ws]
        kept = iter(global_masks(magnitudes, target))
        values = np.array([1.0 - sum(float(next(kept).sum()) for _ in ws) / size
                           for (_, ws), size in zip(found, sizes)])
    elif method == "erk":
        shapes = [tuple(w.shape) for _, ws in found for w in ws]
        densities = iter(erk_densities(shapes, target))
        values = np.array([1.0 - sum(next(densities) * np.prod(w.shape) for w in ws) / size
                           for (_, ws), size in zip(found, sizes)])
    else:
        if scan is None:
            if data is None:
                raise ValueError(
                    "method='sensitivity' needs `scan=` (from keras_prune.sensitivity.scan) "
                    "or `data=` to run one."
                )
            scan = _scan(model, data)
        values = _sensitivity_allocation(scan, names, sizes, target, max_sparsity)
    return {name: float(value) for name, value in zip(names, values)}


def _sensitivity_allocation(result, names, sizes, target, max_sparsity):
    missing = [name for name in names if name not in result.results]
    if missing:
        raise ValueError(
            f"Argument `scan` has no results for layers {missing[:5]}; scan the same model."
        )
    cap = max(result.sparsities) if max_sparsity is None else max_sparsity
    xs = np.concatenate([[0.0], result.sparsities])
    curves = []
    for name in names:
        drops = np.maximum.accumulate(np.concatenate([[0.0], result.drop(name)]))
        curves.append(drops)

    def at(tolerance):
        """Each layer's highest sparsity whose (interpolated) drop stays <= tolerance."""
        out = []
        for drops in curves:
            above = np.nonzero(drops > tolerance)[0]
            if not len(above):
                out.append(min(xs[-1], cap))
                continue
            i = above[0]  # drops[i - 1] <= tolerance < drops[i]
            if i == 0:
                out.append(0.0)
                continue
            span = drops[i] - drops[i - 1]
            s = xs[i - 1] + (xs[i] - xs[i - 1]) * (tolerance - drops[i - 1]) / span
            out.append(min(s, cap))
        return np.array(out)

    def total(values):
        return float(np.sum(values * sizes) / np.sum(sizes))

    high = max(float(c[-1]) for c in curves) + 1.0
    if total(at(high)) < target - 1e-12:
        raise ValueError(
            f"Argument `target_sparsity` ({target}) cannot be reached with every layer at "
            f"most at {cap:g} sparsity. Scan higher sparsities, or raise `max_sparsity`."
        )
    low = -1e-12
    for _ in range(100):
        middle = (low + high) / 2
        if total(at(middle)) < target:
            low = middle
        else:
            high = middle
    below, above = at(low), at(high)
    gap = total(above) - total(below)
    blend = 0.0 if gap <= 0 else (target - total(below)) / gap
    return below + blend * (above - below)

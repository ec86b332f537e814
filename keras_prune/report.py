"""`sparsity_report`: zeros per layer and weight, as a table and as plain data."""

import dataclasses

import keras
import numpy as np

from keras_prune._arrays import to_numpy
from keras_prune._models import flatten_layers
from keras_prune._models.calls import own_variables
from keras_prune._text import table
from keras_prune.layers.wrapper import PruneLowMagnitude


@dataclasses.dataclass
class PruningReport:
    """What `prune_low_magnitude` did: layers wrapped, and layers skipped and why.

    `kept_wrapped` lists layers that were already pruning wrappers (kept as they
    are, as in tfmot); `shared` lists layers that could not be copied and are
    shared with the input model (never prunable ones), with the reason;
    `elementwise` lists layers pruned element by element although `block_size`
    was given, because their weights are not rank 2.
    """

    pruned: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)  # (layer name, reason)
    kept_wrapped: list = dataclasses.field(default_factory=list)
    shared: list = dataclasses.field(default_factory=list)  # (layer name, reason)
    elementwise: list = dataclasses.field(default_factory=list)

    def __str__(self):
        lines = [f"Pruned {len(self.pruned)} layer(s): {', '.join(self.pruned) or '-'}"]
        if self.elementwise:
            lines.append(
                f"Pruned element by element (weights not rank 2, so no blocks): "
                f"{', '.join(self.elementwise)}"
            )
        if self.kept_wrapped:
            lines.append(f"Already wrapped (kept): {', '.join(self.kept_wrapped)}")
        for name, reason in self.skipped:
            lines.append(f"  skipped {name}: {reason}")
        for name, reason in self.shared:
            lines.append(f"  shared with the input model {name}: {reason}")
        return "\n".join(lines)


@dataclasses.dataclass
class WeightSparsity:
    layer: str
    weight: str
    shape: tuple
    size: int
    zeros: int

    @property
    def sparsity(self):
        return self.zeros / self.size if self.size else 0.0


@dataclasses.dataclass
class SparsityReport:
    """Per-weight rows and totals; `str()` is a table, `to_dict()` plain data."""

    rows: list

    @property
    def total_size(self):
        return sum(r.size for r in self.rows)

    @property
    def total_zeros(self):
        return sum(r.zeros for r in self.rows)

    @property
    def sparsity(self):
        return self.total_zeros / self.total_size if self.total_size else 0.0

    def to_dict(self):
        return {
            "weights": [
                {**dataclasses.asdict(r), "shape": list(r.shape), "sparsity": r.sparsity}
                for r in self.rows
            ],
            "total_size": self.total_size,
            "total_zeros": self.total_zeros,
            "sparsity": self.sparsity,
        }

    def __str__(self):
        header = ("layer", "weight", "shape", "params", "zeros", "sparsity")
        lines = [
            (r.layer, r.weight, "x".join(map(str, r.shape)), str(r.size), str(r.zeros),
             f"{r.sparsity:.1%}")
            for r in self.rows
        ]
        total = ("total", "", "", str(self.total_size), str(self.total_zeros),
                 f"{self.sparsity:.1%}")
        return "\n".join(table(header, lines, total))


def _kernel_like(variable):
    return len(variable.shape) >= 2


def sparsity_report(model, all_weights=False, print_fn=None):
    """Counts exact zeros in the weights of `model`, layer by layer.

    For a pruned (wrapped) model it reports the effective weights `weight * mask`
    of the pruned layers; for a plain model, the weights themselves.

    Example:

    ```python
    report = keras_prune.sparsity_report(model, print_fn=print)
    report.sparsity  # fraction of zeros over the reported weights
    ```

    Args:
        model: A Keras model (pruned, stripped or plain).
        all_weights: Report every weight (biases, BatchNorm...) rather than only
            pruned weights (for a wrapped model) or kernels of rank >= 2 (else).
        print_fn: Called with the table (e.g. `print`); None prints nothing.

    Returns:
        A `SparsityReport`.
    """
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "Argument `model` must be a Keras 3 model or layer. "
            f"Received: model={model!r} of type {type(model).__name__}."
        )
    rows, seen = [], set()
    for layer in flatten_layers(model):
        if isinstance(layer, PruneLowMagnitude):
            masks = {id(w): m for w, m in zip(layer.prunable_weights, layer.masks)}
            for weight in layer.layer.weights:
                seen.add(id(weight))
                if id(weight) not in masks and not all_weights:
                    continue
                value = to_numpy(weight)
                if id(weight) in masks:
                    value = value * to_numpy(masks[id(weight)])
                rows.append(_row(layer.name, weight, value))
            seen.update(id(v) for v in layer.weights)
            continue
        for weight in own_variables(layer):
            if id(weight) in seen or not (all_weights or _kernel_like(weight)):
                continue
            if "float" not in str(weight.dtype):  # masks (bool), counters: not parameters
                continue
            seen.add(id(weight))
            rows.append(_row(layer.name, weight, to_numpy(weight)))
    report = SparsityReport(rows)
    if print_fn is not None:
        print_fn(str(report))
    return report


def _row(layer_name, weight, value):
    value = np.asarray(value)
    return WeightSparsity(
        layer=layer_name,
        weight=weight.path.split("/")[-1],
        shape=tuple(value.shape),
        size=int(value.size),
        zeros=int(value.size - np.count_nonzero(value)),
    )

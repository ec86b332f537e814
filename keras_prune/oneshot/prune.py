"""`prune_one_shot`: prune a trained model from calibration data, without retraining."""

import dataclasses
import re
import sys
import warnings

import keras
import numpy as np

from keras_prune._data import samples
from keras_prune._models import check_built, flatten_layers
from keras_prune._models.hooks import hooked
from keras_prune._progress import check_verbose
from keras_prune._text import table
from keras_prune._validation import check_fraction, check_int
from keras_prune._views.hub import find_blocks, hub_classes
from keras_prune._views.kernels import kernel_owners, view_of
from keras_prune.layers import registry
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.masking.m_by_n import check_m_by_n
from keras_prune.oneshot import solvers
from keras_prune.prune import prune_low_magnitude
from keras_prune.schedules import FixedMask

OWL_LAMBDA, OWL_M = 0.08, 5.0


@dataclasses.dataclass
class OneShotLayer:
    layer: str
    shape: tuple
    sparsity: float  # the fraction of the kernel that is zero afterwards
    error: float  # ||X W - X W'||^2 / ||X W||^2 on the calibration inputs


@dataclasses.dataclass
class OneShotReport:
    """What `prune_one_shot` pruned, per layer, and what it left alone and why."""

    method: str
    layers: list
    skipped: list  # (layer, reason)

    @property
    def sparsity(self):
        total = sum(int(np.prod(row.shape)) for row in self.layers)
        zeros = sum(row.sparsity * int(np.prod(row.shape)) for row in self.layers)
        return zeros / total if total else 0.0

    def __str__(self):
        rows = [(r.layer, "x".join(map(str, r.shape)), f"{r.sparsity:.3f}", f"{r.error:.4f}")
                for r in self.layers]
        lines = table(("layer", "kernel", "sparsity", "rel. error"), rows, right=(2, 3))
        lines.append(f"{self.method}: {self.sparsity:.3f} of {len(self.layers)} layers' kernels "
                     "zero")
        lines += [f"not pruned: {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def prune_one_shot(model, data, sparsity=0.5, *, method="sparsegpt", sparsity_m_by_n=None,
                   block_size=None, layer_sparsity=None, scope=None, filters=None,
                   batch_size=32, blocksize=128, percdamp=0.01, verbose=1):
    """Prunes a trained model once from calibration data; returns (pruned copy, report).

    No retraining: SparseGPT removes weights and updates the ones that stay so the
    layer's outputs on the calibration data change least; Wanda keeps the largest
    |weight| x input norm; magnitude the largest |weight|. Layers are pruned in
    sequence, each from the inputs that the already-pruned layers before it produce
    (keras_hub models block by block, as SparseGPT and Wanda prune LLMs).

    The result has the contract of `prune_at_init`: a wrapped copy with fixed masks
    (`FixedMask`), pruned weights exactly zero; fine-tune it with `PruneCallback`, or
    `strip_pruning` it at once (a keras_hub Task stays its class). The input model
    is unchanged.

    Example:

    ```python
    pruned, report = keras_prune.prune_one_shot(model, x_train[:256], 0.5)
    print(report)
    final = keras_prune.strip_pruning(pruned)
    ```

    Args:
        model: a trained, built Keras 3 model (Sequential, Functional, subclassed,
            keras_hub Backbone or Task).
        data: calibration inputs: an array, a dict of arrays, a `tf.data.Dataset` or
            iterable of batches, or strings for a keras_hub Task with a preprocessor.
        sparsity: fraction of each pruned kernel to zero, in [0, 1).
        method: "sparsegpt" (default), "wanda" or "magnitude".
        sparsity_m_by_n: (m, n): m zeros in every n consecutive inputs (2:4 is (2, 4));
            replaces `sparsity`.
        block_size: k: zero whole runs of k consecutive input channels of an output
            (LiteRT's sparse kernels: `tflite.BLOCK_FLOAT` (4, 1), `tflite.BLOCK_INT8`
            (16, 1)); a layer whose input channels do not split into such blocks is
            left dense and listed in the report.
        layer_sparsity: None (every layer at `sparsity`), "owl" (per-block sparsity
            from the share of outlier Wanda scores, OWL arXiv 2310.05175, spread over
            +-0.08 around `sparsity`; helps at >= 60%), or a dict {layer name: sparsity}.
        scope: where weights compete: "output" (each output unit, Wanda's default)
            or "layer" (the whole kernel, magnitude's default). SparseGPT chooses
            within its column blocks.
        filters: which layers to prune, as in `prune_low_magnitude`.
        batch_size: calibration samples per forward pass.
        blocksize, percdamp: SparseGPT's column block (128) and dampening (0.01).
        verbose: 1 prints a progress line per pruned group of layers, 0 nothing.

    Returns:
        `(pruned_model, OneShotReport)`.

    Raises:
        ValueError: for no data, a sparsity outside [0, 1), m >= n, or an unknown
            method.
    """
    check_built(model, "model")
    options = _check_options(data, sparsity, method, sparsity_m_by_n, block_size, scope,
                             batch_size, verbose)
    options["blocksize"] = check_int("blocksize", blocksize, minimum=1)
    if not 0 <= percdamp:
        raise ValueError(f"Argument `percdamp` must be >= 0 (SparseGPT's dampening, a fraction "
                         f"of the Hessian's mean diagonal). Received: percdamp={percdamp}.")
    options["percdamp"] = float(percdamp)
    chosen = _solvable(filters)
    pruned = prune_low_magnitude(model, pruning_schedule=FixedMask(), filters=chosen)
    batches = list(samples(model, data).batches(batch_size))
    if not batches:
        raise ValueError("Argument `data` holds no samples.")
    kernels, skipped = _supported(pruned)
    skipped += [(layer.name, view_of(layer)[1]) for layer in flatten_layers(model)
                if chosen.left_out(layer)]
    groups = _groups(pruned, kernels)
    targets = _targets(groups, pruned, batches, sparsity, layer_sparsity)
    rows = []
    for index, group in enumerate(groups):
        statistics, counts = _statistics(pruned, group, batches, full=True)  # X^T X
        for target in group:
            if id(target) not in statistics:
                skipped.append((target.layer.name, "never called on the calibration data (the "
                                "model builds it but its forward pass does not use it)"))
                continue
            _warn_if_underdetermined(target, counts[id(target)], method)
            row = _prune_kernel(target, statistics[id(target)], targets[id(target)], options)
            if row is None:
                skipped.append((target.layer.name, _block_misfit(target, options["block"])))
            else:
                rows.append(row)
        if verbose:
            _progress_line(f"{method}: {index + 1}/{len(groups)} groups pruned",
                           last=index + 1 == len(groups))
    return pruned, OneShotReport(method, rows, skipped)


def _progress_line(text, last):
    """In a terminal one line rewritten in place; in a file or CI log whole lines."""
    if sys.stdout.isatty():
        print(f"\r{text}", end="\n" if last else "", flush=True)
    else:
        print(text, flush=True)


def _check_options(data, sparsity, method, m_by_n, block_size, scope, batch_size, verbose):
    if data is None:
        raise ValueError(
            "Argument `data` is required: one-shot pruning measures each layer's inputs on "
            "calibration samples (e.g. data=x_train[:256]). Received: data=None."
        )
    if method not in solvers.METHODS:
        raise ValueError(f"Argument `method` must be one of {sorted(solvers.METHODS)}. "
                         f"Received: method={method!r}.")
    check_fraction("sparsity", sparsity)
    if m_by_n is not None:
        m_by_n = check_m_by_n(m_by_n)
    if block_size is not None:
        if m_by_n is not None:
            raise ValueError("Pass `sparsity_m_by_n` or `block_size`, not both.")
        if isinstance(block_size, (tuple, list)):
            if len(block_size) != 2 or block_size[1] != 1:
                raise ValueError(
                    "Argument `block_size` must be k or (k, 1): runs of k consecutive inputs "
                    f"of one output (LiteRT's blocks). Received: block_size={block_size!r}.")
            block_size = block_size[0]
        check_int("block_size", block_size, minimum=1)
    if scope is not None and scope not in solvers.SCOPES:
        raise ValueError(f"Argument `scope` must be one of {solvers.SCOPES}. "
                         f"Received: scope={scope!r}.")
    check_int("batch_size", batch_size, minimum=1)
    check_verbose(verbose)
    default_scope = {"wanda": "output", "magnitude": "layer"}.get(method, "layer")
    return {"method": method, "m_by_n": m_by_n, "block": block_size,
            "scope": scope or default_scope}


@dataclasses.dataclass(eq=False)
class _Target:
    """One kernel to prune: the layer that multiplies it (inside `wrapper`), its mask."""

    wrapper: object
    layer: object
    view: object
    index: int  # of the kernel among the wrapper's prunable weights


def _supported(pruned):
    """The kernels one-shot pruning can handle, and (layer, why) for the others.

    A wrapper around a composite layer (MultiHeadAttention) holds several kernels:
    each is pruned from the inputs of the sub-layer that multiplies it.
    """
    targets, skipped = [], []
    for wrapper in collect_wrappers(pruned):
        owners = kernel_owners(wrapper.layer)
        for index, weight in enumerate(wrapper.prunable_weights):
            layer = owners.get(id(weight))
            view, why = view_of(layer) if layer is not None else (None, "not a kernel")
            if view is None:
                skipped.append((f"{wrapper.layer.name}/{weight.path.split('/')[-1]}", why))
            else:
                targets.append(_Target(wrapper, layer, view, index))
    return targets, skipped


class _solvable:
    """The `filters` of prune_low_magnitude, less the leaf layers no solver handles
    (Embedding, depthwise): they are not wrapped at all, so a 150 MB embedding gets no
    mask and no masked copy in every calibration pass. They are reported as skipped."""

    def __init__(self, filters):
        self.names = set(filters) if isinstance(filters, (list, tuple, set)) else None
        self.pattern = re.compile(filters) if isinstance(filters, str) else None
        self.function = filters if callable(filters) else None
        self.filters = filters

    def user_selects(self, layer):
        if self.names is not None:
            return layer.name in self.names
        if self.pattern is not None:
            return bool(self.pattern.search(layer.name))
        return self.function(layer) if self.function is not None else True

    def left_out(self, layer):
        """A leaf layer with weights that the user selects and no solver handles."""
        return (bool(layer.weights) and not flatten_layers(layer)
                and registry.is_prunable(layer) and view_of(layer)[0] is None
                and self.user_selects(layer))

    def __call__(self, layer):
        return self.user_selects(layer) and not self.left_out(layer)


def _groups(pruned, targets):
    """Kernels pruned together from one calibration pass: a keras_hub block's, otherwise
    one layer's at a time, in the order the model runs them."""
    blocks = []
    backbone_cls, task_cls = hub_classes()
    if backbone_cls is not None and isinstance(pruned, (backbone_cls, task_cls)):
        blocks = find_blocks(getattr(pruned, "backbone", pruned))
    owner = {}
    for index, block in enumerate(blocks):
        for layer in flatten_layers(block):
            owner[id(layer)] = index
    groups, by_key = [], {}
    for target in targets:
        block = owner.get(id(target.wrapper))
        key = ("block", block) if block is not None else ("wrapper", id(target.wrapper))
        if key not in by_key:
            by_key[key] = []
            groups.append(by_key[key])
        by_key[key].append(target)
    return groups


class _GroupMeasured(Exception):
    """Raised by the hooks once every layer of a group has seen the batch."""


def _runner(model, group):
    """The smallest part of `model` that runs the group: a keras_hub Task's backbone
    (its head, e.g. a 50k-word output projection, needs no calibration) or the model."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return model
    inside = {id(layer) for layer in flatten_layers(backbone, include_self=True)}
    return backbone if all(id(t.layer) in inside for t in group) else model


def _statistics(model, group, batches, full):
    """({id(target): X^T X (full) or the per-input sum of squares}, {id(target): rows})
    over the batches; a target whose layer the batches never reach is left out of both."""
    sums = {id(t): 0.0 for t in group}
    counts = {id(t): 0 for t in group}
    by_layer = {}
    for target in group:
        by_layer.setdefault(id(target.layer), []).append(target)

    layers = list({id(t.layer): t.layer for t in group}.values())
    seen = set()

    def record(layer, args, kwargs, output):
        x = args[0] if args else next(iter(kwargs.values()))
        x = np.asarray(keras.ops.convert_to_numpy(x), np.float64)
        for target in by_layer[id(layer)]:
            rows = target.view.rows(x)
            sums[id(target)] = sums[id(target)] + (rows.T @ rows if full else (rows ** 2).sum(0))
            counts[id(target)] += len(rows)
        seen.add(id(layer))
        if len(seen) == len(layers):  # the rest of the model cannot change the statistics
            raise _GroupMeasured()

    runner = _runner(model, group)
    with hooked(layers, record):
        for batch in batches:
            seen.clear()
            try:
                runner(batch, training=False)
            except _GroupMeasured:
                pass
    for target in group:
        if isinstance(sums[id(target)], float):  # built, but never called by the model
            del sums[id(target)], counts[id(target)]
    return sums, counts


def _warn_if_underdetermined(target, rows, method):
    """SparseGPT fits each kernel to the calibration rows: with fewer rows than inputs
    the fit is exact on the calibration set and says little about other inputs."""
    inputs = target.view.to_matrix(np.zeros(tuple(
        target.wrapper.prunable_weights[target.index].shape))).shape[1]
    if method == "sparsegpt" and rows < inputs:
        warnings.warn(
            f"Layer `{target.layer.name}` reads {inputs} input features but the calibration "
            f"data gave it {rows} rows: SparseGPT's weight update then fits the calibration "
            f"set rather than the task. Pass at least {inputs} rows (samples x positions), "
            "or method='wanda'.",
            stacklevel=4,
        )


def _prune_kernel(target, statistics, sparsity, options):
    layer, view, wrapper = target.layer, target.view, target.wrapper
    kernel_variable = wrapper.prunable_weights[target.index]
    kernel = np.asarray(keras.ops.convert_to_numpy(kernel_variable), np.float64)
    matrix = view.to_matrix(kernel)
    block = options["block"]
    if block and view.innermost_inputs(kernel.shape) % block:
        return None
    solver = solvers.METHODS[options["method"]]
    new, mask = solver(matrix, statistics, sparsity, m_by_n=options["m_by_n"], block=block,
                       scope=options["scope"], blocksize=options["blocksize"],
                       percdamp=options["percdamp"])
    delta = new - matrix
    denominator = float(np.sum((matrix @ statistics) * matrix)) or 1.0
    error = float(np.sum((delta @ statistics) * delta)) / denominator
    keep = ~view.from_matrix(mask, kernel.shape)
    kernel_variable.assign(view.from_matrix(new, kernel.shape) * keep)
    wrapper.masks[target.index].assign(keep.astype(wrapper.masks[target.index].dtype))
    return OneShotLayer(layer.name, tuple(kernel.shape), float(1 - keep.mean()), error)


def _block_misfit(target, block):
    shape = tuple(target.wrapper.prunable_weights[target.index].shape)
    return (f"its {target.view.innermost_inputs(shape)} input channels do not split into "
            f"blocks of {block} (LiteRT's blocks run along the input channels); left dense")


def _targets(groups, pruned, batches, sparsity, layer_sparsity):
    """{id(target): sparsity}: uniform, per layer name, or OWL per group."""
    targets = [t for group in groups for t in group]
    if layer_sparsity is None:
        return {id(t): sparsity for t in targets}
    if isinstance(layer_sparsity, dict):
        names = {t.layer.name for t in targets} | {t.wrapper.layer.name for t in targets}
        unknown = sorted(set(layer_sparsity) - names)
        if unknown:
            raise ValueError(f"Argument `layer_sparsity` names layers that are not pruned: "
                             f"{unknown[:5]}. Pruned layers: {sorted(names)[:10]}.")
        result = {}
        for t in targets:
            name = t.layer.name if t.layer.name in layer_sparsity else t.wrapper.layer.name
            result[id(t)] = check_fraction(f"layer_sparsity[{name!r}]",
                                           layer_sparsity.get(name, sparsity))
        return result
    if layer_sparsity != "owl":
        raise ValueError("Argument `layer_sparsity` must be None, 'owl' or a dict {layer name: "
                         f"sparsity}}. Received: layer_sparsity={layer_sparsity!r}.")
    return _owl(pruned, groups, batches, sparsity)


def _owl(model, groups, batches, sparsity):
    """Outlier-weighed layerwise sparsity (OWL): a group with a larger share of outlier
    Wanda scores (> OWL_M x its mean) keeps more weights; the densities spread over
    2 x OWL_LAMBDA around 1 - sparsity."""
    norms, _ = _statistics(model, [t for g in groups for t in g], batches, full=False)
    ratios, sizes = [], []
    for group in groups:
        outliers = total = 0
        for target in group:
            if id(target) not in norms:
                continue
            kernel = target.wrapper.prunable_weights[target.index]
            matrix = target.view.to_matrix(np.asarray(keras.ops.convert_to_numpy(kernel)))
            scores = np.abs(matrix) * np.sqrt(norms[id(target)])[None, :]
            outliers += int((scores > OWL_M * scores.mean()).sum())
            total += scores.size
        ratios.append(outliers / max(total, 1))
        sizes.append(total)
    ratios, sizes = np.array(ratios), np.array(sizes, np.float64)
    spread = ratios.max() - ratios.min()
    density = (ratios - ratios.min()) / spread * 2 * OWL_LAMBDA if spread > 0 else 0 * ratios
    # Centred on the weights, not the groups: the share of all pruned weights is `sparsity`.
    density = density - np.average(density, weights=np.maximum(sizes, 1)) + (1 - sparsity)
    sparsities = np.clip(1 - density, 0.0, 0.99)
    return {id(t): float(s) for group, s in zip(groups, sparsities) for t in group}

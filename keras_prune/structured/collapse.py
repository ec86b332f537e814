"""`collapse_layers`: remove the layers pruning made linear (EGP's last step).

A ReLU layer whose units are each always on or always off over the data computes
an affine function there: always-on units pass their input through, always-off
units output 0. Such a layer merges exactly into the next linear layer:

- Dense -> Dense: W = W_a diag(on) W_b, b = (b_a * on) W_b + b_b.
- Conv (any kernel) -> Conv 1x1 (stride 1, no dilation or groups): the 1x1
  kernel is folded into the first conv's kernel the same way.

Layers without an activation merge the same way (all units "on"). A residual
branch whose output is the same vector at every sample and position (its ReLUs
always off, or its kernels fully pruned, leave only biases) is dropped: `x + f(x)`
becomes `x` when that vector is zero, else `x + c` (a `Rescaling(1, offset=c)`
layer, a built-in Keras layer). The result is exact on the samples given; on
other inputs it is exact as long as no unit would change state.
"""

import dataclasses

import keras
import numpy as np
from keras import ops

from keras_prune import _models
from keras_prune._data import samples
from keras_prune._models.graph import iter_steps, run_graph
from keras_prune.entropy.states import relu_gate, relu_layer, relu_states
from keras_prune.layers.wrapper import collect_wrappers
from keras_prune.structured.blocks import find_residual_blocks
from keras_prune.structured.graph import check_graph_model
from keras_prune.structured.rebuild import copy_weights, rebuild

_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose,
               keras.layers.Conv3DTranspose)


@dataclasses.dataclass
class CollapseReport:
    """What `collapse_layers` removed, and how the model changed.

    `merged` holds (removed layer names, the layer they were folded into);
    `identity_blocks` the Add layers whose branch was zero and was dropped;
    `offset_blocks` those whose branch was a constant, now added as an offset
    (a Rescaling layer with the Add's name); depth counts the
    layers with a kernel (Dense and convolutions); `max_difference` is the largest
    |output change| on the data (0 up to float rounding).
    """

    merged: list
    identity_blocks: list
    depth_before: int
    depth_after: int
    params_before: int
    params_after: int
    max_difference: float
    offset_blocks: list = dataclasses.field(default_factory=list)
    latency_us_before: float | None = None
    latency_us_after: float | None = None

    @property
    def layers_removed(self):
        return self.depth_before - self.depth_after

    def __str__(self):
        lines = [f"Collapsed layers: depth {self.depth_before} -> {self.depth_after}, params "
                 f"{self.params_before:,} -> {self.params_after:,}, max |difference| on the "
                 f"data {self.max_difference:.2e}"]
        for removed, into in self.merged:
            lines.append(f"  {', '.join(removed)} folded into {into}")
        for name in self.identity_blocks:
            lines.append(f"  residual block {name}: branch is zero, now the identity")
        for name in self.offset_blocks:
            lines.append(f"  residual block {name}: branch is a constant, now an offset")
        if self.latency_us_before is not None:
            lines.append(f"  LiteRT latency {self.latency_us_before:.1f} -> "
                         f"{self.latency_us_after:.1f} us")
        return "\n".join(lines)

    def to_dict(self):
        return {**dataclasses.asdict(self), "layers_removed": self.layers_removed}


def depth(model):
    """Number of layers with a kernel (Dense, convolutions, ...) in `model`."""
    return sum(1 for layer in _models.flatten_layers(model)
               if not isinstance(layer, keras.Model) and hasattr(layer, "kernel"))


def _linear_kind(layer):
    """"dense", "conv", or None for a layer this module can fold."""
    if type(layer) is keras.layers.Dense:
        return "dense"
    if isinstance(layer, _CONVS) and not isinstance(layer, _TRANSPOSED) and layer.groups == 1:
        if getattr(layer, "data_format", "channels_last") == "channels_last":
            return "conv"
    return None


def _is_pointwise(layer):
    return (all(k == 1 for k in layer.kernel_size) and all(s == 1 for s in layer.strides)
            and all(d == 1 for d in layer.dilation_rate))


def _activation_name(layer):
    return keras.activations.serialize(layer.activation) if hasattr(layer, "activation") else None


def _always(p):
    """`p` (on-fractions) as a 0/1 vector when each unit is always on or off, else None."""
    if p is None or not np.all((p == 0) | (p == 1)):
        return None
    return p.astype(np.float64)


def _foldable(layer, states, gate=None):
    """The 0/1 'on' vector of a layer that is affine on the data, else None.

    `gate` is the step of a separate ReLU layer between `layer` (then without an
    activation of its own) and the layer it folds into.
    """
    if _linear_kind(layer) is None:
        return None
    if gate is not None:
        return _always(states.get(gate.operation.name))
    if _activation_name(layer) in ("linear", None):
        return np.ones(int(layer.kernel.shape[-1]))
    if relu_layer(layer) is layer:
        return _always(states.get(layer.name))
    return None


class _Graph:
    """The leaf steps of a graph model, with who consumes and produces each tensor."""

    def __init__(self, model):
        self.steps = list(iter_steps(model))
        self.consumers, self.producers, self.calls = {}, {}, {}
        for step in self.steps:
            for tensor in step.inputs:
                self.consumers.setdefault(id(tensor), []).append(step)
            for tensor in step.outputs:
                self.producers[id(tensor)] = step
            self.calls[id(step.operation)] = self.calls.get(id(step.operation), 0) + 1
        self.outputs = {id(t) for t in keras.tree.flatten(model.outputs)}

    def _only_user(self, step):
        """The one step reading `step`'s output (a layer called once), or None."""
        users = self.consumers.get(id(step.outputs[0]), [])
        if len(users) != 1 or id(step.outputs[0]) in self.outputs:
            return None
        return users[0] if self.calls[id(users[0].operation)] == 1 else None

    def fold_target(self, step):
        """(the linear layer's step `step` can fold into once affine, the ReLU-layer step
        between them or None), or None.

        Dense folds into the Dense that alone reads its output (directly or through a
        ReLU or Activation("relu") layer); a convolution into a 1x1 convolution (stride
        1) of the same rank. No output on the way may be a model output.
        """
        kind = _linear_kind(step.operation)
        if kind is None:
            return None
        nxt, gate = self._only_user(step), None
        if (nxt is not None and relu_gate(nxt.operation)
                and _activation_name(step.operation) in ("linear", None)):
            gate, nxt = nxt, self._only_user(nxt)
        if nxt is None or _linear_kind(nxt.operation) != kind:
            return None
        if kind == "conv" and not (_is_pointwise(nxt.operation) and len(
                nxt.operation.kernel_size) == len(step.operation.kernel_size)):
            return None
        return nxt, gate


def linearizable_layers(model):
    """Names of the ReLU layers `collapse_layers` could fold once each unit is always
    on or off, and whose input is never negative (another ReLU's output).

    A Dense or convolution with a bias and a ReLU (its activation, or a ReLU or
    Activation("relu") layer right after it) that alone feeds a Dense (or a 1x1
    convolution). On such a layer, a unit whose kept weights and bias are positive is
    on for every input: `egp_prune(steer="linearize")` makes chosen layers linear so.
    """
    graph = _Graph(model)
    names = []
    for step in graph.steps:
        layer = step.operation
        target = graph.fold_target(step)
        if (target is None or not getattr(layer, "use_bias", False)
                or graph.calls[id(layer)] != 1 or len(step.inputs) != 1):
            continue
        if target[1] is None and relu_layer(layer) is not layer:
            continue  # no ReLU at all: already linear
        source = graph.producers.get(id(step.inputs[0]))
        if source is not None and relu_layer(source.operation) is not None:
            names.append(layer.name)
    return names


def _fold(kernel_a, bias_a, on, kernel_b, bias_b, kind):
    """Weights of `b(on * a(x))` as one layer with `a`'s geometry."""
    kernel_a = kernel_a * on
    bias_a = bias_a * on
    matrix = kernel_b.reshape(kernel_b.shape[-2], kernel_b.shape[-1])  # 1x1 or Dense
    if kind == "dense":
        return kernel_a @ matrix, bias_a @ matrix + bias_b
    return np.tensordot(kernel_a, matrix, axes=([-1], [0])), bias_a @ matrix + bias_b


def _weights(layer):
    kernel = ops.convert_to_numpy(layer.kernel).astype(np.float64)
    bias = (ops.convert_to_numpy(layer.bias).astype(np.float64) if layer.use_bias
            else np.zeros(kernel.shape[-1]))
    return kernel, bias


def collapse_layers(model, data, *, latency=False, batch_size=256):
    """Folds layers that are affine on `data` into their successor; returns (model, report).

    Args:
        model: A Functional or Sequential model, plain or wrapped (wrappers are
            stripped first, on a copy). The input model is unchanged.
        data: Input samples the ReLU states are read on (use the training data
            or a large sample of it: a unit must never change state).
        latency: Also convert both models with keras_prune.tflite and measure
            their LiteRT latency (needs TensorFlow and a LiteRT runtime).
        batch_size: Samples per forward pass.

    Returns:
        (new_model, CollapseReport). The new model is a plain Functional model.
    """
    if collect_wrappers(model):
        from keras_prune.strip import strip_pruning

        model = strip_pruning(model)
    check_graph_model(model)
    data = samples(model, data)
    if isinstance(model, keras.Sequential):  # rewired below through its functional graph
        model = keras.Model(model.inputs[0], model.outputs[0], name=model.name)
    states = relu_states(model, data, batch_size)
    graph = _Graph(model)
    constant_blocks = _constant_branches(model, data, batch_size)
    dropped = {name for block, _ in constant_blocks for name in block.layers}
    chains, links = _foldable_chains(graph, states, dropped)

    zero = [block for block, offset in constant_blocks if not offset.any()]
    offsets = [(block, offset) for block, offset in constant_blocks if offset.any()]
    bypass = {id(block.output): block.skip for block in zero}
    bypass.update({id(block.output): (block.skip, _offset(block, offset))
                   for block, offset in offsets})
    replace, merged_weights, merged = _merge_chains(chains, links, bypass)

    copier = _models.LayerCopier(model)  # copies Lambda and custom layers too

    def make_layer(layer):
        if id(layer) in replace:
            cls, config = replace[id(layer)]
            return cls.from_config(config)
        return copier.copy(layer)

    # Bypassed tensors point at tensors of the old graph; map them to the right source.
    new_model, pairs = rebuild(model, make_layer, bypass=_resolve(bypass))
    _models.load_copied_weights(copier)
    copy_weights([(old, new) for old, new in pairs if id(old) in replace], merged_weights)
    report = CollapseReport(
        merged=merged,
        identity_blocks=[block.name for block in zero],
        offset_blocks=[block.name for block, _ in offsets],
        depth_before=depth(model), depth_after=depth(new_model),
        params_before=model.count_params(), params_after=new_model.count_params(),
        max_difference=_max_difference(model, new_model, data, batch_size),
    )
    if latency:
        report.latency_us_before, report.latency_us_after = _latencies(model, new_model)
    return new_model, report


def _foldable_chains(graph, states, dropped):
    """Chains a1 -> a2 -> ... -> b: each `a` foldable, used once, feeding only the next.

    Returns (chains of steps, links): links maps id(step) to (its 0/1 on-vector, the
    ReLU layer's step between it and the next, or None). Layers in `dropped` (constant
    branches) take part in no chain.
    """
    folded = {id(s.operation): True for s in graph.steps if s.operation.name in dropped}
    chains, links = [], {}
    for step in graph.steps:
        layer = step.operation
        if id(layer) in folded or graph.calls[id(layer)] != 1 or _linear_kind(layer) is None:
            continue
        chain = [step]
        while True:
            target = graph.fold_target(chain[-1])
            if target is None or id(target[0].operation) in folded:
                break
            on = _foldable(chain[-1].operation, states, target[1])
            if on is None:
                break
            links[id(chain[-1])] = (on, target[1])
            chain.append(target[0])
        if len(chain) > 1:
            chains.append(chain)
            folded.update((id(s.operation), True) for s in chain)
    return chains, links


def _merge_chains(chains, links, bypass):
    """Each chain's layers folded into one layer of its last layer's name.

    Adds to `bypass` the tensors the folded layers produced (they now come from the
    chain's input). Returns ({id(last layer): (class, config)}, {id(last layer): its
    merged [kernel, bias]}, [(removed layer names, merged layer name)]).
    """
    replace, merged_weights, merged = {}, {}, []
    for chain in chains:
        first, last = chain[0], chain[-1]
        kernel, bias = _weights(first.operation)
        kind = _linear_kind(first.operation)
        gates = [links[id(step)][1] for step in chain[:-1]]
        for previous, step in zip(chain, chain[1:]):
            kernel_b, bias_b = _weights(step.operation)
            kernel, bias = _fold(kernel, bias, links[id(previous)][0], kernel_b, bias_b, kind)
        for step, gate in zip(chain[:-1], gates):
            bypass[id(step.outputs[0])] = first.inputs[0]
            if gate is not None:
                bypass[id(gate.outputs[0])] = first.inputs[0]
        config = dict(first.operation.get_config())
        b = last.operation
        config.update(name=b.name, activation=b.get_config()["activation"], use_bias=True,
                      kernel_regularizer=None, bias_regularizer=None,
                      activity_regularizer=None)
        config["units" if kind == "dense" else "filters"] = int(kernel.shape[-1])
        replace[id(b)] = (type(first.operation), config)
        merged_weights[id(b)] = [kernel.astype(b.kernel.dtype), bias.astype(b.kernel.dtype)]
        removed = [s.operation.name for s in chain[:-1]]
        removed += [gate.operation.name for gate in gates if gate is not None]
        merged.append((removed, b.name))
    return replace, merged_weights, merged


def _resolve(bypass):
    """Follows chains of plain bypasses (a -> b -> c becomes a -> c).

    A bypass that applies a layer ((tensor, layer), an offset) ends the chain:
    `rebuild` applies it to whatever its tensor became.
    """
    resolved = {}
    for key, target in bypass.items():
        seen = set()
        while (not isinstance(target, tuple) and id(target) in bypass
               and id(target) not in seen):
            seen.add(id(target))
            target = bypass[id(target)]
        resolved[key] = target
    return resolved


def _offset(block, offset):
    """The layer adding a constant branch's output `offset` to the skip."""
    dtype = block.output.dtype
    return keras.layers.Rescaling(1.0, offset=offset.astype(dtype), name=block.name, dtype=dtype)


def _constant_branches(model, data, batch_size, rtol=1e-6):
    """(block, offset) for residual blocks whose branch outputs one constant vector.

    The branch output must be the same, channel by channel, at every sample and
    position (up to `rtol` of its size, float rounding of identical sums); `offset`
    is that vector (all zeros for a branch that is exactly zero).
    """
    blocks = find_residual_blocks(model)
    if not blocks:
        return []
    steps = list(iter_steps(model))
    wanted = {id(block.branch_output) for block in blocks}
    low, high = {}, {}

    def watch(step, values):
        for tensor, value in zip(step.outputs, values):
            key = id(tensor)
            if key in wanted:
                value = np.asarray(ops.convert_to_numpy(value), np.float64)
                value = value.reshape(-1, value.shape[-1] if value.ndim > 1 else 1)
                low[key] = np.minimum(low.get(key, np.inf), value.min(axis=0))
                high[key] = np.maximum(high.get(key, -np.inf), value.max(axis=0))

    for batch in samples(model, data).input_batches(batch_size):
        run_graph(model, steps, batch, watch)
    found = []
    for block in blocks:
        a, b = low[id(block.branch_output)], high[id(block.branch_output)]
        if np.all(b - a <= rtol * np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))):
            found.append((block, (a + b) / 2))
    return found


def _max_difference(old, new, data, batch_size):
    worst = 0.0
    for batch in samples(old, data).input_batches(batch_size):
        batch = batch[0] if len(batch) == 1 else batch
        a = keras.tree.flatten(old(batch, training=False))
        b = keras.tree.flatten(new(batch, training=False))
        for x, y in zip(a, b):
            diff = np.abs(ops.convert_to_numpy(x) - ops.convert_to_numpy(y))
            worst = max(worst, float(np.max(diff)) if diff.size else 0.0)
    return worst


def _latencies(old, new):
    import os
    import tempfile

    from keras_prune import tflite

    results = []
    with tempfile.TemporaryDirectory() as folder:
        for index, model in enumerate((old, new)):
            path = os.path.join(folder, f"model_{index}.tflite")
            tflite.convert(model, path)
            results.append(tflite.benchmark(path).median_us)
    return tuple(results)

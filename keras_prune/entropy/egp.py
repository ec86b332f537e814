"""Entropy-guided iterative pruning (EGP, Liao et al. 2023): `egp_prune`."""

import time

import numpy as np
from keras import ops

from keras_prune import _training, _validation
from keras_prune._data import samples
from keras_prune.entropy.linearize import Linearizer
from keras_prune.entropy.states import binary_entropy, layer_entropy, output_relus, relu_states
from keras_prune.masking.scores import keep_top, kept_scores, sparsity_of
from keras_prune.masks import masked_weights, set_masks
from keras_prune.prune import prune_low_magnitude
from keras_prune.schedules import FixedMask


def _allocate(budget, remaining, weights):
    """Splits `budget` weights across layers ~ `weights`, none beyond its `remaining`."""
    share = np.zeros(len(remaining))
    free = remaining > 0
    left = float(budget)
    while left > 0.5 and free.any():
        part = weights * free
        part = left * part / part.sum()
        room = remaining - share
        take = np.minimum(part, room)
        share += take
        left -= take.sum()
        free &= (remaining - share) > 0.5
    return np.floor(share + 0.5).astype(int)


def _residual_branches(model):
    """{layer name: names of its residual branch's layers} for `model`'s branch layers."""
    from keras_prune.structured.blocks import find_residual_blocks

    try:
        blocks = find_residual_blocks(model)
    except ValueError:  # not a graph model: no branch is known
        return {}
    return {name: tuple(block.layers) for block in blocks for name in block.layers}


def _steering_entropy(layer_names, entropy, steer, branches):
    """Per layer, the entropy that weights its share of a round's budget.

    "all": the layer's own (1 without a ReLU). "branches": a layer inside a residual
    branch takes its branch's mean entropy, so a branch is pruned as one (its last
    layer often has no ReLU); layers outside branches count as 1 (uniform rate).
    """
    if steer == "all":
        return np.array([entropy.get(name, 1.0) for name in layer_names])
    values = []
    for name in layer_names:
        known = [entropy[n] for n in branches.get(name, ()) if n in entropy]
        values.append(float(np.mean(known)) if known else 1.0)
    return np.array(values)


def egp_prune(model, data, target_sparsity, *, rounds=5, epochs=2, batch_size=32,
              entropy_data=None, temperature=None, validation_data=None, filters=None,
              steer="all", linearize=None, repair_epochs=None, verbose=1):
    """Entropy-guided iterative pruning; returns the pruned (wrapped) model.

    Each round raises the sparsity (geometrically, to `target_sparsity` at the
    last round), splits the round's budget across layers in proportion to each
    layer's remaining weights times exp(-entropy / temperature) (layers without
    a ReLU count as entropy 1), prunes the smallest remaining weights of each
    layer, and fine-tunes for `epochs`. The history is in `model.egp_history`.

    Args:
        model: A compiled Functional/Sequential model (it is not changed).
        data: Training data, `(x, y)` arrays or a dataset `fit` takes.
        target_sparsity: The final fraction of prunable weights removed.
        rounds: Pruning rounds. Defaults to 5.
        epochs: Fine-tuning epochs after each round.
        batch_size: Batch size for array data.
        entropy_data: Inputs the entropy is measured on (default: up to 1024
            samples of `data`'s x).
        temperature: Lower values concentrate the budget on low-entropy layers.
            Default: 0.25 with steer="all"; 0.2 with steer="branches", which
            concentrates the budget on the lowest-entropy branches (at 0.05 the
            lowest takes nearly all of it until it is empty; at 0.5 it is spread
            and none empties). Depth against accuracy (benchmarks/egp.py, residual
            CNN, digits, 90%, 6 seeds): 0.2 removed a block in 5 of 6 seeds at
            0.890 against uniform pruning's 0.846; 0.05 halved the depth but lost
            5.3 points.
        validation_data: Evaluated after each round (default: `data`).
        filters: Which layers to prune, as in `prune_low_magnitude`.
        steer: Which layers the entropy steers. "all" (the paper's rule), or
            "branches": only layers inside residual branches, each weighted by its
            branch's mean entropy, so the lowest-entropy branch is emptied first;
            the others are pruned in proportion to their remaining weights (as
            uniform pruning does). Measured on a residual CNN (digits, 90%): with
            "all", the stem conv went to 100% sparsity as its entropy fell, and
            accuracy to 0.29. Either way, only layers inside residual branches may
            lose every weight (a branch left constant is removable by
            `collapse_layers`); every other layer keeps at least one weight.
            "linearize" (plain networks, where no branch can be emptied): each round
            adds the lowest-entropy layer(s) among those `collapse_layers` could
            fold, until `linearize` layers are chosen, and prunes a chosen layer's
            weights by sign instead of magnitude: its mostly-on units keep only
            positive weights, its mostly-off units none (see the repair below).
            The rest of each round's budget is spread as uniform pruning does.
            Measured on an 8-hidden-layer MLP (digits, 90%, 6 seeds): with 2 of
            its 8 ReLU layers linear, the accuracy of uniform pruning (0.950 vs
            0.947); with 4, 2 points less.
        linearize: With steer="linearize", how many ReLU layers to make linear
            (default 2).
        repair_epochs: With steer="linearize", the epochs of the fine-tuning after
            the last round, during which chosen on-units keep weights >= 0 and a
            bias >= 1e-4: they are then on for every input (their inputs are ReLU
            outputs), so each chosen layer is exactly linear and
            `collapse_layers` folds it. Default: `epochs`. Collapse right after:
            training the returned model further can make the layers nonlinear again.
        verbose: 0 silent, 1 one line per round, 2 also fit's progress bars.

    Returns:
        A new wrapped model (`FixedMask` schedule), compiled like `model`. With
        steer="linearize", `model.egp_linearized` lists the layers made linear.
    """
    target = _validation.check_fraction("target_sparsity", target_sparsity)
    rounds = _validation.check_int("rounds", rounds, minimum=1)
    epochs = _validation.check_int("epochs", epochs, minimum=0)
    temperature, linearize, repair_epochs = _check_steering(steer, temperature, linearize,
                                                            repair_epochs, epochs)
    config = _training.check_compiled(model, "egp_prune")
    if entropy_data is None:
        entropy_data = samples(model, data, limit=1024)
    entropy_data = samples(model, entropy_data, argument="entropy_data")
    run = _EGPRun(model, config, filters, steer, linearize)
    history = []
    for round_index in range(1, rounds + 1):
        start = time.perf_counter()
        goal = 1.0 - (1.0 - target) ** (round_index / rounds)
        entropy = run.prune_round(goal, entropy_data, temperature, rounds - round_index + 1)
        if epochs:
            _training.fit(run.pruned, data, epochs=epochs, batch_size=batch_size,
                          verbose=1 if verbose >= 2 else 0)
        history.append(run.record(round_index, entropy, data if validation_data is None
                                  else validation_data, start))
        if verbose:
            name, value = _training.headline(history[-1]["metrics"])
            zero = sum(1 for v in layer_entropy(run.pruned, entropy_data).values() if v == 0)
            print(f"EGP round {round_index}/{rounds}: sparsity {history[-1]['sparsity']:.1%}, "
                  f"{name} {value:.4f}, zero-entropy layers {zero}")
    pruned = run.pruned
    if run.linearizer is not None:
        history.append(_repair(pruned, run.linearizer, run.masks, run.index, run.entries,
                               config, data, data if validation_data is None
                               else validation_data, entropy_data, repair_epochs, batch_size,
                               verbose))
        pruned.egp_linearized = list(run.linearizer.roles)
    pruned.egp_history = history
    return pruned


def _check_steering(steer, temperature, linearize, repair_epochs, epochs):
    """(temperature, linearize, repair_epochs) with their defaults, or a clear error."""
    if steer not in ("all", "branches", "linearize"):
        raise ValueError(
            f"Argument `steer` must be 'all', 'branches' or 'linearize'. Received: {steer!r}."
        )
    if steer == "linearize" and temperature is not None:
        raise ValueError(
            "Argument `temperature` does not apply to steer='linearize' (entropy picks the "
            "layers to make linear; the rest of the budget is spread uniformly). Received: "
            f"temperature={temperature!r}."
        )
    if steer != "linearize" and (linearize is not None or repair_epochs is not None):
        raise ValueError(
            "Arguments `linearize` and `repair_epochs` apply to steer='linearize' only. "
            f"Received: steer={steer!r}, linearize={linearize!r}, "
            f"repair_epochs={repair_epochs!r}."
        )
    if steer == "linearize":
        linearize = _validation.check_int("linearize", 2 if linearize is None else linearize,
                                          minimum=1)
        repair_epochs = _validation.check_int(
            "repair_epochs", epochs if repair_epochs is None else repair_epochs, minimum=0)
    if temperature is None:
        temperature = 0.25 if steer == "all" else 0.2
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"Argument `temperature` must be a number > 0. Received: {temperature!r}.")
    return temperature, linearize, repair_epochs


class _EGPRun:
    """The wrapped model of one `egp_prune` call, its masks grouped by layer, and the
    steering state (residual branches, ReLU layers, the linearizer)."""

    def __init__(self, model, config, filters, steer, linearize):
        self.steer = steer
        self.pruned = prune_low_magnitude(model, pruning_schedule=FixedMask(), filters=filters)
        _training.compile_from(self.pruned, config)
        self.entries = entries = masked_weights(self.pruned)
        self.layer_names = list(dict.fromkeys(e.layer_name for e in entries))
        self.members = {name: [i for i, e in enumerate(entries) if e.layer_name == name]
                        for name in self.layer_names}
        self.sizes = np.array([sum(entries[i].size for i in self.members[n])
                               for n in self.layer_names], float)
        self.masks = [np.ones(e.weight.shape, bool) for e in entries]
        self.branches = _residual_branches(model)
        self.relus = output_relus(model)
        self.index = {name: self.members[name][0] for name in self.layer_names}
        self.linearizer = (Linearizer(model, entries, linearize) if steer == "linearize"
                           else None)
        # A branch layer may be emptied (the branch becomes constant); others keep a weight.
        self.floor = np.array([0 if name in self.branches else 1 for name in self.layer_names])

    def kept(self):
        return np.array([sum(int(self.masks[i].sum()) for i in self.members[n])
                         for n in self.layer_names], float)

    def prune_round(self, goal, entropy_data, temperature, rounds_left):
        """Splits the round's budget by entropy and prunes; returns the entropies."""
        states = relu_states(self.pruned, entropy_data)
        entropy = {name: float(np.mean(binary_entropy(p))) for name, p in states.items()}
        # A Dense or conv followed by a separate ReLU layer is steered by that layer's.
        entropy.update({name: entropy[key] for name, key in self.relus.items()
                        if key in entropy})
        if self.linearizer is not None:
            self.linearizer.choose(states, rounds_left)
            self.linearizer.restrict(self.masks, self.index)
        kept = self.kept()
        budget = goal * self.sizes.sum() - (self.sizes.sum() - kept.sum())
        weights = self._budget_weights(entropy, kept, temperature)
        take = _allocate(max(budget, 0.0), kept - self.floor, weights)
        for name, count, layer_kept in zip(self.layer_names, take, kept):
            self._prune_layer(name, int(layer_kept) - int(count))
        set_masks(self.pruned, {e.key: m for e, m in zip(self.entries, self.masks)})
        return entropy

    def _budget_weights(self, entropy, kept, temperature):
        """Each layer's share of the round's budget."""
        if self.linearizer is not None:
            return kept  # entropy chose the layers to linearize; the rest is uniform
        h = _steering_entropy(self.layer_names, entropy, self.steer, self.branches)
        # A zero-entropy layer is already removable: pruning it further can only kill
        # it. Shifted by the lowest entropy so that a low temperature cannot underflow.
        lowest = h[h > 0].min() if (h > 0).any() else 0.0
        weights = np.where(h > 0, kept * np.exp(-(h - lowest) / temperature), 0.0)
        return weights if weights.any() else kept

    def _prune_layer(self, name, keep):
        """Keeps the `keep` largest remaining weights of one layer (one ranking across
        its weights: a kernel, or an RNN's kernels)."""
        indices = self.members[name]
        scores = [kept_scores(np.abs(ops.convert_to_numpy(self.entries[i].weight)),
                              self.masks[i]) for i in indices]
        flat = keep_top(np.concatenate([s.ravel() for s in scores]), keep)
        offset = 0
        for i, s in zip(indices, scores):
            self.masks[i] &= flat[offset:offset + s.size].reshape(s.shape)
            offset += s.size

    def record(self, round_index, entropy, evaluation, start):
        layer_sparsity = {
            n: 1.0 - sum(int(self.masks[i].sum()) for i in self.members[n]) / size
            for n, size in zip(self.layer_names, self.sizes)}
        return {"round": round_index, "sparsity": sparsity_of(self.masks),
                "entropy": entropy, "layer_sparsity": layer_sparsity,
                "metrics": _training.evaluate(self.pruned, evaluation),
                "seconds": time.perf_counter() - start}


def _repair(pruned, linearizer, masks, index, entries, config, data, evaluation,
            entropy_data, epochs, batch_size, verbose):
    """The last step of steer="linearize": fine-tunes with chosen units held on."""
    start = time.perf_counter()
    linearizer.restrict(masks, index)  # fine-tuning may have turned kept weights negative
    set_masks(pruned, {e.key: m for e, m in zip(entries, masks)})
    with linearizer.constrained():
        _training.compile_from(pruned, config)
        if epochs:
            _training.fit(pruned, data, epochs=epochs, batch_size=batch_size,
                          verbose=1 if verbose >= 2 else 0)
    _training.compile_from(pruned, config)  # a train step traced without the constraints
    metrics = _training.evaluate(pruned, evaluation)
    entropy = layer_entropy(pruned, entropy_data)
    linear = {name: entropy.get(linearizer.state_keys[name]) for name in linearizer.roles}
    if verbose:
        name, value = _training.headline(metrics)
        print(f"EGP repair: {name} {value:.4f}; linear layers (entropy): "
              + ", ".join(f"{n} ({h:.3f})" for n, h in linear.items()))
    sparsity = sparsity_of(masks)
    return {"round": "repair", "sparsity": sparsity, "entropy": entropy,
            "linearized": linear, "metrics": metrics, "seconds": time.perf_counter() - start}

"""Lottery tickets, pruning at init, sensitivity/allocation, entropy, EGP, collapse.

Tiny models on digits; each test asserts the behaviour the method promises.
"""

import keras
import numpy as np
import pytest

import keras_prune
from keras_prune import entropy, lottery, sensitivity, structured
from keras_prune.callbacks import PruneCallback
from keras_prune.entropy.linearize import BIAS_FLOOR
from keras_prune.masks import masked_weights
from keras_prune.structured import collapse_layers


@pytest.fixture
def flat(digits):
    x, y = digits
    return x.reshape(len(x), -1), y


def mlp(widths=(32, 16), inputs=64, classes=10, compile=True):
    layers = [keras.Input((inputs,))]
    layers += [keras.layers.Dense(w, activation="relu", name=f"h{i}") for i, w in enumerate(widths)]
    layers.append(keras.layers.Dense(classes, name="out"))
    model = keras.Sequential(layers)
    if compile:
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    return model


def density(masks):
    return sum(int(m.sum()) for m in masks.values()) / sum(m.size for m in masks.values())


# Lottery tickets ------------------------------------------------------------------------


def test_ticket_masks_are_the_intersection_of_rounds_and_rewind_restores_weights(flat, tmp_path):
    x, y = flat
    model = mlp()
    initial = [w.copy() for w in model.get_weights()]
    ticket = lottery.find_ticket(model, (x, y), 0.6, epochs=1, prune_rate=0.25, verbose=0,
                                 directory=tmp_path)
    assert [r.sparsity for r in ticket.rounds][0] == 0.0
    assert abs(ticket.sparsity - 0.6) < 1e-3 and len(ticket.rounds) == 4  # .25 .44 .6
    # Every round's masks contain the next round's (the saved folder holds the last).
    saved = np.load(tmp_path / "lottery.npz")
    assert all(np.array_equal(saved[f"mask_{i}"], m) for i, m in enumerate(ticket.masks.values()))
    # Rewound to initialization: surviving weights equal the initial ones, pruned are zero.
    final = keras_prune.strip_pruning(ticket.model)
    for layer in ("h0", "h1", "out"):
        kernel = keras.ops.convert_to_numpy(final.get_layer(layer).kernel)
        mask = ticket.masks[f"{layer}/kernel"]
        index = [l.name for l in model.layers].index(layer)
        np.testing.assert_array_equal(kernel, np.where(mask, initial[2 * index], 0))
    # The input model was not touched.
    assert all(np.array_equal(a, b) for a, b in zip(initial, model.get_weights()))


def test_ticket_rounds_shrink_monotonically_and_masks_stay_fixed_in_fit(flat):
    x, y = flat
    model = mlp()
    ticket = lottery.find_ticket(model, (x, y), 0.5, epochs=1, verbose=0, ranking="layer")
    sparsities = [r.sparsity for r in ticket.rounds]
    assert sparsities == sorted(sparsities) and abs(sparsities[-1] - 0.5) < 0.01
    for key, mask in ticket.masks.items():  # per-layer ranking: each layer at the target
        assert abs(1 - mask.mean() - 0.5) < 0.01, key
    before = keras_prune.get_masks(ticket.model)
    ticket.model.fit(x, y, epochs=1, verbose=0, callbacks=[PruneCallback()])
    after = keras_prune.get_masks(ticket.model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    control = ticket.reinitialized(seed=3)
    assert all(np.array_equal(keras_prune.get_masks(control)[k], before[k]) for k in before)
    kernel = keras.ops.convert_to_numpy(keras_prune.strip_pruning(control).get_layer("h0").kernel)
    ticket_kernel = keras.ops.convert_to_numpy(
        keras_prune.strip_pruning(ticket.model).get_layer("h0").kernel)
    assert not np.allclose(kernel, ticket_kernel)  # fresh weights, same zeros
    np.testing.assert_array_equal(kernel == 0, ~before["h0/kernel"] | (kernel == 0))


def test_ticket_rewinds_to_a_step_and_resumes_with_a_higher_target(flat, tmp_path):
    x, y = flat
    model = mlp()
    first = lottery.find_ticket(model, (x, y), 0.36, epochs=1, rewind_step=3, verbose=0,
                                directory=tmp_path)
    # The state file alone resumes: lottery.json is a readable copy, written after it (a
    # run killed between the two writes leaves a stale or missing copy).
    (tmp_path / "lottery.json").unlink()
    resumed = lottery.find_ticket(model, (x, y), 0.5, epochs=1, rewind_step=3, verbose=0,
                                  directory=tmp_path)
    assert resumed.rounds[:3] == first.rounds  # loaded (same metrics and seconds), not rerun
    assert len(resumed.rounds) > len(first.rounds)
    assert all((resumed.masks[k] <= first.masks[k]).all() for k in first.masks)
    with pytest.raises(ValueError, match="other settings"):
        lottery.find_ticket(model, (x, y), 0.5, epochs=2, rewind_step=3, verbose=0,
                            directory=tmp_path)
    with pytest.warns(UserWarning, match="past target_sparsity=0.36"):
        lower = lottery.find_ticket(model, (x, y), 0.36, epochs=1, rewind_step=3, verbose=0,
                                    directory=tmp_path)
    assert lower.rounds == resumed.rounds  # the folder's ticket, said so
    with pytest.raises(ValueError, match="rewind_step"):
        lottery.find_ticket(model, (x[:64], y[:64]), 0.3, epochs=1, rewind_step=10_000, verbose=0)


class TutorialClassifier(keras.Model):  # the way TensorFlow's tutorials write models
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="relu")
        self.head = keras.layers.Dense(10)

    def call(self, x):
        return self.head(self.hidden(x))


def _with_lambda():
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Lambda(lambda t: t * 2)(inputs))
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))


@pytest.mark.parametrize("build", [TutorialClassifier, _with_lambda], ids=["subclassed", "lambda"])
def test_ticket_control_of_a_subclassed_or_lambda_model_keeps_the_masks(flat, build):
    x, y = flat
    model = build()
    model(x[:2])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ticket = lottery.find_ticket(model, (x, y), 0.36, epochs=1, verbose=0)
    control = ticket.reinitialized(seed=5)
    masks = list(keras_prune.get_masks(control).values())
    assert len(masks) == 2
    assert all(np.array_equal(a, b) for a, b in zip(masks, ticket.masks.values()))
    fresh = keras.ops.convert_to_numpy(masked_weights(control)[0].weight)
    rewound = keras.ops.convert_to_numpy(masked_weights(ticket.model)[0].weight)
    assert not np.allclose(fresh, rewound)
    control.fit(x, y, epochs=1, verbose=0, callbacks=[PruneCallback()])
    assert all(np.array_equal(a, b) for a, b in
               zip(keras_prune.get_masks(control).values(), masks))


def test_find_ticket_needs_a_compiled_model(flat):
    with pytest.raises(ValueError, match="must be compiled"):
        lottery.find_ticket(mlp(compile=False), flat, 0.5)
    with pytest.raises(ValueError, match="retrain"):
        lottery.find_ticket(mlp(), flat, 0.5, retrain="bogus")


# Pruning at initialization ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["snip", "synflow", "magnitude", "random"])
def test_prune_at_init_reaches_the_sparsity_and_keeps_masks_fixed(flat, method):
    x, y = flat
    model = mlp()
    before = [w.copy() for w in model.get_weights()]
    pruned = keras_prune.prune_at_init(model, method, 0.8, data=(x[:128], y[:128]),
                                       iterations=10, seed=0)
    masks = keras_prune.get_masks(pruned)
    assert abs(1 - density(masks) - 0.8) < 1e-3
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x, y, epochs=1, verbose=0, callbacks=[PruneCallback()])
    after = keras_prune.get_masks(pruned)
    assert all(np.array_equal(masks[k], after[k]) for k in masks)
    stripped = keras_prune.strip_pruning(pruned)
    kernel = keras.ops.convert_to_numpy(stripped.get_layer("h0").kernel)
    assert np.all(kernel[~masks["h0/kernel"]] == 0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_synflow_needs_no_data_and_avoids_layer_collapse():
    model = mlp(widths=(64, 64, 64))  # the 10-unit output layer is the smallest
    pruned = keras_prune.prune_at_init(model, "synflow", 0.98, iterations=50)
    masks = keras_prune.get_masks(pruned)
    # Global magnitude at 98% may empty a layer; SynFlow's conservation keeps every layer alive.
    assert all(mask.sum() > 0 for mask in masks.values())
    assert abs(1 - density(masks) - 0.98) < 1e-3


def test_snip_and_synflow_on_a_subclassed_model_match_the_same_sequential_model(flat):
    subclassed = TutorialClassifier()
    subclassed(np.zeros((2, 64), "float32"))
    sequential = mlp(widths=(32,))
    sequential.set_weights(subclassed.get_weights())
    x, y = flat
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for method in ("synflow", "snip"):
        masks = [list(keras_prune.get_masks(keras_prune.prune_at_init(
            m, method, 0.9, data=(x[:64], y[:64]), loss=loss, iterations=20)).values())
            for m in (subclassed, sequential)]
        assert len(masks[0]) == 2 and all(np.array_equal(a, b) for a, b in zip(*masks)), method


def test_ranking_kept_scores_never_revives_a_pruned_weight():
    from keras_prune.masking.scores import global_masks, kept_scores

    # Weights 0-3 were pruned; kept weights 4-5 score exactly 0 (e.g. a dead unit).
    score = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 2.0, 1.0, 4.0])
    mask = np.array([False] * 4 + [True] * 6)
    naive = global_masks([score * mask], 0.5)[0]  # ties at 0: keeps pruned weight 0
    assert (naive & mask).sum() == 4
    new = global_masks([kept_scores(score, mask)], 0.5)[0]
    assert not (new & ~mask).any() and new.sum() == 5
    assert new[[4, 6, 7, 8, 9]].all()


def test_random_init_masks_follow_given_layer_densities_and_snip_needs_data():
    model = mlp()
    pruned = keras_prune.prune_at_init(model, "random", 0.5, layer_sparsity={"h0": 0.9}, seed=1)
    masks = keras_prune.get_masks(pruned)
    assert abs(1 - masks["h0/kernel"].mean() - 0.9) < 1e-3
    assert abs(1 - masks["h1/kernel"].mean() - 0.5) < 1e-2
    with pytest.raises(ValueError, match="labelled samples"):
        keras_prune.prune_at_init(model, "snip", 0.5)
    with pytest.raises(ValueError, match="method"):
        keras_prune.prune_at_init(model, "grasp", 0.5)


# Sensitivity and allocation -----------------------------------------------------------------


def test_scan_restores_weights_and_finds_the_fragile_layer(flat):
    x, y = flat
    model = mlp()
    model.fit(x, y, epochs=5, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    result = sensitivity.scan(model, (x, y), sparsities=(0.5, 0.95))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert set(result.results) == {"h0", "h1", "out"} and result.metric == "accuracy"
    # Pruning 95% of a layer alone hurts more than 50%, for every layer.
    assert all(values[1] <= values[0] + 0.02 for values in result.results.values())
    assert "h0" in str(result) and result.sizes["h0"] == 64 * 32


@pytest.mark.parametrize("method", ["uniform", "global", "erk", "sensitivity"])
def test_allocation_sums_to_the_target(flat, method):
    x, y = flat
    model = mlp()
    model.fit(x, y, epochs=2, verbose=0)
    result = sensitivity.scan(model, (x, y)) if method == "sensitivity" else None
    alloc = sensitivity.allocate(model, 0.8, method, scan=result)
    sizes = {"h0": 64 * 32, "h1": 32 * 16, "out": 16 * 10}
    total = sum(alloc[k] * sizes[k] for k in sizes) / sum(sizes.values())
    assert abs(total - 0.8) < 1e-3
    if method in ("erk", "global"):
        assert alloc["out"] < alloc["h0"]  # the small layer keeps more
    pruned = keras_prune.prune_low_magnitude(
        model, keras_prune.schedules.ConstantSparsity(0.5, 0, frequency=1), layer_sparsity=alloc)
    pruned.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    pruned.fit(x[:64], y[:64], epochs=1, verbose=0, callbacks=[PruneCallback()])
    masks = keras_prune.get_masks(pruned)
    for name in sizes:
        assert abs(1 - masks[f"{name}/kernel"].mean() - alloc[name]) < 0.01


def test_layer_sparsity_errors():
    model = mlp()
    schedule = keras_prune.schedules.ConstantSparsity(0.5, 0)
    with pytest.raises(ValueError, match="not pruned"):
        keras_prune.prune_low_magnitude(model, schedule, layer_sparsity={"nope": 0.5})
    with pytest.raises(ValueError, match="cannot be combined"):
        keras_prune.prune_low_magnitude(model, schedule, layer_sparsity={"h0": 0.5},
                                        global_pruning=True)
    with pytest.raises(ValueError, match="cannot be reached"):
        sensitivity.allocate(model, 0.9, "sensitivity", scan=sensitivity.SensitivityScan(
            "accuracy", True, 1.0, [0.5], {"h0": [1.0], "h1": [1.0], "out": [1.0]}, {}))


# Entropy, EGP and collapse ---------------------------------------------------------------


def test_entropy_is_zero_for_a_constant_relu_and_one_for_a_fair_one():
    inputs = keras.Input((1,))
    on = keras.layers.Dense(4, activation="relu", name="always_on")(inputs)
    fair = keras.layers.Dense(4, activation="relu", name="fair")(inputs)
    model = keras.Model(inputs, [on, fair])
    model.get_layer("always_on").set_weights([np.zeros((1, 4)), np.ones(4)])
    model.get_layer("fair").set_weights([np.ones((1, 4)), np.zeros(4)])
    x = np.array([[-1.0], [1.0]] * 50, "float32")
    values = entropy.layer_entropy(model, x)
    assert values["always_on"] == 0.0
    assert values["fair"] == pytest.approx(1.0)


def test_collapse_merges_an_always_on_layer_exactly():
    keras.utils.set_random_seed(0)
    model = mlp(widths=(16, 16, 16), inputs=6, compile=False)
    layer = model.get_layer("h1")
    layer.set_weights([keras.ops.convert_to_numpy(layer.kernel) * 0.01, np.full(16, 5.0)])
    x = np.random.default_rng(0).random((100, 6)).astype("float32")
    assert entropy.layer_entropy(model, x)["h1"] == 0.0
    new, report = collapse_layers(model, x)
    (removed, into), = report.merged  # h2 may be always on too: then both fold into out
    assert removed[0] == "h1" and into in ("h2", "out")
    assert report.depth_before == 4 and report.depth_after == 4 - len(removed)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-5)
    assert report.max_difference < 1e-5


def test_collapse_folds_through_a_separate_relu_layer_and_linearize_finds_it(flat):
    x, y = flat
    L = keras.layers
    inputs = keras.Input((64,))
    h = L.Dense(32, activation="relu", name="h0")(inputs)
    h = L.Activation("relu", name="act1")(L.Dense(32, name="h1")(h))
    h = L.ReLU(name="relu2")(L.Dense(16, name="h2")(h))
    model = keras.Model(inputs, L.Dense(10, name="out")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert structured.linearizable_layers(model) == ["h1", "h2"]
    layer = model.get_layer("h2")  # every unit always on: relu2 passes h2 through
    layer.set_weights([keras.ops.convert_to_numpy(layer.kernel) * 1e-3, np.full(16, 5.0)])
    small, report = collapse_layers(model, x)
    assert report.merged == [(["h2", "relu2"], "out")] and report.layers_removed == 1
    assert "relu2" not in [l.name for l in small.layers]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-5, atol=1e-5)
    pruned = entropy.egp_prune(model, (x, y), 0.5, rounds=1, epochs=1, steer="linearize",
                               linearize=2, verbose=0)
    linear = pruned.egp_history[-1]["linearized"]
    assert set(linear) == {"h1", "h2"} and all(h == 0.0 for h in linear.values())
    _, report = collapse_layers(keras_prune.strip_pruning(pruned), x)
    assert report.layers_removed == 2


def test_collapse_turns_a_zero_residual_branch_into_the_identity():
    inputs = keras.Input((6, 6, 3))
    stem = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    branch = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="dead")(stem)
    branch = keras.layers.Conv2D(4, 1, use_bias=False, name="proj")(branch)
    out = keras.layers.GlobalAveragePooling2D()(keras.layers.Add(name="add")([stem, branch]))
    model = keras.Model(inputs, keras.layers.Dense(2)(out))
    dead = model.get_layer("dead")
    dead.set_weights([np.zeros(dead.kernel.shape), -np.ones(4)])
    x = np.random.default_rng(1).random((8, 6, 6, 3)).astype("float32")
    new, report = collapse_layers(model, x)
    assert report.identity_blocks == ["add"] and report.layers_removed == 2
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-5)


def test_collapse_turns_a_constant_residual_branch_into_an_offset(tmp_path):
    inputs = keras.Input((6, 6, 3))
    stem = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inputs)
    branch = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="pruned")(stem)
    branch = keras.layers.Conv2D(4, 1, name="proj")(branch)
    added = keras.layers.Add(name="add")([stem, branch])
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(added)))
    pruned = model.get_layer("pruned")  # kernel fully pruned: relu(bias) everywhere
    pruned.set_weights([np.zeros(pruned.kernel.shape), np.array([0.5, -1.0, 2.0, 0.0, 1.5])])
    x = np.random.default_rng(1).random((16, 6, 6, 3)).astype("float32")
    new, report = collapse_layers(model, x)
    assert report.offset_blocks == ["add"] and report.identity_blocks == []
    assert report.layers_removed == 2 and "now an offset" in str(report)
    assert {"pruned", "proj"}.isdisjoint(layer.name for layer in new.layers)
    expected = keras.ops.convert_to_numpy(model(x))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)), expected, atol=1e-5)
    # Exact off the data too: the branch is constant for every input.
    other = np.random.default_rng(2).normal(size=(4, 6, 6, 3)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(other)),
                               keras.ops.convert_to_numpy(model(other)), atol=1e-5)
    path = str(tmp_path / "collapsed.keras")
    new.save(path)  # the offset is a built-in layer: loads without keras_prune
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), expected, atol=1e-5)


def test_collapse_copies_a_model_with_a_lambda_layer():
    inputs = keras.Input((4,))
    stem = keras.layers.Dense(3, activation="relu", name="stem")(inputs)
    halved = keras.layers.Lambda(lambda t: t * 0.5, name="halve")(stem)
    branch = keras.layers.Dense(3, name="branch")(halved)
    model = keras.Model(inputs, keras.layers.Add(name="add")([halved, branch]))
    model.get_layer("branch").set_weights([np.zeros((3, 3)), np.full(3, 0.25)])
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    new, report = collapse_layers(model, x)
    assert report.offset_blocks == ["add"]
    assert new.get_layer("halve") is not model.get_layer("halve")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-6)


def test_collapse_keeps_a_branch_that_varies_by_a_little():
    inputs = keras.Input((4,))
    stem = keras.layers.Dense(3, activation="relu", name="stem")(inputs)
    branch = keras.layers.Dense(3, name="branch")(stem)
    model = keras.Model(inputs, keras.layers.Add(name="add")([stem, branch]))
    model.get_layer("branch").set_weights([np.full((3, 3), 1e-3), np.ones(3)])
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    _, report = collapse_layers(model, x)
    assert report.offset_blocks == [] and report.identity_blocks == []


def test_egp_prunes_low_entropy_layers_harder(flat):
    x, y = flat
    model = mlp(widths=(32, 32))
    model.fit(x, y, epochs=3, verbose=0)
    pruned = entropy.egp_prune(model, (x, y), 0.7, rounds=2, epochs=1, verbose=0)
    history = pruned.egp_history
    assert len(history) == 2 and abs(history[-1]["sparsity"] - 0.7) < 0.01
    first = history[0]
    hidden = sorted(("h0", "h1"), key=lambda n: first["entropy"][n])
    low, high = hidden
    if first["entropy"][low] < first["entropy"][high] - 0.02:
        assert first["layer_sparsity"][low] > first["layer_sparsity"][high]
    assert isinstance(pruned.get_layer("prune_low_magnitude_h0"), keras_prune.PruneLowMagnitude)


def test_egp_steers_a_layer_by_the_separate_relu_layer_after_it(flat):
    x, y = flat
    L = keras.layers
    inputs = keras.Input((64,))
    h = L.ReLU(name="relu0")(L.Dense(32, name="h0")(inputs))
    h = L.Dense(32, activation="relu", name="h1")(h)
    model = keras.Model(inputs, L.Dense(10, name="out")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    pruned = entropy.egp_prune(model, (x, y), 0.5, rounds=1, epochs=0, temperature=1e-3,
                               verbose=0)
    first = pruned.egp_history[0]
    assert first["entropy"]["h0"] == first["entropy"]["relu0"]
    low, high = sorted(("h0", "h1"), key=lambda n: first["entropy"][n])
    if first["entropy"][low] < first["entropy"][high] - 0.02:
        assert first["layer_sparsity"][low] > first["layer_sparsity"][high] + 0.1


def test_egp_steering_branches_leaves_the_main_path_at_the_uniform_rate(digits):
    x, y = digits
    inputs = keras.Input((8, 8, 1))
    stem = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inputs)
    branch = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="inner")(stem)
    branch = keras.layers.Conv2D(8, 1, name="proj")(branch)
    out = keras.layers.GlobalAveragePooling2D()(keras.layers.Add(name="add")([stem, branch]))
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(out))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    # A very low temperature puts nearly the whole budget on the lowest-entropy layer
    # it may steer; only "inner" (inside the residual branch) may be steered here.
    pruned = entropy.egp_prune(model, (x, y), 0.5, rounds=1, epochs=0, temperature=1e-3,
                               steer="branches", verbose=0)
    sparsity = pruned.egp_history[0]["layer_sparsity"]
    assert sparsity["stem"] == pytest.approx(sparsity["head"], abs=0.02)
    assert sparsity["inner"] > sparsity["stem"] + 0.1
    # "proj" has no ReLU: it takes its branch's entropy and is pruned with "inner".
    assert sparsity["proj"] > sparsity["stem"] + 0.1
    with pytest.raises(ValueError, match="steer"):
        entropy.egp_prune(model, (x, y), 0.5, steer="main", verbose=0)

    # At 85% the budget (673 of 792 weights) exceeds the branch (640): the branch is
    # emptied, the main path keeps at least a weight per layer, and collapse drops it.
    pruned = entropy.egp_prune(model, (x, y), 0.85, rounds=1, epochs=0, temperature=1e-3,
                               steer="branches", verbose=0)
    sparsity = pruned.egp_history[0]["layer_sparsity"]
    assert sparsity["inner"] == sparsity["proj"] == 1.0
    assert max(sparsity["stem"], sparsity["head"]) < 1.0
    assert pruned.egp_history[0]["sparsity"] == pytest.approx(0.85, abs=1e-3)
    stripped = keras_prune.strip_pruning(pruned)
    small, report = collapse_layers(stripped, x[:256])
    assert report.offset_blocks + report.identity_blocks == ["add"]
    assert (report.depth_before, report.depth_after) == (4, 2)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(x[:64])),
                               keras.ops.convert_to_numpy(stripped(x[:64])), atol=1e-5)


def test_egp_linearize_makes_the_chosen_layers_linear_for_any_nonnegative_input(flat):
    x, y = flat
    model = mlp(widths=(32, 32, 16))
    model.fit(x, y, epochs=2, verbose=0)
    # h0 reads the data (which may be negative in general): only h1 and h2 qualify.
    assert structured.linearizable_layers(model) == ["h1", "h2"]
    pruned = entropy.egp_prune(model, (x, y), 0.6, rounds=2, epochs=1, steer="linearize",
                               linearize=1, verbose=0)
    assert pruned.egp_history[-1]["round"] == "repair"
    assert pruned.egp_history[-1]["sparsity"] == pytest.approx(0.6, abs=0.01)
    (name,) = pruned.egp_linearized
    assert name in ("h1", "h2")
    layer = pruned.get_layer(f"prune_low_magnitude_{name}").layer
    assert layer.kernel.constraint is None and layer.bias.constraint is None  # restored
    stripped = keras_prune.strip_pruning(pruned)
    kernel = keras.ops.convert_to_numpy(stripped.get_layer(name).kernel)
    bias = keras.ops.convert_to_numpy(stripped.get_layer(name).bias)
    on = np.any(kernel != 0, axis=0) | (bias >= BIAS_FLOOR)
    assert on.any() and (kernel >= 0).all()  # kept units: weights >= 0, bias >= floor
    assert (bias[on] >= BIAS_FLOOR).all() and not kernel[:, ~on].any()
    # Linear on inputs it never saw: every unit keeps its state on random inputs too.
    noise = np.random.default_rng(0).uniform(0, 2, (256, 64)).astype("float32")
    for data in (x, noise):
        assert entropy.layer_entropy(stripped, data)[name] == 0.0
    small, report = collapse_layers(stripped, x)
    assert report.layers_removed == 1 and any(name in removed for removed, _ in report.merged)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(noise)),
                               keras.ops.convert_to_numpy(stripped(noise)), rtol=1e-4, atol=1e-4)


def test_egp_linearize_folds_a_conv_into_the_next_1x1_conv(digits):
    x, y = digits
    L = keras.layers
    inputs = keras.Input((8, 8, 1))
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="c0")(inputs)
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(h)
    h = L.Conv2D(8, 1, activation="relu", name="c2")(h)
    model = keras.Model(inputs, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(h)))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert structured.linearizable_layers(model) == ["c1"]
    pruned = entropy.egp_prune(model, (x, y), 0.5, rounds=1, epochs=1, steer="linearize",
                               linearize=1, verbose=0)
    stripped = keras_prune.strip_pruning(pruned)
    small, report = collapse_layers(stripped, x)
    assert report.merged == [(["c1"], "c2")] and report.layers_removed == 1
    noise = np.random.default_rng(1).uniform(-1, 2, (64, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(small(noise)),
                               keras.ops.convert_to_numpy(stripped(noise)), rtol=1e-4, atol=1e-4)


def test_entropy_reads_a_dataset_as_it_reads_arrays(flat):
    import tensorflow as tf

    x, y = flat
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    model = mlp()
    assert entropy.layer_entropy(model, dataset) == entropy.layer_entropy(model, x)
    with pytest.raises(ValueError, match="`entropy_data` holds no samples"):
        entropy.egp_prune(mlp(), dataset, 0.5, entropy_data=x[:0], verbose=0)


def test_egp_linearize_rejects_what_it_cannot_do(flat):
    x, y = flat
    with pytest.raises(ValueError, match="linearize.*exceeds.*Candidates: \\['h1'\\]"):
        entropy.egp_prune(mlp(widths=(16, 16)), (x, y), 0.5, steer="linearize", linearize=2,
                          verbose=0)
    with pytest.raises(ValueError, match="steer='linearize' only"):
        entropy.egp_prune(mlp(), (x, y), 0.5, linearize=1, verbose=0)
    with pytest.raises(ValueError, match="linearize"):
        entropy.egp_prune(mlp(), (x, y), 0.5, steer="linearize", linearize=0, verbose=0)
    with pytest.raises(ValueError, match="temperature"):
        entropy.egp_prune(mlp(), (x, y), 0.5, steer="linearize", temperature=0.1, verbose=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="converts in-process; other backends convert in a TF subprocess")
def test_collapse_reports_litert_latency_of_both_models():
    model = mlp(widths=(64, 64), inputs=6, compile=False)
    layer = model.get_layer("h1")
    layer.set_weights([keras.ops.convert_to_numpy(layer.kernel) * 0.01, np.full(64, 5.0)])
    x = np.random.default_rng(0).random((50, 6)).astype("float32")
    _, report = collapse_layers(model, x, latency=True)
    assert report.layers_removed >= 1
    assert report.latency_us_before > 0 and report.latency_us_after > 0
    assert "LiteRT latency" in str(report)

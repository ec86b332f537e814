"""keras.distribution on JAX (2 virtual CPU devices): DataParallel and ModelParallel give
the masks of one device, and a mask is sharded like the kernel it covers."""

import json
import os
import subprocess
import sys

_SCRIPT = r"""
import json
import keras
import numpy as np
import keras_prune
from keras_prune.schedules import ConstantSparsity

def train(distribution):
    keras.utils.set_random_seed(0)
    keras.distribution.set_distribution(distribution)
    model = keras.Sequential([keras.Input((16,)),
                              keras.layers.Dense(32, activation="relu", name="hidden"),
                              keras.layers.Dense(4, name="out")])
    pruned = keras_prune.prune_low_magnitude(model, ConstantSparsity(0.7, 0, frequency=2))
    pruned.compile(keras.optimizers.SGD(0.1),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 16)).astype("float32")
    y = rng.integers(0, 4, 64)
    pruned.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    wrapper = keras_prune.layers.collect_wrappers(pruned)[0]
    specs = [str(getattr(v.value.sharding, "spec", None)) for v in (wrapper.layer.kernel,
                                                                    wrapper.masks[0])]
    keras.distribution.set_distribution(None)
    masks = {k: v.tolist() for k, v in keras_prune.get_masks(pruned).items()}
    weights = [keras.ops.convert_to_numpy(w).astype("float64").tolist()
               for w in pruned.trainable_weights]
    return {"masks": masks, "weights": weights, "specs": specs}

mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"])
layout_map = keras.distribution.LayoutMap(mesh)
layout_map["hidden/kernel"] = (None, "model")  # names the kernel only, not its mask
print("RESULT " + json.dumps({
    "devices": len(keras.distribution.list_devices()),
    "one": train(None),
    "data_parallel": train(keras.distribution.DataParallel()),
    "model_parallel": train(keras.distribution.ModelParallel(layout_map=layout_map,
                                                             batch_dim_name="batch")),
}))
"""


def test_keras_distribution_gives_the_masks_of_one_device():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=env, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stderr[-3000:]
    result = json.loads(lines[0][len("RESULT "):])
    assert result["devices"] == 2
    one = result["one"]
    for name in ("data_parallel", "model_parallel"):
        assert result[name]["masks"] == one["masks"], name
        for a, b in zip(result[name]["weights"], one["weights"]):
            assert max(abs(x - y) for x, y in zip(_flat(a), _flat(b))) < 1e-5, name
    # The LayoutMap shards the kernel over "model"; its mask follows without an entry.
    kernel, mask = result["model_parallel"]["specs"]
    assert "model" in kernel and mask == kernel


def _flat(values):
    if isinstance(values, list):
        return [x for v in values for x in _flat(v)]
    return [values]

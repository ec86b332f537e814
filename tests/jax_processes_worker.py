"""A `keras.distribution` run on JAX, started by tests/test_distribution_jax.py:
python jax_processes_worker.py ID COUNT HOST:PORT.

With COUNT 1 (one process) it trains on one device (the reference) and, when JAX sees
several devices (XLA_FLAGS=--xla_force_host_platform_device_count=2), with DataParallel
and ModelParallel over them, and reads what XLA compiles to rank a sharded kernel.
With COUNT 2 the processes join with `keras.distribution.initialize` and train with
DataParallel (each process feeds its half of every global batch) and with a
ModelParallel LayoutMap that shards the hidden kernel over the two processes (each feeds
the whole batch). Prints one line, `RESULT {json}`: masks, stripped weights, layouts.
"""

import json
import re
import sys

import keras
import numpy as np

process_id, processes, address = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if processes > 1:
    keras.distribution.initialize(job_addresses=address, num_processes=processes,
                                  process_id=process_id)

import keras_prune  # noqa: E402
from keras_prune._arrays import to_numpy  # noqa: E402
from keras_prune.schedules import ConstantSparsity  # noqa: E402

GLOBAL_BATCH = 16


def local_rows(x, shards):
    """This process's rows of every global batch, split over `shards` processes."""
    share = GLOBAL_BATCH // shards
    blocks = x.reshape(-1, shards, share, *x.shape[1:])
    return blocks[:, process_id % shards].reshape(-1, *x.shape[1:])


def train(distribution, shards=1):
    keras.utils.set_random_seed(0)
    if distribution is not None:
        distribution.auto_shard_dataset = False  # each process passes its own rows
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
    pruned.fit(local_rows(x, shards), local_rows(y, shards), batch_size=GLOBAL_BATCH // shards,
               epochs=2, verbose=0, shuffle=False,
               callbacks=[keras_prune.callbacks.PruneCallback()])
    wrapper = keras_prune.layers.collect_wrappers(pruned)[0]
    stripped = keras_prune.strip_pruning(pruned)
    result = {
        "masks": {k: v.tolist() for k, v in keras_prune.get_masks(pruned).items()},
        "sparsity": keras_prune.sparsity_report(pruned).sparsity,
        "weights": [to_numpy(w).astype("float64").tolist() for w in stripped.weights],
        "specs": [str(getattr(v.value.sharding, "spec", None))
                  for v in (wrapper.layer.kernel, wrapper.masks[0], stripped.weights[0])],
    }
    keras.distribution.set_distribution(None)
    return result


def sharded_ranking():
    """What XLA runs to rank a kernel split over two devices: compiled, then read."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from keras_prune.masking import magnitude

    devices = np.array(jax.devices()[:2]).reshape(1, 2)
    sharding = NamedSharding(Mesh(devices, ("batch", "model")), PartitionSpec(None, "model"))
    raw = np.random.default_rng(1).standard_normal((64, 128)).astype("float32")
    raw[0, :8] = 0.5  # ties at the threshold's neighbourhood
    kernel = jax.device_put(raw, sharding)
    k = magnitude.num_kept(raw.size, 0.8)
    mask, threshold = magnitude.magnitude_mask(kernel, 0.8)
    expected = float(magnitude.kth_largest(np.abs(raw).reshape(-1), k))
    text = magnitude._bisection().lower(abs(kernel), k).compile().as_text()
    return {"same_threshold": float(threshold) == expected,
            "same_mask": bool((np.asarray(mask) == (np.abs(raw) >= expected)).all()),
            "mask_spec": str(mask.sharding.spec),
            "collectives": re.findall(r"= (\S+) (all-gather|all-reduce|all-to-all)", text)}


devices = len(keras.distribution.list_devices())
runs = {"devices": devices}
if processes == 1:
    runs["one"] = train(None)
if devices > 1:
    runs["data_parallel"] = train(keras.distribution.DataParallel(), shards=processes)
    mesh = keras.distribution.DeviceMesh((1, devices), ["batch", "model"])
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map["hidden/kernel"] = (None, "model")  # names the kernel only, not its mask
    runs["model_parallel"] = train(
        keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch"))
    if processes == 1:
        runs["ranking"] = sharded_ranking()
print("RESULT " + json.dumps(runs), flush=True)

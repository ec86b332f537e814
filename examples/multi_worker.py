"""Prune while training on several machines: TensorFlow's MultiWorkerMirroredStrategy.

Keras 3's `fit` does not run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585),
so this is a custom training loop that calls `PruneCallback`'s hooks. Start one copy per
worker, each with its own `TF_CONFIG` (the same cluster, its own task index):

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/multi_worker.py --output runs/mw
    # ... and the same with "index": 1 in a second shell.

Without `TF_CONFIG` it trains as a single worker. What it shows:
- Every worker computes the same masks: the weights are identical on every worker after
  each step's all-reduce, so the callback's host-side update (rank, threshold, assign)
  needs no communication of its own.
- Checkpoints (`tf.train.CheckpointManager`) hold the weights, masks, pruning step and
  optimizer state. A restarted cluster resumes from the latest one and reaches the masks of
  an uninterrupted run: the batch of step `s` is a function of `s`, so no data iterator
  state needs saving.
- Only the chief (worker 0) writes to `--output`. The others save into a temporary folder
  that they delete, because every worker must take part in a save. TensorFlow writes a
  checkpoint under a temporary name and renames it; the final masks are written to a
  temporary file and renamed too, so a killed worker leaves no half-written file.
"""

import argparse
import json
import os
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune._io import atomic_path  # noqa: E402
from keras_prune.schedules import PolynomialDecay  # noqa: E402

GLOBAL_BATCH = 64


def build_model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.layers.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


def global_batch(x, y, step):
    """The batch of pruning step `step` (1-based): a fixed shuffle per epoch."""
    per_epoch = len(x) // GLOBAL_BATCH
    epoch, index = divmod(step - 1, per_epoch)
    order = np.random.default_rng(epoch).permutation(len(x))
    rows = order[index * GLOBAL_BATCH:(index + 1) * GLOBAL_BATCH]
    return x[rows], y[rows]


def task():
    """(index, count) of this worker in TF_CONFIG; (0, 1) without one."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    if not config:
        return 0, 1
    return config["task"]["index"], len(config["cluster"]["worker"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="folder for checkpoints and masks")
    parser.add_argument("--steps", type=int, default=40, help="training steps in all")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--stop-after", type=int, default=None,
                        help="kill this process (SIGKILL) after this step: a crash, for tests")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    index, workers = task()
    is_chief = index == 0
    # One CPU device per worker here; on GPUs each worker uses all of its own.
    strategy = (tf.distribute.MultiWorkerMirroredStrategy() if workers > 1
                else tf.distribute.get_strategy())
    replicas = strategy.num_replicas_in_sync

    digits = load_digits()
    x = (digits.data / 16).astype("float32")
    y = digits.target.astype("int32")

    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=args.steps // 2, frequency=5)
    with strategy.scope():
        model = keras_prune.prune_low_magnitude(build_model(args.seed), pruning_schedule=schedule)
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        # compile() attaches the optimizer, so the callback zeroes its momentum for
        # pruned weights; the loop below does the training.
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction=None)

    # Every worker saves (a save is collective); only the chief's copy is kept.
    os.makedirs(args.output, exist_ok=True)
    checkpoint_dir = (os.path.join(args.output, "checkpoints") if is_chief
                      else tempfile.mkdtemp(prefix=f"worker{index}-"))
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    elif not is_chief:
        # A restarted worker resumes from the chief's checkpoint (a shared file system).
        shared = tf.train.latest_checkpoint(os.path.join(args.output, "checkpoints"))
        if shared:
            checkpoint.restore(shared).assert_existing_objects_matched()
    start = int(optimizer.iterations.numpy())

    @tf.function
    def train_step(inputs, labels):
        def replica_step(inputs, labels):
            with tf.GradientTape() as tape:
                logits = model(inputs, training=True)
                loss = tf.nn.compute_average_loss(loss_fn(labels, logits),
                                                  global_batch_size=GLOBAL_BATCH)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        losses = strategy.run(replica_step, args=(inputs, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def distributed_batch(step):
        xb, yb = global_batch(x, y, step)
        share = GLOBAL_BATCH // replicas

        def local(context):
            rows = slice(context.replica_id_in_sync_group * share,
                         (context.replica_id_in_sync_group + 1) * share)
            return xb[rows], yb[rows]

        return strategy.experimental_distribute_values_from_function(local)

    callback = keras_prune.callbacks.PruneCallback()
    callback.set_model(model)
    callback.on_train_begin()
    loss = float("nan")
    for step in range(start + 1, args.steps + 1):
        callback.on_train_batch_begin(batch=-1)  # updates the masks when the schedule says
        inputs = distributed_batch(step)
        loss = train_step(*inputs)
        if step % args.checkpoint_every == 0:
            callback.on_epoch_end(step)  # stores the pruning step in the model
            manager.save(checkpoint_number=step)
        if args.stop_after is not None and step == args.stop_after:
            os.kill(os.getpid(), 9)
    callback.on_train_end()
    print(f"worker {index}: step {callback.step}, sparsity {callback.sparsity:.3f}, "
          f"loss {float(loss):.4f}")

    if is_chief:
        masks = {f"mask_{i}": m for i, m in enumerate(keras_prune.get_masks(model).values())}
        weights = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
        with atomic_path(os.path.join(args.output, "masks.npz")) as temporary:
            np.savez(temporary, **masks, **weights, step=callback.step,
                     sparsity=callback.sparsity)
    else:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

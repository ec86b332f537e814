"""A small language model made smaller: structured pruning + distillation, and one-shot.

A byte-level GPT-2 (`keras_hub.models.GPT2CausalLM`, no preprocessor, bytes as
tokens) is trained briefly on the text of this package's own source files. Then:

1. `structured.prune_structured` removes half the feed-forward units and a quarter
   of the residual width of every block, chosen by their mean output on
   calibration text; the result is still a `GPT2CausalLM`, and `structured.distill`
   trains it on the unpruned model's logits.
2. `structured.remove_blocks` drops the block that changes its input least.
3. `keras_prune.prune_one_shot` (SparseGPT) zeroes half the weights of every
   projection without any training.

Each model's validation loss (bits per byte) is printed, the pruned model is
converted to a verified .tflite file and timed in LiteRT next to the dense one.

    python examples/transformers.py
    python examples/transformers.py --smoke
"""

import argparse
import glob
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import structured, tflite  # noqa: E402

LENGTH = 64


def byte_windows(count, seed):
    """Windows of LENGTH + 1 bytes from keras_prune's own .py files."""
    folder = os.path.dirname(keras_prune.__file__)
    text = b"\n".join(open(p, "rb").read()
                      for p in sorted(glob.glob(os.path.join(folder, "**", "*.py"),
                                                recursive=True)))
    tokens = np.frombuffer(text, dtype=np.uint8).astype("int32")
    starts = np.random.default_rng(seed).integers(0, len(tokens) - LENGTH - 1, size=count)
    return np.stack([tokens[s: s + LENGTH + 1] for s in starts])


def split(windows):
    x = {"token_ids": windows[:, :-1], "padding_mask": np.ones_like(windows[:, :-1], bool)}
    return x, windows[:, 1:]


def bits_per_byte(model, x, y):
    logits = np.asarray(model.predict(x, verbose=0), np.float64)
    logits -= logits.max(-1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return float(-np.take_along_axis(log_p, y[..., None], -1).mean() / np.log(2))


def latency(model, folder, name):
    path = os.path.join(folder, f"{name}.tflite")
    shapes = {t.name: (LENGTH,) for t in model.backbone.inputs}
    tflite.convert(model.backbone, path, input_shapes=shapes, verbose=0)
    return tflite.benchmark(path, runs=30, warmup=5).median_us


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few steps, for tests")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    steps, distill_steps = (8, 4) if args.smoke else (600, 200)
    x, y = split(byte_windows(steps * 16, seed=0))
    valid_x, valid_y = split(byte_windows(128, seed=1))
    calibration, _ = split(byte_windows(32, seed=2))

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=256, num_layers=4, num_heads=4, hidden_dim=64, intermediate_dim=256,
        dropout=0.0, max_sequence_length=LENGTH)
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    lm.compile(optimizer=keras.optimizers.Adam(2e-3),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    lm.fit(x, y, batch_size=16, epochs=1, verbose=0)
    results = {"dense": (lm.count_params(), bits_per_byte(lm, valid_x, valid_y))}

    # 1. Narrower blocks, the same class; recovered by distillation from the dense model.
    small, report = structured.prune_structured(lm, units=0.5, hidden=0.25, heads=0.0,
                                                importance="activation", data=calibration)
    print(report)
    results["pruned"] = (small.count_params(), bits_per_byte(small, valid_x, valid_y))
    structured.distill(small, lm, split(byte_windows(distill_steps * 16, seed=3))[0],
                       batch_size=16, learning_rate=5e-4, verbose=0)
    results["pruned + distilled"] = (small.count_params(), bits_per_byte(small, valid_x, valid_y))

    # 2. One block fewer, chosen by Block Influence on the calibration text.
    shallow, report = structured.remove_blocks(lm, count=1, data=calibration)
    results[f"without {report.blocks[0][0]}"] = (shallow.count_params(),
                                                 bits_per_byte(shallow, valid_x, valid_y))

    # 3. Half of every projection's weights zeroed one-shot, no training (SparseGPT).
    sparse, _ = keras_prune.prune_one_shot(lm, calibration, 0.5, verbose=0)
    sparse = keras_prune.strip_pruning(sparse)
    results["one-shot 50% (SparseGPT)"] = (sparse.count_params(),
                                           bits_per_byte(sparse, valid_x, valid_y))

    for name, (params, bpb) in results.items():
        print(f"{name:28s} {params:>9,} params  {bpb:.3f} bits/byte")
    with tempfile.TemporaryDirectory() as folder:
        timings = {"dense": latency(lm, folder, "dense"), "pruned": latency(small, folder, "small")}
    print(f"LiteRT (1 thread, {LENGTH} tokens): dense {timings['dense']:.0f} us, pruned "
          f"{timings['pruned']:.0f} us ({timings['pruned'] / timings['dense']:.2f}x)")
    return results, small, timings


if __name__ == "__main__":
    main()

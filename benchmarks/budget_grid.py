"""prune_to_budget on a keras_hub Task: the grid (data) against one uniform share (no data).

A BertTextClassifier (2 blocks, hidden 128, 4 heads, feed-forward 512, sequences of 32)
is trained on a generated bag-of-words task: three groups of tokens, and each sequence
draws 8% of its tokens from its class's group (a noisy task: the dense model is
far from perfect, so what pruning removes shows). From the same trained weights it is
pruned to 0.6 of its measured LiteRT latency (1 thread) twice:
  (a) uniform: every block loses one share of heads and units, found by bisection;
  (b) grid: each direction (units; heads; heads and units; heads, units and the
      residual width) scaled until it meets the budget, and the candidate near the budget
      whose outputs on 256 calibration samples moved least is kept (as Minitron does).
Each result is timed again beside the dense model in a fresh run (alternating rounds),
and its test accuracy is read before and after the same fine-tuning (1 epoch, 3 seeds).

    python benchmarks/budget_grid.py [--seeds 3] [--budget 0.6]

Writes benchmarks/results/budget_grid.md (and .json). Never part of `make test`.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

from keras_prune import structured, tflite  # noqa: E402
from keras_prune._io import write_json, write_text  # noqa: E402
from keras_prune.structured.candidates import describe_ratio  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
VOCAB, LENGTH, CLASSES, MARKED = 300, 32, 3, 0.08
SHAPES = {name: (LENGTH,) for name in ("token_ids", "segment_ids", "padding_mask")}


def dataset(n, seed):
    """Sequences whose class is the group (tokens 10-39, 40-69, 70-99) an extra 8% of
    them come from; the other tokens are uniform over the vocabulary."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    tokens = rng.integers(1, VOCAB, (n, LENGTH))
    marked = rng.random((n, LENGTH)) < MARKED
    group = 10 + 30 * labels[:, None] + rng.integers(0, 30, (n, LENGTH))
    tokens = np.where(marked, group, tokens).astype("int32")
    tokens[:, 0] = 0  # the classifier reads the first position
    x = {"token_ids": tokens, "segment_ids": np.zeros_like(tokens),
         "padding_mask": np.ones_like(tokens)}
    return x, labels.astype("int32")


def classifier():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=128,
        intermediate_dim=512, max_sequence_length=LENGTH)
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=CLASSES,
                                               preprocessor=None, dropout=0.0)


def compiled(model, rate):
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def copy_of(model):
    again = type(model).from_config(model.get_config())
    again.set_weights(model.get_weights())
    return again


def fresh_ratio(dense, small):
    files = [tflite.convert(m, None, verify=False, sparse=False, verbose=0,
                            input_shapes=SHAPES).content for m in (dense, small)]
    dense_us, small_us = tflite.compare_latency(files, num_threads=1, rounds=9, runs=30)
    return small_us / dense_us


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.6)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)
    x_train, y_train = dataset(4000, seed=0)
    x_test, y_test = dataset(1000, seed=1)
    calibration = {k: v[:256] for k, v in x_train.items()}
    dense = compiled(classifier(), 1e-3)
    dense.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    dense_accuracy = dense.evaluate(x_test, y_test, verbose=0)[1]
    print(f"dense accuracy {dense_accuracy:.4f}", flush=True)
    rows = []
    for label, data in (("uniform (no data)", None), ("grid (calibration data)", calibration)):
        start = time.perf_counter()
        small, report = structured.prune_to_budget(dense, latency=args.budget, data=data,
                                                   input_shapes=SHAPES, verbose=0)
        seconds = time.perf_counter() - start
        before = compiled(copy_of(small), 1e-4).evaluate(x_test, y_test, verbose=0)[1]
        after = []
        for seed in range(args.seeds):
            keras.utils.set_random_seed(seed)
            model = compiled(copy_of(small), 3e-4)
            model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
            after.append(model.evaluate(x_test, y_test, verbose=0)[1])
        rows.append(dict(variant=label, chosen=describe_ratio(report.chosen.ratio),
                         method=report.method, predicted=report.ratio,
                         measured=fresh_ratio(dense, small),
                         params_ratio=small.count_params() / dense.count_params(),
                         accuracy_before=before, accuracy_mean=float(np.mean(after)),
                         accuracy_min=float(np.min(after)), accuracy_max=float(np.max(after)),
                         candidates=len(report.candidates), search_s=seconds,
                         notes=report.notes))
        print(json.dumps(rows[-1]), flush=True)
    lines = ["# prune_to_budget on a keras_hub BertTextClassifier: grid vs uniform", "",
             f"Dense test accuracy {dense_accuracy:.4f}; budget {args.budget} of the dense "
             f"LiteRT latency (1 thread); fine-tuning 1 epoch, {args.seeds} seeds.", "",
             "| variant | chosen | latency (fresh run) | search's prediction | params | "
             "accuracy before fine-tuning | after: mean | min | max | candidates | search s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['chosen']} | {r['measured']:.3f} | "
                     f"{r['predicted']:.3f} | {r['params_ratio']:.3f} | "
                     f"{r['accuracy_before']:.4f} | {r['accuracy_mean']:.4f} | "
                     f"{r['accuracy_min']:.4f} | {r['accuracy_max']:.4f} | "
                     f"{r['candidates']} | {r['search_s']:.0f} |")
    os.makedirs(RESULTS, exist_ok=True)
    write_json(dict(dense_accuracy=dense_accuracy, rows=rows),
               os.path.join(RESULTS, "budget_grid.json"))
    write_text("\n".join(lines) + "\n", os.path.join(RESULTS, "budget_grid.md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

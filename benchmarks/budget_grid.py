"""prune_to_budget on keras_hub Tasks: the grid (data) against one uniform share (no data).

Two trained Tasks, each pruned from the same trained weights to 0.6 of its measured
LiteRT latency (1 thread):

- `gemma`: a GemmaCausalLM (2 blocks, hidden 256, 4 query / 2 key-value heads of width
  64, feed-forward 2048) trained on a copy task: 16 random tokens of 64, then the same 16
  again. The second half is only predictable by attending back (induction heads), so
  heads matter; the loss floor is half the sequence at log(64).
- `bert`: a BertTextClassifier (2 blocks, hidden 128, 4 heads, feed-forward 512) on a
  noisy bag-of-words task (each sequence draws an extra 8% of its tokens from its
  class's group of 30).

Variants:
  (a) uniform: every block loses one share of heads and units, found by bisection;
  (b) grid: each direction (units; heads; heads and units; heads, units and the
      residual width) scaled until it meets the budget; the candidate near the budget
      whose outputs on 256 calibration samples moved least is kept (as Minitron does).
Each result is timed again beside the dense model in a fresh run (alternating rounds);
its test loss and accuracy are read before and after the same fine-tuning (1 epoch,
3 seeds).

    python benchmarks/budget_grid.py [--family gemma,bert] [--seeds 3] [--budget 0.6]

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

from _results import with_earlier_rows  # noqa: E402  (benchmarks/_results.py)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
VOCAB, LENGTH, CLASSES, MARKED = 300, 32, 3, 0.08
LM_VOCAB = 64


def bag_of_words(n, seed):
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


def copy_task(n, seed):
    """16 random tokens, then the same 16 again; targets are the next tokens."""
    half = np.random.default_rng(seed).integers(0, LM_VOCAB, (n, LENGTH // 2 + 1))
    tokens = np.concatenate([half, half[:, :LENGTH // 2]], axis=1).astype("int32")
    x = {"token_ids": tokens[:, :-1], "padding_mask": np.ones((n, LENGTH), "int32")}
    return x, tokens[:, 1:]


def bert():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=128,
        intermediate_dim=512, max_sequence_length=LENGTH)
    return keras_hub.models.BertTextClassifier(backbone=backbone, num_classes=CLASSES,
                                               preprocessor=None, dropout=0.0)


def gemma():
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=LM_VOCAB, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=256, intermediate_dim=2048, head_dim=64)
    return keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=None)


# family -> (model, data, input names, training epochs)
FAMILIES = {"gemma": (gemma, copy_task, ("token_ids", "padding_mask"), 8),
            "bert": (bert, bag_of_words, ("token_ids", "segment_ids", "padding_mask"), 4)}


def compiled(model, rate):
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def copy_of(model):
    again = type(model).from_config(model.get_config())
    again.set_weights(model.get_weights())
    return again


def fresh_ratio(dense, small, shapes):
    files = [tflite.convert(m, None, verify=False, sparse=False, verbose=0,
                            input_shapes=shapes).content for m in (dense, small)]
    dense_us, small_us = tflite.compare_latency(files, num_threads=1, rounds=9, runs=30)
    return small_us / dense_us


def run(family, budget, seeds):
    make, data, names, epochs = FAMILIES[family]
    shapes = {name: (LENGTH,) for name in names}
    x_train, y_train = data(4000, seed=0)
    x_test, y_test = data(1000, seed=1)
    calibration = {k: v[:256] for k, v in x_train.items()}
    dense = compiled(make(), 1e-3)
    dense.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    dense_loss, dense_accuracy = dense.evaluate(x_test, y_test, verbose=0)[:2]
    print(f"{family}: dense loss {dense_loss:.4f}, accuracy {dense_accuracy:.4f}", flush=True)
    rows = []
    for label, calibrate in (("uniform (no data)", None), ("grid (calibration data)",
                                                          calibration)):
        start = time.perf_counter()
        small, report = structured.prune_to_budget(dense, latency=budget, data=calibrate,
                                                   input_shapes=shapes, verbose=0)
        seconds = time.perf_counter() - start
        loss_before, accuracy_before = compiled(copy_of(small), 1e-4).evaluate(
            x_test, y_test, verbose=0)[:2]
        losses, accuracies = [], []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = compiled(copy_of(small), 3e-4)
            model.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
            loss, accuracy = model.evaluate(x_test, y_test, verbose=0)[:2]
            losses.append(loss)
            accuracies.append(accuracy)
        rows.append(dict(family=family, variant=label,
                         chosen=describe_ratio(report.chosen.ratio), method=report.method,
                         predicted=report.ratio, measured=fresh_ratio(dense, small, shapes),
                         params_ratio=small.count_params() / dense.count_params(),
                         loss_before=loss_before, accuracy_before=accuracy_before,
                         loss_mean=float(np.mean(losses)), loss_max=float(np.max(losses)),
                         accuracy_mean=float(np.mean(accuracies)),
                         accuracy_min=float(np.min(accuracies)),
                         candidates=len(report.candidates), search_s=seconds,
                         dense_loss=dense_loss, dense_accuracy=dense_accuracy,
                         notes=report.notes))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows, budget, seeds):
    lines = ["# prune_to_budget on keras_hub Tasks: grid vs uniform", "",
             f"Budget {budget} of the dense LiteRT latency (1 thread); test loss and "
             f"accuracy before fine-tuning, and after 1 epoch for {seeds} seeds "
             "(mean; worst).", "",
             "| task | variant | chosen | latency (fresh run) | predicted | params | "
             "loss / accuracy before fine-tuning | loss after (mean; max) | "
             "accuracy after (mean; min) | candidates | search s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['family']} (dense {r['dense_loss']:.3f} / {r['dense_accuracy']:.3f}) | "
            f"{r['variant']} | {r['chosen']} | {r['measured']:.3f} | {r['predicted']:.3f} | "
            f"{r['params_ratio']:.3f} | {r['loss_before']:.3f} / {r['accuracy_before']:.3f} | "
            f"{r['loss_mean']:.3f}; {r['loss_max']:.3f} | {r['accuracy_mean']:.4f}; "
            f"{r['accuracy_min']:.4f} | {r['candidates']} | {r['search_s']:.0f} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="gemma,bert")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=0.6)
    args = parser.parse_args(argv)
    families = args.family.split(",")
    path = os.path.join(RESULTS, "budget_grid.json")
    rows = [row for family in families for row in run(family, args.budget, args.seeds)]
    rows = sorted(with_earlier_rows(path, rows, "family"),
                  key=lambda r: list(FAMILIES).index(r["family"]))
    lines = table(rows, args.budget, args.seeds)
    os.makedirs(RESULTS, exist_ok=True)
    write_json(rows, path)
    write_text("\n".join(lines) + "\n", os.path.join(RESULTS, "budget_grid.md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

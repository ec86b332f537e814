"""What the XNNPACK layout costs a trained model: accuracy before and after
`rewrite_for_xnnpack_sparse`, and after a short fine-tuning.

A MobileNet-style CNN (a 3x3 stride-2 "same" stem on 3 channels, depthwise-separable
blocks, two of them stride 2) is trained on the digits upscaled to 32x32 and repeated on
3 channels. 32 is even, so the rewrite moves every stride-2 layer's sampling grid by one
pixel: the rewritten model computes something different. Both get the same fine-tuning
(1 and 5 epochs, 3 seeds; BatchNorm statistics re-estimated alike, see
benchmarks/budget.py). A third model has the layout from the start (rewritten before
training) and the same training as the original.

    python benchmarks/xnnpack_layout.py [--seeds 3] [--epochs 15]

Writes benchmarks/results/xnnpack_layout.md (and .json). Never part of `make test`.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import structured  # noqa: E402
from keras_prune._io import write_json, write_text  # noqa: E402
from keras_prune.demo import load_digits_arrays  # noqa: E402

from budget import compiled, mobilenet_style  # noqa: E402  (benchmarks/budget.py)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def accuracy(model, x_train, x_test, y_test):
    structured.update_batchnorm_statistics(model, x_train)
    return compiled(model, 1e-4).evaluate(x_test, y_test, verbose=0)[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args(argv)
    x, y = load_digits_arrays()
    x = np.repeat(np.kron(x, np.ones((1, 4, 4, 1), "float32")), 3, axis=-1)  # 32x32x3
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    dense = compiled(mobilenet_style(channels=3), 1e-3)
    dense.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    rewritten, layout = keras_prune.rewrite_for_xnnpack_sparse(dense)
    # the recipe: the layout from the start, then the same training
    fresh, _ = keras_prune.rewrite_for_xnnpack_sparse(mobilenet_style(channels=3))
    compiled(fresh, 1e-3).fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    rows = []
    for name, model in (("original", dense), ("rewritten after training", rewritten),
                        ("rewritten before training", fresh)):
        rows.append(dict(model=name, tuned=0, accuracy=accuracy(model, x_train, x_test,
                                                                y_test)))
        print(json.dumps(rows[-1]), flush=True)
    for name, model in (("original", dense), ("rewritten after training", rewritten)):
        for epochs in (1, 5):
            scores = []
            for seed in range(args.seeds):
                keras.utils.set_random_seed(seed)
                copy = keras.models.clone_model(model)
                copy.set_weights(model.get_weights())
                compiled(copy, 3e-4).fit(x_train, y_train, epochs=epochs, batch_size=64,
                                         verbose=0)
                scores.append(accuracy(copy, x_train, x_test, y_test))
            rows.append(dict(model=name, tuned=epochs, accuracy=float(np.mean(scores)),
                             low=float(np.min(scores)), high=float(np.max(scores))))
            print(json.dumps(rows[-1]), flush=True)
    lines = ["# The XNNPACK sparse layout on a trained MobileNet-style CNN", "",
             f"Digits at 32x32x3, trained {args.epochs} epochs; the rewrite changed "
             f"{len(layout.changes)} layers. Fine-tuning: the same epochs for both models, "
             f"{args.seeds} seeds.", "",
             "| model | fine-tuning | test accuracy | min | max |", "|---|---|---|---|---|"]
    for r in rows:
        tuned = "none" if not r["tuned"] else f"{r['tuned']} epoch(s)"
        lines.append(f"| {r['model']} | {tuned} | {r['accuracy']:.4f} | "
                     f"{r.get('low', r['accuracy']):.4f} | {r.get('high', r['accuracy']):.4f} |")
    os.makedirs(RESULTS, exist_ok=True)
    write_json(rows, os.path.join(RESULTS, "xnnpack_layout.json"))
    write_text("\n".join(lines) + "\n", os.path.join(RESULTS, "xnnpack_layout.md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

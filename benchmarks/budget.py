"""prune_to_budget: is the latency budget met, and do per-group widths beat uniform ones?

Part `met`: keras.applications models (weights=None, 96x96) pruned to a LiteRT latency
budget (0.7 and 0.5 of the dense model's, 1 and 2 threads). The search measures its
candidates itself; afterwards a fresh side-by-side run (dense and chosen model in
alternating rounds) measures the result again, and that is the number reported: the
ratio to the budget, and the search's own prediction against it. Search time includes
every conversion.

Part `accuracy`: a MobileNet-style CNN (depthwise-separable blocks, BatchNorm) on the
digits upscaled to 32x32, trained dense; then, from the same dense weights and for 3
seeds, pruned to 0.5 of its measured latency by
  (a) one share for every group (no data),
  (b) per-group shares from the sensitivity map, FastNAS's tolerance rule (no costs),
  (c) per-group shares priced by each group's measured LiteRT latency (the default),
  (d) the same, priced by each group's FLOPs instead of its measured latency,
each fine-tuned for the same epochs; test accuracy and measured latency ratio (fresh
side-by-side run) of each. Every variant meets the same measured latency budget.
`--model two_resolutions` runs the same on a CNN whose groups differ in latency per FLOP
(a wide full-resolution stage through depthwise layers, then 1x1 convolutions at 8x8),
where pricing by FLOPs and by measured latency can part.

    python benchmarks/budget.py met [--models MobileNetV2,ResNet50,EfficientNetB0,
                                     keras_hub.Bert,keras_hub.ViT] [--threads 1,2] [--name _x]
                                    [--data 64]   (per-group widths: the search's time)
    python benchmarks/budget.py accuracy [--seeds 3] [--model two_resolutions --name _x]

Writes benchmarks/results/budget_<part>.md (and .json).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_prune import structured, tflite  # noqa: E402
from keras_prune._io import write_json, write_text  # noqa: E402
from keras_prune.demo import load_digits_arrays  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def fresh_ratio(dense, small, threads, input_shapes=None):
    files = [tflite.convert(m, None, verify=False, sparse=False, verbose=0,
                            input_shapes=input_shapes).content for m in (dense, small)]
    dense_us, small_us = tflite.compare_latency(files, num_threads=threads, rounds=9, runs=30)
    return small_us / dense_us, dense_us, small_us


def build(name):
    """(model, input shapes for conversion): keras.applications at 96x96, or a small
    keras_hub BERT (sequence 128) or ViT (64x64 images) with random weights."""
    if name == "keras_hub.Bert":
        import keras_hub

        model = keras_hub.models.BertBackbone(vocabulary_size=1000, num_layers=4, num_heads=4,
                                              hidden_dim=256, intermediate_dim=1024,
                                              max_sequence_length=128)
        return model, {n: (128,) for n in ("token_ids", "segment_ids", "padding_mask")}
    if name == "keras_hub.ViT":
        import keras_hub

        return keras_hub.models.ViTBackbone(image_shape=(64, 64, 3), patch_size=8, num_layers=4,
                                            num_heads=4, hidden_dim=256, mlp_dim=1024), None
    return getattr(keras.applications, name)(weights=None, input_shape=(96, 96, 3)), None


def part_met(models, budgets, threads_list, samples=0):
    rows = []
    for name in models:
        model, shapes = build(name)
        # random samples: enough to time the search with a sensitivity map and group costs
        calibration = None if not samples else np.random.default_rng(0).normal(
            size=(samples,) + tuple(model.input_shape[1:])).astype("float32")
        for threads in threads_list:
            for budget in budgets:
                start = time.perf_counter()
                try:
                    small, report = structured.prune_to_budget(model, latency=budget,
                                                               threads=threads, verbose=0,
                                                               input_shapes=shapes,
                                                               data=calibration)
                except ValueError as error:  # an unreachable budget names the smallest
                    rows.append(dict(model=name, threads=threads, budget=budget,
                                     error=str(error).splitlines()[0]))
                    print(json.dumps(rows[-1]), flush=True)
                    continue
                seconds = time.perf_counter() - start
                ratio, dense_us, small_us = fresh_ratio(model, small, threads, shapes)
                predicted = report.chosen.cost / report.dense_cost
                rows.append(dict(model=name, threads=threads, budget=budget,
                                 measured=ratio, predicted=predicted,
                                 dense_us=dense_us, small_us=small_us,
                                 params_ratio=small.count_params() / model.count_params(),
                                 candidates=len(report.candidates), search_s=seconds,
                                 method=report.method))
                print(json.dumps(rows[-1]), flush=True)
    lines = ["| model | threads | budget | measured (fresh run) | search's prediction | "
             "dense us | params | candidates | search s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['threads']} | {r['budget']} | not met: "
                         f"{r['error'][:160]} | | | | | |")
            continue
        lines.append(f"| {r['model']} | {r['threads']} | {r['budget']} | {r['measured']:.3f} | "
                     f"{r['predicted']:.3f} | {r['dense_us']:,.0f} | {r['params_ratio']:.3f} | "
                     f"{r['candidates']} | {r['search_s']:.0f} |")
    return rows, lines


def mobilenet_style(seed=0, channels=1):
    """Depthwise-separable blocks on 32x32 images (`channels` deep), a 3x3 stride-2
    "same" stem, 10 classes."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, channels))
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inputs)
    h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
    for filters, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        h = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(h)
        h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
        h = keras.layers.Conv2D(filters, 1, use_bias=False)(h)
        h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


def two_resolutions(seed=0, channels=1):
    """Groups whose latency and FLOPs disagree: a wide stage at full resolution whose
    channels pass a depthwise layer (few FLOPs, much memory traffic), then 1x1
    convolutions at 8x8 (many FLOPs, XNNPACK's efficient matrix kernels)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, channels))
    h = inputs
    for _ in range(2):  # full resolution: convolution, depthwise
        h = keras.layers.Conv2D(48, 1 if h.shape[-1] > 1 else 3, padding="same",
                                use_bias=False)(h)
        h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
        h = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)
        h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
    h = keras.layers.MaxPooling2D(4)(h)
    for filters in (192, 192):  # 8x8: matrix products
        h = keras.layers.Conv2D(filters, 1, use_bias=False)(h)
        h = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(h))
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


MODELS = {"mobilenet": mobilenet_style, "two_resolutions": two_resolutions}


def compiled(model, rate):
    model.compile(keras.optimizers.Adam(rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def part_accuracy(seeds, epochs, finetune, make=mobilenet_style):
    x, y = load_digits_arrays()
    x = np.kron(x, np.ones((1, 4, 4, 1), "float32"))  # 8x8 -> 32x32
    split = 1400
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    dense = compiled(make(), 1e-3)
    dense.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    # Keras' BatchNorm starts its moving variance at 1; with this model's tiny variances
    # (~0.003) 330 steps at momentum 0.99 leave it 10x too large and inference-mode
    # accuracy at chance. Every model here gets its statistics re-estimated alike.
    structured.update_batchnorm_statistics(dense, x_train)
    dense_accuracy = dense.evaluate(x_test, y_test, verbose=0)[1]
    calibration = x_train[:256]
    variants = {
        "uniform (no data)": dict(latency=0.5),
        "per group, tolerance rule (FastNAS; group_costs=None)": dict(
            latency=0.5, data=calibration, group_costs=None),
        "per group, priced by measured latency (default)": dict(
            latency=0.5, data=calibration),
        "per group, priced by FLOPs (group_costs='flops')": dict(
            latency=0.5, data=calibration, group_costs="flops"),
    }
    rows = []
    for label, options in variants.items():
        small, report = structured.prune_to_budget(dense, verbose=0, **options)
        ratio, _, _ = fresh_ratio(dense, small, 1)
        accuracies = []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            model = keras.models.clone_model(small)
            model.set_weights(small.get_weights())
            structured.update_batchnorm_statistics(model, x_train)
            compiled(model, 3e-4).fit(x_train, y_train, epochs=finetune, batch_size=64,
                                      verbose=0)
            structured.update_batchnorm_statistics(model, x_train)
            accuracies.append(model.evaluate(x_test, y_test, verbose=0)[1])
        rows.append(dict(variant=label, latency_ratio=ratio,
                         params_ratio=small.count_params() / dense.count_params(),
                         accuracy_mean=float(np.mean(accuracies)),
                         accuracy_min=float(np.min(accuracies)),
                         accuracy_max=float(np.max(accuracies)), seeds=seeds,
                         widths={r.layer: r.after for r in report.structured.layers},
                         search_latency_ratio=report.ratio, method=report.method))
        print(json.dumps(rows[-1]), flush=True)
    lines = [f"dense test accuracy {dense_accuracy:.4f}; fine-tuning {finetune} epochs per "
             f"seed, {seeds} seeds", "",
             "| variant | latency (fresh run) | params | accuracy mean | min | max |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['latency_ratio']:.3f} | {r['params_ratio']:.3f} | "
                     f"{r['accuracy_mean']:.4f} | {r['accuracy_min']:.4f} | "
                     f"{r['accuracy_max']:.4f} |")
    return dict(dense_accuracy=dense_accuracy, rows=rows), lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["met", "accuracy"])
    parser.add_argument("--models", default="MobileNetV2,ResNet50,EfficientNetB0")
    parser.add_argument("--budgets", default="0.7,0.5")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune", type=int, default=5)
    parser.add_argument("--name", default="", help="suffix of the results file")
    parser.add_argument("--data", type=int, default=0,
                        help="met: search with this many random samples (per-group widths)")
    parser.add_argument("--model", default="mobilenet", choices=sorted(MODELS),
                        help="the accuracy part's CNN")
    args = parser.parse_args(argv)
    if args.part == "met":
        data, lines = part_met(args.models.split(","), [float(b) for b in args.budgets.split(",")],
                               [int(t) for t in args.threads.split(",")], args.data)
    else:
        data, lines = part_accuracy(args.seeds, args.epochs, args.finetune, MODELS[args.model])
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, f"budget_{args.part}{args.name}")
    write_json(data, stem + ".json")
    write_text(f"# prune_to_budget: {args.part}\n\n" + "\n".join(lines) + "\n", stem + ".md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

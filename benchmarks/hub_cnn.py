"""keras_hub CNN backbones at ratio 0.5: parameters and LiteRT latency, side by side.

Each backbone is built from a config with ImageNet-like stages (random weights, 128x128
inputs): ResNet-50's layout (bottleneck blocks 3-4-6-3, 64-512 filters), VGG-16's,
DenseNet-121's, EfficientNet-B0's first four stages, CSPDarkNet-53's, PP-HGNetV2-B0's, and
the MobileNetV3-like example
of keras_hub's MobileNetBackbone docstring.
`prune_structured(model, 0.5)` gives the same class from a smaller config; the dense
and the pruned model are converted to float LiteRT and timed in alternating rounds
(medians, 1 thread, `tflite.compare_latency`). Nothing here is trained: the question is
size and speed, not accuracy.

    python benchmarks/hub_cnn.py [--only ResNet,VGG] [--threads 1]

Writes benchmarks/results/hub_cnn.md (and .json). Never part of `make test`.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_hub  # noqa: E402

from keras_prune import structured, tflite  # noqa: E402
from keras_prune._io import write_json, write_text  # noqa: E402

from _results import with_earlier_rows  # noqa: E402  (benchmarks/_results.py)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
IMAGE = (128, 128, 3)
M = keras_hub.models

BACKBONES = {
    "ResNet": lambda: M.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7],
        stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
        stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block", image_shape=IMAGE),
    "VGG": lambda: M.VGGBackbone(stackwise_num_repeats=[2, 2, 3, 3, 3],
                                 stackwise_num_filters=[64, 128, 256, 512, 512],
                                 image_shape=IMAGE),
    "DenseNet": lambda: M.DenseNetBackbone(stackwise_num_repeats=[6, 12, 24, 16],
                                           image_shape=IMAGE),
    "EfficientNet": lambda: M.EfficientNetBackbone(
        stackwise_kernel_sizes=[3, 3, 5, 3], stackwise_num_repeats=[1, 2, 2, 3],
        stackwise_input_filters=[32, 16, 24, 40], stackwise_output_filters=[16, 24, 40, 80],
        stackwise_expansion_ratios=[1, 6, 6, 6], stackwise_strides=[1, 2, 2, 2],
        stackwise_squeeze_and_excite_ratios=[0.25] * 4, stackwise_block_types=["v1"] * 4,
        stackwise_force_input_filters=[0] * 4, stackwise_nores_option=[False] * 4,
        width_coefficient=1.0, depth_coefficient=1.0, input_shape=IMAGE),
    "CSPNet": lambda: M.CSPNetBackbone(  # CSPDarkNet-53's stages
        stem_filters=32, stem_kernel_size=3, stem_strides=1, stackwise_strides=2,
        stackwise_depth=[1, 2, 8, 8, 4], stackwise_num_filters=[64, 128, 256, 512, 1024],
        down_growth=True, bottle_ratio=(0.5,) + (1.0,) * 4, block_ratio=(1.0,) + (0.5,) * 4,
        expand_ratio=(2.0,) + (1.0,) * 4, block_type="dark_block", stage_type="csp",
        stem_padding="same", image_shape=IMAGE),
    "MobileNet": lambda: M.MobileNetBackbone(  # keras_hub's own MobileNetV3-like example
        stackwise_expansion=[[40, 56], [64, 144, 144], [72, 72], [144, 288, 288]],
        stackwise_num_blocks=[2, 3, 2, 3],
        stackwise_num_filters=[[16, 16], [24, 24, 24], [24, 24], [48, 48, 48]],
        stackwise_kernel_size=[[3, 3], [5, 5, 5], [5, 5], [5, 5, 5]],
        stackwise_num_strides=[[2, 1], [2, 1, 1], [1, 1], [2, 1, 1]],
        stackwise_se_ratio=[[None, None], [0.25] * 3, [0.3, 0.3], [0.3, 0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish"] * 3, ["hard_swish"] * 2,
                              ["hard_swish"] * 3],
        stackwise_padding=[[1, 1], [2, 2, 2], [2, 2], [2, 2, 2]], output_num_filters=288,
        input_activation="hard_swish", output_activation="hard_swish", input_num_filters=16,
        depthwise_filters=8, depthwise_stride=2, depthwise_residual=False,
        last_layer_filter=576, squeeze_and_excite=0.5, image_shape=IMAGE),
    "HGNetV2": lambda: M.HGNetV2Backbone(  # PP-HGNetV2-B0's stages
        embedding_size=16, stem_channels=[3, 16, 16], hidden_act="relu",
        use_learnable_affine_block=True, image_shape=IMAGE, depths=[1, 1, 2, 1],
        hidden_sizes=[64, 256, 512, 1024],
        stackwise_stage_filters=[[16, 16, 64, 1, 3, 3], [64, 32, 256, 1, 3, 3],
                                 [256, 64, 512, 2, 3, 5], [512, 128, 1024, 1, 3, 5]],
        apply_downsample=[False, True, True, True],
        use_lightweight_conv_block=[False, False, True, True]),
}


def row(name, threads):
    model = BACKBONES[name]()
    start = time.perf_counter()
    try:
        small, report = structured.prune_structured(model, 0.5, verbose=0)
    except (NotImplementedError, ValueError) as error:
        return dict(model=name, error=str(error).splitlines()[0][:200])
    seconds = time.perf_counter() - start
    files = [tflite.convert(m, None, verify=False, sparse=False, verbose=0).content
             for m in (model, small)]
    dense_us, small_us = tflite.compare_latency(files, num_threads=threads, rounds=9, runs=20)
    return dict(model=name, params_before=model.count_params(),
                params_ratio=small.count_params() / model.count_params(),
                latency_ratio=small_us / dense_us, dense_us=dense_us, small_us=small_us,
                class_kept=type(small) is type(model), prune_s=seconds,
                notes=[n[:160] for n in report.notes])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BACKBONES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    path = os.path.join(RESULTS, "hub_cnn.json")
    rows = []
    for name in args.only.split(","):
        rows.append(row(name, args.threads))
        print(json.dumps(rows[-1]), flush=True)
    lines = ["# keras_hub CNN backbones at ratio 0.5", "",
             f"128x128 inputs, random weights, LiteRT float, {args.threads} thread(s), "
             "dense and pruned timed in alternating rounds (medians).", "",
             "| backbone | params | params after | LiteRT latency after | dense us | class kept |",
             "|---|---|---|---|---|---|"]
    if args.only != parser.get_default("only"):
        rows = sorted(with_earlier_rows(path, rows, "model"),
                      key=lambda r: list(BACKBONES).index(r["model"]))
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | refused: {r['error']} | | | | |")
        else:
            lines.append(f"| {r['model']} | {r['params_before']:,} | {r['params_ratio']:.3f}x | "
                         f"{r['latency_ratio']:.3f}x | {r['dense_us']:,.0f} | "
                         f"{r['class_kept']} |")
    os.makedirs(RESULTS, exist_ok=True)
    write_json(rows, path)
    write_text("\n".join(lines) + "\n", os.path.join(RESULTS, "hub_cnn.md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

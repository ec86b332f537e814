"""keras_hub transformers pruned structurally: params and LiteRT latency, side by side.

Tiny configs whose blocks hold most of the parameters (vocabulary 100, hidden 64,
2 layers, feed-forward 4x hidden; sequences of 128 tokens, ViT 64x64 images in
8x8 patches), random weights. For each family: the dense model, then
`prune_structured(model, ratio=0.5)` (half the heads, where the config can hold
fewer, and half the feed-forward units of every block), then the same with half
the residual width (`hidden=0.5`). GPT-2, BERT and ViT are converted to float
.tflite, verified in LiteRT and timed (XNNPACK, 1 thread, one sample, median) in
this one run, so the ratios compare like with like.

    python benchmarks/structured_transformers.py [--quick]

Writes benchmarks/results/structured_transformers.md (and .json).
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402

from keras_prune import _io, tflite  # noqa: E402
from keras_prune.structured import prune_structured  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
M = keras_hub.models
TEXT = dict(vocabulary_size=100, num_layers=2, hidden_dim=64)
GQA = dict(num_query_heads=4, num_key_value_heads=2)
SEQUENCE = 128
FAMILIES = {
    "BERT": lambda: M.BertBackbone(**TEXT, num_heads=4, intermediate_dim=256,
                                   max_sequence_length=SEQUENCE),
    "GPT-2": lambda: M.GPT2Backbone(**TEXT, num_heads=4, intermediate_dim=256,
                                    max_sequence_length=SEQUENCE),
    "Llama": lambda: M.LlamaBackbone(**TEXT, **GQA, intermediate_dim=256),
    "Mistral": lambda: M.MistralBackbone(**TEXT, **GQA, intermediate_dim=256),
    "Gemma": lambda: M.GemmaBackbone(**TEXT, **GQA, intermediate_dim=512, head_dim=16),
    "ViT": lambda: M.ViTBackbone(image_shape=(64, 64, 3), patch_size=8, num_layers=2,
                                 num_heads=4, hidden_dim=64, mlp_dim=256),
}
TIMED = ("BERT", "GPT-2", "ViT")


def latency(model, folder, name, runs):
    shapes = None if name.startswith("ViT") else {t.name: (SEQUENCE,) for t in model.inputs}
    path = os.path.join(folder, f"{name}.tflite")
    result = tflite.convert(model, path, input_shapes=shapes, verbose=0)
    timing = tflite.benchmark(path, num_threads=1, runs=runs, warmup=max(runs // 10, 3))
    return timing.median_us, result.verification.passed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    runs = 20 if args.quick else 200
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for family, build in FAMILIES.items():
            keras.utils.set_random_seed(0)
            model = build()
            variants = [("dense", model, None)]
            for label, options in (("heads+units 0.5", {}), ("+ hidden 0.5", {"hidden": 0.5})):
                smaller, report = prune_structured(model, ratio=0.5, verbose=0, **options)
                variants.append((label, smaller, report))
            dense_us = None
            for label, variant, report in variants:
                row = {"family": family, "variant": label, "class": type(variant).__name__,
                       "params": variant.count_params(),
                       "params_ratio": variant.count_params() / model.count_params(),
                       "notes": report.notes if report else []}
                if family in TIMED:
                    name = f"{family}_{len(rows)}"
                    row["latency_us"], row["verified"] = latency(variant, folder, name, runs)
                    dense_us = dense_us or row["latency_us"]
                    row["latency_ratio"] = row["latency_us"] / dense_us
                rows.append(row)
                print(f"{family:8s} {label:16s} {row['class']:16s} params {row['params']:8,} "
                      f"({row['params_ratio']:.3f}x)"
                      + (f"  LiteRT {row['latency_us']:8.0f} us ({row['latency_ratio']:.3f}x)"
                         if "latency_us" in row else ""), flush=True)
    write(rows, args.quick)


def write(rows, quick):
    os.makedirs(RESULTS, exist_ok=True)
    _io.write_json({"quick": quick, "keras": keras.__version__, "keras_hub": keras_hub.__version__,
                    "rows": rows}, os.path.join(RESULTS, "structured_transformers.json"))
    lines = [
        "# keras_hub transformers: structured pruning",
        "",
        f"`python benchmarks/structured_transformers.py{' --quick' if quick else ''}` (Keras "
        f"{keras.__version__}, keras_hub {keras_hub.__version__}, {os.cpu_count()} CPU cores). "
        "Random weights; ratios against the dense row of the same run. LiteRT: float .tflite, "
        f"verified, XNNPACK, 1 thread, one sample of {SEQUENCE} tokens (ViT: 64 patches), median.",
        "",
        "| family | variant | class after | params | x dense | LiteRT us | x dense |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        timing = (f"{row['latency_us']:.0f} | {row['latency_ratio']:.3f}"
                  if "latency_us" in row else "- | -")
        lines.append(f"| {row['family']} | {row['variant']} | {row['class']} | "
                     f"{row['params']:,} | {row['params_ratio']:.3f} | {timing} |")
    notes = sorted({note for row in rows for note in row["notes"]})
    if notes:
        lines += ["", "Notes from the reports:", ""] + [f"- {note}" for note in notes]
    _io.write_text("\n".join(lines) + "\n", os.path.join(RESULTS, "structured_transformers.md"))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())

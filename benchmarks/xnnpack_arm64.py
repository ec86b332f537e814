"""Does XNNPACK take its sparse path on ARM? MobileNetV2 timed in an emulated arm64 LiteRT.

x86 CPUs with AVX never run XNNPACK's sparse inference, so this machine cannot show it
natively. Here an arm64 Python with LiteRT's aarch64 wheel runs under qemu-user, and
three float files of Keras' MobileNetV2 (weights=None, 96x96, 10 classes) are timed in
alternating rounds (medians, 1 thread, default delegates):

  dense      : rewritten by `rewrite_for_xnnpack_sparse`, not pruned;
  sparse     : rewritten, its 1x1 convolutions pruned to 80% with tfmot's
               `PruneForLatencyOnXNNPack` policy, stripped, converted (DENSIFY);
  unrewritten: the same pruning on the original layout (TF "same" stride-2 stem), which
               XNNPACK's rules refuse.

If XNNPACK takes the sparse path, `sparse` is faster than `dense` and `unrewritten` is
not. Emulated timings are an indication only: qemu translates NEON instructions one by
one, so the ratio, not the time, is what to read.

Set-up (Debian; no binfmt needed, qemu runs the interpreter directly):

    apt-get install qemu-user-static
    dpkg --add-architecture arm64 && apt-get update
    mkdir -p /tmp/arm && cd /tmp/arm && apt-get download libc6:arm64 \\
        python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 \\
        zlib1g:arm64 libexpat1:arm64 libffi8:arm64 libssl3:arm64 libbz2-1.0:arm64 \\
        liblzma5:arm64 libgcc-s1:arm64 libstdc++6:arm64 libsqlite3-0:arm64 libuuid1:arm64 \\
        libncursesw6:arm64 libtinfo6:arm64 libcrypt1:arm64
    for f in *.deb; do dpkg-deb -x $f root; done
    pip install --platform manylinux2014_aarch64 --python-version 3.11 \\
        --only-binary=:all: --target /tmp/arm/site ai-edge-litert numpy

    python benchmarks/xnnpack_arm64.py [--root /tmp/arm/root --site /tmp/arm/site]

Writes benchmarks/results/xnnpack_arm64.md (and .json). Never part of `make test`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import tflite  # noqa: E402
from keras_prune._io import write_json, write_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

TIMER = r"""
import json, sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter

paths, rounds, runs = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
interpreters = []
for path in paths:
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(
        detail["shape"]).astype(np.float32))
    interpreter.invoke()  # warm-up (XNNPACK builds its plan on the first run)
    interpreters.append(interpreter)
times = [[] for _ in paths]
for _ in range(rounds):
    for i, interpreter in enumerate(interpreters):
        start = time.perf_counter()
        for _ in range(runs):
            interpreter.invoke()
        times[i].append((time.perf_counter() - start) / runs * 1e6)
print(json.dumps([float(np.median(t)) for t in times]))
"""


def pruned(model):
    """`model` with its 1x1 convolutions at 80% zeros (tfmot's XNNPACK policy where it
    accepts the model, else every 1x1 convolution), stripped."""
    def only_pointwise(layer):
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            return keras_prune.prune_low_magnitude(layer, **schedule)
        return layer

    schedule = dict(pruning_schedule=keras_prune.schedules.ConstantSparsity(0.8, 0, frequency=1))
    try:
        wrapped = keras_prune.prune_low_magnitude(
            model, pruning_policy=keras_prune.PruneForLatencyOnXNNPack(), **schedule)
    except ValueError:  # the original layout: the policy refuses it
        wrapped = keras.models.clone_model(model, clone_function=only_pointwise)
    wrapped.compile("sgd", "mse")
    x = np.random.default_rng(0).random((4, 96, 96, 3)).astype("float32")
    wrapped.fit(x, np.zeros((4, 10), "float32"), epochs=1, verbose=0,
                callbacks=[keras_prune.callbacks.UpdatePruningStep()])
    return keras_prune.strip_pruning(wrapped)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/tmp/arm/root")
    parser.add_argument("--site", default="/tmp/arm/site")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    original = keras.applications.MobileNetV2((96, 96, 3), weights=None, classes=10)
    rewritten, layout = keras_prune.rewrite_for_xnnpack_sparse(original)
    models = {"dense (rewritten)": rewritten, "sparse 80% (rewritten, policy)": pruned(rewritten),
              "sparse 80% (original layout)": pruned(original)}
    folder = tempfile.mkdtemp()
    paths, rules = [], {}
    for index, (name, model) in enumerate(models.items()):
        result = tflite.convert(model, os.path.join(folder, f"{index}.tflite"), verbose=0)
        paths.append(result.path)
        inspection = tflite.inspect(result, check_loading=False)
        rules[name] = inspection.meets_xnnpack_sparse_rules
    python = os.path.join(args.root, "usr/bin/python3.11")
    done = subprocess.run(
        ["qemu-aarch64-static", "-L", args.root, python, "-c", TIMER, ",".join(paths),
         str(args.rounds), str(args.runs)],
        env={**os.environ, "PYTHONPATH": args.site}, capture_output=True, text=True,
        check=False)
    if done.returncode:
        sys.exit(f"the emulated timing failed:\n{done.stderr[-3000:]}")
    medians = json.loads(done.stdout.strip().splitlines()[-1])
    rows = [dict(file=name, meets_rules=bool(rules[name]), median_us=us,
                 ratio=us / medians[0]) for name, us in zip(models, medians)]
    lines = ["# XNNPACK sparse inference, emulated arm64 (qemu-user), LiteRT 1 thread", "",
             "Keras MobileNetV2 (weights=None, 96x96, 10 classes); medians of "
             f"{args.rounds} alternating rounds of {args.runs} runs. Emulated: read the "
             "ratios, not the times.", "",
             "| file | meets XNNPACK's sparse rules (tflite.inspect) | median us | x dense |",
             "|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['meets_rules']} | {r['median_us']:,.0f} | "
              f"{r['ratio']:.3f} |" for r in rows]
    lines += ["", f"Layout changes: {len(layout.changes)} layers ({', '.join(c.layer for c in layout.changes)})."]
    os.makedirs(RESULTS, exist_ok=True)
    write_json(rows, os.path.join(RESULTS, "xnnpack_arm64.json"))
    write_text("\n".join(lines) + "\n", os.path.join(RESULTS, "xnnpack_arm64.md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

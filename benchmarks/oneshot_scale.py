"""One-shot SparseGPT on a GPT-2-small-sized keras_hub model: time and peak memory.

`GPT2CausalLM` with GPT-2 small's shapes (vocabulary 50257, 12 layers, hidden 768,
12 heads, feed-forward 3072; 124M parameters, random weights), pruned to 50% by
`prune_one_shot(method="sparsegpt")` from 16 calibration sequences of 128 tokens,
block by block. Measured in a fresh process: seconds, and peak resident memory
(`ru_maxrss`) before and after, next to the model's float32 weight bytes.

    python benchmarks/oneshot_scale.py [--layers N]

Writes benchmarks/results/oneshot_scale.md (and .json).
"""

import argparse
import json
import os
import resource
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_prune  # noqa: E402
from keras_prune import _io  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=50257, num_layers=args.layers, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, max_sequence_length=1024)
    model = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    params = model.count_params()
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(0, 50257, size=(16, 128)).astype("int32"),
         "padding_mask": np.ones((16, 128), dtype=bool)}
    model(x)  # built and run once, as a loaded model would be
    before = peak_mb()
    start = time.perf_counter()
    pruned, report = keras_prune.prune_one_shot(model, x, 0.5, batch_size=8)
    seconds = time.perf_counter() - start
    after = peak_mb()
    weights_mb = params * 4 / 2 ** 20
    block_mb = sum(int(np.prod(w.shape)) for w in backbone.transformer_layers[0].weights) * 4 / 2 ** 20
    result = {"params": params, "layers": args.layers, "seconds": seconds,
              "peak_mb_before": before, "peak_mb_after": after, "weights_mb": weights_mb,
              "block_mb": block_mb, "pruned_kernels": len(report.layers),
              "sparsity": report.sparsity, "keras": keras.__version__,
              "backend": keras.backend.backend()}
    _io.write_json(result, os.path.join(RESULTS, "oneshot_scale.json"))
    text = "\n".join([
        "# One-shot SparseGPT at GPT-2-small size",
        "",
        f"`python benchmarks/oneshot_scale.py` ({keras.backend.backend()} backend, "
        f"{os.cpu_count()} CPU cores): `GPT2CausalLM`, {params:,} params ({weights_mb:.0f} MB "
        f"float32; one block {block_mb:.0f} MB), 16 x 128 calibration tokens, 50%.",
        "",
        "| seconds | kernels pruned | peak RSS before | peak RSS after | goal |",
        "|---|---|---|---|---|",
        f"| {seconds:.0f} | {len(report.layers)} | {before:.0f} MB | {after:.0f} MB | "
        f"<= 600 s, <= 2 x weights + one block = {2 * weights_mb + block_mb:.0f} MB |",
        "",
    ])
    _io.write_text(text, os.path.join(RESULTS, "oneshot_scale.md"))
    print(text)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())

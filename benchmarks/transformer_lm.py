"""A small byte-level GPT-2 on real text: prune heads and units, distill, compare.

The corpus is the Python standard library's own source (every `.py` file under
`sysconfig.get_paths()["stdlib"]`, read as bytes; every 10th file, sorted by path,
is held out for validation), so it is on every machine and nothing is downloaded.
Tokens are bytes (vocabulary 256); the loss is reported in bits per byte.

Stages (models go to --folder, default artifacts/lm):

    python benchmarks/transformer_lm.py teacher  # trains the dense model, saves teacher.weights.h5
    python benchmarks/transformer_lm.py compare  # prunes it and compares recovery methods

`compare` prunes half of the heads and half of the feed-forward units of every
block (`prune_structured(..., heads=0.5, units=0.5)`, same widths in every block, so
the result is still a `GPT2CausalLM`) and gives every student the same number of
training steps on the same batches:
- activation importance (calibration batches) + distillation from the teacher,
- L1 weight importance + distillation,
- activation importance + plain next-byte training (no teacher),
- the same small config from random weights, plain training ("scratch"),
each over 3 seeds (the seed draws the training batches and, for scratch, the
weights). Results: benchmarks/results/transformer_lm.md (and .json).
"""

import argparse
import json
import os
import sys
import sysconfig
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
CONFIG = dict(vocabulary_size=256, num_layers=4, num_heads=4, hidden_dim=128,
              intermediate_dim=512, dropout=0.0, max_sequence_length=128)
SEQUENCE = 128
BATCH = 32


def corpus():
    """(train bytes, validation bytes) from the standard library's source."""
    root = sysconfig.get_paths()["stdlib"]
    paths = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "test", "tests",
                                                       "__pycache__", "idlelib"))
        paths += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".py")]
    paths.sort()
    train, valid = [], []
    for index, path in enumerate(paths):
        with open(path, "rb") as handle:
            (valid if index % 10 == 0 else train).append(handle.read())
    join = lambda parts: np.frombuffer(b"\n".join(parts), dtype=np.uint8).astype(np.int32)
    return join(train), join(valid)


def windows(tokens, count, rng):
    starts = rng.integers(0, len(tokens) - SEQUENCE - 1, size=count)
    return np.stack([tokens[s: s + SEQUENCE + 1] for s in starts])


def as_inputs(chunks):
    x = {"token_ids": chunks[:, :-1], "padding_mask": np.ones_like(chunks[:, :-1], dtype=bool)}
    return x, chunks[:, 1:]


def build(config=CONFIG, seed=0):
    import keras_hub

    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(**config)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def compile_lm(model, learning_rate, steps):
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=steps, warmup_target=learning_rate, warmup_steps=0)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def bits_per_byte(model, valid_x, valid_y):
    logits = model.predict(valid_x, batch_size=BATCH, verbose=0)
    logits = logits - logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, valid_y[..., None], axis=-1).mean()
    return float(nll / np.log(2))


def validation_set(valid, count=256):
    return as_inputs(windows(valid, count, np.random.default_rng(12345)))


def stage_teacher(args):
    train, valid = corpus()
    print(f"corpus: {len(train):,} train bytes, {len(valid):,} validation bytes")
    valid_x, valid_y = validation_set(valid)
    model = compile_lm(build(seed=0), 1e-3, args.steps)
    rng = np.random.default_rng(0)
    x, y = as_inputs(windows(train, args.steps * BATCH, rng))
    start = time.time()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=2)
    seconds = time.time() - start
    bpb = bits_per_byte(model, valid_x, valid_y)
    os.makedirs(args.folder, exist_ok=True)
    model.save_weights(os.path.join(args.folder, "teacher.weights.h5"))
    with open(os.path.join(args.folder, "teacher.json"), "w") as handle:
        json.dump({"steps": args.steps, "seconds": seconds, "bits_per_byte": bpb,
                   "params": model.count_params(), "backend": keras.backend.backend(),
                   "config": CONFIG}, handle, indent=1)
    print(f"teacher: {args.steps} steps in {seconds:.0f} s, validation {bpb:.3f} bits/byte")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("teacher", "compare"))
    parser.add_argument("--folder", default=os.path.join(HERE, "..", "artifacts", "lm"))
    parser.add_argument("--steps", type=int, default=2000, help="teacher training steps")
    parser.add_argument("--student-steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.stage == "teacher":
        stage_teacher(args)
    else:
        stage_compare(args)


if __name__ == "__main__":
    sys.exit(main())

"""A small byte-level GPT-2 on real text: prune structurally, distill, prune one-shot.

The corpus is the Python standard library's own source (every `.py` file under
`sysconfig.get_paths()["stdlib"]`, read as bytes; every 10th file, sorted by path,
is held out for validation), so it is on every machine and nothing is downloaded.
Tokens are bytes (vocabulary 256); the loss is reported in bits per byte.

Stages (models go to --folder, default artifacts/lm):

    python benchmarks/transformer_lm.py teacher  # trains the dense model, saves teacher.weights.h5
    python benchmarks/transformer_lm.py compare  # prunes it and compares recovery methods
    python benchmarks/transformer_lm.py depth    # removes 1 of 4 blocks: Block Influence vs each
    python benchmarks/transformer_lm.py oneshot  # SparseGPT/Wanda/magnitude, no retraining
    python benchmarks/transformer_lm.py reconstruct  # width pruning: plain vs least-squares re-fit

`compare` prunes half of the feed-forward units and a quarter of the residual width
of every block (`prune_structured(..., units=0.5, hidden=0.25, heads=0)`: GPT-2
derives the head width from hidden_dim / num_heads, so its heads cannot go while it
stays a `GPT2CausalLM`) and gives every student the same number of training steps
on the same batches:
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
UNITS, HIDDEN = 0.5, 0.25  # fractions of feed-forward units and residual width removed


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


def load_teacher(folder):
    model = build(seed=0)
    model.load_weights(os.path.join(folder, "teacher.weights.h5"))
    return model


def optimizer(learning_rate, steps):
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    return keras.optimizers.AdamW(schedule, weight_decay=0.01)


def prune(teacher, importance, calibration):
    from keras_prune.structured import prune_structured

    small, report = prune_structured(teacher, importance=importance, data=calibration,
                                     units=UNITS, heads=0.0, hidden=HIDDEN, verbose=0)
    return small, report


def stage_compare(args):
    from keras_prune.structured import distill

    train, valid = corpus()
    valid_x, valid_y = validation_set(valid)
    teacher = load_teacher(args.folder)
    dense_bpb = bits_per_byte(teacher, valid_x, valid_y)
    calibration, _ = as_inputs(windows(train, 64, np.random.default_rng(999)))
    rows = {"dense": [dense_bpb]}
    pruned = {}
    for importance in ("activation", "l1"):
        small, report = prune(teacher, importance, calibration)
        pruned[importance] = [w.numpy() for w in small.weights]
        rows[f"{importance}, no training"] = [bits_per_byte(small, valid_x, valid_y)]
        params = (report.params_before, report.params_after, type(small).__name__)
    print(f"dense {dense_bpb:.3f} bits/byte; pruned {params[0]:,} -> {params[1]:,} params "
          f"({params[2]})", flush=True)
    small_config = {**CONFIG, "intermediate_dim": int(CONFIG["intermediate_dim"] * (1 - UNITS)),
                    "hidden_dim": int(CONFIG["hidden_dim"] * (1 - HIDDEN))}
    steps = args.student_steps
    for seed in range(args.seeds):
        x, y = as_inputs(windows(train, steps * BATCH, np.random.default_rng(100 + seed)))
        runs = {
            "activation + distillation": ("activation", True),
            "l1 + distillation": ("l1", True),
            "activation + next-byte loss": ("activation", False),
            "scratch (same config) + next-byte loss": (None, False),
        }
        for label, (importance, teach) in runs.items():
            keras.utils.set_random_seed(seed)
            if importance is None:
                student = build(small_config, seed=seed)
            else:
                student = build(small_config, seed=seed)
                for variable, value in zip(student.weights, pruned[importance]):
                    variable.assign(value)
            learning_rate = 1e-3 if importance is None else args.student_lr
            start = time.time()
            if teach:
                distill(student, teacher, x, epochs=1, batch_size=BATCH, verbose=0,
                        temperature=args.temperature,
                        optimizer=optimizer(learning_rate, steps))
            else:
                student.compile(optimizer=optimizer(learning_rate, steps),
                                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                student.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
            bpb = bits_per_byte(student, valid_x, valid_y)
            rows.setdefault(label, []).append(bpb)
            print(f"seed {seed} {label}: {bpb:.3f} bits/byte ({time.time() - start:.0f} s)",
                  flush=True)
    write_results(args, rows, dense_bpb, params)


def write_results(args, rows, dense_bpb, params):
    with open(os.path.join(args.folder, "teacher.json")) as handle:
        teacher = json.load(handle)
    lines = [
        "# Byte-level GPT-2: pruned width, recovered by distillation",
        "",
        f"Teacher: `GPT2CausalLM` {CONFIG}, {teacher['params']:,} params, trained "
        f"{teacher['steps']} steps (batch {BATCH}x{SEQUENCE} bytes) on the Python standard "
        f"library's source; validation (every 10th file, 256 windows): {dense_bpb:.3f} bits/byte.",
        f"Pruned: half the feed-forward units and {HIDDEN:.0%} of the residual width of every "
        f"block -> {params[1]:,} params ({params[1] / params[0]:.2f}x), still a {params[2]}. "
        "(GPT-2 derives the head width from hidden_dim / num_heads, so its heads cannot go "
        "while it stays GPT2CausalLM.)",
        f"Every student: {args.student_steps} steps of batch {BATCH} on the same batches per "
        f"seed; AdamW, cosine decay from {args.student_lr} (pruned) or 1e-3 (scratch); "
        f"distillation: KL at temperature {args.temperature}; "
        f"{args.seeds} seeds. Backend: {keras.backend.backend()}.",
        "",
        "| model | bits/byte (mean) | vs dense | seeds |",
        "|---|---|---|---|",
    ]
    for label, values in rows.items():
        mean = float(np.mean(values))
        lines.append(f"| {label} | {mean:.3f} | {mean / dense_bpb - 1:+.1%} | "
                     f"{', '.join(f'{v:.3f}' for v in values)} |")
    with open(os.path.join(RESULTS, f"transformer_lm{args.tag}.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(RESULTS, f"transformer_lm{args.tag}.json"), "w") as handle:
        json.dump({"rows": rows, "dense": dense_bpb, "params": params[:2],
                   "student_steps": args.student_steps, "seeds": args.seeds}, handle, indent=1)
    print("\n".join(lines))


def stage_depth(args):
    """Removing 1 of the 4 blocks: the one Block Influence picks vs each of the others."""
    from keras_prune.structured import remove_blocks

    train, valid = corpus()
    valid_x, valid_y = validation_set(valid)
    teacher = load_teacher(args.folder)
    calibration, _ = as_inputs(windows(train, 64, np.random.default_rng(999)))
    by_block = {}
    for block in range(CONFIG["num_layers"]):
        shallower, _ = remove_blocks(teacher, blocks=[block])
        by_block[block] = bits_per_byte(shallower, valid_x, valid_y)
    _, report = remove_blocks(teacher, count=1, data=calibration)
    chosen = int(report.blocks[0][0].rsplit("_", 1)[-1])
    result = {"dense": bits_per_byte(teacher, valid_x, valid_y), "by_block": by_block,
              "block_influence_choice": chosen, "block_influence": by_block[chosen],
              "random_mean": float(np.mean(list(by_block.values())))}
    _write_json("transformer_lm_depth.json", result)
    print(result)


def stage_reconstruct(args):
    """Structured pruning without training: plain removal vs least-squares re-fit."""
    from keras_prune.structured import prune_structured

    train, valid = corpus()
    valid_x, valid_y = validation_set(valid)
    teacher = load_teacher(args.folder)
    calibration, _ = as_inputs(windows(train, 64, np.random.default_rng(999)))
    rows = {"dense": bits_per_byte(teacher, valid_x, valid_y)}
    for label, widths in (("units 0.5", {"units": 0.5, "hidden": 0.0}),
                          ("units 0.5 + hidden 0.25", {"units": UNITS, "hidden": HIDDEN})):
        for importance in ("activation", "l1"):
            for reconstruct in (None, calibration):
                small, _ = prune_structured(teacher, importance=importance, data=calibration,
                                            heads=0.0, reconstruct=reconstruct, verbose=0,
                                            **widths)
                key = f"{label}|{importance}|{'re-fit' if reconstruct is not None else 'plain'}"
                rows[key] = bits_per_byte(small, valid_x, valid_y)
                print(key, f"{rows[key]:.3f}", flush=True)
    _write_json("transformer_lm_reconstruct.json", rows)


ONE_SHOT = [("50%", {"sparsity": 0.5}), ("60%", {"sparsity": 0.6}), ("70%", {"sparsity": 0.7}),
            ("80%", {"sparsity": 0.8}), ("2:4", {"sparsity_m_by_n": (2, 4)}),
            ("4:8", {"sparsity_m_by_n": (4, 8)})]
ONE_SHOT_METHODS = {"magnitude": {"method": "magnitude"}, "Wanda": {"method": "wanda"},
                    "SparseGPT": {"method": "sparsegpt"},
                    "SparseGPT + OWL": {"method": "sparsegpt", "layer_sparsity": "owl"}}


def stage_oneshot(args):
    """One-shot pruning of the trained teacher, no retraining, 3 calibration seeds."""
    import keras_prune

    train, valid = corpus()
    valid_x, valid_y = validation_set(valid)
    teacher = load_teacher(args.folder)
    rows = {"dense": bits_per_byte(teacher, valid_x, valid_y)}
    for seed in range(args.seeds):
        calibration, _ = as_inputs(windows(train, 64, np.random.default_rng(500 + seed)))
        for label, pattern in ONE_SHOT:
            for method, options in ONE_SHOT_METHODS.items():
                if "owl" in str(options) and "sparsity_m_by_n" in pattern:
                    continue  # OWL spreads a sparsity; m:n has none to spread
                if method == "magnitude" and seed:
                    continue  # no data involved: the same for every seed
                start = time.time()
                pruned, _ = keras_prune.prune_one_shot(teacher, calibration, verbose=0,
                                                       batch_size=16, **pattern, **options)
                bpb = bits_per_byte(pruned, valid_x, valid_y)
                rows.setdefault(f"{label}|{method}", []).append(bpb)
                print(f"seed {seed} {label} {method}: {bpb:.3f} bits/byte "
                      f"({time.time() - start:.0f} s)", flush=True)
    _write_json("transformer_lm_oneshot.json", rows)


def _write_json(name, data):
    with open(os.path.join(RESULTS, name), "w") as handle:
        json.dump(data, handle, indent=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("teacher", "compare", "depth", "oneshot",
                                          "reconstruct"))
    parser.add_argument("--folder", default=os.path.join(HERE, "..", "artifacts", "lm"))
    parser.add_argument("--steps", type=int, default=2000, help="teacher training steps")
    parser.add_argument("--student-steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--student-lr", type=float, default=3e-4)
    parser.add_argument("--temperature", type=float, default=2.0, help="of the distillation")
    parser.add_argument("--tag", default="", help="suffix of the result files (variants)")
    args = parser.parse_args(argv)
    {"teacher": stage_teacher, "compare": stage_compare, "depth": stage_depth,
     "oneshot": stage_oneshot, "reconstruct": stage_reconstruct}[args.stage](args)


if __name__ == "__main__":
    sys.exit(main())

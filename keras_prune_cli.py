"""The `keras-prune` command's front door: arguments are parsed before Keras loads.

Importing `keras_prune` imports Keras and its backend (TensorFlow takes seconds), so
`--help`, `--version` and argument errors are answered here, and the package is
imported only to run a command (`keras_prune.cli.run`).
"""

import argparse
import importlib.metadata
import os
import sys


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a fraction in [0, 1) (0.8 removes 80%), got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def build_parser():
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="keras-prune", description="Pruning for Keras 3.",
                                     formatter_class=formatter)
    parser.add_argument("--version", action="version",
                        version=f"keras-prune {importlib.metadata.version('keras-prune')}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name, **kwargs):
        return commands.add_parser(name, formatter_class=formatter, **kwargs)

    demo = command("demo", help="prune a digits CNN to 80%% and save artifacts")
    demo.add_argument("--output", default="artifacts/demo", help="folder for the artifacts")
    demo.add_argument("--epochs", type=_positive_int, default=15, help="dense training epochs")
    demo.add_argument("--prune-epochs", type=_positive_int, default=10, help="pruning epochs")
    demo.add_argument("--sparsity", type=_fraction, default=0.8,
                      help="final sparsity, a fraction in [0, 1)")
    demo.add_argument("--smoke", action="store_true", help="tiny run for tests")
    demo.add_argument("--no-export", action="store_true", help="skip the TFLite export step")
    
    report = command("report", help="per-layer sparsity of a .keras file")
    report.add_argument("model", help="path to a .keras file")
    report.add_argument("--all", action="store_true", help="include biases and other weights")
    shrink = command(
        "shrink", help="structured pruning: remove channels of a .keras model, save a smaller one")
    shrink.add_argument("model", help="path to a Functional or Sequential .keras file")
    shrink.add_argument("-o", "--output", required=True, help="the .keras file to write")
    shrink.add_argument("--ratio", type=_fraction, default=None,
                        help="fraction of channels to remove, in [0, 1) (0.5 without a budget)")
    budget = shrink.add_mutually_exclusive_group()
    budget.add_argument("--latency", type=_fraction, help="LiteRT latency budget, a fraction "
                        "of the dense model's (measured here; widths chosen to meet it)")
    budget.add_argument("--latency-ms", type=_positive_float, help="LiteRT latency budget in ms")
    budget.add_argument("--params", type=_positive_float,
                        help="parameter budget: a fraction (0.5) or a count (250000)")
    budget.add_argument("--flops", type=_fraction, help="FLOPs budget, a fraction of the dense")
    shrink.add_argument("--calibration", help=".npz with inputs `x`: widths chosen per layer "
                        "by sensitivity (with a budget), and data-based criteria")
    shrink.add_argument("--threads", type=_positive_int, default=1,
                        help="LiteRT threads for a latency budget")
    shrink.add_argument("--group-costs", choices=["auto", "latency", "params", "flops", "none"],
                        default=None, help="with a budget and --calibration: what a layer "
                        "group's channels are priced by (auto: the budget's own quantity; "
                        "none: one tolerated output change for every group)")
    shrink.add_argument("--importance", default="l1",
                        choices=["l1", "l2", "bn_scale", "random", "activation", "apoz",
                                 "entropy"],
                        help="how channels are ranked; activation, apoz, entropy need --data")
    shrink.add_argument("--data", help=".npz with sample inputs `x` for data-based criteria")
    shrink.add_argument("--round-to", type=_positive_int, default=None,
                        help="keep widths multiples of N")
    shrink.add_argument("--ignore", nargs="*", help="layer names whose width must stay")
    shrink.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    shrink.add_argument("--global-ranking", action="store_true",
                        help="rank channels across layers instead of per layer")
    export = command("export", help="convert a .keras file to a verified .tflite file")
    export.add_argument("model", help="path to a .keras file (pruned or not)")
    export.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    export.add_argument("--quantize", choices=["dynamic", "float16", "int8"], default=None,
                        help="weights (dynamic, float16) or weights and activations (int8); "
                             "default float32")
    export.add_argument("--calibration", help=".npz with calibration inputs `x` (needed for int8)")
    export.add_argument("--calibration-samples", type=_positive_int, default=100,
                        help="how many calibration inputs to use")
    export.add_argument("--int8-io", action="store_true", help="int8 input and output tensors")
    export.add_argument("--sparse", choices=["auto", "on", "off"], default="auto",
                        help="store zeros sparse: auto where smaller and loadable, on, off")
    export.add_argument("--no-verify", action="store_true", help="skip the LiteRT check")
    export.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    strip = command("strip", help="remove pruning wrappers from a .keras file (zeros kept)")
    strip.add_argument("model", help="path to a pruned .keras file")
    strip.add_argument("-o", "--output", required=True, help="the .keras file to write")
    inspect = command("inspect", help="weights, sparsity and ops of a .tflite file "
                      "(a .keras file is converted in memory first)")
    inspect.add_argument("model", help="path to a .tflite or .keras file")
    inspect.add_argument("--keras", help="the .keras file it was converted from, to name "
                         "weights by Keras layer")
    evaluate = command("evaluate", help="accuracy of a .tflite classifier in LiteRT")
    evaluate.add_argument("model", help="path to a .tflite file")
    evaluate.add_argument("--data", required=True, help=".npz with arrays `x` and `y`")
    evaluate.add_argument("--batch-size", type=_positive_int, default=64,
                          help="samples per interpreter call")
    evaluate.add_argument("--keras", help="the .keras file it was converted from: prints its "
                          "accuracy next to LiteRT's")
    benchmark = command("benchmark", help="LiteRT latency of a .tflite file (random inputs)")
    benchmark.add_argument("model", help="path to a .tflite file")
    benchmark.add_argument("--threads", type=_positive_int, default=1, help="interpreter threads")
    benchmark.add_argument("--runs", type=_positive_int, default=200, help="timed invocations")
    benchmark.add_argument("--warmup", type=_positive_int, default=20, help="untimed first runs")
    return parser


def _check_inputs(args):
    """Missing input files are named before Keras loads (which takes seconds)."""
    for flag in ("model", "data", "calibration", "keras"):
        path = getattr(args, flag, None)
        if path and not os.path.isfile(path):
            name = flag if flag == "model" else f"--{flag}"
            raise SystemExit(f"keras-prune {args.command}: {name}: no such file: {path!r}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    _check_inputs(args)
    from keras_prune import cli  # noqa: PLC0415 (Keras loads here, once a command runs)

    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())

"""The `keras-prune` command."""

import argparse
import sys


def _demo(args):
    from keras_prune import demo

    epochs, prune_epochs = (1, 2) if args.smoke else (args.epochs, args.prune_epochs)
    demo.run(args.output, epochs=epochs, prune_epochs=prune_epochs, sparsity=args.sparsity,
             verbose=2 if args.smoke else 1, export=not args.no_export)


def _load_keras(path, command):
    import os

    import keras

    if not os.path.exists(path):
        raise SystemExit(f"keras-prune {command}: no such file: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001
        raise SystemExit(f"keras-prune {command}: cannot load {path} as a Keras model: {error}")


def _report(args):
    import keras_prune

    model = _load_keras(args.model, "report")
    keras_prune.sparsity_report(model, all_weights=args.all, print_fn=print)


def _shrink(args):
    from keras_prune import _io
    from keras_prune.structured import prune_structured

    model = _load_keras(args.model, "shrink")
    data = _load_npz(args.data, "--data", ["x"])["x"] if args.data else None
    smaller, report = prune_structured(model, ratio=args.ratio, importance=args.importance,
                                       data=data, round_to=args.round_to,
                                       ignore=args.ignore or None,
                                       global_ranking=args.global_ranking)
    _io.save_model(smaller, args.output)
    print(report)
    print(f"Saved {args.output}")


_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError)


def _load_npz(path, argument, keys):
    """Arrays `keys` from an .npz file (the first array stands in for a missing "x")."""
    import os

    import numpy as np

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument}: no such file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{argument}: {path} is not a readable .npz file ({error})") from None
    with data:
        arrays = {}
        for key in keys:
            if key in data.files:
                arrays[key] = data[key]
            elif key == "x" and data.files:
                arrays[key] = data[data.files[0]]
            else:
                raise ValueError(
                    f"{argument}: {path} has no array {key!r} (it has {data.files}). Save it with "
                    f"np.savez(path, {', '.join(f'{k}=...' for k in keys)})."
                )
    return arrays


def _export(args):
    from keras_prune import tflite

    calibration = _load_npz(args.calibration, "--calibration", ["x"])["x"] if args.calibration else None
    result = tflite.convert(
        args.model,
        args.output,
        quantize=args.quantize,
        representative_data=calibration,
        num_calibration_samples=args.calibration_samples,
        int8_io=args.int8_io,
        sparse={"auto": "auto", "on": True, "off": False}[args.sparse],
        verify=not args.no_verify,
    )
    print(result)


def _inspect(args):
    from keras_prune import tflite

    print(tflite.inspect(args.model))


def _evaluate(args):
    from keras_prune import tflite

    data = _load_npz(args.data, "--data", ["x", "y"])
    result = tflite.evaluate(args.model, data["x"], data["y"], batch_size=args.batch_size)
    print(f"{args.model}: accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"on {result['samples']} samples")


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-prune", description="Pruning for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="prune a digits CNN to 80%% and save artifacts")
    demo.add_argument("--output", default="artifacts/demo", help="folder for the artifacts")
    demo.add_argument("--epochs", type=int, default=15, help="dense training epochs")
    demo.add_argument("--prune-epochs", type=int, default=10, help="pruning epochs")
    demo.add_argument("--sparsity", type=float, default=0.8, help="final sparsity")
    demo.add_argument("--smoke", action="store_true", help="tiny run for tests")
    demo.add_argument("--no-export", action="store_true", help="skip the TFLite export step")
    demo.set_defaults(func=_demo)
    report = commands.add_parser("report", help="per-layer sparsity of a .keras file")
    report.add_argument("model", help="path to a .keras file")
    report.add_argument("--all", action="store_true", help="include biases and other weights")
    report.set_defaults(func=_report)
    shrink = commands.add_parser(
        "shrink", help="structured pruning: remove channels of a .keras model, save a smaller one")
    shrink.add_argument("model", help="path to a Functional or Sequential .keras file")
    shrink.add_argument("-o", "--output", required=True, help="the .keras file to write")
    shrink.add_argument("--ratio", type=float, default=0.5, help="fraction of channels to remove")
    shrink.add_argument("--importance", default="l1",
                        help="l1, l2, bn_scale, random; activation, apoz, entropy need --data")
    shrink.add_argument("--data", help=".npz with sample inputs `x` for data-based criteria")
    shrink.add_argument("--round-to", type=int, default=None, help="keep widths multiples of N")
    shrink.add_argument("--ignore", nargs="*", help="layer names whose width must stay")
    shrink.add_argument("--global-ranking", action="store_true")
    shrink.set_defaults(func=_shrink)
    export = commands.add_parser("export", help="convert a .keras file to a verified .tflite file")
    export.add_argument("model", help="path to a .keras file (pruned or not)")
    export.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    export.add_argument("--quantize", choices=["dynamic", "float16", "int8"], default=None)
    export.add_argument("--calibration", help=".npz with calibration inputs `x` (needed for int8)")
    export.add_argument("--calibration-samples", type=int, default=100)
    export.add_argument("--int8-io", action="store_true", help="int8 input and output tensors")
    export.add_argument("--sparse", choices=["auto", "on", "off"], default="auto")
    export.add_argument("--no-verify", action="store_true", help="skip the LiteRT check")
    export.set_defaults(func=_export)
    inspect = commands.add_parser("inspect", help="weights, sparsity and ops of a .tflite file")
    inspect.add_argument("model", help="path to a .tflite file")
    inspect.set_defaults(func=_inspect)
    evaluate = commands.add_parser("evaluate", help="accuracy of a .tflite classifier in LiteRT")
    evaluate.add_argument("model", help="path to a .tflite file")
    evaluate.add_argument("--data", required=True, help=".npz with arrays `x` and `y`")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.set_defaults(func=_evaluate)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except _USER_ERRORS as error:
        # A clear one-paragraph message instead of a stack trace.
        raise SystemExit(f"keras-prune {args.command}: {error}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())

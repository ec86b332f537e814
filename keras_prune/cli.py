"""The `keras-prune` command."""

import argparse
import sys


def _demo(args):
    from keras_prune import demo

    epochs, prune_epochs = (1, 2) if args.smoke else (args.epochs, args.prune_epochs)
    demo.run(args.output, epochs=epochs, prune_epochs=prune_epochs, sparsity=args.sparsity,
             verbose=2 if args.smoke else 1)


def _report(args):
    import os

    import keras

    import keras_prune

    if not os.path.exists(args.model):
        raise SystemExit(f"keras-prune report: no such file: {args.model}")
    try:
        model = keras.saving.load_model(args.model, compile=False)
    except Exception as error:  # noqa: BLE001
        raise SystemExit(f"keras-prune report: cannot load {args.model} as a Keras model: {error}")
    keras_prune.sparsity_report(model, all_weights=args.all, print_fn=print)


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-prune", description="Pruning for Keras 3.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="prune a digits CNN to 80%% and save artifacts")
    demo.add_argument("--output", default="artifacts/demo", help="folder for the artifacts")
    demo.add_argument("--epochs", type=int, default=15, help="dense training epochs")
    demo.add_argument("--prune-epochs", type=int, default=10, help="pruning epochs")
    demo.add_argument("--sparsity", type=float, default=0.8, help="final sparsity")
    demo.add_argument("--smoke", action="store_true", help="tiny run for tests")
    demo.set_defaults(func=_demo)
    report = commands.add_parser("report", help="per-layer sparsity of a .keras file")
    report.add_argument("model", help="path to a .keras file")
    report.add_argument("--all", action="store_true", help="include biases and other weights")
    report.set_defaults(func=_report)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

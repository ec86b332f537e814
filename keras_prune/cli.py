"""The `keras-prune` command."""

import os
import tempfile

import numpy as np

from keras_prune import _io, demo, tflite
from keras_prune.layers import collect_wrappers
from keras_prune.quantization.ranges import is_quantization_aware
from keras_prune.report import sparsity_report
from keras_prune.strip import strip_pruning
from keras_prune.structured import prune_structured, prune_to_budget


def _check_output(path, flag, suffix=None):
    """Fails before any long work when `path` cannot be written."""
    if not path:
        raise ValueError(f"{flag}: the output path is empty")
    if os.path.isdir(path):
        raise ValueError(f"{flag}: {path} is a directory; give a file name such as "
                         f"{os.path.join(path, 'model' + (suffix or ''))}")
    if suffix and not path.endswith(suffix):
        raise ValueError(f"{flag}: {path} must end in {suffix}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{flag}: the folder {folder} does not exist")
    try:  # os.access says yes to root even where nothing can be written (/proc, /sys)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".keras-prune-check-"):
            pass
    except OSError as error:
        raise ValueError(f"{flag}: cannot write {path}: the folder {folder} is not writable "
                         f"({error.strerror or error})") from None


def _demo(args):
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ValueError(f"--output: {args.output} exists and is not a folder")
    parent = os.path.dirname(os.path.abspath(args.output))
    if not os.access(parent if os.path.isdir(parent) else ".", os.W_OK):
        raise ValueError(f"--output: {parent} is not writable")
    epochs, prune_epochs = (1, 2) if args.smoke else (args.epochs, args.prune_epochs)
    demo.run(args.output, epochs=epochs, prune_epochs=prune_epochs, sparsity=args.sparsity,
             verbose=2 if args.smoke else 1, export=not args.no_export)


def _load_keras(path, command):
    try:
        return _io.load_keras_file(path, "model")
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"keras-prune {command}: {_in_flags(command, str(error))}") from None


def _report(args):
    model = _load_keras(args.model, "report")
    sparsity_report(model, all_weights=args.all, print_fn=print)


def _strip(args):
    _check_output(args.output, "-o/--output", ".keras")
    model = _load_keras(args.model, "strip")
    if not collect_wrappers(model):
        raise ValueError(f"{args.model} has no pruning wrappers: there is nothing to strip")
    stripped = strip_pruning(model)
    _io.save_model(stripped, args.output)
    sparsity_report(stripped, print_fn=print)
    print(f"Saved {args.output}")


def _shrink(args):
    _check_output(args.output, "-o/--output", ".keras")
    model = _load_keras(args.model, "shrink")
    if is_quantization_aware(model):
        raise ValueError(f"{args.model} is quantization-aware: shrink the float model first, "
                         "then make it quantization-aware (prune_structured -> quantize_model)")
    source = args.calibration or args.data
    flag = "--calibration" if args.calibration else "--data"
    data = _load_npz(source, flag, ["x"])["x"] if source else None
    budget = {name: getattr(args, name) for name in ("latency", "latency_ms", "params", "flops")
              if getattr(args, name) is not None}
    if budget:
        if args.ratio is not None or args.ignore or args.global_ranking:
            raise ValueError("a budget (--latency, --latency-ms, --params, --flops) chooses "
                             "the widths itself: leave out --ratio, --ignore and "
                             "--global-ranking")
        if "params" in budget and budget["params"] >= 1:
            budget["params"] = int(budget["params"])
        if args.group_costs is not None and data is None:
            raise ValueError("--group-costs prices layer groups for widths chosen from data: "
                             "pass --calibration FILE.npz too, or leave it out")
        costs = {"none": None, None: "auto"}.get(args.group_costs, args.group_costs)
        smaller, report = prune_to_budget(
            model, data=data, importance=args.importance,
            round_to=8 if args.round_to is None else args.round_to, threads=args.threads,
            group_costs=costs, verbose=0 if args.quiet else 1, **budget)
    else:
        if args.group_costs is not None:
            raise ValueError("--group-costs applies to a budget (--latency, --latency-ms, "
                             "--params, --flops): pass one, or leave it out")
        smaller, report = prune_structured(
            model, ratio=0.5 if args.ratio is None else args.ratio, importance=args.importance,
            data=data, round_to=args.round_to, ignore=args.ignore or None,
            global_ranking=args.global_ranking, verbose=0 if args.quiet else 1)
    _io.save_model(smaller, args.output)
    print(report)
    print(f"Saved {args.output}")


_USER_ERRORS = (ValueError, TypeError, FileNotFoundError, RuntimeError, ImportError)


def _load_npz(path, argument, keys):
    """Arrays `keys` from an .npz file (the first array stands in for a missing "x")."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument}: no such file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as error:  # noqa: BLE001 (object arrays, corrupt files, ...)
        raise ValueError(
            f"{argument}: {path} is not a readable .npz/.npy file of numeric arrays ({error})"
        ) from None
    if isinstance(data, np.ndarray):  # a .npy file: one array, the inputs
        if keys != ["x"]:
            raise ValueError(f"{argument}: {path} holds one array; save inputs and labels with "
                             f"np.savez(path, {', '.join(f'{k}=...' for k in keys)})")
        return {"x": data}
    with data:
        arrays = {}
        try:
            for key in data.files:
                data[key]  # noqa: B018 (object arrays fail here, without the file's name)
        except ValueError:
            raise ValueError(f"{argument}: {path} holds object arrays; save numeric arrays "
                             "(np.savez(path, x=np.asarray(x, 'float32'), ...))") from None
        for key in keys:
            if key in data.files:
                arrays[key] = data[key]
            elif key == "x" and len(data.files) == 1:  # one array: the inputs, whatever its name
                arrays[key] = data[data.files[0]]
            else:
                raise ValueError(
                    f"{argument}: {path} has no array {key!r} (it has {data.files}). Save it with "
                    f"np.savez(path, {', '.join(f'{k}=...' for k in keys)})."
                )
    return arrays


def _export(args):
    _check_output(args.output, "-o/--output", ".tflite")
    model = args.model
    if args.quantize == "int8" and not args.calibration:
        model = _load_keras(args.model, "export")
        if not is_quantization_aware(model):  # a QAT model carries its own ranges
            raise ValueError("--quantize int8 needs --calibration FILE.npz (about 100 typical "
                             "inputs as array `x`), or use --quantize dynamic (a model "
                             "trained quantization-aware needs no calibration)")
    if args.calibration and args.quantize != "int8":
        raise ValueError("--calibration is only used with --quantize int8 (it calibrates the "
                         "activation ranges); drop it, or add --quantize int8")
    calibration = _load_npz(args.calibration, "--calibration", ["x"])["x"] if args.calibration else None
    result = tflite.convert(
        model,
        args.output,
        quantize=args.quantize,
        representative_data=calibration,
        num_calibration_samples=args.calibration_samples,
        int8_io=args.int8_io,
        sparse={"auto": "auto", "on": True, "off": False}[args.sparse],
        verify=not args.no_verify,
        verbose=0 if args.quiet else 1,
    )
    print(result)


def _inspect(args):
    keras_model = _load_keras(args.keras, "inspect") if args.keras else None
    model = _load_keras(args.model, "inspect") if args.model.endswith(".keras") else args.model
    print(tflite.inspect(model, keras_model=keras_model))


def _benchmark(args):
    if not os.path.isfile(args.model):
        raise FileNotFoundError(f"no such file: {args.model}")
    result = tflite.benchmark(args.model, num_threads=args.threads, runs=args.runs,
                              warmup=args.warmup)
    print(f"{args.model}: {result}")


def _evaluate(args):
    data = _load_npz(args.data, "--data", ["x", "y"])
    classes = tflite.evaluation.class_labels(data["y"])  # checked before any work
    keras_model = _load_keras(args.keras, "evaluate") if args.keras else None
    result = tflite.evaluate(args.model, data["x"], data["y"], batch_size=args.batch_size)
    print(f"{args.model}: LiteRT accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} "
          f"on {result['samples']} samples")
    if keras_model is not None:
        outputs = keras_model.predict(data["x"], batch_size=args.batch_size, verbose=0)
        accuracy = float(np.mean(np.argmax(outputs, -1) == classes))
        agreement = float(np.mean(np.argmax(outputs, -1) == result["predictions"].argmax(-1)))
        print(f"{args.keras}: Keras accuracy {accuracy:.4f}; the two agree on "
              f"{agreement:.1%} of the samples")


# The Python API's argument names in messages, as the flags a CLI user typed.
_FLAGS = {
    "export": {"Argument `representative_data`": "--calibration",
               "`representative_data`": "--calibration",
               "`num_calibration_samples`": "--calibration-samples",
               "keras_prune.strip_pruning(model)": "keras-prune strip"},
    "evaluate": {"Argument `x`": "--data (array x)", "Argument `y`": "--data: array `y`",
                 "Arguments `x` and `y`": "--data arrays x and y"},
    "shrink": {"(e.g. data=x_train[:256]), or (x, y) for 'taylor'": "(an .npz with array x, "
               "about 256 training inputs)",
               "e.g. data=x_train[:256]": "as an .npz with array x",
               "Argument `data`": "--data", "`data`": "--data", "Argument `ratio`": "--ratio",
               "Argument `latency_ms`": "--latency-ms", "Argument `latency`": "--latency",
               "Argument `params`": "--params", "Argument `flops`": "--flops",
               "Pass exactly one budget": "Pass one budget flag",
               "keras_prune.strip_pruning(model)": "keras-prune strip"},
}


def _in_flags(command, message):
    for api, flag in _FLAGS.get(command, {}).items():
        message = message.replace(api, flag)
    return message.replace("Argument `model`: ", "")  # the file named first on the line


_COMMANDS = {"demo": _demo, "report": _report, "shrink": _shrink, "export": _export,
             "strip": _strip, "inspect": _inspect, "evaluate": _evaluate,
             "benchmark": _benchmark}


def run(args):
    """Runs the parsed command; user errors become one-line messages, not tracebacks."""
    try:
        _COMMANDS[args.command](args)
    except _USER_ERRORS as error:
        raise SystemExit(f"keras-prune {args.command}: {_in_flags(args.command, str(error))}") from None
    return 0


"""Latency measured on another device (a phone over adb) with LiteRT's `benchmark_model`.

`AdbDevice` is a `device=` for `keras_prune.structured.prune_to_budget`: it pushes each
.tflite file, runs LiteRT's benchmark tool on the device and reads the average inference
time from its output. docs/tflite.md has the set-up (where to get `benchmark_model`).
"""

import hashlib
import os
import re
import subprocess
import tempfile

_AVERAGE = re.compile(r"Inference \(avg\):\s*([0-9.eE+]+)")
_AVERAGE_OLD = re.compile(r"count=\d+ first=\d+ curr=\d+ min=\d+ max=\d+ avg=([0-9.eE+]+)")


def parse_benchmark_output(text):
    """The average inference time (microseconds) in the output of LiteRT's benchmark_model.

    Reads the summary line `Inference timings in us: Init: ..., Inference (avg): 1234.5`
    (older builds print `count=50 first=... avg=1234.5` for the timed runs instead).

    Raises:
        ValueError: when the text holds no inference timing (the tool failed: its
            output is quoted).
    """
    match = _AVERAGE.search(text)
    if match is None:
        found = _AVERAGE_OLD.findall(text)
        if not found:
            tail = "\n".join(text.strip().splitlines()[-8:])
            raise ValueError("The benchmark output holds no inference timing ('Inference "
                             f"(avg): ...'); did benchmark_model fail? Its last lines:\n{tail}")
        return float(found[-1])
    return float(match.group(1))


class AdbDevice:
    """Times .tflite files on an Android device with LiteRT's `benchmark_model` over adb.

    Example:

    ```python
    phone = keras_prune.tflite.AdbDevice(threads=4)
    small, report = keras_prune.structured.prune_to_budget(model, latency=0.6, device=phone)
    ```

    Args:
        benchmark: path of the benchmark_model binary on the device.
        folder: device folder the files are pushed to.
        threads: `--num_threads`; runs: `--num_runs`; warmup: `--warmup_runs`.
        adb: the adb command (with `-s SERIAL` to pick a device).
        runner: runs one command (a list of arguments) and returns its standard output;
            the default runs it with subprocess. Tests stand a local runtime in for it.
    """

    def __init__(self, benchmark="/data/local/tmp/benchmark_model", folder="/data/local/tmp",
                 threads=1, runs=50, warmup=5, adb=("adb",), runner=None):
        self.benchmark, self.folder = benchmark, folder
        self.threads, self.runs, self.warmup = int(threads), int(runs), int(warmup)
        self.adb = [adb] if isinstance(adb, str) else list(adb)
        self.runner = runner or _run

    def __call__(self, files):
        return [self.time(content) for content in files]

    def time(self, content):
        """Average latency (microseconds) of one file's bytes on the device."""
        name = f"keras_prune_{hashlib.sha1(content).hexdigest()[:12]}.tflite"
        remote = f"{self.folder.rstrip('/')}/{name}"
        with tempfile.TemporaryDirectory() as local_folder:
            local = os.path.join(local_folder, name)
            with open(local, "wb") as handle:
                handle.write(content)
            self.runner([*self.adb, "push", local, remote])
        output = self.runner([*self.adb, "shell", self.benchmark, f"--graph={remote}",
                              f"--num_threads={self.threads}", f"--num_runs={self.runs}",
                              f"--warmup_runs={self.warmup}"])
        self.runner([*self.adb, "shell", "rm", "-f", remote])
        return parse_benchmark_output(output)


def _run(arguments):
    try:
        done = subprocess.run(arguments, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"`{arguments[0]}` was not found: install Android's platform tools (adb) and "
            "connect the device, or pass device=None to measure on this machine.") from None
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(arguments)}` failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout + done.stderr

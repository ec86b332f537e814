"""MultiWorkerMirroredStrategy: two worker processes on 127.0.0.1 run examples/multi_worker.py.

They must reach the masks, step and sparsity of one worker, and so must a cluster whose
worker is killed mid-schedule and restarted from the last checkpoint. Only the chief
writes. Every process is stopped at the end, whatever happens.
"""

import json
import os
import runpy
import signal
import sys

import keras
import numpy as np
import pytest
import subprocesses

if keras.backend.backend() != "tensorflow":
    pytest.skip("MultiWorkerMirroredStrategy is TensorFlow-only", allow_module_level=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "multi_worker.py")
TIMEOUT = 120  # seconds for one run of the cluster


def _start_cluster(output, scratch, extra_args=()):
    """Starts two workers; `extra_args[i]` are worker i's extra arguments."""
    hosts = [f"127.0.0.1:{port}" for port in subprocesses.free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, KERAS_BACKEND="tensorflow", TMPDIR=str(scratch),
                   TF_CONFIG=json.dumps({"cluster": {"worker": hosts},
                                         "task": {"type": "worker", "index": index}}))
        args = list(extra_args[index]) if extra_args else []
        processes.append(subprocesses.start(
            [sys.executable, SCRIPT, "--output", str(output), *args], env))
    return processes


def _run_cluster(output, scratch):
    processes = _start_cluster(output, scratch)
    logs = subprocesses.outputs(processes, TIMEOUT)
    for process, log in zip(processes, logs):
        assert process.returncode == 0, log[-3000:]
    return logs


def _load(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _assert_same_run(expected, actual):
    assert int(actual["step"]) == int(expected["step"])
    assert float(actual["sparsity"]) == pytest.approx(float(expected["sparsity"]))
    masks = [k for k in expected if k.startswith("mask_")]
    assert masks
    for key in masks:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
    for key in expected:
        if key.startswith("weight_") and expected[key].dtype.kind == "f":
            np.testing.assert_allclose(actual[key], expected[key], atol=1e-5, err_msg=key)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    output = tmp_path_factory.mktemp("one_worker")
    runpy.run_path(SCRIPT, run_name="multi_worker").get("main")(["--output", str(output)])
    result = _load(output / "masks.npz")
    assert int(result["step"]) == 40
    assert float(result["sparsity"]) == pytest.approx(0.8, abs=0.01)
    return result


def test_two_workers_reach_the_masks_of_one(one_worker, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    logs = _run_cluster(tmp_path / "run", scratch)
    assert all("step 40, sparsity 0.800" in log for log in logs), logs[0][-2000:]
    _assert_same_run(one_worker, _load(tmp_path / "run" / "masks.npz"))
    # Only the chief wrote to the output; worker 1 removed its scratch checkpoints.
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoints", "masks.npz"]
    assert os.listdir(scratch) == []


def test_a_killed_cluster_restarts_from_its_checkpoint(one_worker, tmp_path):
    output, scratch = tmp_path / "run", tmp_path / "tmp"
    scratch.mkdir()
    # Worker 1 dies at step 17, between the mask updates of steps 15 and 20 and after
    # the checkpoint of step 10; the chief then waits on it, and is stopped too (a
    # cluster manager restarts the whole job).
    processes = _start_cluster(output, scratch, [[], ["--stop-after", "17"]])
    try:
        processes[1].wait(timeout=TIMEOUT)
        assert processes[1].returncode == -signal.SIGKILL
    finally:
        subprocesses.stop(processes)
    checkpoints = sorted(os.listdir(output / "checkpoints"))
    assert "ckpt-10.index" in checkpoints
    assert not any(name.startswith("ckpt-20") for name in checkpoints)
    assert not (output / "masks.npz").exists()

    logs = _run_cluster(output, scratch)
    assert all("step 40, sparsity 0.800" in log for log in logs), logs[0][-2000:]
    _assert_same_run(one_worker, _load(output / "masks.npz"))
    assert not [n for n in os.listdir(output) if ".tmp" in n]

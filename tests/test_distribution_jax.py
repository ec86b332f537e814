"""keras.distribution on JAX: DataParallel and ModelParallel give the masks of one device,
over 2 virtual CPU devices in one process and over 2 processes joined with
`keras.distribution.initialize`; a mask is sharded like the kernel it covers, and a
sharded kernel is ranked without gathering it. The runs are in jax_processes_worker.py."""

import json
import os
import sys

import pytest
import subprocesses

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_processes_worker.py")
TIMEOUT = 240


def _run(commands, devices_per_process):
    """Runs the worker commands at once; their parsed RESULT lines. Every process is
    stopped at the end, with anything it started, whatever happens."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}")
    logs = subprocesses.outputs(
        [subprocesses.start([sys.executable, WORKER, *c], env) for c in commands], TIMEOUT)
    results = []
    for log in logs:
        lines = [line for line in log.splitlines() if line.startswith("RESULT ")]
        assert lines, log[-3000:]
        results.append(json.loads(lines[0][len("RESULT "):]))
    return results


def _assert_same_training(run, one, name):
    assert run["masks"] == one["masks"], name
    assert run["sparsity"] == pytest.approx(one["sparsity"]), name
    for a, b in zip(run["weights"], one["weights"], strict=True):
        assert max(abs(x - y) for x, y in zip(_flat(a), _flat(b))) < 1e-5, name


@pytest.fixture(scope="module")
def one_process():
    """One process with two virtual devices: the one-device reference and both layouts."""
    (result,) = _run([["0", "1", "-"]], devices_per_process=2)
    assert result["devices"] == 2
    assert result["one"]["sparsity"] == pytest.approx(0.7, abs=0.01)
    return result


def test_two_devices_in_one_process_give_the_masks_of_one(one_process):
    for name in ("data_parallel", "model_parallel"):
        _assert_same_training(one_process[name], one_process["one"], name)
    # The LayoutMap shards the kernel over "model"; its mask and the stripped kernel follow.
    kernel, mask, stripped = one_process["model_parallel"]["specs"]
    assert "model" in kernel and mask == kernel == stripped
    # Ranking a sharded kernel all-reduces scalar counts; it never gathers the kernel.
    ranking = one_process["ranking"]
    assert ranking["same_threshold"] and ranking["same_mask"]
    assert "model" in ranking["mask_spec"]
    assert ranking["collectives"] and all(kind == "all-reduce" and shape == "s32[]"
                                          for shape, kind in ranking["collectives"])


def test_two_processes_give_the_masks_of_one(one_process):
    address = f"127.0.0.1:{subprocesses.free_ports(1)[0]}"
    results = _run([[str(i), "2", address] for i in range(2)], devices_per_process=1)
    for result in results:
        assert result["devices"] == 2  # one per process, seen by both
        for name in ("data_parallel", "model_parallel"):
            _assert_same_training(result[name], one_process["one"], name)
        # The hidden kernel, its mask and the stripped kernel stay split over processes.
        assert all("model" in spec for spec in result["model_parallel"]["specs"])


def _flat(values):
    if isinstance(values, list):
        return [x for v in values for x in _flat(v)]
    return [values]

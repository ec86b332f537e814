"""The Colab notebooks run top to bottom (smoke setting), with outputs stripped in git."""

import os

import keras
import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the notebooks export TFLite in-process")

FOLDER = os.path.join(os.path.dirname(__file__), "..", "examples", "notebooks")
NOTEBOOKS = ["01_quickstart.ipynb", "02_tflite_for_android.ipynb",
             "03_structured_pruning.ipynb", "04_custom_layers_and_schedules.ipynb",
             "05_lottery_and_egp.ipynb"]


def test_every_notebook_is_listed():
    assert sorted(n for n in os.listdir(FOLDER) if n.endswith(".ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_colab_ready_and_stripped(name):
    notebook = nbformat.read(os.path.join(FOLDER, name), as_version=4)
    first_markdown, install = notebook.cells[0], notebook.cells[1]
    assert "Colab" in first_markdown.source and "wheel" in first_markdown.source
    assert "pip" in install.source and "keras-prune[" in install.source
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_PRUNE_SMOKE", "1")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend shows plots
    notebook = nbformat.read(os.path.join(FOLDER, name), as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "stream" for o in outputs)  # it printed its results
    if name in ("01_quickstart.ipynb", "04_custom_layers_and_schedules.ipynb",
                "05_lottery_and_egp.ipynb"):  # they plot
        assert any("image/png" in o.get("data", {}) for o in outputs)


def _run_install_cell(monkeypatch, tensorflow_installed, pip_ok, files=()):
    """Executes notebook 01's install cell with pip and the file system faked."""
    import fnmatch
    import glob
    import importlib.util
    import subprocess
    import types

    notebook = nbformat.read(os.path.join(FOLDER, NOTEBOOKS[0]), as_version=4)
    calls = []
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        if name == "keras_prune":
            return None
        if name == "tensorflow":
            return real_find_spec(name) if tensorflow_installed else None
        return real_find_spec(name, *args)

    def run(command, **kwargs):
        calls.append(command)
        return types.SimpleNamespace(returncode=0 if pip_ok else 1, stderr="pip: no such package")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(glob, "glob", lambda pattern: fnmatch.filter(files, pattern))
    exec(notebook.cells[1].source, {})
    return calls


def test_install_cell_keeps_colabs_tensorflow_and_prefers_an_uploaded_wheel(monkeypatch):
    wheel = "keras_prune-0.1.0-py3-none-any.whl"
    (command,) = _run_install_cell(monkeypatch, True, True, files=[wheel])
    assert command[-1] == f"{wheel}[litert,plot]"  # no tensorflow-cpu over Colab's tensorflow
    (command,) = _run_install_cell(monkeypatch, False, True)
    assert command[-1] == "keras-prune[tensorflow,litert,plot]"


def test_install_cell_failure_says_to_upload_the_wheel(monkeypatch):
    with pytest.raises(RuntimeError, match="Upload keras_prune-<version>-py3-none-any.whl"):
        _run_install_cell(monkeypatch, True, False)

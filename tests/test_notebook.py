"""`notebooks/quickstart.ipynb`: committed without outputs, and runs top to bottom headless."""

from __future__ import annotations

import os
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "quickstart.ipynb"
TABLE_ROWS = ("audiosr MagnitudePhaseNetwork (model)", "audiosr shipped model", "kaiser_fast", "kaiser_best",
              "soxr_vhq (model input)", "linear")


def read_notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=nbformat.NO_CONVERT)


def this_python_kernel() -> KernelManager:
    """A ``python3`` kernel running this interpreter, i.e. the one audiosr is installed in.

    Only ipykernel's built-in kernelspec is consulted: it launches ``sys.executable``. A
    ``python3`` kernelspec installed elsewhere (``~/.local/share/jupyter``,
    ``/usr/share/jupyter``) could start another Python without audiosr.
    """
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    assert manager.kernel_spec.argv[0] == sys.executable
    return manager


def test_committed_without_outputs():
    notebook = read_notebook()
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"cell {cell.get('id')} of {NOTEBOOK.name} was saved with outputs; "
            "clear all outputs before committing"
        )
    assert notebook.metadata.kernelspec.name == "python3"
    # Parameters come from the environment, so the test (and papermill) can set them.
    parameters = next(cell for cell in code if "parameters" in cell.metadata.get("tags", []))
    assert "AUDIOSR_CHECKPOINT" in parameters.source and "AUDIOSR_NOTEBOOK_STEPS" in parameters.source


@pytest.mark.slow
def test_runs_top_to_bottom(tmp_path):
    notebook = read_notebook()
    workdir = tmp_path / "work"
    (tmp_path / "tmp").mkdir()
    workdir.mkdir()
    env = dict(os.environ)
    env.pop("AUDIOSR_CHECKPOINT", None)  # train in the notebook, whatever the caller's shell says
    env.update({
        "AUDIOSR_NOTEBOOK_STEPS": "4",
        "AUDIOSR_CACHE": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path / "tmp"),  # the notebook's temporary checkpoint directory
    })
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", km=this_python_kernel(),
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)  # a failing cell raises CellExecutionError with its traceback

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    data = [output.get("data", {}) for output in outputs]
    assert sum("image/png" in d for d in data) >= 2  # waveforms and spectrograms
    assert any("<audio" in d.get("text/html", "") for d in data)
    tables = [d["text/markdown"] for d in data if "text/markdown" in d]
    assert tables and all(f"| {row} " in tables[0] for row in TABLE_ROWS)
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "validation after 4 steps: LSD" in text
    assert not any(workdir.iterdir())  # the notebook writes nothing where it runs

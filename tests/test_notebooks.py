"""The notebooks: each runs top to bottom in a fresh kernel with tiny budgets, and each is
stored with its outputs stripped.

Executing them is the ``notebooks`` tier (``python -m pytest -m notebooks``, a CI step
of its own): every notebook reads ``JAXRL_NOTEBOOK_SMOKE=1`` to shrink its budgets and
writes its files under ``JAXRL_NOTEBOOK_OUT``. The kernel is this interpreter's
(``sys.executable``), whatever ``python3`` kernelspec the machine has, and the first
cell checks that. The stripped-outputs check is fast and runs in the default tier.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = (
    "01_quickstart.ipynb",
    "02_sweeps.ipynb",
    "03_custom_environment.ipynb",
    "04_tabular_and_bandits.ipynb",
    "05_inventory_and_recommendation.ipynb",
    "06_brax_locomotion.ipynb",
)


def test_notebooks_exist_and_are_stored_without_outputs():
    present = sorted(path.name for path in NOTEBOOKS.glob("*.ipynb"))
    assert set(EXPECTED) <= set(present), f"missing: {sorted(set(EXPECTED) - set(present))}"
    for name in present:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        source = "\n".join(cell.source for cell in nb.cells)
        assert "JAXRL_NOTEBOOK_SMOKE" in source and "JAXRL_NOTEBOOK_OUT" in source, name
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            where = f"{name}, cell {index}: strip outputs before committing"
            assert cell.outputs == [], where
            assert cell.execution_count is None, where


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
    """A directory with a ``python3`` kernelspec that runs ``sys.executable``; put first
    on ``JUPYTER_PATH`` it wins over any other ``python3`` kernelspec."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(kernel_name="python3", prefix=str(prefix))
    spec = json.loads((prefix / "share/jupyter/kernels/python3/kernel.json").read_text())
    assert spec["argv"][0] == sys.executable, spec["argv"]
    return prefix / "share" / "jupyter"


@pytest.mark.notebooks
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs(name, tmp_path, monkeypatch, jupyter_path):
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_path))
    monkeypatch.setenv("JAXRL_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("JAXRL_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    probe = nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)")
    nb.cells.insert(0, probe)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    assert nb.cells[0].outputs[0]["text"].strip() == sys.prefix, "the kernel runs another Python"

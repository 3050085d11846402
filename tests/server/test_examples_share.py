"""The examples repository shipped in share/examples: valid notebooks that run, right layout."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .test_examples_engine import make_sync

SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / "share" / "examples"
NOTEBOOKS = sorted(SHARED_EXAMPLES.rglob("*.ipynb"))


def test_every_category_has_a_readme_and_a_notebook():
    categories = sorted(p.name for p in SHARED_EXAMPLES.iterdir() if p.is_dir())
    assert categories == ["common", "ml-cpu", "ml-gpu"]
    for category in categories:
        assert (SHARED_EXAMPLES / category / "README.md").is_file()
        assert list((SHARED_EXAMPLES / category).glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_valid_and_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert not any(cell.get("outputs") for cell in notebook.cells), "ship without outputs"
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=60, kernel_name="python3", resources=resources).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []


@pytest.mark.parametrize(
    ("image", "categories"),
    [("tk-jupyter-ml-gpu", ["common", "ml-gpu"]), ("tk-jupyter-ml-cpu", ["common", "ml-cpu"])],
)
def test_shipped_examples_sync_for_an_image(tmp_path, image, categories):
    sync = make_sync(tmp_path, source_dir=str(SHARED_EXAMPLES), image_name=image)
    assert sync.list_examples()["categories"] == categories
    results = sync.copy_all()["results"]
    assert results and {r["action"] for r in results} == {"copied"}

"""The examples repository shipped in share/examples: valid notebooks that run, right layout."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .test_examples_engine import make_sync, statuses

REPO = Path(__file__).resolve().parents[2]
SHARED_EXAMPLES = REPO / "share" / "examples"
NOTEBOOKS = sorted(SHARED_EXAMPLES.rglob("*.ipynb"))
# The panel's badge texts are the words users see; everything shipped uses those.
PANEL_STATUSES = REPO / "labextension" / "src" / "examples" / "tree.ts"
API_STATUS_VALUES = ["update-available", "modified", "unchanged", "conflict"]


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


def shipped_text() -> dict[str, str]:
    texts = {p.name: p.read_text() for p in SHARED_EXAMPLES.rglob("*.md")}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        texts[path.name] = "\n".join(cell.source for cell in notebook.cells)
    return texts


def test_shipped_examples_name_statuses_with_the_panels_badges():
    badges = set(re.findall(r"label: trans\.__\('([^']+)'\)", PANEL_STATUSES.read_text()))
    assert {"New", "Up to date", "Update available", "Edited"} <= badges
    mentioned = set()
    for name, text in shipped_text().items():
        for value in API_STATUS_VALUES:
            assert f"`{value}`" not in text, f"{name} uses the API's word {value!r}"
        mentioned |= {m for m in re.findall(r"\*\*([^*]+)\*\*", text) if m in badges}
    assert {"Update available", "Edited"} <= mentioned


def test_a_shipped_notebook_run_by_a_real_kernel_stays_updatable(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(SHARED_EXAMPLES, source)
    sync = make_sync(tmp_path, image_name="tk-jupyter-ml-cpu")
    sync.copy_all()
    item_id = "common/hello-jupyter.ipynb"
    copy = tmp_path / "home" / "examples" / "tk-jupyter-ml-cpu" / item_id
    # Run it in a real kernel and save it as JupyterLab would: outputs, counts, kernel metadata
    notebook = nbformat.read(copy, as_version=4)
    resources = {"metadata": {"path": str(copy.parent)}}
    NotebookClient(notebook, timeout=60, kernel_name="python3", resources=resources).execute()
    assert any(cell.get("outputs") for cell in notebook.cells)
    nbformat.write(notebook, copy)
    run = copy.read_bytes()

    assert statuses(sync)[item_id] == "unchanged"

    original = nbformat.read(source / item_id, as_version=4)
    original.cells.append(nbformat.v4.new_markdown_cell("A new closing remark."))
    nbformat.write(original, source / item_id)
    assert statuses(sync)[item_id] == "update-available"
    result = {r["id"]: r for r in sync.copy_all()["results"]}[item_id]
    assert result["action"] == "updated"
    assert (tmp_path / "home" / result["backup"]).read_bytes() == run
    assert "A new closing remark." in copy.read_text()

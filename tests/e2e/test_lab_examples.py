"""The Examples panel in a real JupyterLab + Chromium, against the real examples sync.

Given an examples repository with `common/`, `ml-gpu/` and `ml-cpu/` folders and a server for
the image `tk-jupyter-ml-gpu` (no start-up sync, so everything starts as new), the panel must
list the examples that fit the image, copy one, open it, ask before a reset and keep the user's
version, and copy all new examples in batches. A copy opened and run in a real kernel and
autosaved stays updatable, and an update keeps the user's run beside it; a copy whose cell the
user edits is Edited. A server whose examples are missing, or whose start-up sync failed, must
say so.
"""

from __future__ import annotations

import json
import math
import shutil
import time

import pytest
from playwright.sync_api import expect

from tests.support.lab_server import LabServer, open_lab, open_sidebar_panel, widen_left_sidebar

PANEL = "jp-tk-examples-panel"
IMAGE = "tk-jupyter-ml-gpu"
BATCH_SIZE = 2
SIDEBAR_WIDTH = 420
# JupyterLab autosaves every 120 s by default; the same autosave, sooner, keeps the tests short.
AUTOSAVE_SECONDS = 1
SOURCE_FILES = [
    "common/intro.ipynb",
    "common/plotting.ipynb",
    "common/llm/chat.ipynb",
    "common/llm/rag.ipynb",
    "ml-gpu/train.ipynb",
    "ml-gpu/utils.py",
    "ml-gpu/data/prepare.ipynb",
    "ml-cpu/sklearn.ipynb",  # another image's folder: never listed here
]


def notebook(title: str, *code: str) -> str:
    """A notebook as an examples repository ships it: no outputs, no language_info."""
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}"]}]
    cells += [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c}
        for c in code
    ]
    return json.dumps(
        {
            "cells": cells,
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        },
        indent=1,
    )


def write_examples(source):
    for relative in SOURCE_FILES:
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = notebook(path.stem) if path.suffix == ".ipynb" else f"# {path.stem}\n"
        path.write_text(text)


@pytest.fixture(scope="module")
def examples_lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab-examples")
    source = base / "examples-repo"
    write_examples(source)
    destination = base / "root" / "examples"
    args = [
        f"--ExamplesSync.source_dir={source}",
        f"--ExamplesSync.destination_dir={destination}",
        f"--ExamplesSync.image_name={IMAGE}",
        "--ExamplesSync.sync_on_start=False",
    ]
    settings = {
        "jupyter-tk:examples": {"copyBatchSize": BATCH_SIZE},
        "@jupyterlab/docmanager-extension:plugin": {"autosaveInterval": AUTOSAVE_SECONDS},
    }
    with LabServer(base, args=args, user_settings=settings) as server:
        server.source = source
        server.copies = destination / IMAGE
        yield server


@pytest.fixture(scope="module")
def broken_lab(tmp_path_factory):
    """Examples present, but the destination is a file: the start-up sync fails."""
    base = tmp_path_factory.mktemp("lab-examples-broken")
    source = base / "examples-repo"
    write_examples(source)
    destination = base / "root" / "examples"
    destination.parent.mkdir(parents=True)
    destination.write_text("not a folder")
    args = [
        f"--ExamplesSync.source_dir={source}",
        f"--ExamplesSync.destination_dir={destination}",
        f"--ExamplesSync.image_name={IMAGE}",
    ]
    with LabServer(base, args=args) as server:
        server.source = source
        yield server


def row(panel, example_id: str):
    return panel.locator(f'li.jp-tk-examples-file[data-id="{example_id}"]')


def statuses(server) -> dict[str, str]:
    return {item["id"]: item["status"] for item in server.api("jupyter-tk/api/examples")["items"]}


def wait_for(page, condition, what: str, timeout: float = 60):
    """Poll ``condition`` (a test-side check, e.g. a file on disk) until it is truthy."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(250)
    return value


def saved_notebook(path):
    try:
        return json.loads(path.read_text())
    except ValueError:  # caught between JupyterLab's write and rename
        return None


def cell_sources(path) -> list[str]:
    return ["".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]]


def open_copy(page, panel, example_id: str):
    """Open a copy from the panel; return its notebook (the one now shown in the main area)."""
    row(panel, example_id).locator('button[data-action="open"]').click()
    name = example_id.rsplit("/", 1)[-1]
    expect(page.locator(f'.lm-DockPanel-tabBar li[title*="{name}"]')).to_have_count(1)
    notebook_panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(notebook_panel.locator(".jp-Notebook")).to_be_visible()
    # As a user waits for the status bar to say the kernel is ready before running anything
    kernel_status = page.locator("#jp-main-statusbar").get_by_text("Python 3 (ipykernel) | Idle")
    expect(kernel_status).to_be_visible(timeout=60_000)
    notebook_panel.locator(".jp-Cell").first.click()
    return notebook_panel


def run_all_cells(page):
    """Run > Run All Cells, from the menu bar."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def test_panel_lists_examples_copies_one_and_opens_it(examples_lab, page, screenshot):
    open_lab(page, examples_lab)
    panel = open_sidebar_panel(page, PANEL)

    categories = panel.locator(".jp-tk-examples-category > .jp-tk-examples-folder-row")
    expect(categories.locator(".jp-tk-examples-name")).to_have_text(["common", "ml-gpu"])
    intro = row(panel, "common/intro.ipynb")
    expect(intro.locator(".jp-tk-badge")).to_have_text("New")
    expect(intro.locator(".jp-tk-badge")).to_have_attribute(
        "title", "Not copied yet: copy it to get your own editable version."
    )
    expect(panel.locator('li[data-id^="ml-cpu/"]')).to_have_count(0)

    # Subfolders start closed and open on click.
    expect(row(panel, "common/llm/chat.ipynb")).to_have_count(0)
    panel.locator('li[data-key="common/llm"] > .jp-tk-examples-folder-row').click()
    expect(row(panel, "common/llm/chat.ipynb")).to_be_visible()

    intro.locator('button[data-action="copy"]').click()

    expect(intro.locator(".jp-tk-badge")).to_have_text("Up to date")
    copy = examples_lab.copies / "common" / "intro.ipynb"
    assert copy.read_bytes() == (examples_lab.source / "common" / "intro.ipynb").read_bytes()
    assert statuses(examples_lab)["common/intro.ipynb"] == "unchanged"

    intro.locator('button[data-action="open"]').click()

    tab = page.locator(".jp-MainAreaWidget .jp-Notebook")
    expect(tab).to_be_visible()
    expect(page.locator('.lm-DockPanel-tabBar li[title*="intro.ipynb"]')).to_have_count(1)
    expect(page.locator(".jp-MarkdownOutput h1").first).to_contain_text("intro")
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    panel.locator(".jp-tk-examples-legend summary").click()
    screenshot(page, "lab-examples-panel")


def test_reset_asks_first_then_keeps_the_users_version_beside_the_original(
    examples_lab, page, screenshot
):
    example = "ml-gpu/train.ipynb"
    examples_lab.api("jupyter-tk/api/examples/copy", method="POST", body={"ids": [example]})
    copy = examples_lab.copies / "ml-gpu" / "train.ipynb"
    edited = notebook("my own training loop")
    copy.write_text(edited)

    open_lab(page, examples_lab)
    panel = open_sidebar_panel(page, PANEL)
    train = row(panel, example)
    expect(train.locator(".jp-tk-badge")).to_have_text("Edited")
    expect(train.locator('button[data-action="copy"]')).to_have_count(0)

    train.locator('button[data-action="reset"]').click()
    dialog = page.locator(".jp-Dialog")
    expect(dialog).to_contain_text("Reset train.ipynb to the original?")
    expect(dialog).to_contain_text("Your version is kept beside it as train.mine-")
    screenshot(page, "lab-examples-reset-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert copy.read_text() == edited, "cancel must leave the user's copy alone"
    expect(train.locator(".jp-tk-badge")).to_have_text("Edited")

    train.locator('button[data-action="reset"]').click()
    dialog.get_by_role("button", name="Reset to original").click()

    expect(train.locator(".jp-tk-badge")).to_have_text("Up to date")
    assert copy.read_bytes() == (examples_lab.source / example).read_bytes()
    kept = list(copy.parent.glob("train.mine-*.ipynb"))
    assert [path.read_text() for path in kept] == [edited]
    expect(panel.locator(".jp-tk-backups")).to_contain_text(kept[0].name)


def test_copy_all_new_copies_in_batches_and_leaves_edits_alone(examples_lab, page):
    before = statuses(examples_lab)
    new = sorted(example for example, status in before.items() if status == "new")
    assert len(new) > BATCH_SIZE, "the tree must hold more new examples than one batch"
    copy_bodies = []
    page.on(
        "request",
        lambda request: (
            copy_bodies.append(request.post_data_json)
            if request.method == "POST" and "/jupyter-tk/api/examples/copy" in request.url
            else None
        ),
    )

    open_lab(page, examples_lab)
    panel = open_sidebar_panel(page, PANEL)
    button = panel.locator(".jp-tk-copy-all")
    expect(button).to_have_text(f"Copy all new ({len(new)})")
    button.click()

    expect(button).to_have_text("Copy all new (0)")
    expect(button).to_be_disabled()
    after = statuses(examples_lab)
    assert {example: after[example] for example in new} == dict.fromkeys(new, "unchanged")
    assert len(copy_bodies) == math.ceil(len(new) / BATCH_SIZE)
    assert sorted(i for body in copy_bodies for i in body["ids"]) == new
    assert all(len(body["ids"]) <= BATCH_SIZE for body in copy_bodies)
    # Examples that were not new are untouched.
    assert {e: s for e, s in after.items() if e not in new} == {
        e: s for e, s in before.items() if e not in new
    }


def test_a_copy_opened_and_run_stays_updatable_and_an_update_keeps_the_run(
    examples_lab, page, screenshot
):
    example = "common/run-me.ipynb"
    source = examples_lab.source / example
    source.write_text(notebook("run me", "print(6 * 7)"))
    examples_lab.api("jupyter-tk/api/examples/copy", method="POST", body={"ids": [example]})
    copy = examples_lab.copies / example

    open_lab(page, examples_lab)
    panel = open_sidebar_panel(page, PANEL)
    notebook_panel = open_copy(page, panel, example)
    run_all_cells(page)
    expect(notebook_panel.locator(".jp-OutputArea-output").first).to_have_text("42", timeout=60_000)

    # Autosave writes what the kernel and JupyterLab filled in; the user typed nothing
    saved = wait_for(
        page,
        lambda: (nb := saved_notebook(copy)) and nb["cells"][1]["outputs"] and nb,
        "autosave to write the outputs",
    )
    assert saved["metadata"]["language_info"]["name"] == "python"
    assert saved["cells"][1]["execution_count"] == 1
    run = copy.read_bytes()
    assert run != source.read_bytes()

    panel.get_by_role("button", name="Refresh").click()
    expect(row(panel, example).locator(".jp-tk-badge")).to_have_text("Up to date")
    assert statuses(examples_lab)[example] == "unchanged"

    # The original changes: the copy gets the update, and the user's run is kept beside it
    source.write_text(notebook("run me", "print(6 * 7)", "print('new in the original')"))
    panel.get_by_role("button", name="Refresh").click()
    updatable = row(panel, example)
    expect(updatable.locator(".jp-tk-badge")).to_have_text("Update available")
    updatable.locator('button[data-action="update"]').click()

    expect(updatable.locator(".jp-tk-badge")).to_have_text("Up to date")
    kept = list(copy.parent.glob("run-me.mine-*.ipynb"))
    assert [path.read_bytes() for path in kept] == [run]
    expect(panel.locator(".jp-tk-backups")).to_contain_text(kept[0].name)
    # The open notebook shows the new original, and no autosave of the old one overwrites it
    # (JupyterLab may save the reloaded notebook with cell ids added: still not an edit)
    expect(notebook_panel).to_contain_text("new in the original")
    page.wait_for_timeout(3000 * AUTOSAVE_SECONDS)
    assert cell_sources(copy) == cell_sources(source)
    assert statuses(examples_lab)[example] == "unchanged"
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    screenshot(page, "lab-examples-update-keeps-run")


def test_editing_a_cell_makes_the_copy_edited(examples_lab, page):
    example = "common/edit-me.ipynb"
    (examples_lab.source / example).write_text(notebook("edit me", "x = 1"))
    examples_lab.api("jupyter-tk/api/examples/copy", method="POST", body={"ids": [example]})
    copy = examples_lab.copies / example

    open_lab(page, examples_lab)
    panel = open_sidebar_panel(page, PANEL)
    notebook_panel = open_copy(page, panel, example)
    notebook_panel.locator(".jp-CodeCell .cm-content").first.click()
    page.keyboard.press("End")
    page.keyboard.type("  # my change")

    wait_for(
        page,
        lambda: (nb := saved_notebook(copy)) and "my change" in "".join(nb["cells"][1]["source"]),
        "autosave to write the edit",
    )
    panel.get_by_role("button", name="Refresh").click()
    edited_row = row(panel, example)
    expect(edited_row.locator(".jp-tk-badge")).to_have_text("Edited")
    expect(edited_row.locator('button[data-action="update"]')).to_have_count(0)
    assert statuses(examples_lab)[example] == "modified"


@pytest.mark.parametrize("sidebar_width", [None, SIDEBAR_WIDTH], ids=["default-width", "wide"])
def test_panel_looks_right(examples_lab, page, screenshot, sidebar_width):
    """Seen in screenshots before: a disabled primary button, a half-width legend column, and
    an Open button a few pixels off on rows with more actions."""
    open_lab(page, examples_lab)
    panel = open_sidebar_panel(page, PANEL)
    if sidebar_width:
        widen_left_sidebar(page, sidebar_width)
    listed = statuses(examples_lab)
    assert "new" not in listed.values() and "modified" in listed.values()

    button = panel.locator(".jp-tk-copy-all")
    expect(button).to_have_text("Copy all new (0)")
    expect(button).to_be_disabled()
    background = button.evaluate("b => getComputedStyle(b).backgroundColor")
    brand = page.evaluate(
        """() => { const probe = document.createElement('div');
        probe.style.color = 'var(--jp-brand-color1)'; document.body.append(probe);
        const colour = getComputedStyle(probe).color; probe.remove(); return colour; }"""
    )
    assert background != brand, "a disabled button must not be drawn in the primary colour"

    # Open ends at the same edge in every row, whatever comes before it
    opens = panel.locator('button[data-action="open"].jp-tk-action')
    rights = {
        round(box["x"] + box["width"]) for box in map(lambda b: b.bounding_box(), opens.all())
    }
    assert len(opens.all()) >= 4 and len(rights) == 1, rights

    # The legend's badge column is as wide as its widest badge, or badges sit above their text
    panel.locator(".jp-tk-examples-legend summary").click()
    badges = panel.locator(".jp-tk-examples-legend dt .jp-tk-badge")
    widest = max(badge.bounding_box()["width"] for badge in badges.all())
    dd_boxes = [d.bounding_box() for d in panel.locator(".jp-tk-examples-legend dd").all()]
    dt_boxes = [d.bounding_box() for d in panel.locator(".jp-tk-examples-legend dt").all()]
    legend = panel.locator(".jp-tk-examples-legend dl").bounding_box()
    if dd_boxes[0]["y"] >= dt_boxes[0]["y"] + dt_boxes[0]["height"] - 1:  # stacked
        assert all(abs(d["x"] - legend["x"]) < 1 for d in dd_boxes)
    else:
        assert all(d["x"] - legend["x"] <= widest + 12 for d in dd_boxes)
    assert all(d["width"] >= legend["width"] / 2 for d in dd_boxes)
    name = "lab-examples-panel-narrow" if sidebar_width is None else "lab-examples-panel-wide"
    screenshot(page, name)


def test_failed_start_up_sync_and_missing_examples_are_explained(broken_lab, page, screenshot):
    listing = broken_lab.api("jupyter-tk/api/examples")
    assert listing["source_exists"] is True
    assert listing["sync"]["error"], "the start-up sync into a file must fail"
    open_lab(page, broken_lab)
    panel = open_sidebar_panel(page, PANEL)
    expect(panel.locator(".jp-tk-sync-error")).to_have_text(
        f"The automatic copy at start-up failed: {listing['sync']['error']}"
    )

    # The examples folder disappears (e.g. an image without it): the panel says so.
    shutil.rmtree(broken_lab.source)
    panel.get_by_role("button", name="Refresh").click()
    missing = panel.locator(".jp-tk-examples-missing")
    expect(missing.get_by_role("heading")).to_have_text("No examples in this image")
    expect(missing).to_contain_text(f"The examples folder {broken_lab.source} does not exist")
    expect(panel.locator(".jp-tk-examples-tree")).to_have_count(0)
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    screenshot(page, "lab-examples-missing")

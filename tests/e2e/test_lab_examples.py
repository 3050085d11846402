"""The Examples panel in a real JupyterLab + Chromium, against the real examples sync.

Given an examples repository with `common/`, `ml-gpu/` and `ml-cpu/` folders and a server for
the image `tk-jupyter-ml-gpu` (no start-up sync, so everything starts as new), the panel must
list the examples that fit the image, copy one, open it, ask before a reset and keep the user's
version, and copy all new examples in batches. A server whose examples are missing, or whose
start-up sync failed, must say so.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from playwright.sync_api import expect

from tests.support.lab_server import LabServer, open_lab, open_sidebar_panel, widen_left_sidebar

PANEL = "jp-tk-examples-panel"
IMAGE = "tk-jupyter-ml-gpu"
BATCH_SIZE = 2
SIDEBAR_WIDTH = 420
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


def notebook(title: str) -> str:
    return json.dumps(
        {
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}"]}],
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
    destination = base / "root" / "thinkube" / "notebooks" / "examples"
    args = [
        f"--ExamplesSync.source_dir={source}",
        f"--ExamplesSync.destination_dir={destination}",
        f"--ExamplesSync.image_name={IMAGE}",
        "--ExamplesSync.sync_on_start=False",
    ]
    settings = {"jupyter-tk:examples": {"copyBatchSize": BATCH_SIZE}}
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

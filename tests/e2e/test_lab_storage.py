"""Storage tiers in a real JupyterLab + Chromium, from the variable the spawner sets.

Given the university layout (home ephemeral, ``Persist`` kept per user, ``Shared`` kept for
the team) in ``$JUPYTER_TK_STORAGE``, the file browser shows each folder's tier and the tier of
the folder it is in; saving a notebook in the ephemeral home warns once, offers to copy it to
``Persist`` and can be dismissed; a notebook in ``Persist`` is saved without a word. Without the
variable (one machine) nothing of this is shown.
"""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from tests.support.lab_server import LabServer, open_lab, widen_left_sidebar

SIDEBAR_WIDTH = 340
WARNING = (
    '"analysis.ipynb" is in an ephemeral folder: it will be lost when your server stops.'
    " Copy it to Persist to keep it."
)


def notebook_json(title: str) -> str:
    return json.dumps(
        {
            "cells": [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}"]}],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def start_lab(base, *, tiers: bool) -> LabServer:
    root = base / "root"
    for folder in ("Persist", "Shared"):
        (root / folder).mkdir(parents=True)
    (root / "analysis.ipynb").write_text(notebook_json("analysis"))
    (root / "Persist" / "kept.ipynb").write_text(notebook_json("kept"))
    env = {}
    if tiers:
        env["JUPYTER_TK_STORAGE"] = json.dumps(
            {
                str(root): "ephemeral",
                str(root / "Persist"): "persistent",
                str(root / "Shared"): "shared",
            }
        )
    args = ["--ExamplesSync.sync_on_start=False"]
    return LabServer(base, args=args, env=env).start()


@pytest.fixture
def tiered_lab(tmp_path):
    server = start_lab(tmp_path, tiers=True)
    yield server
    server.stop()


@pytest.fixture
def plain_lab(tmp_path):
    server = start_lab(tmp_path, tiers=False)
    yield server
    server.stop()


def listing_name(page, name: str):
    return page.locator(
        '#filebrowser .jp-DirListing-item[data-isdir="true"] .jp-DirListing-itemText',
        has=page.get_by_text(name, exact=True),
    )


def open_notebook(page, path: str) -> None:
    page.evaluate("p => { window.jupyterapp.commands.execute('docmanager:open', {path: p}) }", path)
    page.wait_for_function(
        "p => window.jupyterapp.shell.currentWidget?.context?.path === p", arg=path
    )
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").wait_for()


def save_current(page, server: LabServer, path: str) -> None:
    """Save the open notebook as Ctrl+S does; return once the server has the new file."""
    before = server.api(f"api/contents/{path}?content=0")["last_modified"]
    # An edit first, as a user would make: Lab skips saving an unchanged notebook.
    page.locator(".jp-NotebookPanel:visible .jp-Notebook").first.click()
    page.keyboard.press("b")  # a new cell below (command mode)
    page.evaluate("() => { window.jupyterapp.commands.execute('docmanager:save'); }")
    deadline = time.monotonic() + 30
    while server.api(f"api/contents/{path}?content=0")["last_modified"] == before:
        assert time.monotonic() < deadline, f"{path} was not saved"
        time.sleep(0.1)
    # Lab hears of the save right after the server answers; give a warning time to appear.
    page.wait_for_timeout(500)


def open_and_save(page, server: LabServer, path: str) -> None:
    open_notebook(page, path)
    save_current(page, server, path)


def toasts(page):
    return page.locator(".Toastify__toast")


def test_the_file_browser_shows_each_folders_tier(tiered_lab, page, screenshot):
    open_lab(page, tiered_lab)
    indicator = page.locator("#filebrowser .jp-tk-storage-tier")
    expect(indicator).to_have_text("Ephemeral")
    expect(indicator).to_have_attribute(
        "title", "Deleted when your server stops: keep your work in Persist."
    )
    expect(listing_name(page, "Persist")).to_have_attribute("data-tk-tier", "persistent")
    expect(listing_name(page, "Persist")).to_have_attribute("data-tk-tier-label", "Persistent")
    expect(listing_name(page, "Shared")).to_have_attribute("data-tk-tier-label", "Shared")
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    expect(listing_name(page, "Persist")).to_be_visible()
    screenshot(page, "lab-storage-tiers")

    listing_name(page, "Persist").dblclick()
    expect(indicator).to_have_text("Persistent")
    expect(indicator).to_have_attribute(
        "title", "Your own files here are kept when your server stops."
    )


def test_saving_where_it_is_lost_warns_once_and_copies_to_persist(tiered_lab, page, screenshot):
    open_lab(page, tiered_lab)
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    open_and_save(page, tiered_lab, "analysis.ipynb")
    toast = toasts(page).filter(has_text="ephemeral folder")
    expect(toast).to_have_count(1)
    expect(toast.locator(".jp-toast-message")).to_have_text(WARNING)
    page.wait_for_timeout(800)  # the toast slides in
    screenshot(page, "lab-storage-ephemeral-warning")

    toast.get_by_role("button", name="Copy to Persist").click()
    expect(toasts(page).filter(has_text="Copied to Persist/analysis.ipynb")).to_have_count(1)
    copy = tiered_lab.root / "Persist" / "analysis.ipynb"
    assert json.loads(copy.read_text())["cells"][0]["source"] == ["# analysis"]
    expect(toast).to_have_count(0)

    # Once per file: saving it again says nothing more.
    save_current(page, tiered_lab, "analysis.ipynb")
    expect(toasts(page).filter(has_text="ephemeral folder")).to_have_count(0)

    # A notebook in the kept folder is saved without a warning.
    open_and_save(page, tiered_lab, "Persist/kept.ipynb")
    expect(toasts(page).filter(has_text="ephemeral folder")).to_have_count(0)


def test_the_warning_can_be_dismissed(tiered_lab, page):
    open_lab(page, tiered_lab)
    open_and_save(page, tiered_lab, "analysis.ipynb")
    toast = toasts(page).filter(has_text="ephemeral folder")
    expect(toast).to_have_count(1)
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)
    assert not (tiered_lab.root / "Persist" / "analysis.ipynb").exists()


def test_one_machine_without_tiers_shows_nothing(plain_lab, page):
    open_lab(page, plain_lab)
    expect(listing_name(page, "Persist")).to_be_visible()
    expect(page.locator(".jp-tk-storage-tier")).to_have_count(0)
    expect(page.locator(".jp-DirListing-itemText[data-tk-tier]")).to_have_count(0)
    open_and_save(page, plain_lab, "analysis.ipynb")
    expect(toasts(page).filter(has_text="ephemeral folder")).to_have_count(0)

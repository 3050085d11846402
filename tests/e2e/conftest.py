"""Real-browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser)."""

import asyncio
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Pictures go to an ignored folder, so a test run leaves the clone clean; .ci/screenshots copies
# the ones the docs show into docs/_static/screenshots.
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("TK_SCREENSHOTS_DIR") or REPO / "build/screenshots")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
    # Browser tests last: the session-scoped Playwright keeps its event loop running in this
    # thread, which breaks pytest-jupyter's loop fixture in any later non-browser test.
    items.sort(key=lambda item: "tests/e2e/" in str(item.fspath).replace("\\", "/"))


@pytest.fixture(autouse=True)
def jp_asyncio_loop():
    """Replace pytest-jupyter's autouse loop fixture here: it closes the thread's current loop,
    which under Playwright's sync API is Playwright's own, still running."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; run .ci/setup (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def screenshot():
    """Save a screenshot under build/screenshots/<name>.png and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name, **kwargs):
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take

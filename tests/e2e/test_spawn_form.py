"""The spawn form in a real browser: a real JupyterHub with TkKubeSpawner, the simulated API.

alice (group gpu-lab) logs in, sees the nodes and free GPUs, watches gpu-1 become unusable
when another pod takes its last free GPU (and usable again when it goes), picks gpu-1 and
starts; the simulated API receives the pod. Screenshots: build/screenshots/spawn-form*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fakes.clusters import make_pod
from tests.support.kube_hub import kube_hub_with_catalog
from tests.support.spawn_fixtures import GPU

POD = "jupyter-alice"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, sim):
    # Refresh every second so the test sees the cluster change quickly.
    refresh = "c.TkKubeSpawner.refresh_seconds = 1\n"
    with kube_hub_with_catalog(tmp_path_factory.mktemp("hub"), sim, extra_config=refresh) as hub:
        yield hub


def log_in(page, hub, name="alice"):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", "any-password")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/(spawn|home)"))


def node_option(page, name):
    return page.locator(f'#jp-tk-node option[value="{name}"]')


def test_pick_a_gpu_node_watch_it_fill_up_and_start(browser, hub, sim, screenshot):
    context = browser.new_context(viewport={"width": 1280, "height": 1500}, color_scheme="light")
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        # The live data arrived (the freshness line is rewritten by the front end).
        expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
        expect(node_option(page, "gpu-1")).to_contain_text("1/2 NVIDIA-A100-SXM4-40GB · 40 GiB")
        expect(node_option(page, "cpu-2")).to_contain_text("(cordoned)")
        expect(node_option(page, "cpu-2")).to_be_disabled()

        # Keyboard: from "CPU basic", the arrow key moves to "1 GPU"; the summary follows.
        page.focus("#jp-tk-profile-cpu-basic")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#jp-tk-profile-gpu-1")).to_be_checked()
        page.check("#jp-tk-image-2")  # Machine learning (GPU)
        summary = page.locator("#jp-tk-summary")
        expect(summary).to_have_text(
            "Will request 4 CPU, 16 GiB memory, 1 nvidia.com/gpu on any node that fits "
            "with Machine learning (GPU)."
        )
        expect(node_option(page, "gpu-1")).to_be_enabled()
        expect(node_option(page, "cpu-1")).to_be_disabled()
        expect(node_option(page, "cpu-1")).to_contain_text("cannot fit: no nvidia.com/gpu")
        expect(page.locator("#jp-tk-cpu")).to_be_disabled()  # a preset sets the size
        screenshot(page, "spawn-form", full_page=True, animations="disabled")

        # Another pod takes gpu-1's last free GPU: the choice is disabled with the reason.
        sim.create_pod(make_pod("thief", "ml", node="gpu-1", limits={GPU: "1"}))
        expect(node_option(page, "gpu-1")).to_be_disabled(timeout=10_000)
        expect(node_option(page, "gpu-1")).to_contain_text(
            "cannot fit: only 0 of 2 nvidia.com/gpu free"
        )
        expect(page.locator("#jp-tk-problems")).to_contain_text(
            "No node has room for 4 CPU and 16 GiB of memory with 1 nvidia.com/gpu right now"
        )
        expect(page.locator('[data-tk-preset="gpu-1"] [data-tk-reason]')).to_have_text(
            "no node has room right now"
        )
        screenshot(page, "spawn-form-gpu-taken", full_page=True, animations="disabled")

        # It goes away again: gpu-1 can be picked, and the server starts there.
        sim.delete_pod("thief", "ml")
        expect(node_option(page, "gpu-1")).to_be_enabled(timeout=10_000)
        page.select_option("#jp-tk-node", "gpu-1")
        expect(summary).to_contain_text("on gpu-1 with Machine learning (GPU)")
        expect(page.locator("#jp-tk-problems")).to_be_empty()
        page.click("#spawn_form button[type=submit]")
        page.wait_for_url(re.compile(r"/hub/spawn-pending/alice"))
        pod = sim.wait_for_pod(POD)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert container["resources"]["limits"][GPU] == "1"
        assert container["image"] == "nvcr.io/nvidia/pytorch:24.05-py3"
        assert pod["spec"]["nodeName"] == "gpu-1"
    finally:
        context.close()
        hub.login("alice").stop_server()
        sim.wait_for_pod(POD, gone=True)


def test_dark_mode_and_a_refused_deep_link(browser, hub, sim, screenshot):
    context = browser.new_context(viewport={"width": 1280, "height": 1500}, color_scheme="dark")
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
        assert page.evaluate("document.documentElement.dataset.bsTheme") == "dark"
        screenshot(page, "spawn-form-dark", full_page=True, animations="disabled")

        response = page.goto(f"{hub.url}/hub/spawn?image=tk-jupyter-ml-gpu&profile=cpu-basic")
        assert response.status == 400
        error = page.locator(".spawn-error-msg")
        expect(error).to_contain_text("needs a GPU, and the preset cpu-basic has none")
        expect(error).to_have_attribute("role", "alert")
        screenshot(page, "spawn-form-error", full_page=True, animations="disabled")
        assert sim.pods() == []
    finally:
        context.close()


def test_the_form_works_without_javascript(browser, hub, sim):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        # Server-rendered: the node list with free amounts is there without any script.
        expect(node_option(page, "gpu-1")).to_contain_text("1/2 NVIDIA-A100-SXM4-40GB")
        page.check("#jp-tk-profile-custom")
        page.check("#jp-tk-image-1")  # SciPy (the last spawn used a GPU image)
        page.fill("#jp-tk-cpu", "1.5")
        page.fill("#jp-tk-memory", "3Gi")
        page.select_option("#jp-tk-gpu-resource", "")  # the last spawn had a GPU
        page.select_option("#jp-tk-node", "cpu-1")
        page.click("#spawn_form button[type=submit]")
        page.wait_for_load_state()
        assert "/hub/spawn-pending/alice" in page.url, page.locator("body").inner_text()
        pod = sim.wait_for_pod(POD)
        assert pod["spec"]["nodeName"] == "cpu-1"
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert (float(limits["cpu"]), int(limits["memory"])) == (1.5, 3 * 2**30)
    finally:
        context.close()
        hub.login("alice").stop_server()
        sim.wait_for_pod(POD, gone=True)


# -- without GPUs: a machine without NVML, and a cluster without GPU nodes ------------------------


def assert_gpu_less_form(page, reason: str, screenshot, name: str):
    """The "1 GPU" preset on a form where no GPU exists: one reason, everywhere, that says so;
    greyed fields that agree with each other and the summary; one memory maximum."""
    expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
    card = page.locator('[data-tk-preset="gpu-1"] [data-tk-reason]')
    expect(card).to_have_text(reason)  # not "no node has room right now": it will not pass
    page.check("#jp-tk-profile-gpu-1")
    sentence = f"{reason[0].upper()}{reason[1:]}"
    # The greyed custom fields show the preset: its GPU kind (said to be absent), its count,
    # and a hint that agrees with both (never "No GPU", "GPUs: 1" and "0 to 0" at once).
    expect(page.locator("#jp-tk-cpu")).to_be_disabled()
    kind = page.locator("#jp-tk-gpu-resource")
    expect(kind).to_have_value(GPU)
    assert kind.evaluate("s => s.selectedOptions[0].text") == f"{GPU} — {reason}"
    expect(page.locator("#jp-tk-gpu-count")).to_have_value("1")
    expect(page.locator('[data-tk-bound="gpus"]')).to_have_text(sentence)
    expect(page.locator("#jp-tk-summary")).to_contain_text(f"1 {GPU}")
    problems = page.locator("#jp-tk-problems")
    expect(problems).to_have_text(f"{sentence}: choose a size without a GPU.")
    # One memory maximum: the Custom card and the help text say the same number.
    card_text = page.locator("[data-tk-custom-limits]").inner_text()
    most = re.search(r"· ([0-9.]+ [KMGT]iB)", card_text).group(1)
    expect(page.locator('[data-tk-bound="memory"]')).to_have_text(
        re.compile(rf"to {re.escape(most)}$")
    )
    screenshot(page, name, full_page=True, animations="disabled")

    # Submitting anyway: refused in the same words, by Start as well as in the hub's banner.
    page.click("#spawn_form button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator(".spawn-error-msg")).to_contain_text(f"{sentence}: choose a size")
    expect(page.locator("#jp-tk-problems")).to_have_text(
        f"{sentence}: choose a size without a GPU."
    )
    screenshot(page, f"{name}-refused", full_page=True, animations="disabled")

    # A custom size over the one maximum is refused with that very number.
    page.check("#jp-tk-profile-custom")
    page.select_option("#jp-tk-gpu-resource", "")
    value, unit = most.split()
    over = f"{float(value) + 1:g}{unit[:-1]}"
    page.fill("#jp-tk-memory", over)
    page.fill("#jp-tk-cpu", "1")
    expect(problems).to_contain_text(f"can hold ({most}).")
    page.click("#spawn_form button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator(".spawn-error-msg")).to_contain_text(f"can hold ({most}).")
    expect(page.locator("#jp-tk-problems")).to_contain_text(f"can hold ({most}).")
    return most


def test_a_machine_without_nvml(browser, tmp_path_factory, screenshot):
    from tests.support.local_hub import PASSWORD, LocalHub

    # The real library search on a machine without an NVIDIA driver: no NVML at all.
    hub = LocalHub(tmp_path_factory.mktemp("no-nvml"), real_nvml=True)
    with hub:
        context = browser.new_context(viewport={"width": 1440, "height": 1600})
        page = context.new_page()
        try:
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "alice")
            page.fill("#password_input", PASSWORD)
            page.click("#login_submit")
            page.wait_for_url(re.compile(r"/hub/spawn"))
            # Why there is no GPU, as the inventory knows it.
            note = hub.login("alice").resources()["nodes"][0]["gpu_note"]
            assert "libnvidia-ml" in note
            expect(page.locator("[data-tk-gpu-note]")).to_have_text(note)
            assert_gpu_less_form(page, "this machine has no GPU", screenshot, "spawn-form-no-nvml")
            assert hub.login("alice").server() is None
        finally:
            context.close()


@pytest.fixture(scope="module")
def cpu_only_hub(tmp_path_factory):
    from tests.support.kube_hub import CatalogServer, KubeHub, SimulatedApiProcess
    from tests.support.spawn_fixtures import CATALOG_ITEMS, POLICY

    policy = {**POLICY, "rules": [dict(rule) for rule in POLICY["rules"]]}
    policy["rules"][2]["message"] = "For GPU access, please contact your administrator."
    with (
        SimulatedApiProcess(tmp_path_factory.mktemp("cpu-only"), cluster="cpu-only") as sim,
        CatalogServer(CATALOG_ITEMS) as catalog,
        KubeHub(tmp_path_factory.mktemp("hub"), sim, catalog=catalog.url, policy=policy) as hub,
    ):
        yield hub, sim


def test_a_cluster_without_gpu_nodes(browser, cpu_only_hub, screenshot):
    hub, sim = cpu_only_hub
    context = browser.new_context(viewport={"width": 1440, "height": 1600})
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        assert_gpu_less_form(
            page, "no node you may use offers GPUs", screenshot, "spawn-form-no-gpu-nodes"
        )
        assert sim.pods() == []
    finally:
        context.close()


def test_the_policy_message_and_cards_that_fill_the_row(browser, cpu_only_hub, screenshot):
    hub, _ = cpu_only_hub
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    try:
        log_in(page, hub, name="carol")  # in no group: the "*" rule, with its message
        page.goto(f"{hub.url}/hub/spawn")
        expect(page.locator("[data-tk-policy-message]")).to_have_text(
            "For GPU access, please contact your administrator."
        )
        # Every row of cards spans the width of the node list and summary: no empty column.
        summary = page.locator("#jp-tk-summary").bounding_box()
        right = summary["x"] + summary["width"]
        for cards in page.locator(".jp-tk-cards").all():
            rows: dict[int, list[dict]] = {}
            for card in cards.locator(":scope > *").all():
                box = card.bounding_box()
                rows.setdefault(round(box["y"]), []).append(box)
            for row in rows.values():
                assert abs(min(b["x"] for b in row) - summary["x"]) < 1, row
                assert abs(max(b["x"] + b["width"] for b in row) - right) < 1, row
        screenshot(page, "spawn-form-policy-message", full_page=True, animations="disabled")
    finally:
        context.close()


def test_a_custom_image_is_checked_before_submit_in_the_servers_words(
    browser, cpu_only_hub, screenshot
):
    hub, sim = cpu_only_hub
    context = browser.new_context(viewport={"width": 1440, "height": 1400})
    page = context.new_page()
    try:
        log_in(page, hub)  # alice: custom images from nvcr.io only
        page.goto(f"{hub.url}/hub/spawn")
        expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
        page.check("#jp-tk-profile-cpu-basic")
        page.check("#jp-tk-image-custom")
        field = page.locator("#jp-tk-custom-image")
        problems = page.locator("#jp-tk-problems")
        cases = {
            "docker.io/library/ubuntu:24.04": "'docker.io/library/ubuntu:24.04' is not in the "
            "image list, and custom images may only come from nvcr.io (it is on docker.io).",
            "nvcr.io/UPPER/x": "'nvcr.io/UPPER/x' is not in the image list and not a valid image "
            "reference: invalid repository 'UPPER/x': the repository must be lowercase.",
        }
        for reference, message in cases.items():
            field.fill(reference)
            expect(problems).to_have_text(message)
            assert field.evaluate("f => f.validationMessage") == message
        screenshot(page, "spawn-form-custom-image-refused", full_page=True, animations="disabled")
        # The browser does not submit it: the page stays, nothing is started.
        page.click("#spawn_form button[type=submit]")
        page.wait_for_timeout(500)
        assert "/hub/spawn" in page.url and "pending" not in page.url
        # The server says the same for the same value (its refusal of a forged post).
        response = hub.login("alice").submit_form(
            {"profile": "cpu-basic", "image": "", "custom_image": "nvcr.io/UPPER/x"}
        )
        assert response.status_code == 400
        assert cases["nvcr.io/UPPER/x"].replace("'", "&#39;") in response.text
        field.fill("nvcr.io/nvidia/pytorch:24.05-py3")
        expect(problems).to_be_empty()
        assert field.evaluate("f => f.validity.valid")
        assert sim.pods() == []
    finally:
        context.close()


def test_a_deep_link_from_another_site_waits_for_the_users_click(browser, cpu_only_hub):
    import http.server
    import threading

    hub, sim = cpu_only_hub
    link = f"{hub.url}/hub/spawn?profile=custom&cpu=1&memory=2Gi&image=tk-jupyter-scipy"

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f'<a id="go" href="{link}">Open a notebook</a>'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    context = browser.new_context()
    page = context.new_page()
    try:
        log_in(page, hub)
        # A page on another site links to the hub: the form opens, filled in; nothing starts.
        page.goto(f"http://127.0.0.1:{foreign.server_address[1]}/")
        page.click("#go")
        page.wait_for_url(re.compile(r"/hub/spawn\?"))
        expect(page.locator(".jp-tk-status")).to_contain_text(
            "A link from outside this hub chose these settings"
        )
        expect(page.locator("#jp-tk-profile-custom")).to_be_checked()
        expect(page.locator("#jp-tk-cpu")).to_have_value("1")
        expect(page.locator("#jp-tk-memory")).to_have_value("2Gi")
        page.wait_for_timeout(1000)
        assert sim.pods() == []
        # The user's click on Start starts it.
        page.click("#spawn_form button[type=submit]")
        page.wait_for_url(re.compile(r"/hub/spawn-pending/alice"))
        pod = sim.wait_for_pod(POD)
        assert float(pod["spec"]["containers"][0]["resources"]["limits"]["cpu"]) == 1
        hub.login("alice").stop_server()
        sim.wait_for_pod(POD, gone=True)

        # The same link on a page of the hub itself starts at once.
        page.goto(f"{hub.url}/hub/home")
        page.evaluate(
            "url => { const a = document.createElement('a'); a.id = 'go'; a.href = url;"
            " a.textContent = 'go'; document.body.prepend(a); }",
            link,
        )
        page.click("#go")
        page.wait_for_url(re.compile(r"/hub/spawn-pending/alice|/user/alice"))
        sim.wait_for_pod(POD)
    finally:
        context.close()
        foreign.shutdown()
        foreign.server_close()
        hub.login("alice").stop_server()
        sim.wait_for_pod(POD, gone=True)

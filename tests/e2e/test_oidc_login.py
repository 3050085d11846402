"""Sign-in through a real OpenID Connect provider, in a real browser, to both shipped hub configs.

The provider is npm ``oidc-provider`` (tests/oidc/provider.mjs) laid out like Keycloak for the
local hub (share/jupyterhub/local_config.py) and like Authentik for the Kubernetes hub
(share/jupyterhub/kubernetes_config.py against the simulated API). Both hubs read the shipped
university policy: members of cpsHPCAccess get GPU presets, everyone else a small CPU server and
a note; members of jupyter_admin are admins. Groups come from the provider at every login.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import yaml
from playwright.sync_api import expect

from tests.oidc.harness import OidcProvider
from tests.support.hub_process import free_hub_port
from tests.support.kube_hub import CatalogServer, KubeHub, SimulatedApiProcess
from tests.support.local_hub import LocalHub
from tests.support.spawn_fixtures import CATALOG_ITEMS

REPO = Path(__file__).resolve().parents[2]
UNIVERSITY_POLICY = yaml.safe_load((REPO / "share/policy.university.yaml").read_text())
NOTE = "For GPU access, please contact your administrator."
GPU_PRESETS = ("gpu-1", "gpu-2")
ACCOUNTS = {
    "ana": {"password": "ana-password", "groups": ["cpsHPCAccess"]},
    "ben": {"password": "ben-password", "groups": ["students"]},
    "ada": {"password": "ada-password", "groups": ["jupyter_admin"]},
}


def local_policy() -> dict:
    """The university policy with this machine's CPU environment as everyone's fixed image."""
    policy = yaml.safe_load(yaml.safe_dump(UNIVERSITY_POLICY))
    policy["rules"][-1]["images"] = ["tk-jupyter-ml-cpu"]
    return policy


class SsoLocalHub(LocalHub):
    def __init__(self, workdir: Path, provider: OidcProvider, port: int) -> None:
        super().__init__(workdir, port=port)
        self.provider = provider
        self.policy_path = self.workdir / "policy.yaml"
        self.policy_path.write_text(yaml.safe_dump(local_policy()))

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(self.provider.hub_env(), JUPYTER_TK_POLICY=str(self.policy_path))
        return env


class SsoKubeHub(KubeHub):
    def __init__(self, workdir: Path, sim, provider: OidcProvider, catalog: str) -> None:
        # The harness's test settings log in with "dummy"; sign-in through the provider again.
        super().__init__(
            workdir,
            sim,
            catalog=catalog,
            policy=UNIVERSITY_POLICY,
            extra_config=(
                "from jupyter_tk.hub.auth import configure_oidc\n"
                "configure_oidc(c)\n"
                "c.JupyterHub.load_groups = {}\n"
            ),
        )
        self.provider = provider

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(self.provider.hub_env())
        return env


@pytest.fixture(scope="module")
def local_sso(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sso-local")
    port = free_hub_port()
    callback = f"http://127.0.0.1:{port}/hub/oauth_callback"
    with (
        OidcProvider(
            workdir / "idp", layout="keycloak", accounts=ACCOUNTS, redirect_uris=[callback]
        ) as provider,
        SsoLocalHub(workdir / "hub", provider, port) as hub,
    ):
        yield hub


@pytest.fixture(scope="module")
def kube_sso(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sso-kube")
    with (
        SimulatedApiProcess(workdir / "sim") as sim,
        CatalogServer(CATALOG_ITEMS) as catalog,
    ):
        hub = SsoKubeHub(workdir / "hub", sim, None, catalog.url)
        callback = f"{hub.url}/hub/oauth_callback"
        with OidcProvider(
            workdir / "idp", layout="authentik", accounts=ACCOUNTS, redirect_uris=[callback]
        ) as provider:
            hub.provider = provider
            with hub:
                yield hub


@contextlib.contextmanager
def person(browser):
    """A browser of one person: the provider's session cookie is theirs alone."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page, hub, name: str, service: str) -> None:
    """From the hub's login page through the provider's sign-in form back to the hub."""
    page.goto(f"{hub.url}/hub/login")
    page.get_by_role("button", name=f"Sign in with {service}").click()
    # A provider session from an earlier sign-in skips its form, as with a real IdP.
    page.wait_for_url(re.compile(r".*(/interaction/|/hub/).*"))
    if "/interaction/" in page.url:
        expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
        page.get_by_label("Username").fill(name)
        page.get_by_label("Password").fill(hub.provider.config["accounts"][name]["password"])
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"{re.escape(hub.url)}/(hub|user)/.*"))


def open_form(page, hub) -> None:
    page.goto(f"{hub.url}/hub/spawn")
    expect(page.locator("#jp-tk-profile-cpu-small")).to_be_visible()


def sign_out(page, hub) -> None:
    page.goto(f"{hub.url}/hub/logout")
    page.wait_for_url(re.compile(r".*/hub/login.*"))


CUSTOM_CARD = '[data-tk-preset="custom"] .jp-tk-card-description'


def expect_gpu_presets(page) -> None:
    for slug in GPU_PRESETS:
        expect(page.locator(f"#jp-tk-profile-{slug}")).to_be_visible()
    expect(page.locator("[data-tk-policy-message]")).to_have_count(0)
    expect(page.locator(CUSTOM_CARD)).to_have_text("Choose CPU, memory and GPUs yourself below.")


def expect_cpu_only_with_note(page) -> None:
    for slug in GPU_PRESETS:
        expect(page.locator(f"#jp-tk-profile-{slug}")).to_have_count(0)
    expect(page.locator("[data-tk-policy-message]")).to_have_text(NOTE)
    # No GPUs in this rule: the Custom card does not offer them either.
    expect(page.locator(CUSTOM_CARD)).to_have_text("Choose CPU and memory yourself below.")


def expect_admin(page, hub, admin: bool) -> None:
    expect(page.get_by_role("link", name="Admin", exact=True)).to_have_count(1 if admin else 0)
    response = page.goto(f"{hub.url}/hub/admin")
    assert (response.status == 200) is admin, response.status


def test_local_hub_groups_from_keycloak_pick_the_policy(browser, local_sso, screenshot):
    # A member of cpsHPCAccess sees the GPU presets, and is no admin
    with person(browser) as page:
        sign_in(page, local_sso, "ana", "Keycloak")
        open_form(page, local_sso)
        expect_gpu_presets(page)
        screenshot(page, "oidc-local-member-form")
        expect_admin(page, local_sso, False)

    # Someone else sees only the CPU preset and the note
    with person(browser) as page:
        sign_in(page, local_sso, "ben", "Keycloak")
        open_form(page, local_sso)
        expect_cpu_only_with_note(page)
        screenshot(page, "oidc-local-non-member-form")

    # A member of jupyter_admin is an admin
    with person(browser) as page:
        sign_in(page, local_sso, "ada", "Keycloak")
        expect_admin(page, local_sso, True)


def test_a_changed_group_takes_effect_at_the_next_login(page, local_sso):
    sign_in(page, local_sso, "ben", "Keycloak")
    open_form(page, local_sso)
    expect_cpu_only_with_note(page)

    # When the provider's admin adds ben to cpsHPCAccess, nothing changes until he signs in again
    local_sso.provider.set_groups("ben", ["students", "cpsHPCAccess"])
    page.reload()
    expect_cpu_only_with_note(page)
    sign_out(page, local_sso)
    sign_in(page, local_sso, "ben", "Keycloak")
    open_form(page, local_sso)
    expect_gpu_presets(page)

    # And the admin group makes him admin at the next sign-in
    local_sso.provider.set_groups("ben", ["students", "cpsHPCAccess", "jupyter_admin"])
    sign_out(page, local_sso)
    sign_in(page, local_sso, "ben", "Keycloak")
    expect_admin(page, local_sso, True)

    # And taking the groups away takes the GPUs and admin away at the next sign-in
    local_sso.provider.set_groups("ben", ["students"])
    sign_out(page, local_sso)
    sign_in(page, local_sso, "ben", "Keycloak")
    open_form(page, local_sso)
    expect_cpu_only_with_note(page)
    expect_admin(page, local_sso, False)


def test_a_wrong_password_at_the_provider_does_not_sign_in(page, local_sso):
    page.goto(f"{local_sso.url}/hub/login")
    page.get_by_role("button", name="Sign in with Keycloak").click()
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    page.goto(f"{local_sso.url}/hub/spawn")
    assert "/hub/login" in page.url


def test_kubernetes_hub_groups_from_authentik_pick_the_policy(browser, kube_sso, screenshot):
    with person(browser) as page:
        sign_in(page, kube_sso, "ana", "Authentik")
        open_form(page, kube_sso)
        expect_gpu_presets(page)
        screenshot(page, "oidc-kubernetes-member-form")
        expect_admin(page, kube_sso, False)

    with person(browser) as page:
        sign_in(page, kube_sso, "ben", "Authentik")
        open_form(page, kube_sso)
        expect_cpu_only_with_note(page)
        screenshot(page, "oidc-kubernetes-non-member-form")

    with person(browser) as page:
        sign_in(page, kube_sso, "ada", "Authentik")
        expect_admin(page, kube_sso, True)


def test_the_login_page_says_when_the_provider_is_down(page, local_sso, screenshot):
    # Runs last with this hub: it stops the provider.
    local_sso.provider.stop()
    page.goto(f"{local_sso.url}/hub/login")
    page.get_by_role("button", name="Sign in with Keycloak").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Sign-in is unavailable: Keycloak (127.0.0.1:")
    expect(alert).to_contain_text("cannot be reached")
    assert "Traceback" not in page.content() and "500" not in page.title()
    # The button is still there to try again
    expect(page.get_by_role("button", name="Sign in with Keycloak")).to_be_visible()
    screenshot(page, "oidc-provider-down")


def test_a_provider_gone_during_sign_in_gets_the_login_page_not_a_500(kube_sso):
    # Runs last with this hub: it stops the provider just before the hub redeems the code.
    # HTTP by hand, as a browser would, because a browser gives no moment between the
    # provider's redirect to the callback and the callback itself.
    session = requests.Session()
    url = f"{kube_sso.url}/hub/oauth_login"
    while "/interaction/" not in url:  # hub -> provider's authorize -> its sign-in page
        url = urljoin(url, session.get(url, allow_redirects=False).headers["location"])
    credentials = {"username": "ana", "password": ACCOUNTS["ana"]["password"]}
    response = session.post(url, data=credentials, allow_redirects=False, timeout=10)
    url = urljoin(url, response.headers["location"])
    while not url.startswith(f"{kube_sso.url}/hub/oauth_callback"):
        response = session.get(url, allow_redirects=False, timeout=10)
        url = urljoin(url, response.headers["location"])
    kube_sso.provider.stop()

    callback = session.get(url, allow_redirects=False, timeout=30)
    assert callback.status_code == 503
    assert "Sign-in is unavailable: Authentik (127.0.0.1:" in callback.text
    assert "Traceback" not in callback.text
    home = session.get(f"{kube_sso.url}/hub/spawn", allow_redirects=False, timeout=10)
    assert "/hub/login" in home.headers["location"]  # not signed in

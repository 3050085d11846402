"""Logging in to the real local hub: only whole, simple user names, and a back-off after failures.

Every login goes through configurable-http-proxy to the hub as a browser's would, from
127.0.0.1; what became a user is read back through the admin API.
"""

import pytest
import requests

from jupyter_tk.hub.local.authenticator import LoginThrottle
from tests.support.local_hub import LocalHub

BACKOFF_SECONDS = 30


def attempt(hub, name, password=None):
    """One login as the browser's login form sends it; returns the response (302: logged in)."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    return session.post(
        f"{hub.url}/hub/login",
        data={
            "username": name,
            "password": hub.password if password is None else password,
            "_xsrf": session.cookies["_xsrf"],
        },
        allow_redirects=False,
        timeout=30,
    )


def user_names(admin):
    response = admin.api("GET", "/hub/api/users")
    response.raise_for_status()
    return {user["name"] for user in response.json()}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # A low count per name and a long first wait, so a back-off is certain to still hold when
    # checked; per address high enough for every failure of this module.
    hub = LocalHub(
        tmp_path_factory.mktemp("local-login"),
        extra_config=(
            "c.ThrottledSharedPasswordAuthenticator.failures_per_user = 3\n"
            "c.ThrottledSharedPasswordAuthenticator.failures_per_address = 100\n"
            f"c.ThrottledSharedPasswordAuthenticator.backoff_seconds = {BACKOFF_SECONDS}\n"
        ),
    )
    hub.start()
    yield hub
    hub.stop()


BAD_NAMES = [
    "a b",
    "a;b",
    "a\\b",
    "a%2fb",
    "a" * 40,
    "a\x00b",
    "a\nb",
    "a/b",
    "alice!",
    "../alice",
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_name_that_is_not_wholly_simple_never_becomes_a_user(hub, name):
    response = attempt(hub, name)
    # Refused like a wrong password, with the right one
    assert response.status_code == 403
    assert "Invalid username or password" in response.text
    admin = hub.login_admin()
    names = user_names(admin)
    assert name not in names and name.lower() not in names


def test_simple_names_still_log_in(hub):
    for name in ("alice", "a.b-c_1", "x" * 32):
        assert attempt(hub, name).status_code == 302, name
    assert {"alice", "a.b-c_1", "x" * 32} <= user_names(hub.login_admin())


def test_the_admin_api_cannot_create_a_user_with_such_a_name_either(hub):
    admin = hub.login_admin()
    response = admin.api("POST", "/hub/api/users/a%3Bb")
    assert response.status_code == 400
    assert "a;b" not in user_names(admin)


def test_after_failed_logins_a_name_must_wait_even_with_the_right_password(hub):
    # Given three wrong passwords for bob (the allowed number)
    for _ in range(3):
        assert attempt(hub, "bob", password="guess").status_code == 403
    # When a fourth fails too, bob's name is held back
    assert attempt(hub, "bob", password="guess").status_code == 403
    refused = attempt(hub, "bob")
    # Then even the right password is refused, with a reason and when to come back
    assert refused.status_code == 429
    assert "Too many failed logins for this user name. Try again in" in refused.text
    assert 0 < int(refused.headers["Retry-After"]) <= BACKOFF_SECONDS
    assert "bob" not in user_names(hub.login_admin())
    # And other names from the same address are not held back by bob's failures
    assert attempt(hub, "bobby").status_code == 302


def test_a_successful_login_clears_the_failures(hub):
    for _ in range(3):
        assert attempt(hub, "carol", password="guess").status_code == 403
    assert attempt(hub, "carol").status_code == 302
    # Three more failures are allowed again before any wait
    for _ in range(3):
        assert attempt(hub, "carol", password="guess").status_code == 403
    assert attempt(hub, "carol").status_code == 302


def test_many_names_guessed_from_one_address_make_that_address_wait(tmp_path):
    hub = LocalHub(
        tmp_path,
        extra_config=(
            "c.ThrottledSharedPasswordAuthenticator.failures_per_address = 5\n"
            f"c.ThrottledSharedPasswordAuthenticator.backoff_seconds = {BACKOFF_SECONDS}\n"
        ),
    ).start()
    try:
        # Given six wrong guesses from this address, each for another name (none waits itself)
        for i in range(6):
            assert attempt(hub, f"user{i}", password="guess").status_code == 403
        # Then a new name with the right password is refused from this address
        refused = attempt(hub, "dave")
        assert refused.status_code == 429
        assert "Too many failed logins from this address." in refused.text
    finally:
        hub.stop()


# -- the back-off's arithmetic, on its own clock ---------------------------------------------


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_throttle(clock, **overrides):
    settings = dict(
        failures_per_user=2,
        failures_per_address=4,
        backoff_seconds=1.0,
        max_backoff_seconds=8.0,
        forget_after_seconds=60.0,
        clock=clock,
    )
    return LoginThrottle(**{**settings, **overrides})


def test_the_wait_doubles_with_each_failure_up_to_the_cap():
    clock = Clock()
    throttle = make_throttle(clock)
    waits = []
    for _ in range(7):
        throttle.failed("bob", None)
        waits.append(throttle.wait("bob", None)[0])
    assert waits == [0, 0, 1, 2, 4, 8, 8]
    clock.now += 8.5
    assert throttle.wait("bob", None) == (0, "")


def test_failures_are_forgotten_after_a_quiet_while():
    clock = Clock()
    throttle = make_throttle(clock)
    for _ in range(2):
        throttle.failed("bob", "10.0.0.1")
    clock.now += 61
    throttle.failed("bob", "10.0.0.1")
    assert throttle.wait("bob", "10.0.0.1") == (0, "")


def test_the_address_count_holds_back_every_name_from_it():
    clock = Clock()
    throttle = make_throttle(clock)
    for i in range(5):
        throttle.failed(f"user{i}", "10.0.0.1")
    assert throttle.wait("someone", "10.0.0.1") == (1.0, "address")
    assert throttle.wait("someone", "10.0.0.2") == (0, "")


def test_the_wait_passes_by_itself():
    clock = Clock()
    throttle = make_throttle(clock)
    for _ in range(3):
        throttle.failed("bob", None)
    clock.now += 0.25
    assert throttle.wait("bob", None) == (0.75, "user")

"""What the JUPYTER_TK_OIDC_* and culling variables make of a hub config, and their errors.

The sign-in itself runs against a real provider in tests/e2e/test_oidc_login.py; here the
translation from environment to traitlets config, which an admin gets wrong most easily.
"""

from __future__ import annotations

import pytest
from traitlets.config import Config

from jupyter_tk.hub.auth import TkOIDCAuthenticator, configure_oidc, provider_endpoints
from jupyter_tk.hub.culling import CULLER_SCOPES, GpuIdleRule, configure_culling

OIDC = {
    "JUPYTER_TK_OIDC_PROVIDER": "keycloak",
    "JUPYTER_TK_OIDC_ISSUER": "https://sso.example.org/realms/jupyter",
    "JUPYTER_TK_OIDC_CLIENT_ID": "jupyterhub",
    "JUPYTER_TK_OIDC_CLIENT_SECRET": "from-a-secret",
}


def test_keycloak_endpoints_are_below_the_realm():
    assert provider_endpoints("keycloak", "https://sso.example.org/realms/jupyter/") == {
        "authorize_url": "https://sso.example.org/realms/jupyter/protocol/openid-connect/auth",
        "token_url": "https://sso.example.org/realms/jupyter/protocol/openid-connect/token",
        "userdata_url": "https://sso.example.org/realms/jupyter/protocol/openid-connect/userinfo",
    }
    # Keycloak before 17 serves below /auth
    legacy = provider_endpoints("keycloak", "https://sso.example.org/auth/realms/lab")
    assert legacy["token_url"] == (
        "https://sso.example.org/auth/realms/lab/protocol/openid-connect/token"
    )


def test_authentik_endpoints_are_shared_by_its_applications():
    endpoints = provider_endpoints(
        "authentik", "https://authentik.example.org/application/o/jupyterhub/"
    )
    assert endpoints == {
        "authorize_url": "https://authentik.example.org/application/o/authorize/",
        "token_url": "https://authentik.example.org/application/o/token/",
        "userdata_url": "https://authentik.example.org/application/o/userinfo/",
    }


@pytest.mark.parametrize(
    ("provider", "issuer", "message"),
    [
        ("keycloak", "sso.example.org/realms/x", "must be an http(s) URL"),
        ("keycloak", "https://sso.example.org/jupyter", "ends in /realms/<realm>"),
        ("authentik", "https://authentik.example.org/jupyterhub/", "/application/o/<application"),
        ("okta", "https://example.okta.com", "unknown OIDC provider 'okta'"),
    ],
)
def test_a_wrong_issuer_or_provider_is_named(provider, issuer, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        provider_endpoints(provider, issuer)


def test_without_a_provider_nothing_changes():
    c = Config()
    assert configure_oidc(c, {}) is False
    assert "authenticator_class" not in c.JupyterHub


def test_groups_feed_the_hub_admins_come_from_groups_only():
    c = Config()
    c.Authenticator.admin_users = {"admin"}
    assert configure_oidc(c, OIDC) is True
    assert c.JupyterHub.authenticator_class is TkOIDCAuthenticator
    oauth = c.GenericOAuthenticator
    assert oauth.manage_groups is True
    assert oauth.auth_state_groups_key == "oauth_user.groups"
    assert oauth.admin_groups == {"jupyter_admin"}
    assert oauth.allow_all is True and "allowed_groups" not in oauth
    assert oauth.client_secret == "from-a-secret"
    assert oauth.login_service == "Keycloak"
    # A local "admin" user name could belong to anyone at the provider
    assert c.Authenticator.admin_users == set()


def test_allowed_groups_and_claims_from_the_environment():
    c = Config()
    configure_oidc(
        c,
        {
            **OIDC,
            "JUPYTER_TK_OIDC_ALLOWED_GROUPS": "staff, cpsHPCAccess,",
            "JUPYTER_TK_OIDC_ADMIN_GROUPS": "",
            "JUPYTER_TK_OIDC_GROUPS_CLAIM": "roles",
            "JUPYTER_TK_OIDC_USERNAME_CLAIM": "email",
        },
    )
    oauth = c.GenericOAuthenticator
    assert oauth.allowed_groups == {"staff", "cpsHPCAccess"} and oauth.allow_all is False
    assert oauth.admin_groups == set()
    assert oauth.auth_state_groups_key == "oauth_user.roles"
    assert oauth.username_claim == "email"


def test_a_missing_secret_stops_the_hub_with_its_name():
    environ = {key: value for key, value in OIDC.items() if key != "JUPYTER_TK_OIDC_CLIENT_SECRET"}
    with pytest.raises(ValueError, match="JUPYTER_TK_OIDC_CLIENT_SECRET is not"):
        configure_oidc(Config(), environ)


def applied(value):
    """A list trait's value as the hub will see it (appends to an unset trait are lazy)."""
    return value.get_value([]) if hasattr(value, "get_value") else value


def test_culling_defaults_one_hour_and_thirty_minutes_for_gpus():
    c = Config()
    configure_culling(c, {})
    services = {service["name"]: service for service in applied(c.JupyterHub.services)}
    assert "--timeout=3600" in services["idle-culler"]["command"]
    assert services["gpu-idle-culler"]["command"][1:3] == ["-m", "jupyter_tk.hub.culling"]
    (role,) = applied(c.JupyterHub.load_roles)
    assert role["scopes"] == CULLER_SCOPES
    assert set(role["services"]) == {"idle-culler", "gpu-idle-culler"}
    (route, _handler, kwargs) = applied(c.JupyterTk.hub_routes)[0]
    assert route == "/api/tk/activity"
    assert kwargs["rule"] == GpuIdleRule(timeout=1800, warning=300)


def test_culling_keeps_what_the_config_had_and_can_be_turned_off():
    c = Config()
    c.JupyterHub.services = [{"name": "mine", "url": "http://127.0.0.1:10101"}]
    c.JupyterTk.hub_routes = [("/api/mine", object)]
    configure_culling(c, {"JUPYTER_TK_IDLE_TIMEOUT": "0", "JUPYTER_TK_GPU_IDLE_TIMEOUT": "0"})
    assert c.JupyterHub.services == [{"name": "mine", "url": "http://127.0.0.1:10101"}]
    assert c.JupyterTk.hub_routes == [("/api/mine", object)]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"JUPYTER_TK_IDLE_TIMEOUT": "1h"}, "JUPYTER_TK_IDLE_TIMEOUT must be a number of seconds"),
        ({"JUPYTER_TK_GPU_IDLE_TIMEOUT": "-5"}, "JUPYTER_TK_GPU_IDLE_TIMEOUT must not be negative"),
        (
            {"JUPYTER_TK_GPU_IDLE_TIMEOUT": "60", "JUPYTER_TK_GPU_IDLE_WARNING": "60"},
            "warning \\(60.0 s\\) must be shorter than the timeout",
        ),
        ({"JUPYTER_TK_CULL_EVERY": "0.5"}, "JUPYTER_TK_CULL_EVERY must be 1 second or more"),
    ],
)
def test_bad_culling_values_are_named(environ, message):
    c = Config()
    with pytest.raises(ValueError, match=message):
        configure_culling(c, environ)
    assert "services" not in c.JupyterHub


def test_the_gpu_idle_notice_counts_down_and_asks_for_timely_reports():
    rule = GpuIdleRule(timeout=1800, warning=300)
    assert rule.report_seconds == 60
    assert GpuIdleRule(timeout=10, warning=6).report_seconds == 1.5
    early = rule.deadline(idle_since=1000.0, now=1000.0 + 1000)
    assert early["stop_in_seconds"] == 800 and early["warn_in_seconds"] == 500
    assert early["due"] is False
    late = rule.deadline(idle_since=1000.0, now=1000.0 + 1800)
    assert late["due"] is True and late["idle_seconds"] == 1800

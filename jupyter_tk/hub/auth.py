"""Sign-in through an OpenID Connect provider (Keycloak, Authentik) with groups from a claim.

The hub uses oauthenticator's ``GenericOAuthenticator`` with the provider's endpoints, the
groups claim feeding JupyterHub groups (``manage_groups``) and so the group policy, and
``admin_groups`` making admins. :func:`configure_oidc` sets all of it from ``JUPYTER_TK_OIDC_*``
environment variables (secrets never live in a config file); both shipped hub configs call it.

:class:`TkOIDCAuthenticator` adds one thing users notice: when the identity provider cannot be
reached, the login page says so (HTTP 503) instead of a browser error or a 500 page.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from jupyterhub.handlers.login import LoginHandler
from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthCallbackHandler, OAuthLoginHandler
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float

__all__ = ["TkOIDCAuthenticator", "configure_oidc", "provider_endpoints"]

PROVIDERS = ("keycloak", "authentik")
DEFAULT_ADMIN_GROUPS = "jupyter_admin"
# The timeout of a provider probe when the authenticator is built without config.
_PROBE_TIMEOUT_SECONDS = 5.0


def provider_endpoints(provider: str, issuer: str) -> dict[str, str]:
    """The OAuth endpoints of ``provider`` ("keycloak" or "authentik") for its ``issuer`` URL.

    Keycloak: the realm's issuer, ``https://sso.example.org/realms/<realm>``; the endpoints are
    below it. Authentik: the application's issuer,
    ``https://authentik.example.org/application/o/<slug>/``; the endpoints are shared by all
    applications under ``/application/o/``. Raises ValueError for anything else.
    """
    parts = urlsplit(issuer.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the OIDC issuer must be an http(s) URL, not {issuer!r}")
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    if provider == "keycloak":
        if "/realms/" not in f"{path}/":
            raise ValueError(
                f"a Keycloak issuer ends in /realms/<realm> (e.g. "
                f"https://sso.example.org/realms/jupyter), not {issuer!r}"
            )
        base = f"{origin}{path}/protocol/openid-connect"
        return {
            "authorize_url": f"{base}/auth",
            "token_url": f"{base}/token",
            "userdata_url": f"{base}/userinfo",
        }
    if provider == "authentik":
        prefix, _, slug = path.rpartition("/")
        if not prefix.endswith("/application/o") or not slug:
            raise ValueError(
                f"an Authentik issuer is /application/o/<application slug>/ (e.g. "
                f"https://authentik.example.org/application/o/jupyterhub/), not {issuer!r}"
            )
        base = f"{origin}{prefix}"
        return {
            "authorize_url": f"{base}/authorize/",
            "token_url": f"{base}/token/",
            "userdata_url": f"{base}/userinfo/",
        }
    raise ValueError(f"unknown OIDC provider {provider!r}; expected one of {', '.join(PROVIDERS)}")


def _names(value: str) -> set[str]:
    return {name.strip() for name in value.split(",") if name.strip()}


def configure_oidc(c, environ: Mapping[str, str] = os.environ) -> bool:
    """Configure sign-in through OIDC when ``JUPYTER_TK_OIDC_PROVIDER`` is set; else do nothing.

    Returns whether it did. Reads (see docs/sign-in.md): ``JUPYTER_TK_OIDC_PROVIDER``
    (keycloak|authentik), ``JUPYTER_TK_OIDC_ISSUER``, ``JUPYTER_TK_OIDC_CLIENT_ID``,
    ``JUPYTER_TK_OIDC_CLIENT_SECRET``, and optionally ``JUPYTER_TK_OIDC_CALLBACK_URL``,
    ``JUPYTER_TK_OIDC_ALLOWED_GROUPS``, ``JUPYTER_TK_OIDC_ADMIN_GROUPS``,
    ``JUPYTER_TK_OIDC_GROUPS_CLAIM``, ``JUPYTER_TK_OIDC_USERNAME_CLAIM``. A missing or wrong
    value raises ValueError naming the variable, so the hub does not start half-configured.
    """
    provider = environ.get("JUPYTER_TK_OIDC_PROVIDER", "").strip().lower()
    if not provider:
        return False
    missing = [
        name
        for name in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET")
        if not environ.get(f"JUPYTER_TK_OIDC_{name}", "").strip()
    ]
    if missing:
        raise ValueError(
            "JUPYTER_TK_OIDC_PROVIDER is set but "
            + ", ".join(f"JUPYTER_TK_OIDC_{name}" for name in missing)
            + " is not"
        )
    endpoints = provider_endpoints(provider, environ["JUPYTER_TK_OIDC_ISSUER"])

    c.JupyterHub.authenticator_class = TkOIDCAuthenticator
    oauth = c.GenericOAuthenticator
    oauth.login_service = "Keycloak" if provider == "keycloak" else "Authentik"
    oauth.authorize_url = endpoints["authorize_url"]
    oauth.token_url = endpoints["token_url"]
    oauth.userdata_url = endpoints["userdata_url"]
    oauth.client_id = environ["JUPYTER_TK_OIDC_CLIENT_ID"].strip()
    oauth.client_secret = environ["JUPYTER_TK_OIDC_CLIENT_SECRET"].strip()
    if environ.get("JUPYTER_TK_OIDC_CALLBACK_URL", "").strip():
        oauth.oauth_callback_url = environ["JUPYTER_TK_OIDC_CALLBACK_URL"].strip()
    oauth.scope = ["openid", "profile", "email"]
    oauth.username_claim = environ.get("JUPYTER_TK_OIDC_USERNAME_CLAIM", "").strip() or (
        "preferred_username"
    )
    # Groups come from the provider at every login and replace the user's hub groups; the
    # group policy matches on them. (auth_state_groups_key is what oauthenticator 17 calls
    # claim_groups_key: the claim, read from the user info the provider returned.)
    oauth.manage_groups = True
    groups_claim = environ.get("JUPYTER_TK_OIDC_GROUPS_CLAIM", "").strip() or "groups"
    oauth.auth_state_groups_key = f"oauth_user.{groups_claim}"
    allowed = _names(environ.get("JUPYTER_TK_OIDC_ALLOWED_GROUPS", ""))
    if allowed:
        oauth.allowed_groups = allowed
        oauth.allow_all = False
    else:
        # Everyone the provider signs in may use the hub; the policy decides what they get.
        oauth.allow_all = True
    admin_env = environ.get("JUPYTER_TK_OIDC_ADMIN_GROUPS")
    oauth.admin_groups = _names(DEFAULT_ADMIN_GROUPS if admin_env is None else admin_env)
    # Admins come from the provider's groups only: a local user name such as "admin" could be
    # taken by anyone at the provider.
    c.Authenticator.admin_users = set()
    return True


class ProbingLoginHandler(OAuthLoginHandler):
    """/hub/oauth_login: checks that the provider answers before sending the browser there."""

    async def get(self):
        problem = await self.authenticator.provider_problem()
        if problem:
            await _render_login_error(self, problem)
            return
        super().get()


class ReportingCallbackHandler(OAuthCallbackHandler):
    """/hub/oauth_callback: a provider that went away mid-login gets the login page, not a 500."""

    async def get(self):
        try:
            await super().get()
        except (OSError, TimeoutError) as error:
            self.log.warning("OIDC provider unreachable during login: %s", error)
            await _render_login_error(self, self.authenticator.unreachable_message())
        except HTTPClientError as error:
            if error.code < 500:
                raise
            self.log.warning("OIDC provider failed during login: %s", error)
            await _render_login_error(self, self.authenticator.unreachable_message())


async def _render_login_error(handler, message: str) -> None:
    handler.set_status(503)
    # JupyterHub's own login page, with the message where a wrong password would be shown.
    html = await LoginHandler._render(handler, login_error=message)
    handler.finish(html)


class TkOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator whose login page says so when the identity provider is down."""

    login_handler = ProbingLoginHandler
    callback_handler = ReportingCallbackHandler

    provider_probe_timeout = Float(
        _PROBE_TIMEOUT_SECONDS,
        config=True,
        help="""Seconds to wait for the identity provider's authorization endpoint to answer
        when someone clicks "Sign in"; no answer in time shows "cannot be reached" on the login
        page. Example: `c.TkOIDCAuthenticator.provider_probe_timeout = 10`.""",
    )

    def get_custom_html(self, base_url: str) -> str:
        """The login page's sign-in button, plus the error (JupyterHub's own page shows errors
        only with its password form). A site's own `custom_html` wins."""
        if self.custom_html:
            return self.custom_html
        service = html.escape(self.login_service)
        return (
            '<div class="service-login">'
            # JupyterHub's page script shows this when the hub is served over plain HTTP.
            '<p id="insecure-login-warning" class="hidden alert alert-warning">'
            "Warning: JupyterHub seems to be served over an unsecured HTTP connection. "
            "We strongly recommend enabling HTTPS for JupyterHub.</p>"
            "{% if login_error %}"
            '<p class="login_error alert alert-danger" role="alert">{{ login_error | e }}</p>'
            "{% endif %}"
            '<a role="button" class="btn btn-jupyter btn-lg" '
            f'href="{{{{ authenticator_login_url | e }}}}">Sign in with {service}</a>'
            "</div>"
        )

    def unreachable_message(self) -> str:
        host = urlsplit(self.authorize_url).netloc
        return (
            f"Sign-in is unavailable: {self.login_service} ({host}) cannot be reached. "
            "Please try again in a few minutes; if this persists, contact your administrator."
        )

    async def provider_problem(self) -> str | None:
        """None when the authorization endpoint answers (any status below 500), else why not."""
        request = HTTPRequest(
            self.authorize_url,
            method="GET",
            follow_redirects=False,
            connect_timeout=self.provider_probe_timeout,
            request_timeout=self.provider_probe_timeout,
            validate_cert=self.validate_server_cert,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, TimeoutError, HTTPClientError) as error:
            self.log.warning("OIDC provider %s unreachable: %s", self.authorize_url, error)
            return self.unreachable_message()
        if response.code >= 500 or response.code == 599:
            self.log.warning("OIDC provider %s answered %s", self.authorize_url, response.code)
            return self.unreachable_message()
        return None

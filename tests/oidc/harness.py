"""The real OpenID Connect provider of the sign-in tests (``provider.mjs``) as a child process.

``npm --prefix tests/oidc ci`` installs it (``.ci/setup`` does). Accounts live in the JSON file
the provider reads at every sign-in, so :meth:`OidcProvider.set_groups` changes what the next
login gets. See ``provider.mjs`` for the file's shape and the Keycloak/Authentik layouts.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.support.hub_process import ChildProcess
from tests.support.kube_hub import SimulatedApiProcess

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "provider.mjs"
CLIENT_ID = "jupyterhub"
# Test-only: the provider and the hub get it from the test, never from a committed config.
CLIENT_SECRET = "test-client-secret-" + os.urandom(8).hex()


class OidcProvider(ChildProcess):
    """``node provider.mjs <config>``: Keycloak- or Authentik-shaped, on 127.0.0.1."""

    def __init__(self, workdir: Path, *, layout: str, accounts: dict, redirect_uris: list[str]):
        super().__init__(workdir, "oidc-provider.log")
        self.config_path = self.workdir / "oidc-provider.json"
        self.layout = layout
        self.config = {
            "port": 0,
            "layout": layout,
            "realm": "jupyter",
            "slug": "jupyterhub",
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": redirect_uris,
                }
            ],
            "accounts": accounts,
        }
        self.issuer = ""
        self._write()

    def _write(self) -> None:
        temporary = self.config_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.config))
        os.replace(temporary, self.config_path)

    def set_groups(self, user: str, groups: list[str]) -> None:
        """What the provider says about `user`'s groups from the next sign-in on."""
        self.config["accounts"][user]["groups"] = groups
        self._write()

    def start(self, timeout: float = 60) -> OidcProvider:
        node = shutil.which("node")
        if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
            raise RuntimeError("the test OIDC provider needs node and `npm --prefix tests/oidc ci`")
        self._spawn([node, str(SCRIPT), str(self.config_path)], cwd=HERE, pipe_stdout=True)
        # The same "first line on stdout" handshake as the simulated Kubernetes API.
        line = SimulatedApiProcess._first_line(self, timeout)
        if not line or not line.startswith("READY "):
            self._give_up(RuntimeError, f"the OIDC provider did not start: {line!r}")
        self.issuer = line.split()[1]
        return self

    def hub_env(self) -> dict[str, str]:
        """The environment that points a hub config's ``configure_oidc`` at this provider."""
        return {
            "JUPYTER_TK_OIDC_PROVIDER": self.layout,
            "JUPYTER_TK_OIDC_ISSUER": self.issuer,
            "JUPYTER_TK_OIDC_CLIENT_ID": CLIENT_ID,
            "JUPYTER_TK_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }

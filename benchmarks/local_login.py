"""The embedded default's login back-off: how many password guesses one address gets checked.

Starts two real hubs from share/jupyterhub/local_config.py: as shipped (the shared password with
the back-off) and with JupyterHub's stock ``shared-password`` authenticator instead. One client
then sends wrong passwords as fast as it can for --seconds, each for another user name (the
shared password makes every name a way in), through configurable-http-proxy as a browser would.
A guess is *checked* when the hub compares the password (HTTP 403) and *refused* when the
back-off turns it away unchecked (HTTP 429).

    python benchmarks/local_login.py                  # 20 s per hub
    python benchmarks/local_login.py --seconds 60
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.local_hub import LocalHub

STOCK = "c.JupyterHub.authenticator_class = 'shared-password'\n"


def guess_for(hub: LocalHub, seconds: float) -> Counter:
    """Wrong-password logins for `seconds`; counts of HTTP statuses."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = session.cookies["_xsrf"]
    statuses: Counter = Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = session.post(
            f"{hub.url}/hub/login",
            data={"username": f"guess{sum(statuses.values())}", "password": "x", "_xsrf": xsrf},
            allow_redirects=False,
            timeout=30,
        )
        statuses[response.status_code] += 1
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="guessing time per hub")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="tk-bench-login-") as tmp:
        for key, extra in (("jupyter-tk", ""), ("stock", STOCK)):
            hub = LocalHub(Path(tmp) / key, extra_config=extra).start()
            try:
                results[key] = guess_for(hub, args.seconds)
            finally:
                hub.stop()
            print(f"  {key}: {dict(results[key])}", flush=True)

    def row(name: str, ours: str, stock: str) -> None:
        print(f"{name:<36} {ours:>12} {stock:>12}")

    print()
    row(f"one address, {args.seconds:g} s of guessing", "jupyter-tk", "stock")
    row("guesses checked (403)", str(results["jupyter-tk"][403]), str(results["stock"][403]))
    row("guesses refused unchecked (429)", str(results["jupyter-tk"][429]), "-")
    per_second = {k: v[403] / args.seconds for k, v in results.items()}
    row("checked per second", f"{per_second['jupyter-tk']:.1f}", f"{per_second['stock']:.1f}")


if __name__ == "__main__":
    main()

"""Uses a running jupyter-tk hub as a person would: log in, start a server, run code in JupyterLab.

Run with a Python that has tornado (any JupyterHub install):
    python .ci/hub_smoke.py http://127.0.0.1:8000 <user> <password> [--login-only]
Exits non-zero, saying what failed, when any step does not work.
"""

import asyncio
import json
import sys
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect


class Browser:
    """Just enough of a browser: cookies, and the hub's XSRF token on every POST."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.cookies: dict[str, str] = {}
        self.http = AsyncHTTPClient()

    async def fetch(self, path: str, method: str = "GET", body=None, headers=None, **kw):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if "/api/" in path:
            headers.setdefault("Content-Type", "application/json")
        if "_xsrf" in self.cookies and method != "GET":
            headers["X-XSRFToken"] = self.cookies["_xsrf"]
        request = HTTPRequest(
            self.base + path,
            method=method,
            body=body,
            headers=headers,
            follow_redirects=False,
            request_timeout=60,
            **kw,
        )
        response = await self.http.fetch(request, raise_error=False)
        for value in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(value).items():
                self.cookies[name] = morsel.value
        return response


def check(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"hub smoke test failed: {what}")


async def main(base: str, user: str, password: str, login_only: bool) -> None:
    browser = Browser(base)
    deadline = time.monotonic() + 120
    while True:
        try:
            page = await browser.fetch("/hub/login")
            if page.code == 200:
                break
        except (ConnectionError, OSError, HTTPClientError):
            pass
        check(time.monotonic() < deadline, "the hub did not answer /hub/login within 120 s")
        await asyncio.sleep(1)
    check(b"password" in page.body, "/hub/login shows no password field")
    print("hub smoke: /hub/login answers")
    if login_only:
        return

    form = urlencode({"username": user, "password": password, "_xsrf": browser.cookies["_xsrf"]})
    answer = await browser.fetch("/hub/login", "POST", form)
    check(answer.code == 302, f"login answered {answer.code}, not a redirect")
    # As a browser does next: a page view, which issues the XSRF token of the logged-in user.
    home = await browser.fetch("/hub/home")
    check(home.code == 200, f"/hub/home answered {home.code} after login")

    # A token of the user's own, as the token page makes one.
    answer = await browser.fetch(
        f"/hub/api/users/{user}/tokens", "POST", json.dumps({"note": "smoke", "expires_in": 600})
    )
    check(answer.code == 201, f"creating a token answered {answer.code}: {answer.body[:200]!r}")
    auth = {"Authorization": f"token {json.loads(answer.body)['token']}"}

    answer = await browser.fetch(
        f"/hub/api/users/{user}/server", "POST", json.dumps({"profile": "small"}), auth
    )
    check(answer.code in (201, 202), f"starting a server answered {answer.code}: {answer.body!r}")
    deadline = time.monotonic() + 180
    while True:
        model = json.loads((await browser.fetch(f"/hub/api/users/{user}", headers=auth)).body)
        server = model.get("servers", {}).get("", {})
        if server.get("ready"):
            break
        check(bool(server) and time.monotonic() < deadline, f"the server did not start: {model}")
        await asyncio.sleep(1)
    print("hub smoke: server started")

    lab = await browser.fetch(f"/user/{user}/lab", headers=auth)
    check(lab.code == 200, f"/user/{user}/lab answered {lab.code}")
    check(b"jupyter-config-data" in lab.body, "/lab is not a JupyterLab page")
    extensions = await browser.fetch(f"/user/{user}/lab/api/extensions", headers=auth)
    check(b"jupyter-tk" in extensions.body, "the jupyter-tk Lab extension is not installed")
    for api in ("gpus", "examples"):
        answer = await browser.fetch(f"/user/{user}/jupyter-tk/api/{api}", headers=auth)
        check(answer.code == 200, f"the server extension's {api} API answered {answer.code}")
    print("hub smoke: JupyterLab answers with the jupyter-tk Lab and server extensions")

    kernel = await browser.fetch(f"/user/{user}/api/kernels", "POST", "{}", auth)
    check(kernel.code == 201, f"starting a kernel answered {kernel.code}")
    kernel_id = json.loads(kernel.body)["id"]
    ws_url = base.replace("http", "ws", 1) + f"/user/{user}/api/kernels/{kernel_id}/channels"
    socket = await websocket_connect(HTTPRequest(ws_url, headers=auth))
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "msg_type": "execute_request",
        "username": user,
        "session": uuid.uuid4().hex,
        "version": "5.3",
        "date": "",
    }
    content = {
        "code": "print(6 * 7)",
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
    }
    socket.write_message(
        json.dumps(
            {
                "header": header,
                "parent_header": {},
                "metadata": {},
                "content": content,
                "channel": "shell",
            }
        )
    )
    output = ""
    deadline = time.monotonic() + 60
    while "42" not in output:
        check(time.monotonic() < deadline, "the kernel did not print 42 within 60 s")
        message = await asyncio.wait_for(socket.read_message(), 60)
        check(message is not None, "the kernel's websocket closed")
        message = json.loads(message)
        mine = message.get("parent_header", {}).get("msg_id") == msg_id
        if mine and message["msg_type"] == "stream":
            output += message["content"]["text"]
    socket.close()
    print("hub smoke: a kernel ran code through the proxy's websocket")

    answer = await browser.fetch(f"/hub/api/users/{user}/server", "DELETE", headers=auth)
    check(answer.code in (202, 204), f"stopping the server answered {answer.code}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    base = args[0]
    user = args[1] if len(args) > 1 else ""
    password = args[2] if len(args) > 2 else ""
    asyncio.run(main(base, user, password, "--login-only" in sys.argv))

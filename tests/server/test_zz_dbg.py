import asyncio, threading, sys, faulthandler
from tests.server.test_gpu_api import *  # noqa
async def test_dbg(server, jp_fetch):
    s = server.web_app.settings["jupyter_tk_gpu"]
    print("snapshot", s.snapshot and s.snapshot.sequence, "paused", s.paused, s._thread.is_alive())
    t = asyncio.ensure_future(jp_fetch("jupyter-tk", "api", "gpus", request_timeout=3))
    await asyncio.sleep(1)
    print("snapshot", s.snapshot and s.snapshot.sequence, "paused", s.paused, s._thread.is_alive(), s._waiters)
    faulthandler.dump_traceback(all_threads=True)
    try:
        r = await t
        print(r.code)
    except Exception as e:
        print("ERR", repr(e))

import asyncio
import pytest
async def test_plain(jp_fetch):
    r = await jp_fetch("api", "status", request_timeout=3)
    print("plain", r.code)

@pytest.fixture
async def afix(jp_serverapp):
    print("afix loop", id(asyncio.get_running_loop()))
    return jp_serverapp

async def test_with_async_fixture(afix, jp_fetch):
    print("test loop", id(asyncio.get_running_loop()))
    r = await jp_fetch("api", "status", request_timeout=3)
    print("afix", r.code)

@pytest.fixture
def sfix(jp_serverapp, jp_asyncio_loop):
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    return jp_serverapp

async def test_with_sync_fixture(sfix, jp_fetch):
    r = await jp_fetch("jupyter-tk", "api", "gpus", request_timeout=3)
    print("sfix", r.code, r.body[:100])

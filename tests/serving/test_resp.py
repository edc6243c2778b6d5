"""The service's own Redis reader (serving/resp.py) against a real redis-server: pipelined
replies in order, AUTH and database selection, and failures that never hang."""

import asyncio
import importlib.util
import shutil
import socket
from pathlib import Path

import pytest
import redis

from data_platform.serving.resp import RespClient

_spec = importlib.util.spec_from_file_location("serving_helpers", Path(__file__).with_name("helpers.py"))
helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(helpers)


@pytest.fixture
def password_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("no redis-server binary on PATH")
    server = helpers.RedisServer(tmp_path, "--requirepass", "s3cret")
    server.start()
    yield server
    server.stop()


def test_concurrent_pipelines_get_their_own_replies_with_auth_and_db(password_redis):
    writer = redis.Redis(port=password_redis.port, password="s3cret", db=3)
    writer.mset({f"k{i}": f"v{i}" for i in range(200)})
    writer.hset("h", mapping={"a": "1", "b": "2"})

    async def scenario():
        client = RespClient(f"redis://:s3cret@127.0.0.1:{password_redis.port}/3", timeout_s=2)
        replies = await asyncio.gather(*[
            client.execute(("GET", f"k{i}"), ("HMGET", "h", "a", "zz", "b")) for i in range(200)
        ])
        await client.aclose()
        return replies

    replies = asyncio.run(scenario())
    assert [r[0] for r in replies] == [f"v{i}".encode() for i in range(200)]
    assert all(r[1] == [b"1", None, b"2"] for r in replies)
    writer.close()


def test_a_wrong_password_is_a_connection_error(password_redis):
    async def scenario():
        client = RespClient(f"redis://:wrong@127.0.0.1:{password_redis.port}/0", timeout_s=2)
        with pytest.raises(ConnectionError, match="refused"):
            await client.execute(("GET", "x"))

    asyncio.run(scenario())


def test_a_silent_server_times_out_every_waiting_command_and_the_next_call_reconnects():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        async def scenario():
            client = RespClient(f"redis://127.0.0.1:{port}", timeout_s=0.2)
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await asyncio.gather(*[client.execute(("GET", "x")) for _ in range(5)],
                                           return_exceptions=True)
            elapsed = loop.time() - started
            second = await asyncio.gather(client.execute(("GET", "x")), return_exceptions=True)
            return results, elapsed, second

        results, elapsed, second = asyncio.run(scenario())
    assert all(isinstance(r, TimeoutError) for r in results) and elapsed < 1.0
    assert isinstance(second[0], TimeoutError)  # a new connection, still no answer


def test_a_closed_port_fails_at_once():
    port = helpers.free_port()

    async def scenario():
        with pytest.raises(ConnectionError):
            await RespClient(f"redis://127.0.0.1:{port}", timeout_s=2).execute(("GET", "x"))

    asyncio.run(scenario())

"""The worker's health and metrics server: routes, bad requests, limits, a real socket."""

from __future__ import annotations

import json
import re

import attrs
import pytest
import trio
import trio.testing

from tvoice.job import JobInfo
from tvoice.job._health import MAX_REQUEST_HEAD, READ_TIMEOUT, HealthServer, render_metrics
from tvoice.job._launch import RunningJobInfo
from tvoice.job._options import WorkerOptions
from tvoice.job._worker import Worker


@attrs.define
class FakeWorker:
    agent_name: str = "support"
    worker_id: str = "AW_1"
    worker_type: str = "room"
    version: str = "0.1.0"
    load: float = 0.25
    jobs_started: int = 3
    jobs_succeeded: int = 1
    jobs_failed: int = 1
    jobs_rejected: int = 2
    registrations: int = 1
    job_start_seconds_sum: float = 0.75
    job_start_count: int = 3
    connected: bool = True
    draining: bool = False
    active_jobs: list[RunningJobInfo] = attrs.field(factory=list)
    status: str = "available"


def _job(job_id: str) -> RunningJobInfo:
    return RunningJobInfo(job=JobInfo(id=job_id, room_name="lobby"), url="ws://x", token="t")


async def _exchange(server: HealthServer, request: bytes, *, close: bool = True) -> bytes:
    client, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.handle, server_end)
        if request:
            await client.send_all(request)
        if close:
            await client.send_eof()
        response = b""
        while chunk := await client.receive_some(65536):
            response += chunk
    return response


def _parse(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body) or headers.get("X-Head")
    assert headers["Connection"] == "close"
    return status, headers, body


async def _get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    return _parse(await _exchange(server, request))


async def test_health_is_ok_while_registered_and_503_otherwise():
    worker = FakeWorker()
    server = HealthServer(worker)
    assert await _get(server, "/") == (
        200,
        {"Content-Type": "text/plain; charset=utf-8", "Content-Length": "3", "Connection": "close"},
        b"OK\n",
    )
    worker.connected = False
    status, _, body = await _get(server, "/")
    assert status == 503
    assert b"not registered" in body


async def test_worker_description_in_json():
    worker = FakeWorker(active_jobs=[_job("AJ_1"), _job("AJ_2")])
    status, headers, body = await _get(HealthServer(worker), "/worker?verbose=1")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    info = json.loads(body)
    assert info["agent_name"] == "support"
    assert info["worker_id"] == "AW_1"
    assert info["worker_type"] == "room"
    assert info["active_jobs"] == 2
    assert info["jobs"] == [{"id": "AJ_1", "room": "lobby"}, {"id": "AJ_2", "room": "lobby"}]
    assert info["status"] == "available"
    assert info["load"] == 0.25
    assert (info["sdk"], info["sdk_version"]) == ("tvoice", "0.1.0")


async def test_metrics_in_prometheus_text_format():
    worker = FakeWorker(agent_name='a"b', active_jobs=[_job("AJ_1")])
    status, headers, body = await _get(HealthServer(worker), "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'tvoice_worker_load{agent_name="a\\"b"} 0.25\n' in text
    assert 'tvoice_worker_active_jobs{agent_name="a\\"b"} 1\n' in text
    assert 'tvoice_worker_connected{agent_name="a\\"b"} 1\n' in text
    assert 'tvoice_worker_jobs_total{agent_name="a\\"b",outcome="failed"} 1\n' in text
    assert "# TYPE tvoice_worker_jobs_total counter" in text
    assert "# TYPE tvoice_worker_load gauge" in text
    assert "# TYPE tvoice_worker_job_start_seconds summary" in text
    assert 'tvoice_worker_job_start_seconds_sum{agent_name="a\\"b"} 0.75\n' in text
    assert 'tvoice_worker_job_start_seconds_count{agent_name="a\\"b"} 3\n' in text
    assert re.search(r"^process_resident_memory_bytes \d+$", text, re.MULTILINE)
    # Every sample follows its HELP and TYPE lines, and every line is well formed.
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="(?:[^"\\]|\\.)*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$')
    for line in text.splitlines():
        assert line.startswith(("# HELP ", "# TYPE ")) or sample.match(line), line


async def test_head_has_the_headers_and_no_body():
    response = await _exchange(HealthServer(FakeWorker()), b"HEAD / HTTP/1.1\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 3" in head
    assert body == b""


async def test_unknown_path_and_method():
    server = HealthServer(FakeWorker())
    assert (await _get(server, "/nope"))[0] == 404
    status, headers, _ = await _get(server, "/", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET nope HTTP/1.1\r\n\r\n",
        b"GET / SPDY/3\r\n\r\n",
        b"\x00\xff\xfe\r\n\r\n",
        b"GET / HTTP/1.1\r\n",  # the client stops before the end of the head
        b"",
    ],
)
async def test_malformed_requests_get_400(request_bytes: bytes):
    status, _, _ = _parse(await _exchange(HealthServer(FakeWorker()), request_bytes))
    assert status == 400


async def test_a_request_head_past_the_limit_gets_431():
    request = b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST_HEAD + b"\r\n\r\n"
    status, _, _ = _parse(await _exchange(HealthServer(FakeWorker()), request, close=False))
    assert status == 431


async def test_a_silent_client_gets_408_after_the_read_timeout(autojump_clock: trio.abc.Clock):
    start = trio.current_time()
    response = await _exchange(HealthServer(FakeWorker()), b"GET / HT", close=False)
    assert trio.current_time() - start == READ_TIMEOUT
    assert _parse(response)[0] == 408


async def test_a_client_that_leaves_does_not_stop_the_server():
    client, server_end = trio.testing.memory_stream_pair()
    await client.aclose()
    await HealthServer(FakeWorker()).handle(server_end)  # returns quietly


async def test_an_error_inside_is_logged_and_the_server_goes_on(caplog: pytest.LogCaptureFixture):
    class Exploding(list[RunningJobInfo]):
        def __len__(self) -> int:
            raise RuntimeError("boom")

    server = HealthServer(FakeWorker(active_jobs=Exploding()))
    assert await _exchange(server, b"GET /worker HTTP/1.1\r\n\r\n") == b""
    assert "failed to answer a request" in caplog.text
    assert (await _get(server, "/"))[0] == 200


async def test_serves_a_real_socket_on_the_port_it_reports():
    worker = Worker(
        WorkerOptions(entrypoint_fnc=_never, agent_name="support", api_key="k", api_secret="s"),
        pool=_NoPool(),
    )
    render_metrics(worker)  # a real Worker has everything the server reads
    async with trio.open_nursery() as nursery:
        port = await nursery.start(HealthServer(worker, host="127.0.0.1", port=0).run)
        assert port > 0
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                await stream.send_all(b"GET /worker HTTP/1.1\r\nHost: x\r\n\r\n")
                response = b""
                while chunk := await stream.receive_some(65536):
                    response += chunk
        nursery.cancel_scope.cancel()
    status, _, body = _parse(response)
    assert status == 200
    info = json.loads(body)
    assert (info["agent_name"], info["worker_id"], info["connected"]) == ("support", "", False)
    assert info["status"] == "available"


async def _never(ctx: object) -> None:
    raise AssertionError("no job runs here")


class _NoPool:
    active_jobs = 0

    async def run_job(self, info: RunningJobInfo, *, task_status: object = None) -> object:
        raise AssertionError("no job runs here")


async def test_liveness_stays_ok_while_a_worker_without_its_server_drains():
    # Readiness (/) takes the worker out of rotation; liveness must not get it restarted, or
    # its running calls would drop.
    worker = FakeWorker(connected=False, draining=True, active_jobs=[_job("AJ_1")])
    server = HealthServer(worker)
    assert (await _get(server, "/"))[0] == 503
    assert (await _get(server, "/livez"))[0::2] == (200, b"alive\n")


async def test_past_the_connection_limit_a_client_is_turned_away_at_once(
    autojump_clock: trio.abc.Clock,
):
    # Exposed with --host, the server must not hold an unbounded number of silent clients.
    from tvoice.job._health import MAX_CONNECTIONS

    server = HealthServer(FakeWorker())
    async with trio.open_nursery() as nursery:
        silent = []
        for _ in range(MAX_CONNECTIONS):
            client, server_end = trio.testing.memory_stream_pair()
            silent.append(client)
            nursery.start_soon(server.handle, server_end)
        await trio.testing.wait_all_tasks_blocked()
        start = trio.current_time()
        status, _, body = _parse(await _exchange(server, b"GET / HTTP/1.1\r\n\r\n"))
        assert (status, body, trio.current_time() - start) == (503, b"too many connections\n", 0)
        nursery.cancel_scope.cancel()
    # Once they are gone, the server answers again.
    assert (await _get(server, "/"))[0] == 200

"""One inference server per machine: the first process that asks starts it, every later one
reuses it, and it stops once no process uses it. Real processes, on loopback; every wait is
bounded."""

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tvoice.inference import local_models_url

SERVER = Path(__file__).with_name("shared_server.py")
USER = """
import sys
from pathlib import Path
from tvoice.inference import local_models_url
url = local_models_url(
    command=[sys.executable, sys.argv[1]], folder=Path(sys.argv[2]), exit_when_unused=0.5
)
print(url, flush=True)
sys.stdin.read()  # a user for as long as its input is open
"""


def user(folder):
    """A process that uses the shared server until its stdin is closed: (process, url)."""
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(SERVER), str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, process.stdout.readline().strip()


def leave(process):
    process.stdin.close()
    process.stdout.close()
    assert process.wait(timeout=10) == 0


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def answers(url):
    try:
        return httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_one_server_for_every_process_until_none_uses_it(tmp_path):
    first, url = user(tmp_path)
    second, again = user(tmp_path)
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    assert again == url, "the second process reuses the first one's server"
    state = json.loads((tmp_path / "models.json").read_text())
    assert state["url"] == url
    reply = httpx.post(
        f"{url}/chat/completions",
        json={"messages": [{"role": "user", "content": "Hello."}]},
        timeout=5,
    )
    assert reply.json()["choices"][0]["message"]["content"] == "Hi."
    leave(first)
    time.sleep(1.0)  # longer than exit_when_unused: the second process still uses it
    assert answers(url)
    leave(second)
    wait_until(lambda: not answers(url))
    assert not (tmp_path / "models.json").exists()
    # The next process to ask starts a new one.
    third, fresh = user(tmp_path)
    assert answers(fresh)
    leave(third)
    wait_until(lambda: not answers(fresh))


def test_a_dead_server_is_started_again(tmp_path):
    first, url = user(tmp_path)
    pid = json.loads((tmp_path / "models.json").read_text())["pid"]
    subprocess.run(["kill", "-9", str(pid)], check=True)
    wait_until(lambda: not answers(url))
    second, fresh = user(tmp_path)
    assert answers(fresh)
    assert json.loads((tmp_path / "models.json").read_text())["pid"] != pid
    leave(first)
    leave(second)
    wait_until(lambda: not answers(fresh))


def test_a_server_that_cannot_start_says_why(tmp_path):
    broken = [sys.executable, "-c", "import sys; sys.exit('no models here')"]
    with pytest.raises(RuntimeError, match="no models here"):
        local_models_url(command=broken, folder=tmp_path, start_timeout=10)

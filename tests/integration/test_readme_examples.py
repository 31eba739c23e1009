"""The README's quick start as a user runs it: `make run` (against the test node, as `ES_URL`
allows), then the curl commands it prints and every curl example the README shows, each block
run by `sh` exactly as written; only the port differs, so a service a developer runs on 8888 is
left alone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading

import pytest

from scripts.local_es import free_port
from tests.conftest import ROOT
from tests.load import wait_until_up

README = (ROOT / "README.md").read_text()
#: The README's shell blocks that call the service (in the README's order: a query follows the
#: post it finds).
EXAMPLES = [
    block
    for block in re.findall(r"```sh\n(.*?)```", README, re.S)
    if "curl" in block and "127.0.0.1:8888" in block
]


@pytest.fixture(scope="module")
def quick_start(settings):
    """`make run` in the repository: (its port, the development token, what it printed)."""
    port = free_port()
    env = {**os.environ, "ES_URL": settings.es_url, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    env["INDEX_PREFIX"] = f"{settings.index_prefix}readme-"  # removed with the tests' indices
    server = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    printed = []
    try:
        for line in server.stdout:
            printed.append(line)
            if line.startswith("API docs:"):
                break
        banner = "".join(printed)
        # Whatever it prints later is read too, so a full pipe never stalls it.
        threading.Thread(target=server.stdout.read, daemon=True).start()
        token = re.search(r"Development token: (\S+)", banner).group(1)
        wait_until_up(f"http://127.0.0.1:{port}", timeout=60)
        yield port, token, banner
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def shell(script: str, port: int, token: str) -> str:
    """`script` run by sh with `TOKEN` set, stopping at its first failing command."""
    done = subprocess.run(
        ["sh", "-ec", script.replace("127.0.0.1:8888", f"127.0.0.1:{port}")],
        env={**os.environ, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (script, done.stdout, done.stderr)
    assert '"error"' not in done.stdout, (script, done.stdout)
    return done.stdout


def test_make_run_prints_commands_that_work(quick_start):
    port, token, banner = quick_start
    commands = re.findall(r"^  (curl .*?)(?=\n\S|\n  curl)", banner, re.S | re.M)
    assert len(commands) == 2, banner
    posted = shell(commands[0], port, token)
    assert '"stored":1' in posted
    assert '"count":' in shell(commands[1], port, token)


def test_every_curl_example_of_the_readme_works(quick_start):
    port, token, _ = quick_start
    assert len(EXAMPLES) >= 5  # cdx post and query, roundware, conditional GET, metrics
    outputs = [shell(block, port, token) for block in EXAMPLES]
    by_block = dict(zip(EXAMPLES, outputs, strict=True))
    (conditional,) = [out for block, out in by_block.items() if "If-None-Match" in block]
    assert "304 NOT MODIFIED" in conditional.upper()
    (metrics,) = [out for block, out in by_block.items() if "/metrics" in block]
    assert 'events_ingested_total{dataset="cdx",outcome="stored"}' in metrics

"""The service under gunicorn with the repo's `gunicorn.conf.py` on a free loopback port, as in
production: for the benchmarks (bench/) and the fault scenarios (tests/reliability/)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from scripts.local_es import die_with_parent, free_port

ROOT = Path(__file__).resolve().parent.parent


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB; zeros once it is gone."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount = line.split(":")
                values[name] = int(amount.split()[0])
    except OSError:
        return 0, 0
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


class GunicornService:
    """`gunicorn -c gunicorn.conf.py wsgi:app` (or another `app`) against `es_url`; usable as a
    context manager.

    Startup waits until `ready_path` answers 200 (`/ready` needs Elasticsearch; `/health` only
    the process) and, when `WEB_CONCURRENCY` is given, until that many workers run.
    """

    def __init__(
        self,
        es_url: str,
        prefix: str,
        log_path: Path,
        env: dict | None = None,
        ready_path="/ready",
        app="wsgi:app",
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ES_URL": es_url,
            "INDEX_PREFIX": prefix,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            **{key: str(value) for key, value in (env or {}).items()},
        }
        self.log_path, self.ready_path, self.app = Path(log_path), ready_path, app
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 60) -> GunicornService:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (kept for the process' life)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), self.app],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the service did not come up; see {self.log_path}")
            time.sleep(0.3)
        expected = int(self.env.get("WEB_CONCURRENCY", 0))
        while expected and len(self.worker_pids()) < expected and time.monotonic() < deadline:
            time.sleep(0.3)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}{self.ready_path}", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def worker_pids(self) -> list[int]:
        if not self.process:
            return []
        pid = self.process.pid
        try:
            return sorted(
                int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            )
        except OSError:
            return []

    def worker_rss_kib(self) -> dict[int, int]:
        """Resident memory of each worker process, in KiB."""
        return {pid: memory_kib(pid)[0] for pid in self.worker_pids()}

    def errors_logged(self) -> list[str]:
        """Tracebacks and unhandled errors in the server's log (there must be none)."""
        text = self.log_path.read_text(errors="replace")
        signs = ("Traceback", "unhandled error", "WORKER TIMEOUT")
        return [line for line in text.splitlines() if any(sign in line for sign in signs)]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log:
            self._log.close()

    def __enter__(self) -> GunicornService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

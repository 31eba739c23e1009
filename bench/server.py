"""The service under test: gunicorn with the repo's `gunicorn.conf.py`, and its workers' memory."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from scripts.local_es import die_with_parent, free_port

ROOT = Path(__file__).resolve().parent.parent


class Service:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free loopback port, against `es_url`."""

    def __init__(self, es_url: str, prefix: str, log_path: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ES_URL": es_url,
            "INDEX_PREFIX": prefix,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            **(env or {}),
        }
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Service:
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept for the process' life)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {self.log_path}")
            if self.ready():
                return self
            time.sleep(0.3)
        raise RuntimeError(f"the service was not ready after {timeout}s; see {self.log_path}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def workers(self) -> list[int]:
        if not self.process:
            return []
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [int(child) for child in children]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


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


class RssSampler:
    """The largest resident size (VmRSS) any worker had during a phase, sampled every 50 ms.

    (VmHWM, the kernel's own peak, is per process lifetime, so it cannot tell phases apart:
    `lifetime_peak_mb` reports it for the run so far.)
    """

    def __init__(self, service: Service, interval: float = 0.05):
        self.service, self.interval = service, interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.service.workers():
                self.peak_kib = max(self.peak_kib, memory_kib(pid)[0])
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        return self.peak_kib / 1024


def lifetime_peak_mb(service: Service) -> float:
    """The largest VmHWM of the live workers (gunicorn may have recycled older ones)."""
    return max((memory_kib(pid)[1] for pid in service.workers()), default=0) / 1024

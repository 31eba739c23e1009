"""The benchmark's table (printed and written to docs/benchmarks.md) and the run's setting."""

from __future__ import annotations

import os
import platform
import runpy
from importlib.metadata import version
from pathlib import Path

from scripts.served import ROOT

from .phases import QUERIES, median, new_grouped, p95

BATCH_TARGET, SINGLE_TARGET, QUERY_FACTOR, QUERY_SLACK_MS, RSS_TARGET_MB = 0.9, 1.0, 1.15, 3.0, 150
TARGETED_QUERIES = ("count-only", "grouped")


def rows(results: list[dict]) -> list[list[str]]:
    table = []
    for step in results:
        size = f"{step['size']:,}"
        service, direct = step["batch"]
        table.append(_ratio_row(size, "batch ingest, events/s", service, direct, BATCH_TARGET))
        service, direct = step["single"]
        table.append(_ratio_row(size, "single POST, events/s", service, direct, SINGLE_TARGET))
        for (name, mode), (svc, drc) in step["queries"].items():
            table.append(_query_row(size, f"{name}, {mode}: median (p95) ms", svc, drc, name))
        for phase, mb in step["rss"].items():
            met = "yes" if mb <= RSS_TARGET_MB else "no"
            table.append(
                [size, f"worker peak RSS, {phase}", f"{mb:.0f} MB", "", "", f"≤ {RSS_TARGET_MB}", met]
            )
    return table


def _ratio_row(size: str, name: str, service: float, direct: float, target: float) -> list[str]:
    ratio = service / direct
    met = "yes" if ratio >= target else "no"
    return [size, name, f"{service:,.0f}", f"{direct:,.0f}", f"{ratio:.2f}x", f"≥ {target:.2f}x", met]


def _query_row(size: str, name: str, service: list[float], direct: list[float], query: str) -> list[str]:
    s, d = median(service), median(direct)
    targeted = query in TARGETED_QUERIES
    met = ("yes" if s <= QUERY_FACTOR * d + QUERY_SLACK_MS else "no") if targeted else "(no target)"
    target = f"≤ {QUERY_FACTOR}x + {QUERY_SLACK_MS:.0f} ms" if targeted else ""
    return [
        size,
        name,
        f"{s:.1f} ({p95(service):.1f})",
        f"{d:.1f} ({p95(direct):.1f})",
        f"{s / d:.2f}x",
        target,
        met,
    ]


HEADER = ["stored events", "measure", "service", "Elasticsearch direct", "ratio", "target", "met"]


def table(results: list[dict]) -> str:
    lines = [HEADER, *rows(results)]
    return "\n".join("| " + " | ".join(line) + " |" if i else _header() for i, line in enumerate(lines))


def _header() -> str:
    return "| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER)


def environment(es, args, service) -> dict:
    gunicorn_conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    # The integ-test-zip distribution has no `GET /`: the node's version comes from its info.
    (node,) = es.nodes.info(node_id="_local")["nodes"].values()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": f"{_mem_total_gib():.0f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "elasticsearch": f"{node['version']}, heap {args.heap}",
        "packages": ", ".join(
            f"{name} {version(name)}"
            for name in ("elasticsearch", "flask", "gunicorn", "orjson", "marshmallow")
        ),
        "gunicorn": f"{gunicorn_conf['worker_class']}, {gunicorn_conf['workers']} workers x "
        f"{gunicorn_conf.get('threads', 1)} threads, access log off",
        "load": args.load_before,
        "other_nodes": _other_es_nodes(),
        "settings": (
            f"sizes {', '.join(f'{s:,}' for s in args.sizes)}; batch {args.batch_events:,} events per side "
            f"in {args.batch_rounds} rounds of NDJSON batches of 500-5,000, {args.batch_concurrency} "
            f"concurrent senders; single POSTs {args.single_events:,} per side in {args.single_rounds} "
            f"rounds, {args.clients} keep-alive clients; {args.query_runs} timed pairs per query and "
            f"cache mode after 3 warm-up pairs; seed {args.seed}"
        ),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _other_es_nodes() -> int:
    """Elasticsearch processes on the machine (ours included): a sign of how shared it was."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"org.elasticsearch.bootstrap.Elasticsearch" in cmdline.read_bytes():
                count += 1
        except OSError:
            continue
    return count


def markdown(results: list[dict], env: dict) -> str:
    queries = "\n".join(f"- **{name}**: `{spec}`" for name, spec in QUERIES.items())
    queries += (
        "\n- **grouped, new each run**: the grouped query with `since` one day later at each run"
        f" (`{new_grouped(0)['since']}`, `{new_grouped(1)['since']}`, ...), so no cache holds its answer"
    )
    checks = "\n".join(
        f"- {step['size']:,}: stored {step['counts'][0]:,} (service) and {step['counts'][1]:,} (direct); "
        f"sampled documents identical on both sides: {'yes' if step['identical'] else 'NO'}"
        for step in results
    )
    return TEMPLATE.format(table=table(results), queries=queries, checks=checks, **env)


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write(path: Path, generated: str) -> None:
    """Replace the generated part of `path` (between the markers), keeping the analysis around it."""
    block = f"{BEGIN}\n{generated}{END}\n"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        text = f"{before}{block}\n{after}"
    else:
        text = f"# Benchmarks: the service side by side with Elasticsearch\n\n{block}"
    path.write_text(text)


TEMPLATE = """<!-- written by `make bench` (python -m bench): edit outside the bench markers only -->

Rerun with one command: `make bench` (`make bench BENCH_ARGS="--sizes 100000"` skips the 1M step).

## Figures

{table}

Query cells are `median (p95)` over the timed pairs; the ratio is of the medians. The query
target is service median ≤ 1.15 x direct median + 3 ms.

## The run

- machine: {cpu}, {cores} cores, {memory}, Linux {kernel}
- Elasticsearch nodes running on the machine during the run (ours included): {other_nodes};
  load average before the run: {load}
- Python {python}; {packages}
- Elasticsearch {elasticsearch}
- gunicorn: {gunicorn}
- {settings}

Checks made by the run:
{checks}

The queries (the service receives them as a JSON body on `POST /events/query`; the direct side
sends the body `service.engine.translate` makes of them, composite pages included, to the same
index):
{queries}
"""

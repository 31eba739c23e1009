"""`python -m bench` (`make bench`): run every phase at each size, print and write the table."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from elasticsearch import Elasticsearch

from scripts.local_es import LocalNode
from scripts.served import ROOT
from service import create_app, templates
from service.config import Settings

from . import floors, phases, report
from .data import Dataset
from .report import MAIN_BATCH, SINGLE
from .server import RssSampler, Service, lifetime_peak_mb

PREFIX, DIRECT_PREFIX = "bench-", "benchd-"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="stored events at each step")
    parser.add_argument("--batch-events", type=int, default=60_000, help="measured batch events per side")
    parser.add_argument("--batch-rounds", type=int, default=6)
    parser.add_argument("--batch-concurrency", type=int, default=2)
    parser.add_argument(
        "--other-batch-events",
        type=int,
        default=20_000,
        help="measured events per side of each other batch phase (one sender, one month; one plain index)",
    )
    parser.add_argument("--single-events", type=int, default=6_000, help="single POSTs per side")
    parser.add_argument("--single-rounds", type=int, default=4)
    parser.add_argument(
        "--clients", default="32,16", help="concurrent keep-alive clients of each single-POST phase"
    )
    parser.add_argument("--query-runs", type=int, default=40, help="timed pairs per query and cache mode")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--heap", default=os.environ.get("ES_HEAP", "1g"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--quick", action="store_true", help="a small smoke run (20k events)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batch_events, args.single_events, args.query_runs = "20000", 8_000, 1_000, 10
        args.other_batch_events = 3_000
    args.sizes = [int(size) for size in args.sizes.split(",")]
    args.clients = [int(clients) for clients in args.clients.split(",")]
    args.load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    node, data_dir = None, None
    es_url = os.environ.get("ES_URL")
    if not es_url:
        data_dir = Path(tempfile.mkdtemp(prefix="es-bench-"))
        data_dir.chmod(0o755)
        print(f"starting Elasticsearch ({args.heap} heap) ...", flush=True)
        node = LocalNode(data_dir, heap=args.heap).start()
        es_url = node.url
    es = Elasticsearch(es_url, request_timeout=300)
    service = None
    try:
        prepare_indices(es)
        token = bench_token(es_url)
        log_path = Path(tempfile.gettempdir()) / f"bench-gunicorn-{os.getpid()}.log"
        service = Service(es_url, PREFIX, log_path, env={"ACCESS_LOG": ""}).start()
        results = run_steps(args, es, es_url, service, token)
        log("the stack's floors (bench/floors.py)")
        floor_log = Path(tempfile.gettempdir()) / f"bench-floor-{os.getpid()}.log"
        stack_floors = floors.measure(Dataset(args.seed), args.clients, args.single_events // 2, floor_log)
        text = report.markdown(results, stack_floors, report.environment(es, args, service))
        print(report.table(results))
        print(report.floor_table(stack_floors))
        Path(args.out).parent.mkdir(exist_ok=True)
        report.write(Path(args.out), text)
        print(f"written to {args.out}")
        return 0
    finally:
        if service:
            service.stop()
        cleanup(es)
        es.close()
        if node:
            node.stop()
            shutil.rmtree(data_dir, ignore_errors=True)


def prepare_indices(es: Elasticsearch) -> None:
    """Fresh indices from the dataset templates, for the service's prefix and the direct side."""
    cleanup(es)
    for prefix in (PREFIX, DIRECT_PREFIX):
        templates.install(es, prefix)


def cleanup(es: Elasticsearch) -> None:
    """By concrete name: a cluster may refuse wildcard deletes."""
    for prefix in (PREFIX, DIRECT_PREFIX):
        found = es.options(ignore_status=404).indices.get(index=f"{prefix}*", expand_wildcards="all")
        for index in found:
            es.options(ignore_status=404).indices.delete(index=index)
        for template in templates.DATASETS.values():
            es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}{template.name}")


def bench_token(es_url: str) -> str:
    app = create_app(Settings.from_env(es_url=es_url, index_prefix=PREFIX))
    return app.extensions["tokens"].create("bench", ["ingest", "query"])[1]


#: Batch phases besides the main one: (name, concurrency or None for --batch-concurrency,
#: events all in one month, the direct side writing one plain index).
OTHER_BATCHES = (
    ("batch ingest, 1 sender, one month", 1, True, False),
    ("batch ingest, direct into one plain index", None, False, True),
)


def run_steps(args, es: Elasticsearch, es_url: str, service: Service, token: str) -> list[dict]:
    data = Dataset(args.seed)
    # Both sides keep the service's monthly layout: `<prefix>cdx-YYYY.MM`.
    service_index, direct_index = f"{PREFIX}cdx*", f"{DIRECT_PREFIX}cdx*"
    # Matched by the direct side's template and pattern: its documents count and compare alike.
    plain_index = f"{DIRECT_PREFIX}cdx-plain"
    meter = phases.Meter(service.worker_pids, node_pid(es))
    setup = phases.Setup(service.url, token, es, es_url, DIRECT_PREFIX, data, meter)
    stored, results = 0, []
    for size in args.sizes:
        step = {"size": size, "rss": {}, "ingest": {}}
        others = args.other_batch_events * len(OTHER_BATCHES)
        singles = args.single_events * len(args.clients)
        batch = min(args.batch_events, size - stored - singles - others)
        filling = size - stored - singles - batch - others
        if filling > 0:
            log(f"[{size:,}] filling {filling:,} events into both indices (not measured)")
            phases.fill(es, [PREFIX, DIRECT_PREFIX], data, stored, filling)
            stored += filling
        log(f"[{size:,}] {MAIN_BATCH}: {batch:,} events per side")
        run = partial(phases.batch_ingest, setup, stored, batch, args.batch_rounds, args.batch_concurrency)
        step["ingest"][MAIN_BATCH] = sampled(service, step["rss"], "batch ingest", run)
        stored += batch
        for name, concurrency, one_month, plain in OTHER_BATCHES:
            log(f"[{size:,}] {name}: {args.other_batch_events:,} events per side")
            run = partial(
                phases.batch_ingest,
                setup,
                stored,
                args.other_batch_events,
                max(1, args.batch_rounds // 2),
                concurrency or args.batch_concurrency,
                one_month=one_month,
                plain_index=plain_index if plain else None,
            )
            step["ingest"][name] = sampled(service, step["rss"], name, run)
            stored += args.other_batch_events
        for clients in args.clients:
            name = f"{SINGLE} {clients} clients"
            log(f"[{size:,}] {name}: {args.single_events:,} per side")
            events, rounds = args.single_events, args.single_rounds
            run = partial(phases.single_ingest, setup, stored, events, rounds, clients)
            step["ingest"][name] = sampled(service, step["rss"], name, run)
            stored += args.single_events
        es.indices.refresh(index=[service_index, direct_index])
        step["counts"] = [es.count(index=i)["count"] for i in (service_index, direct_index)]
        step["identical"] = same_documents(es, data, service_index, direct_index, stored)
        step["queries"] = run_queries(args, es, es_url, service, token, service_index, step["rss"], meter)
        step["rss"]["so far, VmHWM"] = lifetime_peak_mb(service)
        results.append(step)
    return results


def node_pid(es: Elasticsearch) -> int | None:
    """The node's process id, when it runs on this machine (its CPU is read from /proc)."""
    (node,) = es.nodes.info(node_id="_local", metric="process")["nodes"].values()
    pid = node.get("process", {}).get("id")
    return pid if pid and Path(f"/proc/{pid}/stat").exists() else None


def sampled(service: Service, rss_by_phase: dict, phase: str, run):
    """Run a phase while sampling the workers' resident size; record the phase's peak."""
    with RssSampler(service) as rss:
        result = run()
    rss_by_phase[phase] = rss.peak_mb
    return result


def run_queries(args, es, es_url, service, token, index, rss_by_phase, meter: phases.Meter) -> dict:
    runner = phases.QueryRunner(service.url, token, es_url, f"{PREFIX}cdx*", meter)
    figures = {}
    for cache in (False, True):
        phases.set_request_cache(es, index, cache)
        mode = "cache on" if cache else "cache off"
        sampled(service, rss_by_phase, f"queries, {mode}", partial(compare_all, runner, args, mode, figures))
    return figures


def compare_all(runner: phases.QueryRunner, args, mode: str, figures: dict) -> None:
    for name, spec in phases.COMPARED.items():
        log(f"  queries: {name}, request {mode}")
        figures[(name, mode)] = runner.compare(spec, args.query_runs)


def same_documents(es: Elasticsearch, data: Dataset, left: str, right: str, stored: int) -> bool:
    """Both sides stored the very same documents (a sample across the whole range)."""
    for position in range(0, stored, max(1, stored // 7)):
        (event,) = data.events(position, 1)
        sides = [
            es.search(index=pattern, query={"ids": {"values": [event["uuid"]]}})["hits"]["hits"]
            for pattern in (left, right)
        ]
        if any(len(hits) != 1 for hits in sides) or sides[0][0]["_source"] != sides[1][0]["_source"]:
            return False
    return True


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`flask import`, `flask export` and `flask retention`: events in bulk, for operators.

Import goes through the same pipeline as `POST` (validation, duplicates, bulk;
`ingest/pipeline.py`), export through the same query service as `GET` (`queries.py`), so
neither command has rules of its own. The file formats are described in `formats.py`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext
from marshmallow import ValidationError

from .. import formats as files
from ..datasets import DATASETS
from ..engine.params import export_schema, load_pairs
from ..ingest import pipeline
from ..ingest.report import CREATED, DUPLICATE, INVALID
from ..queries import Scope
from . import retention

#: Errors printed per import; the rest are counted.
MAX_SHOWN_ERRORS = 50
dataset_argument = click.argument("dataset", type=click.Choice(sorted(DATASETS)))


class ByteCounter:
    """Lines of a file, counting the bytes read so far for the progress bar."""

    def __init__(self, stream):
        self.stream, self.read = stream, 0

    def __iter__(self):
        for line in self.stream:
            self.read += len(line.encode())
            yield line


@click.command("import")
@dataset_argument
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "file_format", type=click.Choice(files.FORMATS), help="Default: by extension.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def import_events(dataset, path, file_format, batch_size):
    """Import events from an NDJSON or CSV file; exit 1 if any line was not stored."""
    store = current_app.extensions["store"]
    dataset = DATASETS[dataset]
    new_id = current_app.extensions["ids"].next_id
    # Counts of every outcome, but only the first bad lines kept: memory stays constant.
    tally, problems = Counter(), []
    with open(path, encoding="utf-8", newline="") as stream:
        source = ByteCounter(stream)
        lines = files.read_lines(source, files.format_of(path, file_format), dataset)
        with click.progressbar(length=os.path.getsize(path), label="importing", file=sys.stderr) as bar:
            for numbers, batch in files.batches(lines, batch_size):
                # An exported event's clock correction is kept, not refused as server-set.
                report, _ = pipeline.run(store, dataset, batch, new_id, restore_clocks=True)
                tally.update(report.outcomes.get(i, INVALID) for i in range(report.size))
                for error in report.body()["errors"][: MAX_SHOWN_ERRORS - len(problems)]:
                    problems.append((numbers[error["index"]], error["status"], error["errors"]))
                bar.update(source.read - bar.pos)
    store.refresh(dataset)
    summarise(tally, problems)


def summarise(tally: Counter, problems: list) -> None:
    """Stored / duplicate / invalid / failed counts on stdout, the first bad lines on stderr."""
    for number, status, errors in problems:
        click.echo(f"line {number}: {status}: {errors}", err=True)
    failed = sum(tally.values()) - tally[CREATED] - tally[DUPLICATE] - tally[INVALID]
    if failed + tally[INVALID] > len(problems):
        click.echo(f"... and {failed + tally[INVALID] - len(problems)} more", err=True)
    invalid = tally[INVALID]
    click.echo(
        f"stored: {tally[CREATED]}, duplicates: {tally[DUPLICATE]}, invalid: {invalid}, failed: {failed}"
    )
    if failed or invalid:
        raise SystemExit(1)


@click.command("export")
@dataset_argument
@click.option(
    "--filter",
    "-f",
    "filters",
    multiple=True,
    metavar="NAME=VALUE",
    help="A query parameter of the API (repeatable): gender=male,female, since=2024-01-01, order_by=-age.",
)
@click.option("--format", "file_format", type=click.Choice(files.FORMATS), help="Default: by extension.")
@click.option("--output", "-o", default="-", show_default=True, help="File to write ('-': stdout).")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10_000))
@with_appcontext
def export_events(dataset, filters, file_format, output, batch_size):
    """Export the events a query matches to NDJSON or CSV, streaming (point in time + search_after)."""
    dataset = DATASETS[dataset]
    params = export_params(dataset, filters)
    pages = current_app.extensions["queries"].export(dataset, params, Scope(), page_size=batch_size)
    with click.open_file(output, "w", encoding="utf-8") as stream:
        written = files.write_events(stream, pages, files.format_of(output, file_format), dataset)
    click.echo(f"exported: {written}", err=True)


def export_params(dataset, filters):
    pairs = []
    for text in filters:
        name, equals, value = text.partition("=")
        if not equals:
            raise click.UsageError(f"--filter takes NAME=VALUE, not {text!r}.")
        if name in ("group_by", "page_size", "offset", "cursor"):
            raise click.UsageError(f"--filter {name} is not for export: it writes every matching event.")
        if name == "format":
            raise click.UsageError("--filter format: the file's format is --format.")
        pairs.append((name.strip(), value))
    try:
        return load_pairs(export_schema(dataset)(), pairs)
    except ValidationError as exc:
        raise click.UsageError(f"Invalid filter: {exc.messages}") from exc


@click.command("retention")
@click.option("--older-than", required=True, help=f"Age: a number and one of {retention.UNITS}, e.g. 6m.")
@click.option(
    "--dataset", "datasets", multiple=True, type=click.Choice(sorted(DATASETS)), help="Default: all."
)
@click.option("--apply", is_flag=True, help="Delete; without it, only say what would be deleted.")
@with_appcontext
def retention_command(older_than, datasets, apply):
    """Delete monthly indices whose whole month is older than an age (dry run by default)."""
    store = current_app.extensions["store"]
    try:
        before = retention.cutoff(older_than, datetime.now(UTC))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from exc
    for name in datasets or sorted(DATASETS):
        dataset = DATASETS[name]
        for index in retention.expired(dataset, store.prefix, store.indices(dataset), before):
            if apply:
                delete_month(store, dataset, index)
            click.echo(f"{'deleted' if apply else 'would delete'} {index}")
    if not apply:
        click.echo("dry run: nothing deleted (add --apply to delete)", err=True)


def delete_month(store, dataset, index: str) -> None:
    """Delete a monthly index and the claims of the receipts it holds (pipeline.claim_receipts),
    claims first: a retry meanwhile finds the old event by search, rather than following a
    claim into an index about to go. Once both are gone, a retry is a new event."""
    if dataset.receipt_field:
        store.delete_claims(dataset, *retention.month_span(*dataset.month_of_index(store.prefix, index)))
    store.delete_index(index)


COMMANDS = (import_events, export_events, retention_command)

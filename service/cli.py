"""`flask` commands for operators: tokens and index templates; events in bulk (`cli_events.py`)."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from . import templates as index_templates
from .auth import SCOPES
from .engine.params import MIN_COUNT_RANGE

tokens = AppGroup("tokens", help="Create, list and revoke API tokens.")
templates = AppGroup("templates", help="Install, check or regenerate the index templates.")


@tokens.command("create")
@click.option("--name", required=True, help="Who or what the token is for.")
@click.option(
    "--scopes", default="ingest,query", show_default=True, help=f"Comma-separated: {', '.join(SCOPES)}."
)
@click.option(
    "--institution",
    "institutions",
    type=int,
    multiple=True,
    help="Restrict to this institution (repeatable).",
)
@click.option(
    "--min-count",
    type=click.IntRange(*MIN_COUNT_RANGE),
    default=None,
    help="Small-count suppression for every answer to the token: counts of 1 to k-1 events are "
    "hidden, with every figure that would give one away; requests cannot lower k. The token may "
    "then not list, fetch or export single events.",
)
@click.option("--secret", default=None, help="Use this secret instead of a random one (development only).")
def create_token(name, scopes, institutions, min_count, secret):
    """Create a token and print its secret (shown once; only its hash is stored)."""
    store = current_app.extensions["tokens"]
    try:
        token, secret = store.create(
            name, [s.strip() for s in scopes.split(",") if s.strip()], list(institutions), secret, min_count
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(json.dumps({**token.public(), "secret": secret}))


@tokens.command("list")
def list_tokens():
    """List tokens (never their secrets)."""
    for token in current_app.extensions["tokens"].list():
        click.echo(json.dumps(token.public()))


@tokens.command("revoke")
@click.argument("token_id")
def revoke_token(token_id):
    """Revoke the token with this id; workers stop accepting it within TOKEN_CACHE_SECONDS."""
    if not current_app.extensions["tokens"].revoke(token_id):
        click.echo(f"no live token with id {token_id}", err=True)
        sys.exit(1)
    click.echo(f"revoked {token_id}")


@templates.command("install")
def install_templates():
    """Install (or update) every dataset's index template; safe to repeat."""
    settings = current_app.config["SETTINGS"]
    for name in index_templates.install(current_app.extensions["es"], settings.index_prefix):
        click.echo(f"installed {name}")
    current_app.extensions["tokens"].ensure_index()


@templates.command("write")
def write_templates():
    """Regenerate index_templates/*.json from the dataset registries."""
    for path in index_templates.write_files():
        click.echo(f"wrote {path}")


@templates.command("check")
def check_templates():
    """Exit 1 if index_templates/*.json differ from what the registries generate."""
    stale = index_templates.stale_files()
    for path in stale:
        click.echo(f"stale: {path} (run: make templates)", err=True)
    sys.exit(1 if stale else 0)


def init_app(app: Flask) -> None:
    from .cli_events import COMMANDS

    app.cli.add_command(tokens)
    app.cli.add_command(templates)
    for command in COMMANDS:
        app.cli.add_command(command)

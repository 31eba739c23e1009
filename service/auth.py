"""API tokens: hashed secrets with scopes and an optional institution restriction.

Tokens live in an Elasticsearch index (`<prefix>tokens`) so every gunicorn worker and every host
sees the same set without another datastore. Only the SHA-256 of a secret is stored (secrets
are 256-bit random strings, so a fast hash suffices); a worker keeps what it looked up for
`TOKEN_CACHE_SECONDS`, which bounds how long a revoked token keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import wraps

from elasticsearch import Elasticsearch
from flask import current_app, g, request

from .engine.params import MIN_COUNT_RANGE
from .errors import ApiError

SCOPES = ("ingest", "query")

TOKEN_MAPPING = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "name": {"type": "keyword"},
        "secret_hash": {"type": "keyword"},
        "scopes": {"type": "keyword"},
        "institutions": {"type": "long"},
        "min_count": {"type": "integer"},
        "created_at": {"type": "date"},
        "revoked_at": {"type": "date"},
    },
}


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scopes: tuple[str, ...]
    institutions: tuple[int, ...] = ()
    #: Counts below this are hidden in every answer to this token (small-count suppression).
    min_count: int | None = None
    created_at: str = ""
    revoked_at: str | None = None
    secret_hash: str = field(default="", repr=False)

    @property
    def restricted(self) -> bool:
        return bool(self.institutions)

    def public(self) -> dict:
        data = asdict(self)
        data.pop("secret_hash")
        data["scopes"], data["institutions"] = list(self.scopes), list(self.institutions)
        return data


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    def __init__(self, es: Elasticsearch, index: str, cache_seconds: int = 10):
        self.es, self.index, self.cache_seconds = es, index, cache_seconds
        self._cache: dict[str, tuple[float, Token | None]] = {}
        self._lock = threading.Lock()

    def ensure_index(self) -> None:
        if not self.es.indices.exists(index=self.index):
            self.es.options(ignore_status=400).indices.create(
                index=self.index,
                mappings=TOKEN_MAPPING,
                settings={"index.number_of_shards": 1, "index.auto_expand_replicas": "0-all"},
            )

    def create(
        self,
        name: str,
        scopes: list[str],
        institutions: list[int] = (),
        secret: str | None = None,
        min_count: int | None = None,
    ) -> tuple[Token, str]:
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
        low, high = MIN_COUNT_RANGE
        if min_count is not None and not low <= min_count <= high:
            raise ValueError(f"min_count must be from {low} to {high}")
        self.ensure_index()
        secret = secret or secrets.token_urlsafe(32)
        token = Token(
            id=secrets.token_hex(6),
            name=name,
            scopes=tuple(sorted(set(scopes))),
            institutions=tuple(sorted(set(institutions))),
            min_count=min_count,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            secret_hash=hash_secret(secret),
        )
        document = {k: v for k, v in asdict(token).items() if v is not None}
        self.es.index(index=self.index, id=token.secret_hash, document=document, refresh="wait_for")
        return token, secret

    def list(self) -> list[Token]:
        self.ensure_index()
        found = self.es.search(index=self.index, size=10_000, sort=["created_at"])
        return [_token(hit["_source"]) for hit in found["hits"]["hits"]]

    def revoke(self, token_id: str) -> bool:
        """Mark the token revoked (kept for the record); False if no live token has that id."""
        self.ensure_index()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        found = self.es.search(
            index=self.index,
            query={
                "bool": {
                    "filter": [{"term": {"id": token_id}}],
                    "must_not": [{"exists": {"field": "revoked_at"}}],
                }
            },
        )
        hits = found["hits"]["hits"]
        for hit in hits:
            self.es.update(index=self.index, id=hit["_id"], doc={"revoked_at": now}, refresh="wait_for")
        return bool(hits)

    def authenticate(self, secret: str) -> Token | None:
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[0] > now:
            return cached[1]
        found = self.es.options(ignore_status=404).get(index=self.index, id=digest)
        token = _token(found["_source"]) if found.get("found") else None
        # The lookup is by hash; comparing the stored hash again in constant time keeps a
        # timing difference from telling anything about near-miss secrets.
        if token and not hmac.compare_digest(token.secret_hash, digest):
            token = None
        if token and token.revoked_at:
            token = None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.cache_seconds, token)
        return token


def _token(source: dict) -> Token:
    return Token(
        id=source["id"],
        name=source["name"],
        scopes=tuple(source.get("scopes", ())),
        institutions=tuple(source.get("institutions", ())),
        min_count=source.get("min_count"),
        created_at=source.get("created_at", ""),
        revoked_at=source.get("revoked_at"),
        secret_hash=source.get("secret_hash", ""),
    )


def bearer_secret() -> str | None:
    """The secret of `Authorization: token <secret>` or `Authorization: Bearer <secret>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and secret.strip():
        return secret.strip()
    return None


def require(scope: str):
    """Decorator: the request must carry a valid token with `scope` (401, else 403)."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            secret = bearer_secret()
            if not secret:
                raise ApiError(401, "unauthorized", "Missing token: send 'Authorization: token <secret>'.")
            token = current_app.extensions["tokens"].authenticate(secret)
            if token is None:
                raise ApiError(401, "unauthorized", "Unknown or revoked token.")
            if scope not in token.scopes:
                raise ApiError(403, "forbidden", f"This token lacks the '{scope}' scope.")
            g.token = token
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # lets tests check every data endpoint is guarded
        return wrapper

    return decorator

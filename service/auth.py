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
from collections import OrderedDict
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


#: Tokens (found or not) each worker remembers, each kind on its own: a flood of unknown
#: secrets evicts only unknown ones, never the tokens in use.
CACHED_TOKENS = 10_000
#: Lookups of secrets this worker has never seen that may wait on Elasticsearch at once: a flood
#: of unknown tokens queues here (costing Elasticsearch a bounded number of gets), while tokens
#: already known are looked up again outside this lane.
NEW_SECRET_LOOKUPS = 4


class TokenStore:
    def __init__(self, es: Elasticsearch, index: str, cache_seconds: int = 10):
        self.es, self.index, self.cache_seconds = es, index, cache_seconds
        self._known: OrderedDict[str, tuple[float, Token]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._new_lookups = threading.BoundedSemaphore(NEW_SECRET_LOOKUPS)

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
        """The live token of `secret`, or None. Each worker trusts what it looked up for
        `cache_seconds` (so a revocation reaches every worker within that), and remembers at
        most CACHED_TOKENS known and CACHED_TOKENS unknown secrets, least recently used out."""
        digest = hash_secret(secret)
        now = time.monotonic()
        with self._lock:
            known = self._known.get(digest)
            if known and known[0] > now:
                self._known.move_to_end(digest)
                return known[1]
            unknown_until = self._unknown.get(digest)
            if unknown_until is not None and unknown_until > now:
                return None
        if known:
            token = self._lookup(digest)
        else:
            with self._new_lookups:
                token = self._lookup(digest)
        now = time.monotonic()
        with self._lock:
            self._known.pop(digest, None)
            self._unknown.pop(digest, None)
            if token is not None:
                self._known[digest] = (now + self.cache_seconds, token)
                if len(self._known) > CACHED_TOKENS:
                    self._known.popitem(last=False)
            else:
                self._unknown[digest] = now + self.cache_seconds
                if len(self._unknown) > CACHED_TOKENS:
                    self._unknown.popitem(last=False)
        return token

    def _lookup(self, digest: str) -> Token | None:
        """One real-time get by the hash (never a search or a scan)."""
        found = self.es.options(ignore_status=404).get(index=self.index, id=digest)
        token = _token(found["_source"]) if found.get("found") else None
        # The lookup is by hash; comparing the stored hash again in constant time keeps a
        # timing difference from telling anything about near-miss secrets.
        if token and not hmac.compare_digest(token.secret_hash, digest):
            token = None
        if token and token.revoked_at:
            token = None
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

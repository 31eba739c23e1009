"""Configuration from the environment (12-factor): every setting, its variable and default."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Settings:
    #: ES_URL: the Elasticsearch node or cluster (comma-separated URLs allowed).
    es_url: str = "http://127.0.0.1:9200"
    #: ES_USERNAME / ES_PASSWORD: basic authentication, if the cluster has security on.
    es_username: str = ""
    es_password: str = ""
    #: ES_API_KEY: an encoded API key (takes precedence over basic authentication).
    es_api_key: str = ""
    #: ES_CA_CERT: path of the CA certificate that signed the cluster's HTTPS certificate.
    es_ca_cert: str = ""
    #: ES_REQUEST_TIMEOUT: seconds before a request to Elasticsearch gives up.
    es_request_timeout: int = 30
    #: ES_CONNECTIONS: connections each worker keeps per Elasticsearch node (one per thread).
    es_connections: int = 32
    #: INDEX_PREFIX: prepended to every index and template name.
    index_prefix: str = "events-"
    #: MAX_BODY_BYTES: request bodies above this (after gzip is undone) get 413.
    max_body_bytes: int = 10 * 1024 * 1024
    #: DEFAULT_PAGE_SIZE / MAX_PAGE_SIZE: paging of query results.
    default_page_size: int = 50
    max_page_size: int = 1000
    #: TOKEN_CACHE_SECONDS: how long a worker trusts its copy of a token (revocation delay).
    token_cache_seconds: int = 10
    #: INSTALL_TEMPLATES: install the index templates at startup (1) or not (0).
    install_templates: bool = True
    #: GROUP_COMMIT_MAX_EVENTS: requests of at most this many events that need no refresh
    #: share one `_bulk` with the worker's concurrent ones (0: every request sends its own).
    group_commit_max_events: int = 100
    #: GROUP_COMMIT_MAX_BYTES: the most document bytes one shared `_bulk` carries (a request
    #: larger than that is sent alone), so requests that share a `_bulk` never add up past
    #: Elasticsearch's `http.max_content_length` (100 MB by default), which would refuse
    #: the whole `_bulk` and so fail every request in it.
    group_commit_max_bytes: int = 8 * 1024 * 1024
    #: GROUPED_CACHE_ROWS: grouped rows a worker remembers, keyed by query and Elasticsearch's
    #: answer, so a repeated query is not shaped again (0: remember none).
    grouped_cache_rows: int = 50_000
    #: RETRY_AFTER_SECONDS: the `Retry-After` sent with 429 and 503.
    retry_after_seconds: int = 5
    #: LOG_LEVEL: level of the service's JSON log lines (one per request at `info`).
    log_level: str = "info"
    #: CORS_ORIGINS: browser origins (comma-separated, `*` for any) whose pages may call the
    #: API (CORS); empty: none.
    cors_origins: str = ""

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        values = {}
        for spec in fields(cls):
            variable = spec.name.upper()
            if variable not in os.environ:
                continue
            raw = os.environ[variable]
            if spec.type == "int":
                values[spec.name] = int(raw)
            elif spec.type == "bool":
                values[spec.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                values[spec.name] = raw
        values.update(overrides)
        return cls(**values)

"""The request body read whole in one read when its length is known (service/api/http.py)."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from service.api.http import body_bytes


class Trickle:
    """A `wsgi.input` that hands out at most `piece` bytes per read, as a socket may."""

    def __init__(self, data: bytes, piece: int):
        self.data, self.piece, self.reads = data, piece, 0

    def read(self, size=-1):
        self.reads += 1
        size = self.piece if size is None or size < 0 else min(size, self.piece)
        part, self.data = self.data[:size], self.data[size:]
        return part


def read(data: bytes, length: int | None, piece: int = 1000, limit: int = 1 << 20) -> tuple[bytes, Trickle]:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = limit
    source = Trickle(data, piece)
    environ = {"wsgi.input": source}
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    with app.test_request_context("/events", method="POST", environ_overrides=environ):
        return body_bytes(), source


def test_a_body_arriving_in_pieces_is_read_whole():
    data = bytes(range(256)) * 400
    body, source = read(data, len(data))
    assert body == data
    assert source.reads == -(-len(data) // 1000)  # each read asks for all that is missing


def test_an_empty_body_and_one_without_a_length():
    assert read(b"", 0)[0] == b""
    assert read(b"abc", None)[0] == b""  # no length: nothing is read (as werkzeug does)


def test_a_body_over_the_limit_is_refused_before_it_is_read():
    with pytest.raises(RequestEntityTooLarge):
        read(b"x" * 2000, 2000, limit=1000)


def test_a_body_cut_short_is_the_clients_error():
    with pytest.raises(BadRequest):  # werkzeug's ClientDisconnected, as with get_data
        read(b"x" * 500, 2000)

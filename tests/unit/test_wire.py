"""gunicorn's responses put on the wire in one write when small (service/wire.py): the same bytes
as gunicorn's own writer, in fewer sends."""

from __future__ import annotations

import pytest
from gunicorn.http import wsgi

from service.wire import COALESCE_BYTES, OneWriteResponse


class RecordingSocket:
    def __init__(self):
        self.writes: list[bytes] = []

    def sendall(self, data):
        self.writes.append(bytes(data))

    def send(self, data):
        self.writes.append(bytes(data))
        return len(data)


class Request:
    def __init__(self, method="GET", version=(1, 1)):
        self.method, self.version = method, version

    def should_close(self):
        return False


class Config:
    sendfile = False
    is_ssl = False


def serve(response_class, method, status, headers, chunks):
    sock = RecordingSocket()
    response = response_class(Request(method), sock, Config())
    response.version = "gunicorn"
    response.default_headers = lambda base=response.default_headers: [
        line for line in base() if not line.startswith("Date:")
    ]
    response.start_response(status, headers)
    for chunk in chunks:
        response.write(chunk)
    response.close()
    return sock.writes


BIG = b"x" * (COALESCE_BYTES + 1)
CASES = {
    "small answer": ("POST", "201 CREATED", [("Content-Length", "11")], [b'{"id": "a"}']),
    "chunked": ("GET", "200 OK", [("Content-Type", "text/csv")], [b"a,b\n", b"1,2\n"]),
    "empty body": ("GET", "200 OK", [("Content-Length", "0")], [b""]),
    "no body at all": ("GET", "200 OK", [("Content-Length", "0")], []),
    "HEAD": ("HEAD", "200 OK", [("Content-Length", "5")], [b"hello"]),
    "304": ("GET", "304 NOT MODIFIED", [("ETag", '"t"')], [b""]),
    "large": ("GET", "200 OK", [("Content-Length", str(len(BIG)))], [BIG]),
    "large chunked": ("GET", "200 OK", [], [BIG, b"end"]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_wire_bytes_are_gunicorns(case):
    assert b"".join(serve(OneWriteResponse, *CASES[case])) == b"".join(serve(wsgi.Response, *CASES[case]))


def test_a_small_answer_goes_in_one_write():
    (write,) = serve(OneWriteResponse, *CASES["small answer"])
    assert write.startswith(b"HTTP/1.1 201 CREATED\r\n") and write.endswith(b'\r\n\r\n{"id": "a"}')
    assert len(serve(wsgi.Response, *CASES["small answer"])) == 2


def test_a_large_body_is_not_copied_onto_the_header_block():
    head, body = serve(OneWriteResponse, *CASES["large"])
    assert head.endswith(b"\r\n\r\n") and body == BIG


def test_headers_go_out_even_when_the_write_fails():
    sock = RecordingSocket()
    response = OneWriteResponse(Request(), sock, Config())
    response.start_response("200 OK", [("Content-Length", "2")])
    with pytest.raises(TypeError):
        response.write("not bytes")
    (write,) = sock.writes
    assert write.startswith(b"HTTP/1.1 200 OK") and write.endswith(b"\r\n\r\n")

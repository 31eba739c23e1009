"""The client's HTTP connections write a request's headers and body at once (service/transport.py)."""

from __future__ import annotations

import pytest
from elastic_transport import NodeConfig

from service.transport import OneWriteHTTPConnection, OneWriteHTTPSConnection, OneWriteNode


class RecordingSocket:
    def __init__(self):
        self.writes: list[bytes] = []

    def sendall(self, data):
        self.writes.append(bytes(data))

    def settimeout(self, timeout):
        pass

    def close(self):
        pass


def connection() -> tuple[OneWriteHTTPConnection, RecordingSocket]:
    conn = OneWriteHTTPConnection("127.0.0.1", 9)
    conn.sock = sock = RecordingSocket()
    return conn, sock


def test_headers_and_body_go_in_one_write():
    conn, sock = connection()
    conn.request(
        "POST", "/_bulk", body=b'{"create":{}}\n{}\n', headers={"Content-Type": "application/x-ndjson"}
    )
    (write,) = sock.writes
    head, body = write.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /_bulk HTTP/1.1") and b"Content-Length: 17" in head
    assert body == b'{"create":{}}\n{}\n'


def test_a_request_without_body_sends_its_headers_before_waiting_for_the_answer():
    conn, sock = connection()
    conn.request("GET", "/_cluster/health")
    assert sock.writes == []  # held until the answer is awaited
    with pytest.raises(AttributeError):  # the recording socket has no answer to read
        conn.getresponse()
    (write,) = sock.writes
    assert write.startswith(b"GET /_cluster/health HTTP/1.1") and write.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    ("scheme", "connection"), [("http", OneWriteHTTPConnection), ("https", OneWriteHTTPSConnection)]
)
def test_the_node_opens_one_write_connections_for_its_scheme(scheme, connection):
    node = OneWriteNode(NodeConfig(scheme, "localhost", 9200))
    assert node.pool.ConnectionCls is connection


@pytest.mark.parametrize("raw_answers", [False, True])
def test_the_clients_send_bulk_bytes_as_they_are(raw_answers):
    from service.config import Settings
    from service.extensions import make_client
    from service.store import bulk_body

    client = make_client(Settings.from_env(es_url="http://127.0.0.1:9"), raw_answers=raw_answers)
    serializers = client.transport.serializers
    body = bulk_body([("i", "a", {"x": 1}), ("i", "b", b'{"y":2}')])
    for mimetype in ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson; compatible-with=9"):
        assert serializers.dumps(body, mimetype) is body
        # Lines given as objects are still encoded, one per line.
        assert serializers.dumps([{"a": 1}, b'{"b":2}'], mimetype) == b'{"a":1}\n{"b":2}\n'
    json = "application/vnd.elasticsearch+json; compatible-with=9"
    assert serializers.loads(b'{"a":1}', json) == (b'{"a":1}' if raw_answers else {"a": 1})

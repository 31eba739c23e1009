"""The Elasticsearch client's HTTP node, sending each request in one write.

urllib3 writes a request's headers and its body with two `send` calls. A node answering small
requests (a count, one event's `_bulk`) is then woken twice per request, and on a loaded
2-core machine that second wake-up measured about a millisecond per request. Holding the header
block back until the body goes out makes one write of both, as a client with its body ready
(`http.client` given bytes) does.
"""

from __future__ import annotations

from elastic_transport import Urllib3HttpNode
from urllib3.connection import HTTPConnection, HTTPSConnection


class OneWrite:
    """Mixed into a urllib3 connection: the header block waits for the body's write."""

    _held = b""
    _holding = False

    def endheaders(self, message_body=None, *, encode_chunked=False):
        self._holding = True
        try:
            super().endheaders(message_body, encode_chunked=encode_chunked)
        finally:
            self._holding = False

    def send(self, data):
        if self._holding and isinstance(data, bytes):
            self._held += data
            return
        if self._held:
            held, self._held = self._held, b""
            if isinstance(data, bytes):
                data = held + data
            else:
                super().send(held)
        super().send(data)

    def getresponse(self):
        if self._held:  # a request without a body: its headers go now
            held, self._held = self._held, b""
            super().send(held)
        return super().getresponse()

    def close(self):
        self._held = b""
        super().close()


class OneWriteHTTPConnection(OneWrite, HTTPConnection):
    pass


class OneWriteHTTPSConnection(OneWrite, HTTPSConnection):
    pass


class OneWriteNode(Urllib3HttpNode):
    """`Urllib3HttpNode` whose connections send each request in one write."""

    def __init__(self, config):
        super().__init__(config)
        https = self.pool.scheme == "https"
        self.pool.ConnectionCls = OneWriteHTTPSConnection if https else OneWriteHTTPConnection

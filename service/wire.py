"""gunicorn's HTTP/1 response writer, sending a small answer's header block and body in one write.

gunicorn writes a response's header block and its body with two `sendall` calls. On loopback a
send does the receiver's TCP work and wakes it, so the second send is most of a small answer's
cost: profiled (py-spy, 32 keep-alive clients posting single events to one gevent worker) the
two sends took 28 % of the worker's CPU, the header block's alone 24 %. Holding the header block
back until the first body write makes one write of both; the bytes on the wire are the same.

`gunicorn.conf.py` installs it in each worker (`install`): gunicorn builds every response
through `gunicorn.http.wsgi.Response`.
"""

from __future__ import annotations

from gunicorn.http import wsgi

#: A first body write up to this size goes out with the header block; a larger one (an export's
#: chunk, a large grouped answer) is sent after it as before, so no large body is copied.
COALESCE_BYTES = 64 * 1024


class OneWriteResponse(wsgi.Response):
    """`gunicorn.http.wsgi.Response` whose first `write` sends the header block with the body.

    Only a `write` holds the header block back, and releases it before returning, whatever
    happened: every other path (`close` of an empty answer, `sendfile`) sends it as gunicorn does.
    """

    _held = b""
    _holding = False

    def write(self, arg):
        if self.headers_sent:
            return super().write(arg)
        self._holding = True
        try:
            return super().write(arg)
        finally:
            self._holding = False
            self._release()

    def send_headers(self):
        if not self._holding or self.headers_sent:
            return super().send_headers()
        # As gunicorn's `send_headers`, but kept for the body's write.
        lines = self.default_headers()
        lines.extend([f"{name}: {value}\r\n" for name, value in self.headers])
        self._held = ("{}\r\n".format("".join(lines))).encode("latin-1")
        self.headers_sent = True

    def _emit_body(self, data):
        held, self._held = self._held, b""
        if not held:
            return super()._emit_body(data)
        if len(data) > COALESCE_BYTES:
            self.sock.sendall(held)
            return super()._emit_body(data)
        if self.chunked:  # gunicorn.util.write_chunk's framing
            data = b"%X\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(held + data)

    def _release(self):
        held, self._held = self._held, b""
        if held:
            self.sock.sendall(held)


def install() -> None:
    """Make gunicorn build this process's responses with `OneWriteResponse`."""
    wsgi.Response = OneWriteResponse

"""JSON responses through orjson (several times faster than the standard library)."""

from __future__ import annotations

import orjson
from flask.json.provider import DefaultJSONProvider

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


class OrjsonProvider(DefaultJSONProvider):
    def dumps(self, obj, **kwargs) -> str:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)

    def response(self, *args, **kwargs):
        """`jsonify`: the bytes orjson makes go out as they are (a grouped answer can be half a
        megabyte: no text round trip)."""
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(orjson.dumps(obj, option=OPTIONS), mimetype=self.mimetype)

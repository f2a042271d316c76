"""Response classes: every body is rendered by orjson, problems with their own media type.

FastAPI deprecated its own ``ORJSONResponse``; this one is the same few lines, kept here
so the deprecation cannot turn into a warning (or an error) on every request.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ORJSONResponse(JSONResponse):
    """JSON by orjson: aware datetimes keep their UTC offset (``+00:00``)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ProblemResponse(ORJSONResponse):
    """An RFC 9457 problem document."""

    media_type = PROBLEM_MEDIA_TYPE

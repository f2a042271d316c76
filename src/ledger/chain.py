"""The per-stream SHA-256 hash chain (SPEC §3.4).

An event's digest is the SHA-256 of its canonical form: its topic, stream id, version
and stored fields (the digest itself excluded, the predecessor's digest included), as
JSON with sorted keys. The canonical form is computed from decoded values, not stored
bytes, so it is the same at write time and when ``ledger verify`` reads the log back.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event of every stream."""

DIGEST_FIELD = "digest"
PREV_HASH_FIELD = "prev_hash"


def _encode_extra(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dict(vars(value))  # orjson encodes the fields, nested ones included
    raise TypeError(f"cannot put {type(value).__name__} in an event's canonical form")


def canonical_form(
    topic: str, originator_id: UUID | str, originator_version: int, state: Mapping[str, Any]
) -> bytes:
    """The bytes an event's digest is computed over."""
    document = {
        "topic": topic,
        "originator_id": str(originator_id),
        "originator_version": originator_version,
        "state": {key: value for key, value in state.items() if key != DIGEST_FIELD},
    }
    return orjson.dumps(
        document,
        default=_encode_extra,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS,
    )


def event_digest(
    topic: str, originator_id: UUID | str, originator_version: int, state: Mapping[str, Any]
) -> str:
    """The SHA-256 (hex) of an event's canonical form."""
    return hashlib.sha256(
        canonical_form(topic, originator_id, originator_version, state)
    ).hexdigest()

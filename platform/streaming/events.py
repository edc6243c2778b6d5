"""The event format: one Redis Stream entry per event, with the fields ``key``, ``ts`` and ``value``.

``key`` names the series the event belongs to (an event type, a source: a low-cardinality
dimension, not a user id); ``ts`` is the event time in epoch seconds (or ISO 8601); ``value`` is a
number or empty/``null`` for a missing value (which the null fraction counts). Field values may
also come JSON-encoded, as ``{"key": ..., "ts": ..., "value": ...}`` in one ``event`` field.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime

STREAM_ENV = "DATA_PLATFORM_STREAM"
DEFAULT_STREAM = "events"
DEFAULT_GROUP = "metrics"
MAX_KEY_LENGTH = 200


def stream_from_env() -> str:
    return os.environ.get(STREAM_ENV) or DEFAULT_STREAM


@dataclass(frozen=True, slots=True)
class Event:
    key: str
    ts: float
    value: float | None


class BadEvent(ValueError):
    """An entry that is not an event; the message says why (it is stored with the entry)."""


def encode(key: str, ts: float, value: float | None) -> dict[str, str]:
    """The fields of one entry, for XADD."""
    return {"key": key, "ts": repr(float(ts)), "value": "" if value is None else repr(float(value))}


def _text(raw) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def decode(fields: dict | None) -> Event:
    """The event of one entry's fields (bytes or str); raises BadEvent with the reason."""
    if fields is None:
        raise BadEvent("entry deleted from the stream before it was consumed")
    fields = {_text(k): v for k, v in fields.items()}
    if "event" in fields and "key" not in fields:
        try:
            data = json.loads(_text(fields["event"]))
        except ValueError:
            raise BadEvent("field 'event' is not JSON") from None
        if not isinstance(data, dict):
            raise BadEvent("field 'event' is not a JSON object")
        fields = data
    for name in ("key", "ts"):
        if name not in fields:
            raise BadEvent(f"no {name!r} field")
    key = _text(fields["key"])
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BadEvent(f"key empty or longer than {MAX_KEY_LENGTH} characters")
    return Event(key, _timestamp(fields["ts"]), _value(fields.get("value")))


def _timestamp(raw) -> float:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        ts = float(raw)
    else:
        text = _text(raw).strip()
        try:
            ts = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise BadEvent(f"ts {text[:40]!r} is neither epoch seconds nor ISO 8601") from None
            if parsed.tzinfo is None:
                raise BadEvent(f"ts {text[:40]!r} has no time zone") from None
            ts = parsed.timestamp()
    if not math.isfinite(ts) or ts <= 0:
        raise BadEvent(f"ts {ts!r} is not a positive epoch time")
    return ts


def _value(raw) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    else:
        text = _text(raw).strip()
        if text in ("", "null", "None", "NaN", "nan"):
            return None
        try:
            value = float(text)
        except ValueError:
            raise BadEvent(f"value {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise BadEvent(f"value {value!r} is not finite")
    return value


def raw_text(fields: dict | None, limit: int = 500) -> str:
    """The entry as text for the rejects table."""
    if fields is None:
        return ""
    return json.dumps({_text(k): _text(v) for k, v in fields.items()})[:limit]

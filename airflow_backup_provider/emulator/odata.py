"""The little OData the Backup API speaks: ``$filter`` clauses (``a eq 'x' and b eq 'y'``), its date format, enum
values, and the opaque ``$skipToken`` of job pages. Errors are the service's ``BMSUserErrorInvalidInput``."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from typing import Any

from .wire import ArmError

_CLAUSE = re.compile(r"^\s*([A-Za-z]+)\s+eq\s+'([^']*)'\s*$")
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_FILTER_DATE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?\s*(AM|PM)?\s*(?:Z|UTC)?\s*$",
    re.IGNORECASE,
)


def invalid_input(message: str) -> ArmError:
    """400 ``BMSUserErrorInvalidInput`` with ``message``.

    :param message: the error message.
    """
    return ArmError(400, "BMSUserErrorInvalidInput", message)


def invalid_filter(clause: str) -> ArmError:
    """The service's answer to a ``$filter`` clause it does not support.

    :param clause: the clause, as sent.
    """
    return invalid_input(
        f'Input provided for the call is invalid: the filter clause "{clause}" is not supported or is malformed.'
    )


def parse_filter(raw: str | None) -> list[tuple[str, str]]:
    """Split an OData-ish ``a eq 'x' and b eq 'y'`` filter into (field, value) pairs.

    :param raw: the ``$filter`` value, or None.
    :raises ArmError: BMSUserErrorInvalidInput for anything else.
    """
    if raw is None or not raw.strip():
        return []
    clauses = []
    for part in _AND.split(raw.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise invalid_filter(part.strip())
        clauses.append((match.group(1), match.group(2)))
    return clauses


def parse_filter_date(name: str, value: str) -> datetime:
    """``yyyy-MM-dd hh:mm:ss tt`` in UTC; also 24-hour times and ``00`` hours with AM (the spec examples do that).

    :param name: the filter field (for the error message).
    :param value: the date as sent.
    """
    match = _FILTER_DATE.match(value)
    if not match:
        raise invalid_filter(f"{name} eq '{value}'")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    ampm = (match.group(7) or "").upper()
    if ampm:
        if hour > 12:
            raise invalid_filter(f"{name} eq '{value}'")
        hour = hour % 12 + (12 if ampm == "PM" else 0)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        raise invalid_filter(f"{name} eq '{value}'") from None


def enum_value(clause: str, value: str, allowed: tuple[str, ...]) -> str:
    """The canonical spelling of an enum ``value`` (matched case-insensitively), else the filter error.

    :param clause: the whole clause (for the error message).
    :param value: the value as sent.
    :param allowed: the enum's values.
    """
    for candidate in allowed:
        if candidate.lower() == value.strip().lower():
            return candidate
    raise invalid_filter(clause)


def encode_skip_token(start: datetime, seq: int) -> str:
    """The opaque continuation token of a job page: the sort key of its last job.

    :param start: the last job's start time.
    :param seq: the last job's creation number.
    """
    raw = json.dumps([start.isoformat(), seq]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skip_token(token: str) -> tuple[datetime, int]:
    """The sort key a ``$skipToken`` carries.

    :param token: the token as sent.
    :raises ArmError: BMSUserErrorInvalidInput when it is not one of ours.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        start, seq = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(start), int(seq)
    except (ValueError, TypeError, binascii.Error):
        raise invalid_input("Input provided for the call is invalid: the $skipToken is not valid.") from None


def encode_offset_token(offset: int) -> str:
    """The continuation token of a protected-items page: the offset of the next page.

    :param offset: index of the first item of the next page.
    """
    return base64.urlsafe_b64encode(json.dumps(["items", offset]).encode()).decode().rstrip("=")


def decode_offset_token(token: str) -> int:
    """The offset an items ``$skipToken`` carries.

    :param token: the token as sent.
    :raises ArmError: BMSUserErrorInvalidInput when it is not one of ours.
    """
    try:
        kind, offset = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
        if kind != "items" or not isinstance(offset, int) or offset < 0:
            raise ValueError(token)
        return offset
    except (ValueError, TypeError, binascii.Error):
        raise invalid_input("Input provided for the call is invalid: the $skipToken is not valid.") from None


def parse_iso(value: Any) -> datetime | None:
    """An ISO-8601 date-time from a request body (naive means UTC), or None when it is not one.

    :param value: the JSON value.
    """
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    # Python < 3.11 cannot read 7 fraction digits; trim to microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


__all__ = [
    "decode_offset_token",
    "decode_skip_token",
    "encode_offset_token",
    "encode_skip_token",
    "enum_value",
    "invalid_filter",
    "invalid_input",
    "parse_filter",
    "parse_filter_date",
    "parse_iso",
]

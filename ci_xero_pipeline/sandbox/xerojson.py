"""Xero's JSON conventions: '/Date(ms+0000)/' dates, the response envelope and the error bodies."""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

PROVIDER_NAME = "Xero Sandbox"


def now_ms() -> int:
    return int(time.time() * 1000)


def ms_date(value: date) -> str:
    """A calendar date as Xero writes it: milliseconds at UTC midnight of that date."""
    midnight = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    return f"/Date({int(midnight.timestamp()) * 1000}+0000)/"


def ms_timestamp(milliseconds: int) -> str:
    return f"/Date({milliseconds}+0000)/"


def date_string(value: date) -> str:
    return f"{value.isoformat()}T00:00:00"


def iso_utc(milliseconds: int) -> str:
    """An ISO timestamp for /connections. Xero writes '2019-12-07T18:46:19.5165400' (no zone); the
    spec says RFC 3339 date-time, which needs one, so the sandbox adds 'Z'."""
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def envelope(collection: str, elements: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": PROVIDER_NAME,
        "DateTimeUTC": ms_timestamp(now_ms()),
    }
    body.update(extra)
    body[collection] = elements
    return body


def validation_exception(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": elements,
    }


def post_data_invalid(message: str) -> dict[str, Any]:
    return {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": message}


def query_parse_error(message: str) -> dict[str, Any]:
    return {"ErrorNumber": 16, "Type": "QueryParseException", "Message": message}


def not_found() -> dict[str, Any]:
    return {
        "ErrorNumber": 17,
        "Type": "ObjectNotFoundException",
        "Message": "The resource you're looking for cannot be found",
    }


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    """The RFC 7807-like body Xero answers 401 and 403 with."""
    return {"Type": None, "Title": title, "Status": status, "Detail": detail, "Instance": str(uuid.uuid4()), "Extensions": {}}


def encode_text(body: Any) -> str:
    """JSON text with every Decimal written exactly as the number it is (like money.dumps_exact, but
    the Decimals are found by json's own `default` hook rather than a Python walk: large batches
    of documents encode several times faster)."""
    marker = f"@dec{secrets.token_hex(6)}@"

    def exact(value: Any) -> str:
        if isinstance(value, Decimal) and value.is_finite():
            return f"{marker}{value}"
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    text = json.dumps(body, default=exact, ensure_ascii=False, separators=(",", ":"))
    return re.sub(f'"{re.escape(marker)}(-?[0-9.]+(?:E[+-]?[0-9]+)?)"', r"\1", text)


def encode(body: Any) -> bytes:
    return encode_text(body).encode()

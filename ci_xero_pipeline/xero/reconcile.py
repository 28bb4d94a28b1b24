"""Reconciliation: read the documents back from Xero and compare them with what we meant to post.

Independent of the posting step's own answers: a fresh read of what Xero holds now, by date range
(one page of up to 1,000 documents per call), compared field by field: total, tax, status, and the
tracking options on the lines.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any, Iterable

import pandas as pd

from ..money import decimal_to_cents
from .client import XeroClient

NUMBER_FIELD = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
MISMATCH_COLUMNS = ["business_date", "number", "field", "ci", "xero"]


def tracking_of(lines: Iterable[dict[str, Any]]) -> str:
    """The tracking options used by a document's lines, as a stable text (option names with counts)."""
    options = Counter(
        f"{entry.get('Name')}={entry.get('Option')}" for line in lines for entry in (line.get("Tracking") or [])
    )
    return ", ".join(f"{name}×{count}" for name, count in sorted(options.items()))


def read_documents(client: XeroClient, first: date, last: date) -> dict[tuple[str, str], dict[str, Any]]:
    """(endpoint, number) → the sales document Xero holds, for documents dated first..last."""
    where = (
        f"Date>=DateTime({first.year},{first.month:02d},{first.day:02d}) AND "
        f"Date<=DateTime({last.year},{last.month:02d},{last.day:02d})"
    )
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for endpoint, sales_type in (("Invoices", "ACCREC"), ("CreditNotes", "ACCRECCREDIT")):
        params = {"where": f'{where} AND Type=="{sales_type}"', "page": 1, "pageSize": 1000, "unitdp": 4}
        for document in client.get_all(endpoint, endpoint, params):
            if document.get("Status") == "DELETED":
                continue
            held[(endpoint, document.get(NUMBER_FIELD[endpoint]))] = document
    return held


def _same(field: str, wanted: Any, actual: Any) -> bool:
    """Equal, allowing what Xero legitimately does after posting: an approved document paid (in part or
    in full) is AUTHORISED or PAID; option names may come back in another case."""
    if field == "status":
        return actual == wanted or (wanted == "AUTHORISED" and actual == "PAID")
    if field == "tracking":
        return str(actual).casefold() == str(wanted).casefold()
    return actual == wanted


def compare_with_xero(expected: pd.DataFrame, held: dict[tuple[str, str], dict[str, Any]]) -> pd.DataFrame:
    """One row per difference. `expected`: endpoint, number, business_date, total_cents, tax_cents,
    status, tracking (as tracking_of gives it)."""
    differences = []
    for row in expected.itertuples(index=False):
        xero = held.get((row.endpoint, row.number))
        if xero is None:
            differences.append((row.business_date, row.number, "document", "posted", "missing"))
            continue
        actual = {
            "total": decimal_to_cents(xero.get("Total", 0)),
            "tax": decimal_to_cents(xero.get("TotalTax", 0)),
            "status": xero.get("Status"),
            "tracking": tracking_of(xero.get("LineItems") or []),
        }
        wanted = {"total": int(row.total_cents), "tax": int(row.tax_cents), "status": row.status, "tracking": row.tracking}
        for field, value in wanted.items():
            if not _same(field, value, actual[field]):
                differences.append((row.business_date, row.number, field, str(value), str(actual[field])))
    return pd.DataFrame(differences, columns=MISMATCH_COLUMNS)

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

from ..money import cents_to_decimal, decimal_to_cents
from .client import XeroClient

MISMATCH_COLUMNS = ["business_date", "number", "field", "ci", "xero"]


def tracking_of(lines: Iterable[dict[str, Any]]) -> str:
    """The tracking options used by a document's lines, as a stable text (option names with counts)."""
    options = Counter(
        f"{entry.get('Name')}={entry.get('Option')}" for line in lines for entry in (line.get("Tracking") or [])
    )
    return ", ".join(f"{name}×{count}" for name, count in sorted(options.items()))


SALES_KINDS = ("Invoices", "CreditNotes")


def kinds_in(results: pd.DataFrame) -> tuple[str, ...]:
    """The document kinds a run's results name (sales documents always: their read is what the checks use)."""
    named = set(results["endpoint"]) if len(results) else set()
    return tuple(dict.fromkeys([*SALES_KINDS, *sorted(named - set(SALES_KINDS))]))


def read_documents(client: XeroClient, first: date, last: date,
                   kinds: Iterable[str] = SALES_KINDS) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, identity) → the document Xero holds, for documents dated first..last (xero.kinds: a sales
    document by its number, a bill by the receipt in its Url, a journal by its Narration)."""
    from .kinds import kind_of

    where = (
        f"Date>=DateTime({first.year},{first.month:02d},{first.day:02d}) AND "
        f"Date<=DateTime({last.year},{last.month:02d},{last.day:02d})"
    )
    held: dict[tuple[str, str], dict[str, Any]] = {}
    for name in kinds:
        kind = kind_of(name)
        typed = f' AND Type=="{kind.document_type}"' if kind.document_type else ""
        params = {"where": where + typed, "page": 1, "pageSize": 1000, "unitdp": 4}
        for document in client.get_all(kind.path, kind.path, params):
            identity = kind.identity(document)
            if document.get("Status") == "DELETED" or identity is None:
                continue
            current = held.get((name, identity))
            if current is None or current.get("Status") == "VOIDED":  # a live one before a voided one
                held[(name, identity)] = document
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


# -- documents and their payments, as Xero holds them ------------------------------------------------
def documents_in_books(results: pd.DataFrame, held: dict) -> list[tuple[str, str, str, str, dict]]:
    """(document key, endpoint, number, outcome, Xero's document) of every result whose document Xero holds in
    the books now: posted or already there, and also one a rule left as it was (locked, paid by others, kept)."""
    rows = []
    for key, endpoint, number, outcome in zip(results["document_key"], results["endpoint"], results["number"], results["outcome"]):
        xero = held.get((endpoint, number))
        if outcome != "withdrawn" and xero is not None and xero.get("Status") not in ("VOIDED", "DELETED"):
            rows.append((key, endpoint, number, outcome, xero))
    return rows


def payment_differences(payments: pd.DataFrame, results: pd.DataFrame, held: dict, zero_balance: bool) -> pd.DataFrame:
    """One row per payment or document that Xero does not hold as the books say (empty: all paid as counted).
    Documents a rule left as they were in Xero are compared too: their accounts moved by what Xero holds."""
    from .posting import GOOD_OUTCOMES

    rows = []
    good = set(results.loc[results["outcome"].isin(GOOD_OUTCOMES - {"withdrawn"}), "document_key"])
    in_xero = {key: (number, xero) for key, _endpoint, number, _outcome, xero in documents_in_books(results, held)}
    for key in sorted(good - set(in_xero)):
        rows.append((key, "", "document", "in Xero", "missing"))
    for key, (number, xero) in in_xero.items():
        total = decimal_to_cents(xero.get("Total", 0))
        if not (xero.get("Status") == "PAID" or (total == 0 and xero.get("Status") == "AUTHORISED")
                or (zero_balance and total == 0)):
            rows.append((number, "", "status", "PAID", f"{xero.get('Status')} with {xero.get('AmountDue')} due"))
    for payment in payments.itertuples(index=False):
        if payment.document_key not in in_xero:
            continue
        number, xero = in_xero[payment.document_key]
        found = [p for p in xero.get("Payments") or [] if p.get("Reference") == payment.payment_key]
        amount = sum(decimal_to_cents(p.get("Amount", 0)) for p in found)
        if amount != int(payment.amount_cents):
            rows.append((number, payment.payment_key, "payment", str(cents_to_decimal(int(payment.amount_cents))),
                         str(cents_to_decimal(amount)) if found else "missing"))
    return pd.DataFrame(rows, columns=["number", "payment", "field", "ci", "xero"])


PAYMENT_DIFFERENCE_COLUMNS = ["number", "payment", "field", "ci", "xero"]

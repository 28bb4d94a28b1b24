"""Posting a set of Xero documents: look up what is there, respect lock dates, create the rest.

Exactly once across re-runs rests on deterministic document numbers: a number already in Xero is
never sent again, and its totals are compared with ours so a change after posting is reported.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents
from .client import XeroClient, parse_xero_date

NUMBER_FIELD = {"Invoices": "InvoiceNumber", "CreditNotes": "CreditNoteNumber"}
ID_FIELD = {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID"}

RESULT_COLUMNS = [
    "document_key", "business_date", "branch_code", "endpoint", "number", "outcome", "xero_id",
    "xero_status", "total_cents", "tax_cents", "xero_total_cents", "xero_tax_cents", "message",
    "ci_invoice_nos",
]

# outcomes that leave Xero holding the document as CI wants it
GOOD_OUTCOMES = {"posted", "already_posted"}


def lock_date(organisation: dict[str, Any]) -> date | None:
    dates = [parse_xero_date(organisation.get(name)) for name in ("PeriodLockDate", "EndOfYearLockDate")]
    dates = [d for d in dates if d]
    return max(dates) if dates else None


def _amounts(xero_document: dict[str, Any]) -> tuple[int | None, int | None]:
    total, tax = xero_document.get("Total"), xero_document.get("TotalTax")
    return (
        decimal_to_cents(total) if total is not None else None,
        decimal_to_cents(tax) if tax is not None else None,
    )


def _result(document: Any, outcome: str, message: str = "", xero: dict[str, Any] | None = None) -> dict[str, Any]:
    xero = xero or {}
    xero_total, xero_tax = _amounts(xero) if xero else (None, None)
    return {
        "document_key": document.document_key,
        "business_date": document.business_date,
        "branch_code": document.branch_code,
        "endpoint": document.endpoint,
        "number": document.number,
        "outcome": outcome,
        "xero_id": xero.get(ID_FIELD[document.endpoint]),
        "xero_status": xero.get("Status"),
        "total_cents": int(document.total_cents),
        "tax_cents": int(document.tax_cents),
        "xero_total_cents": xero_total,
        "xero_tax_cents": xero_tax,
        "message": message,
        "ci_invoice_nos": document.ci_invoice_nos,
    }


def post_documents(client: XeroClient, documents: pd.DataFrame) -> pd.DataFrame:
    """Post the documents not yet in Xero; one result row per document, in document order.

    Outcomes: posted, already_posted, differs (in Xero with other totals: a change after posting),
    locked (AUTHORISED but dated in a locked period: reported, not forced), failed (Xero's reasons).
    """
    if documents.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    locked_until = lock_date(client.organisation())
    results: dict[str, dict[str, Any]] = {}
    to_create: dict[str, list[Any]] = {}

    for endpoint, group in documents.groupby("endpoint", sort=True):
        existing = client.find_by_number(endpoint, group["number"])
        for document in group.itertuples(index=False):
            found = existing.get(document.number)
            if found is not None:
                xero_total, xero_tax = _amounts(found)
                if (xero_total, xero_tax) == (int(document.total_cents), int(document.tax_cents)):
                    results[document.document_key] = _result(document, "already_posted", xero=found)
                else:
                    results[document.document_key] = _result(
                        document,
                        "differs",
                        f"{document.number} is already in Xero with total {found.get('Total')} and tax "
                        f"{found.get('TotalTax')}; CI now says {cents_to_decimal(document.total_cents)} and "
                        f"{cents_to_decimal(document.tax_cents)}. It was changed in CI after posting.",
                        found,
                    )
                continue
            if (
                locked_until is not None
                and document.status == "AUTHORISED"
                and date.fromisoformat(document.business_date) <= locked_until
            ):
                results[document.document_key] = _result(
                    document,
                    "locked",
                    f"{document.number} is dated {document.business_date}, on or before Xero's lock date "
                    f"{locked_until}; not posted. Post it as DRAFT or ask the accountant to move the lock date.",
                )
                continue
            to_create.setdefault(endpoint, []).append(document)

    for endpoint, pending in to_create.items():
        by_key = {document.document_key: document for document in pending}
        outcomes = client.create_documents(endpoint, [(d.document_key, d.payload) for d in pending])
        for outcome in outcomes:
            document = by_key[outcome.key]
            if outcome.ok:
                results[outcome.key] = _result(document, "posted", xero=outcome.document)
            else:
                reason = "; ".join(outcome.messages) or "Xero reported an error without a message"
                results[outcome.key] = _result(document, "failed", f"{document.number}: {reason}")

    return pd.DataFrame([results[key] for key in documents["document_key"]], columns=RESULT_COLUMNS)

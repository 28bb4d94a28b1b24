"""Tenders as Xero payments: the tender mapping, the payments frame, and E-Retailer orders' tenders.

A tender is money taken (or paid back) by one means: CASH, EFTPOS, a card, ONLINE, PAYPAL, AFTERPAY, a
GIFT_VOUCHER. Each becomes a payment of the Xero document into the tender's account (a clearing
account, CURRENT with payments enabled; GIFT_VOUCHER → the voucher liability account), so that every
clearing account moves by exactly what CI took, and the document ends PAID (processes.md §1 and §5).

Xero takes no negative payment and pays a document no more than it is due. So per document and tender
type, with the document's sign s (+1 invoice, −1 credit note) and P the tender's CI amount: s·P > 0 is a
payment (a refund, on a credit note) of s·P; s·P < 0 (a tender running the other way, e.g. a refund
tender on a day of net sales) is not a payment but a positive line of −s·P to the tender's own account,
tax type NONE. Then Σ payments = the document's total, and every tender's account moves by P.

Each payment's key is its `Reference`, `<document number>/<tender type>`: Xero finds it by
`where=Reference==…`, so a lost answer is resolved by a lookup and a re-run pays nothing twice.

E-Retailer (issue 11, item 4): `build_eretailer_tender_payments` pays the E-Retailer documents
(Detail: per document, per tender type; Summary: per day's document, per tender type, over its CI
documents) with the same mapping and the same Reference scheme. Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from ..money import cents_to_decimal
from .schemas import ISO_DAY

GIFT_VOUCHER = "GIFT_VOUCHER"
ACCOUNT_TENDER = "ACCOUNT"  # CI's tender for a sale charged to an account customer (their own process)
REFERENCE_LIMIT = 255  # Xero's limit on a payment's Reference

# one row per Xero payment; payment_key is its Reference; business_date is its Date (the trading day)
PAYMENT_COLUMNS = [
    "payment_key", "document_key", "business_date", "branch_code", "endpoint", "document_endpoint",
    "document_number", "tender_type", "account_code", "amount_cents", "ci_invoice_nos", "payload",
]
# a tender made a line of its document (amount as shown on it: > 0 by the sign rule, < 0 in the zero-balance layout)
TENDER_LINE_COLUMNS = ["document_key", "business_date", "branch_code", "tender_type", "account_code", "amount_cents"]
# why a document's tenders are not paid (the document is posted unpaid: the bookkeeper applies them)
TENDER_PROBLEM_COLUMNS = [
    "business_date", "document_key", "number", "invoice_no", "tender_type", "amount_cents", "check", "reason",
]


@dataclass(frozen=True)
class TenderMapping:
    """tender_type → Xero account code; GIFT_VOUCHER, unless mapped itself, goes to the voucher
    liability account (a GIFT_VOUCHER tender is a redemption: it reduces the liability)."""

    accounts: Mapping[str, str] = field(default_factory=dict)
    voucher_liability_account: str | None = None

    def account_for(self, tender_type: Any) -> str | None:
        if not isinstance(tender_type, str):
            return None
        account = self.accounts.get(tender_type)
        if account is None and tender_type == GIFT_VOUCHER:
            account = self.voucher_liability_account
        return account or None

    def setting_for(self, tender_type: Any) -> str:
        """Where the site maps this tender (for a reason a person can act on)."""
        if tender_type == GIFT_VOUCHER:
            return "tender_accounts.GIFT_VOUCHER or voucher_liability_account"
        return f"tender_accounts.{tender_type}"


def payment_key(document_number: str, tender_type: str) -> str:
    """The payment's Reference: `<document number>/<tender type>`."""
    return f"{document_number}/{tender_type}"[:REFERENCE_LIMIT]


def payment_payload(document_endpoint: str, document_number: str, account_code: str, day: str,
                    amount_cents: int, reference: str) -> dict[str, Any]:
    """A Xero Payment (the spec's Payment): the document by its number, the account by its code."""
    if amount_cents <= 0:
        raise ValueError(f"{reference}: a Xero payment is positive, not {cents_to_decimal(amount_cents)}")
    document = ({"Invoice": {"InvoiceNumber": document_number}} if document_endpoint == "Invoices"
                else {"CreditNote": {"CreditNoteNumber": document_number}})
    return {**document, "Account": {"Code": account_code}, "Date": day,
            "Amount": cents_to_decimal(amount_cents), "Reference": reference}


def payments_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """PAYMENT_COLUMNS from rows (dicts with those keys), ordered by day and key."""
    if not rows:
        return empty_payments()
    frame = pd.DataFrame(rows, columns=PAYMENT_COLUMNS)
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame.sort_values(["business_date", "payment_key"], kind="stable").reset_index(drop=True)


def empty_payments() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in PAYMENT_COLUMNS})
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


def _frame(rows: list[dict[str, Any]], columns: list[str], integers: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    for column in integers:
        frame[column] = frame[column].astype("Int64" if frame[column].isna().any() else "int64")
    return frame


class XeroPayments(pa.DataFrameModel):
    """A payments frame: one row per Xero payment, its key the Reference, its amount positive."""

    payment_key: Series[str] = pa.Field(unique=True, nullable=False, str_length={"min_value": 1, "max_value": REFERENCE_LIMIT})
    document_key: Series[str] = pa.Field(nullable=False)
    business_date: Series[str] = pa.Field(str_matches=ISO_DAY)
    endpoint: Series[str] = pa.Field(isin=["Payments"])
    document_endpoint: Series[str] = pa.Field(isin=["Invoices", "CreditNotes"])
    document_number: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    tender_type: Series[str] = pa.Field(nullable=False)
    account_code: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 10})
    amount_cents: Series[int] = pa.Field(gt=0)

    @pa.dataframe_check(name="reference_is_the_key")
    def _reference(cls, frame: pd.DataFrame) -> pd.Series:
        return pd.Series([payload.get("Reference") == key for key, payload in zip(frame["payment_key"], frame["payload"])],
                         index=frame.index)

    class Config:
        strict = False


def tender_line(tender_type: str, account_code: str, amount_cents: int, description: str,
                tracking: list[dict[str, str]] | None, exempt_tax_type: str = "NONE") -> dict[str, Any]:
    """A tender shown as a positive line of its document, to its own account, without tax."""
    amount = cents_to_decimal(amount_cents)
    item: dict[str, Any] = {
        "Description": description, "Quantity": Decimal(1), "UnitAmount": amount, "LineAmount": amount,
        "TaxAmount": cents_to_decimal(0), "AccountCode": account_code, "TaxType": exempt_tax_type,
    }
    if tracking:
        item["Tracking"] = tracking
    return item


# -- E-Retailer documents' tenders ---------------------------------------------------------------

@dataclass(frozen=True)
class TenderPayments:
    """What build_eretailer_tender_payments makes.

    documents: the documents frame given, with the sign rule's tender lines added to the payloads of the
      documents that need them (their total_cents and line_count grown by those lines; every other
      document unchanged, the very same payload object);
    payments (PAYMENT_COLUMNS); tender_lines (TENDER_LINE_COLUMNS): the lines added, so that a totals
      check can take them out of a document's total (total_cents − Σ tender lines = CI's total);
    problems (TENDER_PROBLEM_COLUMNS): documents left unpaid, and why (none of their tenders is paid:
      a part-paid document would be worse than an unpaid one)."""

    documents: pd.DataFrame
    payments: pd.DataFrame
    tender_lines: pd.DataFrame
    problems: pd.DataFrame


def build_eretailer_tender_payments(
    documents: pd.DataFrame,
    invoices: pd.DataFrame,
    tenders: pd.DataFrame,
    mapping: TenderMapping,
    exempt_tax_type: str = "NONE",
) -> TenderPayments:
    """Payments of the E-Retailer documents from their CI tenders.

    `documents`: xero_eretailer_documents (books.eretailer DOCUMENT_COLUMNS; each row's ci_invoice_nos
    are the CI documents behind it: one in Detail mode, a day's (or branch-day's) in Summary mode).
    `invoices`: the postable CI documents they were built from (invoice_no, business_date,
    total_incl_cents). `tenders`: the CI tenders of those documents (extract.TENDER_FRAME_COLUMNS:
    invoice_no, tender_type, amount_cents at least). Per document and tender type, one payment (or a
    tender line, by the sign rule) of Σ amount. A document is left unpaid, with a problem row, when:
    it is a DRAFT (Xero pays only AUTHORISED documents); one of its CI documents' tenders do not add up
    to its total (CI inconsistent with itself: the figures are in the reason); a tender type has no
    account (mapping); or it holds an ACCOUNT tender that is not mapped. CI documents that no document
    covers (a Summary day netting to zero) but whose tenders move money are problems too."""
    total_of = dict(zip(invoices["invoice_no"].tolist(), invoices["total_incl_cents"].astype("int64").tolist()))
    day_of = dict(zip(invoices["invoice_no"].tolist(), invoices["business_date"].tolist()))
    by_number: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tendered: dict[str, int] = defaultdict(int)
    for number, tender_type, amount in zip(tenders["invoice_no"].tolist(), tenders["tender_type"].tolist(),
                                           tenders["amount_cents"].astype("int64").tolist()):
        if number in total_of:
            by_number[number][tender_type] += amount
            tendered[number] += amount

    problems: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    covered: set[str] = set()
    new_payloads: dict[int, dict[str, Any]] = {}
    new_totals: dict[int, int] = {}
    new_counts: dict[int, int] = {}
    for row, document in enumerate(documents.itertuples(index=False)):
        numbers = list(document.ci_invoice_nos)
        covered.update(numbers)
        base = {"business_date": document.business_date, "document_key": document.document_key, "number": document.number}

        def problem(check: str, reason: str, invoice_no: Any = None, tender_type: Any = None, amount: Any = None) -> None:
            problems.append({**base, "invoice_no": invoice_no, "tender_type": tender_type, "amount_cents": amount,
                             "check": check, "reason": reason})

        sums: dict[str, int] = defaultdict(int)
        for number in numbers:
            for tender_type, amount in by_number.get(number, {}).items():
                sums[tender_type] += amount
        held = False
        for number in numbers:
            if tendered.get(number, 0) != total_of.get(number, 0):
                held = True
                problem("tenders_not_document", (
                    f"{number}: its tenders add up to {cents_to_decimal(tendered.get(number, 0))}, its total is "
                    f"{cents_to_decimal(total_of.get(number, 0))} (CI disagrees with itself): {document.number} "
                    "is posted unpaid"), invoice_no=number, amount=tendered.get(number, 0))
        for tender_type in sorted(sums, key=str):
            if sums[tender_type] != 0 and mapping.account_for(tender_type) is None:
                held = True
                problem("unmapped_tender_type", (
                    f"{document.number}: tender {tender_type} ({cents_to_decimal(sums[tender_type])}) has no Xero account "
                    f"({mapping.setting_for(tender_type)}): the document is posted unpaid"),
                    tender_type=tender_type, amount=sums[tender_type])
        if document.status != "AUTHORISED" and any(sums.values()):
            held = True
            problem("draft", f"{document.number} is {document.status}: Xero pays only AUTHORISED documents; "
                             "its tenders are not paid")
        if held:
            continue
        sign = -1 if document.endpoint == "CreditNotes" else 1
        lines: list[dict[str, Any]] = []
        for tender_type in sorted(sums, key=str):
            shown = sign * sums[tender_type]
            if shown == 0:
                continue
            account = mapping.account_for(tender_type)
            if shown > 0:
                key = payment_key(document.number, tender_type)
                payments.append({
                    "payment_key": key, "document_key": document.document_key, "business_date": document.business_date,
                    "branch_code": document.branch_code, "endpoint": "Payments", "document_endpoint": document.endpoint,
                    "document_number": document.number, "tender_type": tender_type, "account_code": account,
                    "amount_cents": shown, "ci_invoice_nos": tuple(numbers),
                    "payload": payment_payload(document.endpoint, document.number, account, document.business_date, shown, key),
                })
            else:
                what = "refunded" if sign > 0 else "taken"
                lines.append(tender_line(tender_type, account, -shown, f"{tender_type} {what} {document.business_date}",
                                         _single_tracking(document.payload), exempt_tax_type))
                added.append({"document_key": document.document_key, "business_date": document.business_date,
                              "branch_code": document.branch_code, "tender_type": tender_type, "account_code": account,
                              "amount_cents": -shown})
        if lines:
            payload = dict(document.payload)
            payload["LineItems"] = list(payload["LineItems"]) + lines
            new_payloads[row] = payload
            new_totals[row] = int(document.total_cents) + sum(-sign * sums[t] for t in sums if sign * sums[t] < 0)
            new_counts[row] = int(document.line_count) + len(lines)

    for number in sorted(set(by_number) - covered):
        moving = {tender_type: amount for tender_type, amount in by_number[number].items() if amount}
        if moving:
            problems.append({
                "business_date": day_of.get(number), "document_key": None, "number": None, "invoice_no": number,
                "tender_type": None, "amount_cents": sum(moving.values()), "check": "no_document",
                "reason": (f"{number}: no Xero document holds it (its day nets to zero), so its tenders "
                           + ", ".join(f"{t} {cents_to_decimal(a)}" for t, a in sorted(moving.items()))
                           + " are not paid: move them between the clearing accounts by hand"),
            })

    result = documents
    if new_payloads:
        result = documents.copy()
        payload_column = result["payload"].to_numpy(dtype=object).copy()
        for row, payload in new_payloads.items():
            payload_column[row] = payload
        result["payload"] = payload_column
        totals = result["total_cents"].to_numpy(dtype=np.int64).copy()
        counts = result["line_count"].to_numpy(dtype=np.int64).copy()
        for row in new_payloads:
            totals[row], counts[row] = new_totals[row], new_counts[row]
        result["total_cents"], result["line_count"] = totals, counts
    return TenderPayments(
        documents=result,
        payments=payments_frame(payments),
        tender_lines=_frame(added, TENDER_LINE_COLUMNS, ("amount_cents",)),
        problems=_frame(problems, TENDER_PROBLEM_COLUMNS, ()),
    )


def _single_tracking(payload: dict[str, Any]) -> list[dict[str, str]] | None:
    """The tracking every line of the document shares (a tender line takes it), else none."""
    seen = {repr(line.get("Tracking")) for line in payload.get("LineItems", [])}
    if len(seen) == 1:
        tracking = payload["LineItems"][0].get("Tracking")
        return [dict(entry) for entry in tracking] if tracking else None
    return None

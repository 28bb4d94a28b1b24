"""The kinds of Xero document the posting layer writes, and what differs between them.

A documents frame names each document's kind in its `endpoint` column and its identity in `number`: the
text the ledger keeps and a lookup in Xero finds the document by. For sales documents the identity is the
Xero number itself; for the others it lives elsewhere in the document (processes.md, "One key per document"):

| kind           | Xero endpoint | identity (`number`)                 | found by                                       |
|----------------|---------------|-------------------------------------|------------------------------------------------|
| Invoices       | Invoices      | InvoiceNumber (ACCREC: unique)      | InvoiceNumbers=                                |
| CreditNotes    | CreditNotes   | CreditNoteNumber (ACCRECCREDIT)     | where=CreditNoteNumber==                       |
| Bills          | Invoices      | the CI receipt, at the end of `Url` | where=Type AND Date (its days), then Url; adopted only under its supplier |
| BillCredits    | CreditNotes   | the CI receipt, in `Reference`      | where=Type AND Date (its days), then Reference (or contact, number, date) |
| ManualJournals | ManualJournals| Narration (fixed text with the key) | where=Narration==                              |

Bill numbers are the supplier's and repeat across suppliers and deliveries, so a bill is never judged by its
number: processes.md looks it up by supplier and number, then Url; the day's bills then Url find it too when
CI corrected the supplier's number after it was sent, and one whose payload is gone by the id the ledger holds. What a CI change does also differs: a sales document is revised (void and post again, or
updated while a draft), a journal is updated in place, and a bill is reported, never overwritten (the
payables clerk may have edited it while approving).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote
from typing import Any, Iterable, Literal, Mapping

from ..money import decimal_to_cents
from .client import XeroClient, where_text

LOOKUP_CLAUSES = 10  # AND-groups per where: keeps a query well under URL length limits


@dataclass(frozen=True)
class Hint:
    """What a lookup may use besides the identity: the payload sent (or to be sent), the id Xero gave."""

    payload: Mapping[str, Any] | None = None
    xero_id: str | None = None
    days: tuple[str, ...] = ()  # the days the document is (or was) dated: a bill is found among its day's bills


@dataclass(frozen=True)
class Kind:
    name: str
    path: str  # the Xero endpoint (and the collection name of its bodies)
    id_field: str
    document_type: str | None  # the Type a document of this kind has in Xero (None: journals)
    number_field: str | None  # the payload field that is the identity (None: the identity lives elsewhere)
    unique_numbers: bool  # Xero refuses a second document with the number: a new one goes without a lookup
    changes: Literal["revise", "update", "report"]
    editable: tuple[str, ...]  # statuses in which a changed document is updated in place
    approved: tuple[str, ...]  # statuses Xero's lock dates refuse on or before the lock date

    def identity(self, xero: Mapping[str, Any]) -> str | None:
        """The identity of a document as Xero holds it (None: not one of ours by its shape)."""
        if self.name == "Bills":
            return url_identity(xero.get("Url") or "")
        if self.name == "BillCredits":
            return xero.get("Reference") or None
        return xero.get(self.number_field) if self.number_field else None

    def with_identity(self, payload: dict[str, Any], number: str) -> dict[str, Any]:
        """The payload carrying `number` as its identity (a revision's number, e.g. `<number>-R1`)."""
        if self.name == "Bills":
            return {**payload, "Url": with_url_identity(payload.get("Url") or "", number), "Reference": number}
        if self.name == "BillCredits":
            return {**payload, "Reference": number}
        return {**payload, self.number_field: number}

    def amounts(self, xero: Mapping[str, Any]) -> tuple[int | None, int | None]:
        """(total, tax) in cents as Xero holds them; a journal's total is the sum of its debits."""
        if self.name == "ManualJournals":
            lines = xero.get("JournalLines")
            if lines is None:
                return None, None
            debits = sum(decimal_to_cents(line.get("LineAmount") or 0) for line in lines
                         if decimal_to_cents(line.get("LineAmount") or 0) > 0)
            return debits, sum(decimal_to_cents(line.get("TaxAmount") or 0) for line in lines)
        total, tax = xero.get("Total"), xero.get("TotalTax")
        return (decimal_to_cents(total) if total is not None else None,
                decimal_to_cents(tax) if tax is not None else None)

    def ours(self, xero: Mapping[str, Any]) -> bool:
        return self.document_type is None or xero.get("Type") == self.document_type


INVOICES = Kind("Invoices", "Invoices", "InvoiceID", "ACCREC", "InvoiceNumber", True, "revise", ("DRAFT", "SUBMITTED"), ("AUTHORISED",))
CREDIT_NOTES = Kind("CreditNotes", "CreditNotes", "CreditNoteID", "ACCRECCREDIT", "CreditNoteNumber", False, "revise",
                    ("DRAFT", "SUBMITTED"), ("AUTHORISED",))
BILLS = Kind("Bills", "Invoices", "InvoiceID", "ACCPAY", None, False, "report", (), ("AUTHORISED",))
BILL_CREDITS = Kind("BillCredits", "CreditNotes", "CreditNoteID", "ACCPAYCREDIT", None, False, "report", (), ("AUTHORISED",))
# xero-facts.md: manual journals are DRAFT or POSTED; the stricter reading of lock dates refuses a POSTED one
MANUAL_JOURNALS = Kind("ManualJournals", "ManualJournals", "ManualJournalID", None, "Narration", False, "update",
                       ("DRAFT", "POSTED"), ("POSTED",))
KINDS: dict[str, Kind] = {kind.name: kind for kind in (INVOICES, CREDIT_NOTES, BILLS, BILL_CREDITS, MANUAL_JOURNALS)}
# endpoints a books frame may name for a purchase document: the kind follows the document type
BY_TYPE = {("Invoices", "ACCPAY"): "Bills", ("CreditNotes", "ACCPAYCREDIT"): "BillCredits"}


def kind_of(endpoint: str) -> Kind:
    try:
        return KINDS[endpoint]
    except KeyError:
        raise ValueError(f"no Xero document kind {endpoint!r}: one of {', '.join(KINDS)}") from None


def posting_endpoint(endpoint: str, document_type: str | None) -> str:
    """The kind of a books row: a purchase document named by its Xero endpoint is a Bill or BillCredit."""
    return BY_TYPE.get((endpoint, document_type or ""), endpoint)


# -- a bill's identity in its Url ------------------------------------------------------------------------
_RECEIPT = re.compile(r"[?&]ci_receipt=([^&#]+)$")
NO_UI_BASE = "https://ci-xero.invalid/receipts"  # .invalid never resolves (RFC 2606): a key, not a link


def bill_url(base: str | None, day: str, receipt: str) -> str:
    """The Url a bill carries: the Dagster UI page of its day with the receipt as the last parameter, so
    that the bill is found by its Url and opens its day's lineage ("Go to …" in Xero)."""
    if base:
        return f"{base.rstrip('/')}/assets/posted_payables?view=partitions&partition={day}&ci_receipt={quote(receipt, safe='')}"
    return f"{NO_UI_BASE}?ci_receipt={quote(receipt, safe='')}"


def url_identity(url: str) -> str | None:
    match = _RECEIPT.search(url)
    if match:
        return unquote(match.group(1))  # a receipt with reserved characters travels percent-quoted
    # a books module may have given a Url of another shape: its last path segment names the receipt
    tail = url.rstrip("/").rsplit("/", 1)[-1] if "/" in url else ""
    return unquote(tail) or None


def with_url_identity(url: str, number: str) -> str:
    if _RECEIPT.search(url):
        return _RECEIPT.sub(lambda m: m.group(0)[0] + f"ci_receipt={quote(number, safe='')}", url)
    if "/" in url:
        return url.rstrip("/").rsplit("/", 1)[0] + "/" + quote(number, safe="")
    return f"{NO_UI_BASE}?ci_receipt={quote(number, safe='')}"


# -- lookups ---------------------------------------------------------------------------------------
def find(client: XeroClient, kind: Kind, numbers: Iterable[str], hints: Mapping[str, Hint]) -> dict[str, dict[str, Any]]:
    """identity → the document of this kind Xero holds under it (an active one before a voided or deleted
    one). Raises the client's errors: the caller decides what a failed lookup costs."""
    wanted = sorted(set(numbers))
    if not wanted:
        return {}
    if kind in (INVOICES, CREDIT_NOTES):
        candidates = _by_number(client, kind, wanted)
    elif kind is MANUAL_JOURNALS:
        candidates = _by_where(client, kind, [f'Narration=="{where_text(n)}"' for n in wanted])
    else:
        candidates = _purchases(client, kind, wanted, hints)
    found: dict[str, dict[str, Any]] = {}
    for document in candidates:
        identity = kind.identity(document) or _credit_without_reference(kind, document, wanted, hints)
        if identity not in wanted or not kind.ours(document):
            continue
        held = found.get(identity)
        known = (hints.get(identity) or Hint()).xero_id
        # an active one before a voided or deleted one; of two active ones under our identity (a copy made in
        # Xero), the one the ledger holds, never the other
        if (held is None or (_gone(held) and not _gone(document))
                or (known and document.get(kind.id_field) == known and not _gone(document))):
            found[identity] = document
    return found


def _credit_without_reference(kind: Kind, document: Mapping[str, Any], wanted: list[str], hints: Mapping[str, Hint]) -> str | None:
    """A supplier credit Xero holds without our Reference (the spec documents Reference for ACCRECCREDIT
    only, so Xero may drop it on ACCPAYCREDIT): ours when its contact, number and date are the payload's,
    and only one wanted credit fits (two that fit alike are left unknown rather than guessed)."""
    if kind is not BILL_CREDITS or document.get("Reference"):
        return None
    from .client import parse_xero_date

    fits = []
    for number in wanted:
        payload = (hints.get(number) or Hint()).payload or {}
        same = ((payload.get("Contact") or {}).get("ContactNumber") == (document.get("Contact") or {}).get("ContactNumber")
                and payload.get("CreditNoteNumber") == document.get("CreditNoteNumber")
                and str(payload.get("Date"))[:10] == str(parse_xero_date(document.get("Date") or document.get("DateString"))))
        if same:
            fits.append(number)
    return fits[0] if len(fits) == 1 else None


def _gone(document: Mapping[str, Any]) -> bool:
    return document.get("Status") in ("VOIDED", "DELETED")


def _pages(client: XeroClient, kind: Kind, params: dict[str, Any]) -> list[dict[str, Any]]:
    return client.get_all(kind.path, kind.path, {"page": 1, "pageSize": 1000, "unitdp": 4, **params})


def _by_number(client: XeroClient, kind: Kind, numbers: list[str]) -> list[dict[str, Any]]:
    if kind is INVOICES:
        return _pages(client, kind, {"InvoiceNumbers": ",".join(numbers)})
    return _by_where(client, kind, [f'{kind.number_field}=="{where_text(n)}"' for n in numbers])


def _by_where(client: XeroClient, kind: Kind, clauses: list[str]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for start in range(0, len(clauses), LOOKUP_CLAUSES):
        documents += _pages(client, kind, {"where": " OR ".join(clauses[start : start + LOOKUP_CLAUSES])})
    return documents


def _purchases(client: XeroClient, kind: Kind, numbers: list[str], hints: Mapping[str, Hint]) -> list[dict[str, Any]]:
    """Bills and supplier credits: the documents of their type dated on their days (the day of the partition,
    and the day a ledger entry was posted for), then each judged by its identity (Url, Reference). This finds
    a bill sent before a crash even when CI corrected its supplier or number since (a lookup by supplier and
    number alone, as processes.md has it, would miss that one and send it twice), and one whose payload is
    gone (CI voided the receipt); the id the ledger holds finds it in any case."""
    days: set[str] = set()
    ids: set[str] = set()
    for number in numbers:
        hint = hints.get(number) or Hint()
        payload_day = str((hint.payload or {}).get("Date") or "")[:10]
        found_by = {d for d in (*hint.days, payload_day) if d}
        if not found_by and not hint.xero_id:
            raise LookupError(f"{kind.name} {number}: neither its day nor its Xero id is known")
        days |= found_by
        if hint.xero_id:
            ids.add(hint.xero_id)
    clauses = []
    for day in sorted(days):
        y, m, d = (int(part) for part in day.split("-"))
        clauses.append(f'(Type=="{kind.document_type}" AND Date>=DateTime({y},{m:02d},{d:02d}) AND '
                       f'Date<=DateTime({y},{m:02d},{d:02d}))')
    documents = _by_where(client, kind, clauses)
    ordered = sorted(ids)
    for start in range(0, len(ordered), 50):
        documents += _pages(client, kind, {"IDs": ",".join(ordered[start : start + 50])})
    return documents



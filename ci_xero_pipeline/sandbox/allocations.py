"""Credit note allocations: a credit applied to an invoice of the same contact (the spec's
createCreditNoteAllocation and deleteCreditNoteAllocations; rules from xero-facts.md, "Credit note
allocations", and the spec's Allocation schema).

    PUT    /CreditNotes/{CreditNoteID}/Allocations                 {"Allocations": [Allocation, …]}
    DELETE /CreditNotes/{CreditNoteID}/Allocations/{AllocationID}  answers the Allocation, IsDeleted true

An allocation lives in three places, written in one transaction: a row of the `allocations` table (a person
can read it), and an entry in the stored JSON of both documents (`_allocations`), so that rendering a list of
documents stays one read, as payments do. The money of a document follows from what it holds:

    AmountDue (invoice) / RemainingCredit (credit note) = Total − payments − allocations

and a document with nothing left is PAID (fully allocated credit, or an invoice paid by payments and credits
together); removing a payment or an allocation makes it AUTHORISED again.

Rules (each refusal in Xero's words where they are known, else plainly):
- both documents AUTHORISED: a PAID invoice has nothing due and a PAID credit nothing remaining;
- a sales credit (ACCRECCREDIT) goes to a sales invoice (ACCREC), a purchase credit (ACCPAYCREDIT) to a
  bill (ACCPAY); same contact, same currency;
- Amount > 0 with at most 2 decimals, no more than the credit's RemainingCredit nor the invoice's AmountDue;
- Date required (the spec), not on or before the lock date (processes.md: nothing is applied there).
Stricter readings, where Xero's documentation is silent: the invoice must be named by its InvoiceID (a bill
number need not be unique); the Date may not be before either document's date (an allocation applies
documents that exist on that day); an allocation cannot be deleted when it is dated on or before the lock
date.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, Callable

from .rules import CENT, CREDIT_NOTES, INVOICES, DocumentKind, Ledger, is_uuid, parse_amount, parse_date
from .store import SandboxStore
from .xerojson import date_string, envelope, ms_date, not_found, now_ms, post_data_invalid, validation_exception

ZERO = Decimal("0.00")
OPEN_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "PAID")  # statuses whose Total less what was applied is open
SALES_PAIRS = {"ACCRECCREDIT": "ACCREC", "ACCPAYCREDIT": "ACCPAY"}  # credit note Type -> the invoice Type it applies to
ALLOCATION_FIELDS = frozenset({"AllocationID", "Invoice", "Overpayment", "Prepayment", "CreditNote", "Amount", "Date",
                               "IsDeleted", "StatusAttributeString", "ValidationErrors"})  # the spec's Allocation

Summary = Callable[[DocumentKind, dict[str, Any], str], dict[str, Any]]  # (kind, document, tenant) -> summary element


# -- what a stored document holds ----------------------------------------------------------------------
def payments_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Payments applied and not deleted ({PaymentID, Date, Amount, Reference})."""
    return document.get("_payments") or []


def allocations_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Allocations applied to (invoice) or from (credit note) a document and not deleted: {AllocationID,
    CreditNoteID, CreditNoteNumber, CreditNoteType, CreditNoteDate, CreditNoteTotal, InvoiceID, InvoiceNumber,
    Amount, Date}."""
    return document.get("_allocations") or []


def amount_paid(document: dict[str, Any]) -> Decimal:
    return sum((payment["Amount"] for payment in payments_of(document)), ZERO)


def amount_allocated(document: dict[str, Any]) -> Decimal:
    return sum((allocation["Amount"] for allocation in allocations_of(document)), ZERO)


def amount_due(document: dict[str, Any]) -> Decimal:
    """An invoice's AmountDue, a credit note's RemainingCredit: Total − payments − allocations (0 once
    VOIDED or DELETED)."""
    if document.get("Status") not in OPEN_STATUSES:
        return ZERO
    return document.get("Total", ZERO) - amount_paid(document) - amount_allocated(document)


def is_applied(document: dict[str, Any]) -> bool:
    """True when a payment or an allocation is applied: the document cannot be edited or voided."""
    return bool(payments_of(document) or allocations_of(document))


def settle(document: dict[str, Any]) -> dict[str, Any]:
    """The document's status after what is applied to it changed: PAID when nothing is left open (dated by
    the last payment or allocation), AUTHORISED again when something is."""
    settled = dict(document)
    if settled.get("Status") not in ("AUTHORISED", "PAID"):
        return settled
    applied_on = [entry["Date"] for entry in payments_of(settled) + allocations_of(settled)]
    if amount_due(settled) == 0 and applied_on:
        settled["Status"] = "PAID"
        settled["_fully_paid_on"] = max(applied_on)
    elif amount_due(settled) > 0 and settled["Status"] == "PAID":
        settled["Status"] = "AUTHORISED"
        settled.pop("_fully_paid_on", None)
    return settled


# -- how documents show their allocations -------------------------------------------------------------------
def credit_note_allocations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A credit note's `Allocations`, as GET /CreditNotes shows them."""
    return [
        {
            "AllocationID": entry["AllocationID"],
            "Amount": entry["Amount"],
            "Date": ms_date(parse_date(entry["Date"])),
            "Invoice": {"InvoiceID": entry["InvoiceID"], "InvoiceNumber": entry.get("InvoiceNumber") or "",
                        "Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": [], "LineItems": [],
                        "HasErrors": False, "IsDiscounted": False},
            "IsDeleted": False,
        }
        for entry in allocations_of(document)
    ]


def invoice_credit_notes(document: dict[str, Any]) -> list[dict[str, Any]]:
    """An invoice's `CreditNotes`: each credit applied to it, with the amount applied (AppliedAmount) and the
    allocation's own date. A credit applied twice shows twice, one entry per allocation."""
    shown = []
    for entry in allocations_of(document):
        credit_day = parse_date(entry.get("CreditNoteDate"))
        element: dict[str, Any] = {
            "CreditNoteID": entry["CreditNoteID"],
            "CreditNoteNumber": entry.get("CreditNoteNumber") or "",
            "Type": entry.get("CreditNoteType") or "",
            "AppliedAmount": entry["Amount"],
            "Total": entry.get("CreditNoteTotal", entry["Amount"]),
            "LineItems": [],
            "HasErrors": False,
        }
        if credit_day is not None:
            element["Date"] = ms_date(credit_day)
            element["DateString"] = date_string(credit_day)
        shown.append(element)
    return shown


# -- the endpoint -------------------------------------------------------------------------------------------
class _Undo(Exception):
    """Raised inside the write transaction to undo it and answer (status, body) instead."""

    def __init__(self, status: int, body: Any):
        self.status, self.body = status, body


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class CreditAllocations:
    """The allocation routes of one sandbox: `ledger(tenant_id)` gives the organisation's rules (lock dates),
    `summary(kind, document, tenant_id)` a document as an allocation names it (no lines)."""

    def __init__(self, store: SandboxStore, ledger: Callable[[str], Ledger], summary: Summary):
        self.store = store
        self.ledger = ledger
        self.summary = summary

    def create(self, tenant_id: str, credit_note_id: str, query: dict[str, str], payload: Any) -> tuple[int, Any]:
        """PUT /CreditNotes/{id}/Allocations. Without summarizeErrors=false one refused allocation refuses the
        request (400, nothing saved); with it, each element answers for itself (StatusAttributeString)."""
        if not (isinstance(payload, dict) and isinstance(payload.get("Allocations"), list) and payload["Allocations"]):
            return 400, validation_exception([{"ValidationErrors": [
                {"Message": 'The request body must be {"Allocations": [...]}, a list of Allocation objects.'}]}])
        if not is_uuid(credit_note_id):
            return 400, post_data_invalid(f"'{credit_note_id}' is not a valid CreditNoteID.")
        summarize = query.get("summarizeerrors", "true").lower() != "false"
        ledger = self.ledger(tenant_id)
        try:
            with self.store.transaction():
                if self.store.document(CREDIT_NOTES.collection, tenant_id, credit_note_id) is None:
                    raise _Undo(404, not_found())
                results = [self._allocate_one(tenant_id, credit_note_id, element, ledger, not summarize)
                           for element in payload["Allocations"]]
                if summarize and any(r.get("ValidationErrors") for r in results):
                    raise _Undo(400, validation_exception([r for r in results if r.get("ValidationErrors")]))
        except _Undo as undo:
            return undo.status, undo.body
        return 200, envelope("Allocations", results)

    def _allocate_one(
        self, tenant_id: str, credit_note_id: str, element: Any, ledger: Ledger, status_attribute: bool
    ) -> dict[str, Any]:
        credit = self.store.document(CREDIT_NOTES.collection, tenant_id, credit_note_id)
        assert credit is not None
        if not isinstance(element, dict):
            return self._refused(tenant_id, {}, credit, None, ["Each allocation must be a JSON object."])
        errors: list[str] = []
        unknown = sorted(set(element) - ALLOCATION_FIELDS)
        if unknown:
            errors.append(f"{', '.join(unknown)} is not a field of an Allocation.")
        if any(element.get(name) not in (None, {}) for name in ("Prepayment", "Overpayment")):
            errors.append("A credit note is allocated to an Invoice, not to a prepayment or an overpayment.")
        if element.get("AllocationID") not in (None, ""):
            errors.append("AllocationID cannot be given for a new allocation: Xero assigns it.")
        named_credit = element.get("CreditNote")
        if isinstance(named_credit, dict) and _text(named_credit.get("CreditNoteID")).lower() not in ("", credit_note_id):
            errors.append("The CreditNoteID in the allocation does not match the one in the URL.")

        invoice = None
        spec = element.get("Invoice")
        invoice_id = _text(spec.get("InvoiceID")).lower() if isinstance(spec, dict) else ""
        if not invoice_id:
            # stricter reading: by id only (bill numbers need not be unique, xero-facts.md)
            errors.append("The Invoice must be named by its InvoiceID.")
        elif not is_uuid(invoice_id):
            errors.append(f"'{invoice_id}' is not a valid InvoiceID.")
        else:
            invoice = self.store.document(INVOICES.collection, tenant_id, invoice_id)
            if invoice is None:
                errors.append("Invoice could not be found")  # Xero's words (as for payments)

        raw_amount = element.get("Amount")
        amount = parse_amount(raw_amount)
        if raw_amount is None:
            errors.append("An allocation Amount must be specified.")
        elif amount is None:
            errors.append("The allocation Amount must be a number.")
        elif amount <= 0:
            errors.append("The allocation Amount must be greater than zero.")
        elif amount != amount.quantize(CENT):
            errors.append("The allocation Amount can have at most 2 decimal places.")

        raw_date = element.get("Date")
        day = parse_date(raw_date)
        if raw_date in (None, ""):
            errors.append("An allocation Date must be specified.")  # the spec's Allocation requires it
        elif day is None:
            errors.append(f"'{raw_date}' is not a valid date.")
        elif ledger.locked(day):
            errors.append(f"The allocation date cannot be on or before {ledger.lock_phrase()}; "
                          "an adviser must change the lock date first.")

        credit_remaining = amount_due(credit)
        if credit["Status"] == "PAID":
            errors.append("This credit note has no remaining credit to allocate.")
        elif credit["Status"] != "AUTHORISED":
            errors.append("Credit notes can only be allocated once they are AUTHORISED.")
        if invoice is not None:
            wanted_type = SALES_PAIRS.get(credit["Type"])
            if invoice["Type"] != wanted_type:
                noun = "sales" if credit["Type"] == "ACCRECCREDIT" else "purchase"
                errors.append(f"A {noun} credit note ({credit['Type']}) can only be allocated to an invoice of "
                              f"Type {wanted_type}, not {invoice['Type']}.")
            if invoice["Status"] == "PAID":
                errors.append("The invoice has been paid in full: there is nothing due to allocate the credit to.")
            elif invoice["Status"] != "AUTHORISED":
                errors.append("Credit notes can only be allocated to AUTHORISED invoices.")
            if invoice.get("ContactID") != credit.get("ContactID"):
                errors.append("The credit note and the invoice must be for the same contact.")
            if invoice.get("CurrencyCode") != credit.get("CurrencyCode"):
                errors.append("The credit note and the invoice must be in the same currency.")
            if day is not None:
                later = max(parse_date(credit["Date"]), parse_date(invoice["Date"]))
                if day < later:  # stricter reading (module docstring)
                    errors.append(f"The allocation date cannot be before the credit note's or the invoice's date "
                                  f"({later.isoformat()}).")
            if amount is not None and amount > 0 and credit["Status"] == "AUTHORISED" and invoice["Status"] == "AUTHORISED":
                if amount > credit_remaining:
                    errors.append(f"The amount allocated ({amount}) exceeds the remaining credit ({credit_remaining}) "
                                  "on the credit note.")
                due = amount_due(invoice)
                if amount > due:
                    errors.append(f"The amount allocated ({amount}) exceeds the amount due ({due}) on the invoice.")
        if errors:
            echo = {"Amount": amount if amount is not None else ZERO}
            if day is not None:
                echo["Date"] = ms_date(day)
            return self._refused(tenant_id, echo, credit, invoice if invoice is not None else (
                {"InvoiceID": invoice_id} if is_uuid(invoice_id) else {}), list(dict.fromkeys(errors)))

        assert invoice is not None and amount is not None and day is not None
        stamp = now_ms()
        entry = {
            "AllocationID": str(uuid.uuid4()),
            "CreditNoteID": credit["CreditNoteID"],
            "CreditNoteNumber": credit.get("CreditNoteNumber"),
            "CreditNoteType": credit["Type"],
            "CreditNoteDate": credit["Date"],
            "CreditNoteTotal": credit["Total"],
            "InvoiceID": invoice["InvoiceID"],
            "InvoiceNumber": invoice.get("InvoiceNumber"),
            "Amount": amount,
            "Date": day.isoformat(),
        }
        self.store.save_allocation(tenant_id, {**entry, "Status": "ACTIVE", "CreatedDateUTC": stamp, "UpdatedDateUTC": stamp})
        credit = settle({**credit, "_allocations": allocations_of(credit) + [entry], "UpdatedDateUTC": stamp})
        invoice = settle({**invoice, "_allocations": allocations_of(invoice) + [entry], "UpdatedDateUTC": stamp})
        self.store.save_document(CREDIT_NOTES.collection, tenant_id, credit)
        self.store.save_document(INVOICES.collection, tenant_id, invoice)
        shown = self._element(tenant_id, entry, credit, invoice)
        if status_attribute:
            shown["StatusAttributeString"] = "OK"
        return shown

    def _element(self, tenant_id: str, entry: dict[str, Any], credit: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
        return {
            "AllocationID": entry["AllocationID"],
            "Amount": entry["Amount"],
            "Date": ms_date(parse_date(entry["Date"])),
            "Invoice": self.summary(INVOICES, invoice, tenant_id),
            "CreditNote": self.summary(CREDIT_NOTES, credit, tenant_id),
            "IsDeleted": False,
            "ValidationErrors": [],
        }

    def _refused(self, tenant_id: str, echo: dict[str, Any], credit: dict[str, Any], invoice: dict[str, Any] | None,
                 errors: list[str]) -> dict[str, Any]:
        element: dict[str, Any] = {"Amount": echo.get("Amount", ZERO), "Date": echo.get("Date", "")}
        element["Invoice"] = self.summary(INVOICES, invoice, tenant_id) if invoice and "Type" in invoice else (invoice or {})
        element["CreditNote"] = self.summary(CREDIT_NOTES, credit, tenant_id)
        element["StatusAttributeString"] = "ERROR"
        element["ValidationErrors"] = [{"Message": message} for message in errors]
        return element

    def delete(self, tenant_id: str, credit_note_id: str, allocation_id: str) -> tuple[int, Any]:
        """DELETE /CreditNotes/{id}/Allocations/{AllocationID}: the allocation is removed from both documents
        (each AUTHORISED again if it was PAID); the answer is the Allocation with IsDeleted true (the spec's
        deleteCreditNoteAllocations answers one Allocation, not a list)."""
        try:
            with self.store.transaction():
                credit = self.store.document(CREDIT_NOTES.collection, tenant_id, credit_note_id)
                entry = next((a for a in allocations_of(credit or {}) if a["AllocationID"] == allocation_id), None)
                if credit is None or entry is None:
                    raise _Undo(404, not_found())
                invoice = self.store.document(INVOICES.collection, tenant_id, entry["InvoiceID"])
                ledger = self.ledger(tenant_id)
                if ledger.locked(parse_date(entry["Date"])):
                    raise _Undo(400, validation_exception([{
                        "CreditNoteID": credit_note_id, "InvoiceID": entry["InvoiceID"],
                        "ValidationErrors": [{"Message": (
                            f"The allocation is dated on or before {ledger.lock_phrase()} and cannot be deleted; "
                            "an adviser must change the lock date first.")}],
                    }]))
                stamp = now_ms()
                self.store.save_allocation(tenant_id, {**entry, "Status": "DELETED", "UpdatedDateUTC": stamp})
                kept = [a for a in allocations_of(credit) if a["AllocationID"] != allocation_id]
                credit = settle({**credit, "_allocations": kept, "UpdatedDateUTC": stamp})
                self.store.save_document(CREDIT_NOTES.collection, tenant_id, credit)
                if invoice is not None:
                    kept = [a for a in allocations_of(invoice) if a["AllocationID"] != allocation_id]
                    invoice = settle({**invoice, "_allocations": kept, "UpdatedDateUTC": stamp})
                    self.store.save_document(INVOICES.collection, tenant_id, invoice)
        except _Undo as undo:
            return undo.status, undo.body
        return 200, {
            "AllocationID": allocation_id,
            "Amount": entry["Amount"],
            "Date": ms_date(parse_date(entry["Date"])),
            "Invoice": {"InvoiceID": entry["InvoiceID"], "InvoiceNumber": entry.get("InvoiceNumber") or ""},
            "CreditNote": {"CreditNoteID": credit_note_id, "CreditNoteNumber": entry.get("CreditNoteNumber") or ""},
            "IsDeleted": True,
        }

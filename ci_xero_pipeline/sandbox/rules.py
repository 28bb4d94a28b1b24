"""Xero's rules for invoices and credit notes: what is checked, what is computed, in Xero's words.

`check_document` turns one posted element into the document Xero would store (lines, tax, totals)
and lists what is wrong with it. It knows the organisation through a `Ledger` snapshot and does not
touch the database: contacts and number uniqueness are checked by the caller. Money is Decimal
throughout; work is linear in the number of lines.

A line's own TaxAmount replaces the computed tax only when |given − computed| ≤ 0.01, the computed
figure being Xero's per-line tax rounded to 2 decimals; on a zero-rate (or NoTax) line it must be 0.
Source: xero-facts.md ("TaxAmount overrides": Xero documents that a line's TaxAmount "can be
overridden", not by how much). Xero's real tolerance is unknown, so the sandbox takes the strictest
reading that still allows a one-cent rounding difference, the only override the pipeline relies on.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
QUANTITY_PLACES = Decimal("0.0001")
TAX_TOLERANCE = Decimal("0.01")  # see the module docstring
CREATE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
LINE_AMOUNT_TYPES = {"exclusive": "Exclusive", "inclusive": "Inclusive", "notax": "NoTax"}
NUMBER_LIMIT = 255
DESCRIPTION_LIMIT = 4000
TRACKING_OPTION_LIMIT = 50


@dataclass(frozen=True)
class AccountInfo:
    code: str
    account_id: str
    name: str
    type: str
    account_class: str
    tax_type: str
    status: str
    system_account: str
    enable_payments: bool = False  # Xero's EnablePaymentsToAccount

    @property
    def takes_payments(self) -> bool:
        """A payment may go to a BANK account or one with payments enabled (xero-facts.md, Payments)."""
        return self.status == "ACTIVE" and (self.type == "BANK" or self.enable_payments)


@dataclass(frozen=True)
class TaxRateInfo:
    tax_type: str
    rate: Decimal
    status: str
    applies_to: frozenset[str]


@dataclass
class TrackingCategoryInfo:
    category_id: str
    name: str
    status: str
    options_by_name: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # casefold -> (id, name, status)
    options_by_id: dict[str, tuple[str, str, str]] = field(default_factory=dict)


@dataclass
class Ledger:
    """What validation needs to know about one organisation."""

    base_currency: str
    period_lock_date: date | None
    accounts: dict[str, AccountInfo]
    tax_rates: dict[str, TaxRateInfo]
    categories_by_name: dict[str, TrackingCategoryInfo]
    categories_by_id: dict[str, TrackingCategoryInfo]
    end_of_year_lock_date: date | None = None

    def lock(self) -> tuple[date, str] | None:
        """The lock date that applies, and its name for messages. Xero's PeriodLockDate stops everyone
        but advisers and EndOfYearLockDate stops everyone (the spec's Organisation, "See lock dates");
        whether an API connection counts as an adviser is not documented, so both apply and the later
        one wins (the stricter reading)."""
        dates = [(day, name) for day, name in ((self.period_lock_date, "period lock date"),
                                               (self.end_of_year_lock_date, "end of year lock date")) if day]
        return max(dates, key=lambda pair: pair[0]) if dates else None

    def locked(self, day: date | None) -> bool:
        """True when a transaction dated `day` is on or before the lock date (xero-facts.md, Status)."""
        lock = self.lock()
        return day is not None and lock is not None and day <= lock[0]

    def lock_phrase(self) -> str:
        """'the period lock date (30 Sep 2026)', for messages."""
        lock = self.lock()
        assert lock is not None
        return f"the {lock[1]} ({lock[0].strftime('%d %b %Y')})"

    def account_by_id(self, account_id: str) -> AccountInfo | None:
        wanted = account_id.lower()
        return next((account for account in self.accounts.values() if account.account_id == wanted), None)


@dataclass(frozen=True)
class DocumentKind:
    collection: str
    id_field: str
    number_field: str
    types: tuple[str, ...]
    noun: str  # as Xero's messages name it

    def is_sales(self, document_type: str) -> bool:
        return document_type in ("ACCREC", "ACCRECCREDIT")


INVOICES = DocumentKind("Invoices", "InvoiceID", "InvoiceNumber", ("ACCREC", "ACCPAY"), "Invoice")
CREDIT_NOTES = DocumentKind("CreditNotes", "CreditNoteID", "CreditNoteNumber", ("ACCRECCREDIT", "ACCPAYCREDIT"), "Credit note")
KINDS = {kind.collection: kind for kind in (INVOICES, CREDIT_NOTES)}


@dataclass
class Checked:
    document: dict[str, Any]  # Xero's stored form (dates ISO, amounts Decimal) without id and contact
    errors: list[str]


def parse_amount(value: Any) -> Decimal | None:
    """A JSON number (or numeric string) as Decimal; None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


def parse_date(value: Any) -> date | None:
    """'2026-10-01', '2026-10-01T00:00:00' or '/Date(ms+0000)/' as a calendar date."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    match = _MS_DATE.fullmatch(text)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc).date()
    try:
        return date.fromisoformat(text[:10]) if len(text) == 10 else datetime.fromisoformat(text).date()
    except ValueError:
        return None


def round_money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def tax_on(amount: Decimal, rate: Decimal, line_amount_types: str) -> Decimal:
    if line_amount_types == "NoTax" or rate == 0:
        return Decimal("0.00")
    if line_amount_types == "Inclusive":
        return round_money(amount * rate / (100 + rate))
    return round_money(amount * rate / 100)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def _check_tracking(entries: Any, ledger: Ledger, errors: list[str]) -> list[dict[str, str]]:
    if entries in (None, []):
        return []
    if not isinstance(entries, list):
        errors.append("Tracking must be a list of tracking categories and options.")
        return []
    if len(entries) > 2:
        errors.append("A line item can have a maximum of 2 tracking categories.")
        return []
    tracking: list[dict[str, str]] = []
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            errors.append("Each tracking entry must name a tracking category and option.")
            continue
        category = None
        category_id, category_name = _text(entry.get("TrackingCategoryID")), _text(entry.get("Name"))
        if category_id:
            category = ledger.categories_by_id.get(category_id.lower())
        elif category_name:
            category = ledger.categories_by_name.get(category_name.casefold())
        shown = category_name or category_id
        if category is None or category.status != "ACTIVE":
            errors.append(f"The tracking category '{shown}' does not exist or has been archived.")
            continue
        if category.category_id in seen:
            errors.append(f"A line item can only have one option of the tracking category '{category.name}'.")
            continue
        seen.add(category.category_id)
        option_id, option_name = _text(entry.get("TrackingOptionID")), _text(entry.get("Option"))
        option = None
        if option_id:
            option = category.options_by_id.get(option_id.lower())
        elif option_name:
            option = category.options_by_name.get(option_name.casefold())
        if option is None or option[2] != "ACTIVE":
            errors.append(
                f"The tracking option '{option_name or option_id}' does not exist or has been archived "
                f"in the tracking category '{category.name}'."
            )
            continue
        tracking.append(
            {"TrackingCategoryID": category.category_id, "TrackingOptionID": option[0], "Name": category.name, "Option": option[1]}
        )
    return tracking


check_tracking = _check_tracking  # for the other documents with tracked lines (journals.py)


def _check_line(
    number: int,
    line: Any,
    document_type: str,
    line_amount_types: str,
    status: str,
    kind: DocumentKind,
    ledger: Ledger,
    unit_places: Decimal,
    errors: list[str],
) -> dict[str, Any] | None:
    if not isinstance(line, dict):
        errors.append(f"Line item {number} must be an object.")
        return None
    description = line.get("Description")
    if not _text(description) and not _text(line.get("ItemCode")):
        errors.append("The description field is mandatory for each line item.")
    elif isinstance(description, str) and len(description) > DESCRIPTION_LIMIT:
        errors.append(f"The description of line item {number} must be {DESCRIPTION_LIMIT} characters or fewer.")

    def amount(name: str, default: Decimal | None = None) -> Decimal | None:
        raw = line.get(name)
        if raw is None:
            return default
        value = parse_amount(raw)
        if value is None:
            errors.append(f"{name} on line item {number} must be a number.")
        return value

    quantity = amount("Quantity", Decimal(1))
    unit_amount = amount("UnitAmount")
    given_line_amount = amount("LineAmount")
    discount_amount = amount("DiscountAmount")
    discount_rate = amount("DiscountRate")
    given_tax = amount("TaxAmount")
    if quantity is None:
        quantity = Decimal(1)
    quantity = quantity.quantize(QUANTITY_PLACES, rounding=ROUND_HALF_UP)

    if discount_amount is not None and discount_rate is not None:
        errors.append("Only one of DiscountRate or DiscountAmount can be given on a line item.")
    if kind is CREDIT_NOTES and ((discount_amount or 0) != 0 or (discount_rate or 0) != 0):
        errors.append("Discounts are not supported on credit note line items.")

    if unit_amount is None:
        # Xero derives the unit price from the line amount when only that is given
        if given_line_amount is not None and quantity != 0:
            unit_amount = given_line_amount / quantity
        else:
            unit_amount = Decimal(0)
    unit_amount = unit_amount.quantize(unit_places, rounding=ROUND_HALF_UP)
    gross = quantity * unit_amount
    discount = Decimal(0)
    if discount_amount is not None:
        discount = round_money(discount_amount)
    elif discount_rate is not None:
        discount = round_money(gross * discount_rate / 100)
    expected = round_money(gross - discount)
    line_amount = expected
    if given_line_amount is not None and line.get("UnitAmount") is not None:
        if round_money(given_line_amount) != expected or given_line_amount != given_line_amount.quantize(CENT):
            errors.append(
                f"The line total {given_line_amount} does not match the expected line total {expected} "
                f"(Quantity × UnitAmount − discount) on line item {number}."
            )
    elif given_line_amount is not None:
        line_amount = round_money(given_line_amount)

    account = None
    account_code = _text(line.get("AccountCode"))
    if account_code:
        account = ledger.accounts.get(account_code)
        if account is None or account.type == "BANK" or account.system_account:
            errors.append(f"Account code '{account_code}' is not a valid code for this document.")
            account = None
        elif account.status != "ACTIVE":
            errors.append(f"Account code '{account_code}' has been archived, or is not a valid code for this document.")
            account = None
    elif status != "DRAFT":
        errors.append(f"An account code must be specified on line item {number} of an approved document.")

    sales = kind.is_sales(document_type)
    tax_type = _text(line.get("TaxType"))
    if line_amount_types == "NoTax":
        tax_type = "NONE"
    elif not tax_type:
        tax_type = account.tax_type if account else ("OUTPUT2" if sales else "INPUT2")
    rate = ledger.tax_rates.get(tax_type)
    side = "REVENUE" if sales else "EXPENSE"
    if rate is None or rate.status != "ACTIVE" or side not in rate.applies_to:
        errors.append(f"The TaxType code '{tax_type}' does not exist or cannot be used with this type of transaction.")
        rate = None
    elif account is not None and account.account_class not in rate.applies_to:
        errors.append(f"The TaxType code '{tax_type}' cannot be used with account code '{account.code}'.")

    tax = Decimal("0.00")
    if rate is not None:
        tax = tax_on(line_amount, rate.rate, line_amount_types)
        if given_tax is not None:
            # a zero-rate or NoTax line carries no tax at all (xero-facts: zero-rated); others ±0.01
            allowed = Decimal("0.00") if rate.rate == 0 or line_amount_types == "NoTax" else TAX_TOLERANCE
            if given_tax != given_tax.quantize(CENT) or abs(given_tax - tax) > allowed:
                errors.append(
                    f"The TaxAmount {given_tax} on line item {number} differs from the calculated tax {tax} "
                    f"by more than {allowed}."
                )
            else:
                tax = given_tax.quantize(CENT)

    tracking = _check_tracking(line.get("Tracking"), ledger, errors)
    checked: dict[str, Any] = {
        "LineItemID": str(line["LineItemID"]) if is_uuid(line.get("LineItemID")) else str(uuid.uuid4()),
        "Description": description if isinstance(description, str) else "",
        "Quantity": quantity,
        "UnitAmount": unit_amount,
        "TaxType": tax_type,
        "TaxAmount": tax,
        "LineAmount": line_amount,
        "Tracking": tracking,
        "_discount": discount,
    }
    if account is not None:
        checked["AccountCode"] = account.code
        checked["AccountID"] = account.account_id
    elif account_code:
        checked["AccountCode"] = account_code
    if _text(line.get("ItemCode")):
        checked["ItemCode"] = _text(line.get("ItemCode"))
    if discount_rate is not None:
        checked["DiscountRate"] = discount_rate
    elif discount:
        checked["DiscountAmount"] = discount
    return checked


def check_document(
    kind: DocumentKind,
    element: Any,
    ledger: Ledger,
    unitdp: int = 2,
    allowed_statuses: tuple[str, ...] = CREATE_STATUSES,
) -> Checked:
    """Validate one posted invoice or credit note and compute what Xero would store."""
    errors: list[str] = []
    if not isinstance(element, dict):
        return Checked({}, [f"Each {kind.noun.lower()} must be a JSON object."])

    document_type = _text(element.get("Type")).upper()
    if not document_type:
        errors.append(f"{kind.noun} Type must be specified.")
    elif document_type not in kind.types:
        errors.append(f"'{element.get('Type')}' is not a valid {kind.noun.lower()} Type; use {' or '.join(kind.types)}.")

    status = _text(element.get("Status")).upper() or "DRAFT"
    if status not in allowed_statuses:
        errors.append(f"{kind.noun}s can only be created with a status of DRAFT, SUBMITTED or AUTHORISED, not {status}.")

    line_amount_types = LINE_AMOUNT_TYPES.get(_text(element.get("LineAmountTypes")).casefold() or "exclusive")
    if line_amount_types is None:
        errors.append(f"'{element.get('LineAmountTypes')}' is not a valid LineAmountTypes; use Exclusive, Inclusive or NoTax.")
        line_amount_types = "Exclusive"

    document_date = parse_date(element.get("Date"))
    if element.get("Date") in (None, ""):
        errors.append("Date is required.")
    elif document_date is None:
        errors.append(f"'{element.get('Date')}' is not a valid date.")
    due_date = parse_date(element.get("DueDate"))
    if element.get("DueDate") not in (None, "") and due_date is None:
        errors.append(f"'{element.get('DueDate')}' is not a valid date.")
    if status == "AUTHORISED" and document_type == "ACCREC" and due_date is None:
        errors.append("Due Date is required.")

    currency = _text(element.get("CurrencyCode")).upper() or ledger.base_currency
    if currency != ledger.base_currency:
        errors.append(f"Organisation is not subscribed to currency {currency}")

    number = element.get(kind.number_field)
    if number is not None and not isinstance(number, str):
        errors.append(f"{kind.number_field} must be text.")
        number = str(number)
    if number and len(number) > NUMBER_LIMIT:
        errors.append(f"{kind.number_field} must be {NUMBER_LIMIT} characters or fewer.")
    reference = element.get("Reference")
    if reference is not None and not isinstance(reference, str):
        reference = str(reference)
    if reference and len(reference) > NUMBER_LIMIT:
        errors.append(f"Reference must be {NUMBER_LIMIT} characters or fewer.")

    # xero-facts.md: lock dates reject AUTHORISED documents dated on or before them; drafts (DRAFT,
    # SUBMITTED: not yet in the ledger) are still accepted
    if status == "AUTHORISED" and ledger.locked(document_date):
        errors.append(
            f"The document date cannot be on or before {ledger.lock_phrase()}; an adviser must change the lock date first."
        )

    raw_lines = element.get("LineItems")
    if raw_lines is None:
        raw_lines = []
    if not isinstance(raw_lines, list):
        errors.append("LineItems must be a list.")
        raw_lines = []
    unit_places = Decimal("0.0001") if unitdp == 4 else CENT
    lines = []
    for index, raw_line in enumerate(raw_lines, start=1):
        line = _check_line(index, raw_line, document_type, line_amount_types, status, kind, ledger, unit_places, errors)
        if line is not None:
            lines.append(line)

    line_total = sum((line["LineAmount"] for line in lines), Decimal("0.00"))
    total_tax = sum((line["TaxAmount"] for line in lines), Decimal("0.00"))
    if line_amount_types == "Inclusive":
        total = line_total
        sub_total = total - total_tax
    else:
        sub_total = line_total
        total = sub_total + total_tax
    if total < 0:
        errors.append(f"{kind.noun} total cannot be negative.")
    total_discount = sum((line.pop("_discount") for line in lines), Decimal("0.00"))

    document: dict[str, Any] = {
        "Type": document_type,
        kind.number_field: number or None,
        "Reference": reference or "",
        "Date": document_date.isoformat() if document_date else None,
        "DueDate": due_date.isoformat() if due_date else None,
        "Status": status,
        "LineAmountTypes": line_amount_types,
        "CurrencyCode": currency,
        "LineItems": lines,
        "SubTotal": sub_total,
        "TotalTax": total_tax,
        "Total": total,
        "TotalDiscount": total_discount,
    }
    if _text(element.get("Url")):
        document["Url"] = _text(element.get("Url"))
    # de-duplicate while keeping order: one message per rule, as Xero reports
    return Checked(document, list(dict.fromkeys(errors)))


def as_posted(document: dict[str, Any], kind: DocumentKind) -> dict[str, Any]:
    """A stored document as a client would post it, for merging an update over it."""
    posted = {key: value for key, value in document.items() if key not in ("SubTotal", "TotalTax", "Total", "TotalDiscount")}
    posted["Contact"] = {"ContactID": document.get("ContactID")}
    posted["LineItems"] = [dict(line) for line in document.get("LineItems", [])]
    return posted


def merge_update(existing: dict[str, Any], changes: dict[str, Any], kind: DocumentKind) -> dict[str, Any]:
    """The element an update describes: the stored document with the posted fields laid over it.
    Lines sent with a known LineItemID update that line; lines sent without one are new; lines not
    sent are removed (Xero's rule). Computed amounts are recomputed unless sent."""
    merged = as_posted(existing, kind)
    recompute_tax = "LineAmountTypes" in changes and changes["LineAmountTypes"] != existing.get("LineAmountTypes")
    for key, value in changes.items():
        if key in ("LineItems", kind.id_field):
            continue
        merged[key] = value
    old_lines = {line["LineItemID"]: line for line in merged["LineItems"]}
    if isinstance(changes.get("LineItems"), list):
        lines = []
        for line in changes["LineItems"]:
            if isinstance(line, dict) and str(line.get("LineItemID", "")) in old_lines:
                base = {k: v for k, v in old_lines[str(line["LineItemID"])].items() if k not in ("LineAmount", "TaxAmount")}
                base.update(line)
                lines.append(base)
            else:
                lines.append(line)
        merged["LineItems"] = lines
    elif recompute_tax:
        merged["LineItems"] = [{k: v for k, v in line.items() if k != "TaxAmount"} for line in merged["LineItems"]]
    return merged

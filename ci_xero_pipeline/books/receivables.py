"""Account customers (Accounts Receivable, processes.md §2 and §5): the site's rules, which CI documents
can be posted, the Xero invoices and credit notes with the payments of their other tenders, the
contacts they need, the credit → invoice allocations wanted, and the blocking check of the books.
Pure: frames in, plain data out.

Which CI documents: source='ACCOUNT' documents, and POS documents paid ON ACCOUNT (a tender of type
ACCOUNT), every status. Documents of other sources the read holds are excluded (their own process).

The documents (one per FINAL CI document, CI's number as Xero's, with the site's prefix):
- an INVOICE is an ACCREC invoice, a CREDIT an ACCRECCREDIT credit note (Xero's amounts positive: the
  CI credit's negative lines become positive amounts); Date = business_date, DueDate = date + due_days;
  LineAmountTypes Inclusive (CI amounts include GST); the contact is {"ContactNumber": customer_code,
  "Name": contact_name_format(...)} (Xero finds contacts by ContactNumber, never by name);
- one Xero line per CI line, built as E-Retailer's Detail mode builds them (books.eretailer): the stock
  description (over 4,000 characters cut, with a notice), Quantity exact (3 places), UnitAmount exact
  (4 places: the requests carry unitdp=4), the discount as DiscountAmount on an invoice (Xero's
  LineAmount = round(Quantity × UnitAmount − DiscountAmount, 2) = CI's line_total_incl; a credit note
  takes no discount, so a discounted credit line is priced so that Quantity × UnitAmount is CI's
  amount), AccountCode from the sales mapping (gift vouchers sold → the voucher liability, tax type
  NONE), TaxType from the GST mapping, TaxAmount exactly what Xero computes for the line, and GST
  adjustment pairs carrying any difference to CI's GST; the branch's tracking option on every line.
- Tenders other than ACCOUNT become payments of the document into their accounts (the shared
  mapping.tender_accounts; Reference `<document number>/<tender>`) when pay_tenders and the status is
  AUTHORISED; the ACCOUNT tender stays due: that is the receivable.
- A FINAL credit with an original_invoice_no wants an allocation to the original's Xero invoice
  (invoice_prefix + original_invoice_no), even if the original is on another day or not in the read
  (allocations_wanted); the posting step allocates min(credit remaining, invoice due) or reports why not
  (an original not in Xero yet waits: the credit's day runs again once it is, sensors.py).

Quarantined, per document, with the reason naming it (check): everything validate_sales_documents finds
(the CI contract, header ≠ Σ lines, unmapped analysis or GST code, GST off CI's rate, excess decimals,
repeated headers), and missing_customer_code, customer_code_too_long, number_too_long, voucher_gst (a
gift voucher sold with GST), and with pay_tenders: unmapped_tender_type, duplicate_tender,
tenders_not_document (Σ tenders ≠ total: CI disagrees with itself), tender_against_document (a tender
Xero cannot take as a payment of this document: a refund tender on an invoice, or one paid in on a
credit), account_tender_against_document (the other tenders pay more than the total). Reported only
(notices, the credit still posts, no allocation wanted): a credit whose original is in the read but is
not an account-customer invoice of the same customer. Excluded (not posted, counted): HELD, and VOID
(evidence of withdrawal: a posted document CI voids is taken back).
"""

from __future__ import annotations

import string
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from ..ci.extract import SalesDocuments, empty_orphan_tenders
from ..money import cents_to_decimal, decimal_to_cents
from .eretailer import DESCRIPTION_LIMIT, DOCUMENT_COLUMNS, NAME_LIMIT, Notices, build_eretailer_documents_with_notices
from .rules import NZ_GST_RATES, NZ_TAX_TYPES, EretailerRules
from .schemas import combined_notices, empty_notices, inclusive_tax_cents, notices_frame, rate_ratio
from .takings_validation import EXCLUDED_DOCUMENT_COLUMNS
from .tenders import ACCOUNT_TENDER, TenderMapping, empty_payments, payment_key, payment_payload, payments_frame
from .validation import QUARANTINE_COLUMNS, UNMAPPED_COLUMNS, ValidatedSales, validate_sales_documents

PROCESS = "receivables"
ACCOUNT_SOURCE, POS = "ACCOUNT", "POS"
CONTACT_NUMBER_LIMIT = 50  # Xero's ContactNumber
CONTACT_FIELDS = {"customer_name", "customer_code"}

# each postable credit that names its original (business_date: the credit's day); wanted: an allocation
# is to be made (else the reason why not)
CREDIT_LINK_COLUMNS = ["business_date", "ci_credit_no", "ci_invoice_no", "customer_code", "wanted", "reason"]
# the allocations the posting step makes (the Process.allocations frame)
ALLOCATION_COLUMNS = [
    "allocation_key", "business_date", "credit_document_key", "credit_number", "invoice_number", "ci_credit_no",
    "ci_invoice_no", "invoice_document_key",
]
# the contacts the documents need (the Process.contacts frame), one row per ContactNumber
CONTACT_COLUMNS = ["contact_number", "name", "email", "role", "source_keys", "business_date"]
# per document: CI's figures beside the document's and how much of it stays due
RECEIVABLES_TOTAL_COLUMNS = [
    "business_date", "document_key", "invoice_no", "number", "endpoint", "customer_code", "ci_total_cents",
    "ci_gst_cents", "document_total_cents", "document_tax_cents", "payments_cents", "on_account_cents",
]
CHECK_COLUMNS = ["business_date", "invoice_no", "document_key", "check", "message"]
# per credit note Xero holds: its total, allocations, refunds and remaining credit, and why any remains
CREDIT_BALANCE_COLUMNS = [
    "business_date", "number", "ci_credit_no", "total_cents", "allocated_cents", "refunded_cents", "remaining_cents",
    "allocation_outcome", "why_unallocated",
]


def _empty_links() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in CREDIT_LINK_COLUMNS})
    return frame.astype({"wanted": bool})


def _empty_excluded() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in EXCLUDED_DOCUMENT_COLUMNS})
    return frame.astype({"total_incl_cents": "int64", "total_gst_cents": "int64"})


def _contact_format(value: str) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as error:
        raise ValueError(f"contact_name_format '{value}' is not a format: {error}") from None
    unknown = sorted(names - CONTACT_FIELDS)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {unknown} in contact_name_format '{value}'; use {{customer_name}} "
                         "and {customer_code}")
    if not names:
        raise ValueError(f"contact_name_format '{value}' would give every customer the same name")
    return value


# -- the site's rules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceivablesRules:
    """The site's rules for account customers, as plain data (receivables_rules fills them from the
    settings). The sales mapping, GST, tracking and tender mapping are the shared sections'."""

    sales_accounts: Mapping[str, str] = field(default_factory=dict)
    tax_types: Mapping[str, str] = field(default_factory=lambda: dict(NZ_TAX_TYPES))
    gst_rates: Mapping[str, Decimal] = field(default_factory=lambda: dict(NZ_GST_RATES))
    gst_tolerance_cents: int = 2
    tracking_category: str = "CI Branches"
    tracking_options: Mapping[str, str] = field(default_factory=dict)
    currency_code: str = "NZD"
    tender_accounts: Mapping[str, str] = field(default_factory=dict)
    voucher_liability_account: str | None = None
    voucher_analysis_codes: tuple[str, ...] = ()
    status: Literal["DRAFT", "AUTHORISED"] = "AUTHORISED"
    invoice_prefix: str = ""
    credit_note_prefix: str = ""
    due_days: int = 20
    contact_name_format: str = "{customer_name}"
    pay_tenders: bool = True

    def __post_init__(self) -> None:
        if self.status == "DRAFT" and self.pay_tenders:
            raise ValueError("receivables in DRAFT cannot have their tenders paid (Xero pays only AUTHORISED documents): "
                             "set pay_tenders false, or status AUTHORISED")
        if self.due_days < 0:
            raise ValueError(f"due_days {self.due_days}: a document cannot fall due before its date")
        if self.voucher_analysis_codes and not self.voucher_liability_account:
            raise ValueError("voucher_analysis_codes are set but voucher_liability_account is not")
        sold_as_sales = sorted(set(self.voucher_analysis_codes) & set(self.sales_accounts))
        if sold_as_sales:
            raise ValueError(f"analysis code(s) {sold_as_sales} are gift vouchers and sales at once")
        _contact_format(self.contact_name_format)

    @property
    def exempt_tax_type(self) -> str:
        return self.tax_types.get("E", "NONE")

    def tender_mapping(self) -> TenderMapping:
        return TenderMapping(accounts=dict(self.tender_accounts), voucher_liability_account=self.voucher_liability_account)

    def document_rules(self) -> EretailerRules:
        """The rules a CI document is judged and built by: E-Retailer's Detail mode, with the gift voucher
        codes mapped to the liability account (their lines are given gst_code E, so tax type NONE)."""
        accounts = dict(self.sales_accounts)
        for code in self.voucher_analysis_codes:
            accounts[code] = str(self.voucher_liability_account)
        return EretailerRules(
            mode="detail", status=self.status, sales_accounts=accounts, tax_types=dict(self.tax_types),
            gst_rates=dict(self.gst_rates), tracking_category=self.tracking_category,
            tracking_options=dict(self.tracking_options), currency_code=self.currency_code,
            gst_tolerance_cents=self.gst_tolerance_cents, due_days=self.due_days, number_prefix="",
        )

    def invoice_number(self, ci_invoice_no: str) -> str:
        return f"{self.invoice_prefix}{ci_invoice_no}"

    def credit_number(self, ci_credit_no: str) -> str:
        return f"{self.credit_note_prefix}{ci_credit_no}"

    def number_for(self, ci_no: str, credit: bool) -> str:
        return self.credit_number(ci_no) if credit else self.invoice_number(ci_no)

    def contact_name(self, customer_name: Any, customer_code: str) -> str:
        """The customer's Xero name (only used when Xero has no contact with the number yet)."""
        name = " ".join(customer_name.split()) if isinstance(customer_name, str) else ""
        shown = " ".join(self.contact_name_format.format(customer_name=name or customer_code, customer_code=customer_code).split())
        return (shown or customer_code)[:NAME_LIMIT]

    def contact_for(self, customer_code: str, customer_name: Any) -> dict[str, str]:
        return {"ContactNumber": customer_code, "Name": self.contact_name(customer_name, customer_code)}


def receivables_rules(settings: Any) -> ReceivablesRules:
    """The books' view of a SiteSettings for account customers: the shared mapping and tracking, and the
    `receivables:` section."""
    mapping, receivables = settings.mapping, settings.receivables
    return ReceivablesRules(
        sales_accounts=dict(mapping.sales_accounts), tax_types=dict(mapping.tax_types), gst_rates=dict(mapping.gst_rates),
        gst_tolerance_cents=mapping.gst_tolerance_cents, tracking_category=settings.tracking.category_name,
        tracking_options=dict(settings.tracking.branch_options), tender_accounts=dict(mapping.tender_accounts),
        voucher_liability_account=mapping.voucher_liability_account,
        voucher_analysis_codes=tuple(mapping.voucher_analysis_codes), status=receivables.status,
        invoice_prefix=receivables.invoice_prefix, credit_note_prefix=receivables.credit_note_prefix,
        due_days=receivables.due_days, contact_name_format=receivables.contact_name_format,
        pay_tenders=receivables.pay_tenders,
    )


# -- what the read holds, and what of it can be posted ------------------------------------------------

@dataclass(frozen=True)
class ValidatedReceivables(ValidatedSales):
    """validation.ValidatedSales of the account-customer documents (invoices, lines and tenders of the
    postable FINAL ones; quarantine in QUARANTINE_COLUMNS, one row per problem; skipped: HELD and VOID;
    unmapped codes, tender types included; orphan lines; notices), and:

    excluded (takings_validation.EXCLUDED_DOCUMENT_COLUMNS): documents of other processes the read held;
    orphan_tenders: tenders read without their document;
    credit_links (CREDIT_LINK_COLUMNS): each postable credit's original, with whether an allocation is
      wanted and why not."""

    excluded: pd.DataFrame = field(default_factory=_empty_excluded)
    orphan_tenders: pd.DataFrame = field(default_factory=empty_orphan_tenders)
    credit_links: pd.DataFrame = field(default_factory=_empty_links)

    def __setstate__(self, state: dict) -> None:
        for name, default in (("excluded", _empty_excluded), ("orphan_tenders", empty_orphan_tenders),
                              ("credit_links", _empty_links)):
            state.setdefault(name, default())
        super().__setstate__(state)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _money(cents: int) -> str:
    return str(cents_to_decimal(int(cents)))


def account_document_mask(invoices: pd.DataFrame, tenders: pd.DataFrame) -> np.ndarray:
    """Which documents are account customers': source ACCOUNT, or POS with a tender of type ACCOUNT."""
    on_account = set(tenders.loc[(tenders["tender_type"] == ACCOUNT_TENDER).to_numpy(dtype=bool), "invoice_no"].tolist())
    source = invoices["source"].to_numpy(dtype=object)
    return (source == ACCOUNT_SOURCE) | ((source == POS) & invoices["invoice_no"].isin(on_account).to_numpy(dtype=bool))


def _with_tender_excess(documents: SalesDocuments, excess: pd.DataFrame | None, numbers: set) -> pd.DataFrame:
    """The documents' excess decimals with their tenders' (a tender amount with more decimals than the
    contract quarantines its document, as a line's does); cash-up rows name no document."""
    if excess is None or not len(excess):
        return documents.excess_decimals
    ours = excess[excess["invoice_no"].isin(numbers).to_numpy(dtype=bool)]
    if not len(ours):
        return documents.excess_decimals
    tender_rows = pd.DataFrame({
        "business_date": ours["business_date"].to_numpy(dtype=object),
        "invoice_no": ours["invoice_no"].to_numpy(dtype=object),
        "line_no": pd.array([None] * len(ours), dtype="Int64"),
        "column": [f"{view}.{column}" for view, column in zip(ours["view"], ours["column"])],
        "value": ours["value"].to_numpy(dtype=object),
        "places": ours["places"].to_numpy(dtype=np.int64),
        "reason": ours["reason"].to_numpy(dtype=object),
    })
    found = pd.concat([documents.excess_decimals, tender_rows], ignore_index=True)
    found["line_no"] = found["line_no"].astype("Int64")
    return found


class _Problems:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.unmapped: list[dict[str, Any]] = []

    def add(self, header: Any, check: str, reason: str, line_no: Any = None) -> None:
        self.rows.append({
            "invoice_no": header.invoice_no, "business_date": header.business_date, "branch_code": header.branch_code,
            "line_no": line_no, "total_incl_cents": int(header.total_incl_cents), "total_gst_cents": int(header.total_gst_cents),
            "check": check, "reason": reason,
        })


def validate_receivables(sales: Any, rules: ReceivablesRules) -> ValidatedReceivables:
    """Split a read (extract.SalesWithTenders: extract_receivables', or one of any sources) into the
    postable account-customer documents and quarantined ones, with the allocations' CI side."""
    invoices, lines, tenders = sales.documents.invoices, sales.documents.lines, sales.tenders
    ours = account_document_mask(invoices, tenders)
    numbers = set(invoices.loc[ours, "invoice_no"].tolist())
    others = invoices[~ours]
    excluded = pd.DataFrame({
        "business_date": others["business_date"].to_numpy(dtype=object), "branch_code": others["branch_code"].to_numpy(dtype=object),
        "invoice_no": others["invoice_no"].to_numpy(dtype=object), "source": others["source"].to_numpy(dtype=object),
        "total_incl_cents": others["total_incl_cents"].to_numpy(dtype=np.int64),
        "total_gst_cents": others["total_gst_cents"].to_numpy(dtype=np.int64),
        "process": np.where(others["source"].to_numpy(dtype=object) == "ERETAILER", "E-Retailer", "takings").astype(object),
        "reason": "not an account customer's document (no ACCOUNT source or tender)",
    }, columns=EXCLUDED_DOCUMENT_COLUMNS) if len(others) else _empty_excluded()
    documents = SalesDocuments(
        invoices=invoices[ours].reset_index(drop=True),
        lines=lines[lines["invoice_no"].isin(numbers).to_numpy(dtype=bool)].reset_index(drop=True),
        orphan_lines=sales.documents.orphan_lines,
        excess_decimals=_with_tender_excess(sales.documents, getattr(sales, "excess_decimals", None), numbers),
    )
    document_rules = rules.document_rules()
    checked = validate_sales_documents(documents, document_rules)
    problems = _Problems()
    notices = [checked.notices]
    postable = checked.invoices
    account_tenders = tenders[tenders["invoice_no"].isin(set(postable["invoice_no"].tolist())).to_numpy(dtype=bool)]
    _check_headers(postable, rules, problems)
    _check_vouchers(postable, checked.lines, rules, problems)
    if rules.pay_tenders:
        _check_tenders(postable, account_tenders, rules, problems)

    bad = {row["invoice_no"] for row in problems.rows}
    quarantine = checked.quarantine
    if problems.rows:
        found = pd.DataFrame(problems.rows, columns=QUARANTINE_COLUMNS)
        found["line_no"] = found["line_no"].astype("Int64")
        quarantine = pd.concat([quarantine, found], ignore_index=True) if len(quarantine) else found
        quarantine["line_no"] = quarantine["line_no"].astype("Int64")
        quarantine = quarantine.sort_values(["business_date", "invoice_no", "line_no"], na_position="first",
                                            kind="stable").reset_index(drop=True)
    unmapped = checked.unmapped
    if problems.unmapped:
        unmapped = pd.concat([unmapped, pd.DataFrame(problems.unmapped, columns=UNMAPPED_COLUMNS)], ignore_index=True)
        unmapped = unmapped.drop_duplicates(["business_date", "kind", "code"]).reset_index(drop=True)
    keep = ~postable["invoice_no"].isin(bad).to_numpy(dtype=bool)
    postable = postable[keep].reset_index(drop=True)
    kept_numbers = set(postable["invoice_no"].tolist())
    postable_lines = checked.lines[checked.lines["invoice_no"].isin(kept_numbers).to_numpy(dtype=bool)].reset_index(drop=True)
    postable_tenders = account_tenders[account_tenders["invoice_no"].isin(kept_numbers).to_numpy(dtype=bool)].reset_index(drop=True)
    links, link_notices = _credit_links(postable, invoices, ours)
    notices.append(link_notices)
    return ValidatedReceivables(
        invoices=postable, lines=postable_lines, quarantine=quarantine, skipped=checked.skipped, unmapped=unmapped,
        orphan_lines=checked.orphan_lines, notices=combined_notices(notices), tenders=postable_tenders, excluded=excluded,
        orphan_tenders=getattr(sales, "orphan_tenders", empty_orphan_tenders()), credit_links=links,
    )


def _check_headers(postable: pd.DataFrame, rules: ReceivablesRules, problems: _Problems) -> None:
    """The customer code (Xero's key for the contact) and the Xero number."""
    for row in postable.itertuples(index=False):
        code = _text(row.customer_code)
        credit = row.doc_type == "CREDIT"
        if code is None:
            problems.add(row, "missing_customer_code", (
                f"{row.invoice_no}: an account customer's {'credit' if credit else 'invoice'} without customer_code: "
                "Xero's contact is found by the CI customer code (ContactNumber), never by name"))
        elif len(code) > CONTACT_NUMBER_LIMIT:
            problems.add(row, "customer_code_too_long", (
                f"{row.invoice_no}: customer_code '{code[:60]}…' has {len(code)} characters, more than Xero's "
                f"{CONTACT_NUMBER_LIMIT} for a ContactNumber (cutting it could merge two customers)"))
        number = rules.number_for(row.invoice_no, credit)
        if len(number) > NAME_LIMIT:
            problems.add(row, "number_too_long", f"{row.invoice_no}: the Xero number '{number[:40]}…' has {len(number)} "
                                                 f"characters, more than Xero's {NAME_LIMIT}")


def _check_vouchers(postable: pd.DataFrame, lines: pd.DataFrame, rules: ReceivablesRules, problems: _Problems) -> None:
    """A gift voucher sold goes to the liability without GST: NZ taxes a voucher when it is redeemed."""
    if not rules.voucher_analysis_codes or lines.empty:
        return
    taxed = lines[lines["analysis_code"].isin(list(rules.voucher_analysis_codes)).to_numpy(dtype=bool)
                  & (lines["line_gst_cents"].to_numpy(dtype=np.int64) != 0)]
    headers = {row.invoice_no: row for row in postable.itertuples(index=False)}
    for row in taxed.itertuples(index=False):
        header = headers.get(row.invoice_no)
        if header is not None:
            problems.add(header, "voucher_gst", (
                f"{row.invoice_no} line {row.line_no}: a gift voucher sold ({row.analysis_code}, "
                f"{_money(row.line_total_incl_cents)}) on which CI charged GST {_money(row.line_gst_cents)}: NZ taxes a "
                "voucher when it is redeemed, so the sale goes to the liability without GST; an accountant decides"),
                line_no=int(row.line_no))


def _check_tenders(postable: pd.DataFrame, tenders: pd.DataFrame, rules: ReceivablesRules, problems: _Problems) -> None:
    """The tenders become payments: each once, mapped, adding up to the document, and each one Xero can
    take as a payment of it (the ACCOUNT tender is what stays due)."""
    mapping = rules.tender_mapping()
    by_number: dict[str, list] = defaultdict(list)
    for tender in tenders.itertuples(index=False):
        by_number[tender.invoice_no].append(tender)
    for row in postable.itertuples(index=False):
        found = by_number.get(row.invoice_no, [])
        if not found:
            continue  # an account document without tenders: all of it on account
        counts: dict[Any, int] = defaultdict(int)
        for tender in found:
            counts[tender.tender_no] += 1
        repeated = sorted((tender_no for tender_no, count in counts.items() if count > 1), key=str)
        for tender_no in repeated:
            problems.add(row, "duplicate_tender", (
                f"{row.invoice_no} tender {tender_no}: ci_sales_tenders returned this one tender more than once (a join "
                "matching twice?): which row is CI's cannot be told, so the document waits until the view returns it once"))
        if repeated:
            continue
        sign = -1 if row.doc_type == "CREDIT" else 1
        total = int(row.total_incl_cents)
        sums: dict[str, int] = defaultdict(int)
        for tender in found:
            sums[str(tender.tender_type)] += int(tender.amount_cents)
        tendered = sum(sums.values())
        if tendered != total:
            problems.add(row, "tenders_not_document", (
                f"{row.invoice_no}: its tenders add up to {_money(tendered)} "
                f"({', '.join(f'{t} {_money(a)}' for t, a in sorted(sums.items()))}) but its total is {_money(total)} "
                f"(CI disagrees with itself by {_money(tendered - total)})"))
            continue
        for tender_type, amount in sorted(sums.items()):
            if tender_type == ACCOUNT_TENDER or amount == 0:
                continue
            if mapping.account_for(tender_type) is None:
                problems.add(row, "unmapped_tender_type", (
                    f"{row.invoice_no}: tender {tender_type} ({_money(amount)}) has no Xero account "
                    f"({mapping.setting_for(tender_type)}): its payment cannot be made, so the document would stay due "
                    "for money the customer paid"))
                problems.unmapped.append({"business_date": row.business_date, "kind": "tender_type", "code": tender_type,
                                          "invoice_no": row.invoice_no})
            elif sign * amount < 0:
                problems.add(row, "tender_against_document", (
                    f"{row.invoice_no}: tender {tender_type} {_money(amount)} runs against the "
                    f"{'credit' if sign < 0 else 'invoice'} (Xero takes no negative payment, and a "
                    f"{'refund of an invoice' if sign > 0 else 'payment into a credit note'} is not one)"))
        on_account = sign * sums.get(ACCOUNT_TENDER, 0)
        if on_account < 0:
            problems.add(row, "account_tender_against_document", (
                f"{row.invoice_no}: the tenders other than ACCOUNT come to {_money(sign * (total - sums.get(ACCOUNT_TENDER, 0)))}, "
                f"more than the document's {_money(sign * total)} (ACCOUNT {_money(sums.get(ACCOUNT_TENDER, 0))}): Xero pays a "
                "document no more than it is due"))


def _credit_links(postable: pd.DataFrame, invoices: pd.DataFrame, ours: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each postable credit's original: wanted unless the read shows it is not an account customer's
    invoice of the same customer (then a notice says why; the credit still posts)."""
    read_docs = {row.invoice_no: (row, bool(is_ours)) for row, is_ours in zip(invoices.itertuples(index=False), ours.tolist())}
    rows, notice_rows = [], []
    for row in postable[(postable["doc_type"] == "CREDIT").to_numpy(dtype=bool)].itertuples(index=False):
        original = _text(row.original_invoice_no)
        if original is None:
            continue
        wanted, reason = True, ""
        found = read_docs.get(original)
        if found is not None:
            doc, is_ours = found
            if not is_ours or doc.doc_type != "INVOICE":
                wanted = False
                what = "a credit" if doc.doc_type != "INVOICE" else f"a {doc.source} document not paid on account"
                reason = (f"{row.invoice_no} reverses {original}, which is {what}, not an account customer's invoice: "
                          "no allocation is made (the credit stays as credit for the customer)")
                notice_rows.append((row.business_date, row.invoice_no, "original_not_account_invoice", reason))
            elif _text(doc.customer_code) != _text(row.customer_code):
                wanted = False
                reason = (f"{row.invoice_no} (customer {row.customer_code}) reverses {original} of customer "
                          f"{doc.customer_code}: Xero allocates a credit only to the same contact's invoice")
                notice_rows.append((row.business_date, row.invoice_no, "original_other_customer", reason))
        rows.append({"business_date": row.business_date, "ci_credit_no": row.invoice_no, "ci_invoice_no": original,
                     "customer_code": _text(row.customer_code), "wanted": wanted, "reason": reason})
    links = pd.DataFrame(rows, columns=CREDIT_LINK_COLUMNS).astype({"wanted": bool}) if rows else _empty_links()
    if not notice_rows:
        return links, empty_notices()
    days, numbers, kinds, messages = zip(*notice_rows)
    return links, notices_frame(days, numbers, [None] * len(days), list(kinds), messages)


# -- the documents ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceivablesBooks:
    """What build_receivables_documents makes: documents (DOCUMENT_COLUMNS), payments (PAYMENT_COLUMNS),
    totals (RECEIVABLES_TOTAL_COLUMNS) and notices (NOTICE_COLUMNS: descriptions cut, tracking options
    cut or renamed)."""

    documents: pd.DataFrame
    payments: pd.DataFrame
    totals: pd.DataFrame
    notices: pd.DataFrame


def document_key(ci_invoice_no: str) -> str:
    return f"{PROCESS}/{ci_invoice_no}"


def _lines_as_built(validated: ValidatedReceivables, rules: ReceivablesRules) -> pd.DataFrame:
    """The postable lines, gift vouchers sold given gst_code E (tax type NONE on the liability; validation
    lets through only vouchers without GST)."""
    lines = validated.lines
    if not rules.voucher_analysis_codes or lines.empty:
        return lines
    vouchers = lines["analysis_code"].isin(list(rules.voucher_analysis_codes)).to_numpy(dtype=bool)
    if not vouchers.any():
        return lines
    if (lines.loc[vouchers, "line_gst_cents"].to_numpy(dtype=np.int64) != 0).any():
        raise ValueError("a gift voucher line with GST reached the builder: validation quarantines those")
    lines = lines.copy()
    codes = lines["gst_code"].to_numpy(dtype=object).copy()
    codes[vouchers] = "E"
    lines["gst_code"] = codes
    return lines


def _tender_sums(validated: ValidatedReceivables) -> dict[str, dict[str, int]]:
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    tenders = validated.tenders
    for number, tender_type, amount in zip(tenders["invoice_no"].tolist(), tenders["tender_type"].tolist(),
                                           tenders["amount_cents"].astype("int64").tolist()):
        sums[number][tender_type] += amount
    return sums


def build_receivables_documents(validated: ValidatedReceivables, rules: ReceivablesRules) -> ReceivablesBooks:
    """The Xero invoices and credit notes of the postable account-customer documents, and the payments
    of their tenders other than ACCOUNT."""
    invoices = validated.invoices
    if invoices.empty:
        return ReceivablesBooks(_empty_documents(), empty_payments(), _totals_frame([]), empty_notices())
    built, built_notices = build_eretailer_documents_with_notices(invoices, _lines_as_built(validated, rules), rules.document_rules())
    headers = {row.invoice_no: row for row in invoices.itertuples(index=False)}
    tender_sums = _tender_sums(validated) if rules.pay_tenders else {}
    mapping = rules.tender_mapping()
    notices = Notices()
    notices.parts.append(built_notices)
    rows, payments, totals = [], [], []
    for document in built.itertuples(index=False):
        ci_no = document.number  # Detail mode: CI's own number
        header = headers[ci_no]
        credit = document.endpoint == "CreditNotes"
        sign = -1 if credit else 1
        number = rules.number_for(ci_no, credit)
        code = _text(header.customer_code)
        contact = rules.contact_for(code, header.customer_name)
        original = _text(header.original_invoice_no)
        order_ref = _text(header.order_ref) or ""
        reference = (f"{order_ref} credit for {rules.invoice_number(original)}".strip() if credit and original else order_ref)[:NAME_LIMIT]
        payload = dict(document.payload)
        payload["CreditNoteNumber" if credit else "InvoiceNumber"] = number
        payload["Contact"] = contact
        payload["Reference"] = reference
        key = document_key(ci_no)
        paid = 0
        for tender_type, amount in sorted(tender_sums.get(ci_no, {}).items()):
            shown = sign * amount
            if tender_type == ACCOUNT_TENDER or shown == 0:
                continue
            if shown < 0 or mapping.account_for(tender_type) is None:
                raise ValueError(f"{ci_no}: tender {tender_type} {_money(amount)} cannot be paid: validation lets no such "
                                 "document through")
            account = mapping.account_for(tender_type)
            reference_key = payment_key(number, tender_type)
            payments.append({
                "payment_key": reference_key, "document_key": key, "business_date": document.business_date,
                "branch_code": document.branch_code, "endpoint": "Payments", "document_endpoint": document.endpoint,
                "document_number": number, "tender_type": tender_type, "account_code": account, "amount_cents": shown,
                "ci_invoice_nos": (ci_no,),
                "payload": payment_payload(document.endpoint, number, account, document.business_date, shown, reference_key),
            })
            paid += shown
        rows.append({
            "document_key": key, "business_date": document.business_date, "branch_code": document.branch_code,
            "endpoint": document.endpoint, "document_type": document.document_type, "number": number,
            "reference": reference, "contact_name": contact["Name"], "status": rules.status,
            "total_cents": int(document.total_cents), "tax_cents": int(document.tax_cents),
            "line_count": int(document.line_count), "ci_invoice_nos": (ci_no,), "payload": payload,
        })
        totals.append({
            "business_date": document.business_date, "document_key": key, "invoice_no": ci_no, "number": number,
            "endpoint": document.endpoint, "customer_code": code, "ci_total_cents": int(header.total_incl_cents),
            "ci_gst_cents": int(header.total_gst_cents), "document_total_cents": int(document.total_cents),
            "document_tax_cents": int(document.tax_cents), "payments_cents": paid,
            "on_account_cents": int(document.total_cents) - paid,
        })
    documents = pd.DataFrame(rows, columns=DOCUMENT_COLUMNS)
    for column in ("total_cents", "tax_cents", "line_count"):
        documents[column] = documents[column].astype("int64")
    documents = documents.sort_values(["business_date", "document_key"], kind="stable").reset_index(drop=True)
    return ReceivablesBooks(documents, payments_frame(payments), _totals_frame(totals), notices.frame())


def _empty_documents() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in DOCUMENT_COLUMNS})
    return frame.astype({"total_cents": "int64", "tax_cents": "int64", "line_count": "int64"})


def _totals_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=RECEIVABLES_TOTAL_COLUMNS) if rows else pd.DataFrame(
        {column: pd.Series(dtype=object) for column in RECEIVABLES_TOTAL_COLUMNS})
    for column in RECEIVABLES_TOTAL_COLUMNS:
        if column.endswith("_cents"):
            frame[column] = frame[column].astype("int64")
    return frame


def on_account_cents(validated: ValidatedReceivables, rules: ReceivablesRules) -> dict[str, int]:
    """CI number → what of each postable document stays on account, as Xero shows it (positive on a credit
    note): its ACCOUNT tenders when the site pays the others, else all of it (an account document with
    no tenders is all on account)."""
    sums = _tender_sums(validated) if rules.pay_tenders else {}
    found = {}
    for number, doc_type, total in zip(validated.invoices["invoice_no"], validated.invoices["doc_type"],
                                       validated.invoices["total_incl_cents"].astype("int64")):
        sign = -1 if doc_type == "CREDIT" else 1
        tenders = sums.get(number)
        found[number] = sign * (tenders.get(ACCOUNT_TENDER, 0) if tenders else int(total))
    return found


def allocations_wanted(validated: ValidatedReceivables, rules: ReceivablesRules, documents: pd.DataFrame) -> pd.DataFrame:
    """The credit → invoice allocations to make (ALLOCATION_COLUMNS): each credit of the documents whose
    original is wanted and which leaves something on account (a credit refunded in full by its tenders has
    nothing to allocate). The posting step allocates min(credit remaining, invoice due), or reports why not
    (the invoice not in Xero yet: waiting, and the credit's day runs again once it is)."""
    links = validated.credit_links
    if links.empty or documents.empty or rules.status != "AUTHORISED":
        return _allocations_frame([])  # (Xero allocates only AUTHORISED credit notes, to AUTHORISED invoices)
    keys = set(documents["document_key"].tolist())
    remaining = on_account_cents(validated, rules)
    rows = []
    for link in links[links["wanted"].to_numpy(dtype=bool)].itertuples(index=False):
        if document_key(link.ci_credit_no) not in keys or remaining.get(link.ci_credit_no, 0) <= 0:
            continue
        credit_number, invoice_number = rules.credit_number(link.ci_credit_no), rules.invoice_number(link.ci_invoice_no)
        rows.append({
            "allocation_key": f"{credit_number}>{invoice_number}", "business_date": link.business_date,
            "credit_document_key": document_key(link.ci_credit_no), "credit_number": credit_number,
            # the posting step allocates to the invoice's live revision (`<number>-R1` after CI changed it)
            "invoice_document_key": document_key(link.ci_invoice_no),
            "invoice_number": invoice_number, "ci_credit_no": link.ci_credit_no, "ci_invoice_no": link.ci_invoice_no,
        })
    return _allocations_frame(rows)


def _allocations_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in ALLOCATION_COLUMNS})
    return pd.DataFrame(rows, columns=ALLOCATION_COLUMNS).drop_duplicates("allocation_key").sort_values(
        ["business_date", "allocation_key"], kind="stable").reset_index(drop=True)


def contacts_wanted(validated: ValidatedReceivables, rules: ReceivablesRules) -> pd.DataFrame:
    """The contacts the postable documents need (CONTACT_COLUMNS), one per customer code: the name and
    email of the customer's latest document, the CI documents that need it, the first day it is needed."""
    invoices = validated.invoices
    if invoices.empty:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in CONTACT_COLUMNS})
    order = invoices.sort_values(["business_date", "updated_at", "invoice_no"], kind="stable")
    found: dict[str, dict[str, Any]] = {}
    for row in order.itertuples(index=False):
        code = _text(row.customer_code)
        entry = found.setdefault(code, {"contact_number": code, "role": "customer", "source_keys": [],
                                        "business_date": row.business_date})
        entry["name"] = rules.contact_name(row.customer_name, code)
        entry["email"] = _text(row.customer_email)
        entry["source_keys"].append(row.invoice_no)
    rows = [{**entry, "source_keys": sorted(entry["source_keys"])} for _, entry in sorted(found.items())]
    return pd.DataFrame(rows, columns=CONTACT_COLUMNS)


# -- the blocking check of the books before they reach Xero ---------------------------------------------

_QUANTITY_PLACES, _UNIT_PLACES = Decimal("0.001"), Decimal("0.0001")


def _xero_line_amount(item: Mapping[str, Any]) -> Decimal:
    """What Xero makes of a line: round(Quantity × UnitAmount − DiscountAmount, 2), half away from zero."""
    gross = Decimal(item.get("Quantity", 1)) * Decimal(item["UnitAmount"])
    return (gross - Decimal(item.get("DiscountAmount") or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def check_receivables_books(validated: ValidatedReceivables, books: ReceivablesBooks, rules: ReceivablesRules) -> pd.DataFrame:
    """Every way the books could differ from CI, judged from the payloads and CI's rows alone (CHECK_COLUMNS;
    empty when they agree): one document per postable CI document, with CI's number, type, customer and
    dates; its total and tax (with its sign) CI's to the cent, Σ LineAmount and Σ TaxAmount its total and
    tax; line by line CI's line total, the account and tax type of the mapping, a LineAmount that Xero's
    own Quantity × UnitAmount − DiscountAmount gives, quantities of 3 places and unit amounts of 4, a
    description within 4,000 characters, the branch's tracking, and exactly Xero's own tax; the lines
    after CI's (GST adjustment pairs) adding nothing to the total; the payments positive, to mapped
    accounts, none on a DRAFT, and no more than the total, leaving on account exactly CI's ACCOUNT part."""
    document_rules = rules.document_rules()
    rate_of = {rules.tax_types[code]: rate for code, rate in rules.gst_rates.items() if code in rules.tax_types}
    headers = {row.invoice_no: row for row in validated.invoices.itertuples(index=False)}
    lines_of: dict[str, list] = defaultdict(list)
    for line in validated.lines.sort_values(["invoice_no", "line_no"], kind="stable").itertuples(index=False):
        lines_of[line.invoice_no].append(line)
    payments_of: dict[str, list] = defaultdict(list)
    for payment in books.payments.itertuples(index=False):
        payments_of[payment.document_key].append(payment)
    remaining = on_account_cents(validated, rules)
    mapping = rules.tender_mapping()
    vouchers = set(rules.voucher_analysis_codes)
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = defaultdict(int)
    for document in books.documents.itertuples(index=False):
        ci_no = document.ci_invoice_nos[0] if len(document.ci_invoice_nos) == 1 else None
        day, key = document.business_date, document.document_key

        def problem(check: str, message: str) -> None:
            problems.append({"business_date": day, "invoice_no": ci_no, "document_key": key, "check": check, "message": message})

        header = headers.get(ci_no)
        if header is None:
            problem("ci_document", f"no postable CI document behind {document.number} ({document.ci_invoice_nos})")
            continue
        seen[ci_no] += 1
        credit = header.doc_type == "CREDIT"
        sign = -1 if credit else 1
        payload = document.payload
        expected_endpoint, expected_type = ("CreditNotes", "ACCRECCREDIT") if credit else ("Invoices", "ACCREC")
        number_field = "CreditNoteNumber" if credit else "InvoiceNumber"
        if (document.endpoint, payload.get("Type"), document.number, payload.get(number_field)) != (
                expected_endpoint, expected_type, rules.number_for(ci_no, credit), rules.number_for(ci_no, credit)):
            problem("number", f"{document.endpoint} {payload.get('Type')} {document.number}: CI's {header.doc_type} "
                              f"{ci_no} is {expected_type} {rules.number_for(ci_no, credit)}")
        if payload.get("Contact") != rules.contact_for(_text(header.customer_code), header.customer_name):
            problem("contact", f"contact {payload.get('Contact')}: the customer is {header.customer_code}")
        due = (date.fromisoformat(header.business_date) + timedelta(days=rules.due_days)).isoformat()
        if payload.get("Date") != header.business_date or (not credit and payload.get("DueDate") != due):
            problem("dates", f"Date {payload.get('Date')}, DueDate {payload.get('DueDate')}: CI's day {header.business_date}, due {due}")
        if payload.get("LineAmountTypes") != "Inclusive" or payload.get("Status") != rules.status:
            problem("layout", f"LineAmountTypes {payload.get('LineAmountTypes')}, Status {payload.get('Status')}")
        if sign * document.total_cents != int(header.total_incl_cents) or sign * document.tax_cents != int(header.total_gst_cents):
            problem("ci_totals", f"total {_money(sign * document.total_cents)} / tax {_money(sign * document.tax_cents)}; CI "
                                 f"{_money(header.total_incl_cents)} / GST {_money(header.total_gst_cents)}")
        items = payload["LineItems"]
        amounts = [decimal_to_cents(item["LineAmount"]) for item in items]
        taxes = [decimal_to_cents(item["TaxAmount"]) for item in items]
        if sum(amounts) != document.total_cents or sum(taxes) != document.tax_cents:
            problem("totals", f"lines {_money(sum(amounts))} / tax {_money(sum(taxes))}; document "
                              f"{_money(document.total_cents)} / {_money(document.tax_cents)}")
        ci_lines = lines_of.get(ci_no, [])
        if len(items) < len(ci_lines):
            problem("lines", f"{len(items)} lines for CI's {len(ci_lines)}")
        for position, (item, amount, tax) in enumerate(zip(items, amounts, taxes)):
            where = f"line {position + 1}"
            if position < len(ci_lines):
                line = ci_lines[position]
                where = f"{ci_no} line {line.line_no}"
                voucher = line.analysis_code in vouchers
                account = rules.voucher_liability_account if voucher else rules.sales_accounts.get(line.analysis_code)
                tax_type = rules.exempt_tax_type if voucher else rules.tax_types.get(line.gst_code)
                if amount != sign * int(line.line_total_incl_cents):
                    problem("line_amount", f"{where}: LineAmount {_money(amount)}, CI's line total {_money(sign * int(line.line_total_incl_cents))}")
                if (item["AccountCode"], item["TaxType"]) != (account, tax_type):
                    problem("line_mapping", f"{where}: {item['AccountCode']} {item['TaxType']}, the mapping gives {account} {tax_type}")
            if _xero_line_amount(item) != item["LineAmount"]:
                problem("xero_line_amount", f"{where}: Xero makes {_xero_line_amount(item)} of Quantity {item.get('Quantity')} × "
                                            f"UnitAmount {item['UnitAmount']} − {item.get('DiscountAmount') or 0}, not {item['LineAmount']}")
            if (Decimal(item.get("Quantity", 1)) != Decimal(item.get("Quantity", 1)).quantize(_QUANTITY_PLACES)
                    or Decimal(item["UnitAmount"]) != Decimal(item["UnitAmount"]).quantize(_UNIT_PLACES)):
                problem("places", f"{where}: Quantity {item.get('Quantity')} / UnitAmount {item['UnitAmount']} beyond 3 / 4 places")
            rate = rate_of.get(item["TaxType"])
            own = int(inclusive_tax_cents(np.array([amount], dtype=np.int64), rate)[0]) if rate is not None else None
            if own != tax:
                problem("line_tax", f"{where}: TaxAmount {_money(tax)}, Xero computes {None if own is None else _money(own)}")
            text = item.get("Description")
            if not isinstance(text, str) or not text or len(text) > DESCRIPTION_LIMIT:
                problem("description", f"{where}: a description of {len(text) if isinstance(text, str) else 0} characters")
            tracking = item.get("Tracking") or []
            if len(tracking) != 1 or tracking[0].get("Name") != rules.tracking_category or not tracking[0].get("Option"):
                problem("tracking", f"{where}: tracking {tracking}, not the branch's option in {rules.tracking_category}")
        if sum(amounts[len(ci_lines):]) != 0:
            problem("adjustments", f"the lines after CI's add {_money(sum(amounts[len(ci_lines):]))} to the total")
        if rate_ratio(document_rules.gst_rates.get("E", 0))[0] != 0:
            problem("exempt_rate", "gst_code E has a GST rate")
        paid = 0
        for payment in payments_of.get(key, []):
            paid += int(payment.amount_cents)
            if int(payment.amount_cents) <= 0 or payment.account_code != mapping.account_for(payment.tender_type):
                problem("payment", f"{payment.payment_key}: {_money(payment.amount_cents)} into {payment.account_code}")
            if payment.tender_type == ACCOUNT_TENDER:
                problem("payment", f"{payment.payment_key}: the ACCOUNT tender is the receivable, not a payment")
            if payment.payload.get("Reference") != payment_key(document.number, payment.tender_type):
                problem("payment", f"{payment.payment_key}: Reference {payment.payload.get('Reference')}")
        if paid and rules.status != "AUTHORISED":
            problem("payment", f"payments of a {rules.status} document: Xero pays only AUTHORISED documents")
        if paid > document.total_cents:
            problem("overpaid", f"payments {_money(paid)} > total {_money(document.total_cents)}")
        if document.total_cents - paid != remaining.get(ci_no):
            problem("on_account", f"{_money(document.total_cents - paid)} stays due; CI's ACCOUNT part is "
                                  f"{_money(remaining.get(ci_no, 0))}")
    for ci_no, header in headers.items():
        if seen.get(ci_no, 0) != 1:
            problems.append({"business_date": header.business_date, "invoice_no": ci_no, "document_key": None,
                             "check": "one_document", "message": f"{ci_no} is in {seen.get(ci_no, 0)} documents"})
    return pd.DataFrame(problems, columns=CHECK_COLUMNS)


# -- after posting ----------------------------------------------------------------------------------------

def credit_balances(results: pd.DataFrame, held: Mapping[tuple[str, str], Mapping[str, Any]],
                    allocation_results: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per credit note of the posting results that Xero holds (CREDIT_BALANCE_COLUMNS): its Total beside its
    Allocations, Payments (refunds) and RemainingCredit as Xero holds them (whether they add up is
    xero.allocations.credit_note_differences' to judge), and, when credit remains, why (the allocation's outcome and message: waiting, nothing_to_allocate, locked …;
    or that no allocation was wanted). `results` is a posting results frame with the CI lineage
    (ci_invoice_nos); allocation_results has credit_document_key, outcome and message."""
    why: dict[str, tuple[str, str]] = {}
    if allocation_results is not None and len(allocation_results):
        messages = allocation_results["message"] if "message" in allocation_results else pd.Series([""] * len(allocation_results))
        for key, outcome, message in zip(allocation_results["credit_document_key"], allocation_results["outcome"], messages):
            why[str(key)] = (str(outcome), "" if message is None or pd.isna(message) else str(message))
    rows = []
    credits = results[results["endpoint"] == "CreditNotes"] if len(results) else results
    for result in credits.itertuples(index=False):
        xero = held.get(("CreditNotes", result.number))
        if result.outcome == "withdrawn" or xero is None or xero.get("Status") in ("VOIDED", "DELETED", "DRAFT"):
            continue
        total = decimal_to_cents(xero.get("Total") or 0)
        allocated = sum(decimal_to_cents(a.get("Amount") or 0) for a in xero.get("Allocations") or [] if not a.get("IsDeleted"))
        refunded = sum(decimal_to_cents(p.get("Amount") or 0) for p in xero.get("Payments") or []
                       if p.get("Status") in (None, "", "AUTHORISED"))
        remaining = decimal_to_cents(xero.get("RemainingCredit") or 0)
        outcome, message = why.get(result.document_key, ("", ""))
        if remaining and not outcome:
            outcome, message = "not_wanted", "no allocation was asked for this credit (no original, or not the customer's account invoice)"
        numbers = tuple(result.ci_invoice_nos or ())
        rows.append({
            "business_date": result.business_date, "number": result.number, "ci_credit_no": numbers[0] if numbers else None,
            "total_cents": total, "allocated_cents": allocated, "refunded_cents": refunded, "remaining_cents": remaining,
            "allocation_outcome": outcome,
            "why_unallocated": message if remaining else "",
        })
    frame = pd.DataFrame(rows, columns=CREDIT_BALANCE_COLUMNS)
    return frame.astype({c: "int64" for c in CREDIT_BALANCE_COLUMNS if c.endswith("_cents")})


__all__ = [
    "ALLOCATION_COLUMNS", "CHECK_COLUMNS", "CONTACT_COLUMNS", "CREDIT_BALANCE_COLUMNS",
    "CREDIT_LINK_COLUMNS", "PROCESS", "RECEIVABLES_TOTAL_COLUMNS", "ReceivablesBooks", "ReceivablesRules",
    "ValidatedReceivables", "account_document_mask", "allocations_wanted", "build_receivables_documents",
    "check_receivables_books", "contacts_wanted", "credit_balances", "document_key", "on_account_cents", "receivables_rules", "validate_receivables",
]

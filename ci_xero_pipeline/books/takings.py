"""End-of-day takings as Xero documents: per branch per trading day, one takings document and one
payment per tender (processes.md §1). Pure: validated frames in, plain data out.

The takings invoice (ACCREC, LineAmountTypes Inclusive, the branch's tracking option on every line):
- sales lines, one per Xero account × tax type (× CI gst_code), amount Σ CI line_total_incl; each line's
  TaxAmount is exactly the tax Xero computes for it, and where CI's GST (Σ line_gst) differs, a labelled
  pair of GST adjustment lines carries the difference (as books.eretailer does), so the document's tax
  is CI's GST to the cent;
- gift vouchers sold (TakingsRules.voucher_analysis_codes) → the voucher liability account, NONE;
- cash rounding lines (rounding_analysis_codes) → the rounding account, NONE;
- till over/short per tender, counted − expected from ci_cash_ups → the over/short account (per-tender
  override), NONE.
Payments: per tender type T, P = counted − the part another process posts (tenders of POS documents
paid ON ACCOUNT), a payment of P into T's account (GIFT_VOUCHER → the voucher liability), dated the
trading day, Reference `<number>/<T>`. Σ P = the invoice's total, so it ends PAID, and every tender's
account moves by exactly P.

The sign rule (Xero takes no negative payment and approves no negative invoice), with D = Σ P:
- a tender with P < 0 on a day with D ≥ 0 is a positive line of −P to its own account, NONE, not a payment;
- a day with D < 0 is a takings credit note (ACCRECCREDIT, number with its own prefix): every line
  above with its sign turned, the tenders with P > 0 as positive lines to their accounts, and a refund
  payment of −P from each tender with P < 0. Σ refunds = the credit note's total.
Every case ends fully paid; every account moves by P.

Zero-balance (TakingsRules.zero_balance, required for DRAFT sites): the invoice as above plus each
tender as a line of −P to its account; its total is 0.00 and it has no payments.

Document keys `takings/<YYYY-MM-DD>/<branch>`; numbers `<number_prefix><branch>-<YYYYMMDD>` (credit note
`<credit_note_prefix><branch>-<YYYYMMDD>`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents
from .eretailer import DESCRIPTION_LIMIT, DOCUMENT_COLUMNS, branch_options_of, Decimals, gst_adjustments, gst_label, Notices
from .schemas import empty_notices, inclusive_tax_cents, rate_ratio, xero_tax_cents
from .takings_validation import (
    BRANCH_DAY_COLUMNS, EXCLUDED_DOCUMENT_COLUMNS, TAKINGS_QUARANTINE_COLUMNS, TENDER_DAY_COLUMNS, TakingsRules,
    ValidatedTakings, takings_source_evidence, validate_takings,
)
from .tenders import PAYMENT_COLUMNS, TENDER_LINE_COLUMNS, empty_payments, payment_key, payment_payload, payments_frame, tender_line

# per branch-day: CI's figures beside the document's (document figures as shown: positive on a credit note)
TAKINGS_TOTAL_COLUMNS = [
    "business_date", "branch_code", "document_key", "number", "endpoint", "layout", "ci_invoice_count",
    "ci_total_cents", "ci_gst_cents", "over_short_cents", "takings_cents", "document_total_cents",
    "document_tax_cents", "tender_lines_cents", "payments_cents",
]
# per branch-day and tender: what CI counted, the part takings posts, and how the document moves the account
TAKINGS_TENDER_COLUMNS = [
    "business_date", "branch_code", "document_key", "tender_type", "account_code", "expected_cents", "counted_cents",
    "over_short_cents", "other_process_cents", "takings_cents", "paid_cents", "line_cents", "movement_cents",
]
NO_DOCUMENT_COLUMNS = ["business_date", "branch_code", "invoice_nos", "total_cents", "tax_cents", "reason"]
NOTHING_TO_POST = "the branch-day's takings net to zero line for line, and no tender moved money: no document"
SALES, VOUCHERS, ROUNDING = "sales", "vouchers", "rounding"
VOUCHERS_SOLD = "Gift vouchers sold"  # the description of the voucher sales line (the liability also takes tender lines)
_KIND_ORDER = {SALES: 0, VOUCHERS: 1, ROUNDING: 2}


@dataclass(frozen=True)
class TakingsBooks:
    """What build_takings_documents makes.

    documents: books.eretailer DOCUMENT_COLUMNS (key, day, branch, endpoint, type, number, reference,
      contact, status, total, tax, line count, CI numbers, payload): what the posting path takes;
    payments: books.tenders PAYMENT_COLUMNS; tender_lines: books.tenders TENDER_LINE_COLUMNS (tenders
      the sign rule or the zero-balance layout made lines of, amount as shown);
    totals (TAKINGS_TOTAL_COLUMNS) and tenders (TAKINGS_TENDER_COLUMNS), for the checks;
    no_document (NO_DOCUMENT_COLUMNS): postable branch-days with nothing to post;
    notices (NOTICE_COLUMNS): what the build cut or renamed (descriptions, tracking options)."""

    documents: pd.DataFrame
    payments: pd.DataFrame
    tender_lines: pd.DataFrame
    totals: pd.DataFrame
    tenders: pd.DataFrame
    no_document: pd.DataFrame
    notices: pd.DataFrame


def takings_number(rules: TakingsRules, branch: str, day: str, credit: bool = False) -> str:
    return f"{rules.credit_note_prefix if credit else rules.number_prefix}{branch}-{day.replace('-', '')}"


def takings_document_key(branch: str, day: str) -> str:
    return f"takings/{day}/{branch}"


def _content_groups(validated: ValidatedTakings, rules: TakingsRules) -> pd.DataFrame:
    """The lines of the postable takings documents, summed per branch-day × kind × account × tax type ×
    rate code: amount (Σ line_total_incl) and CI's GST (Σ line_gst)."""
    lines = validated.lines
    columns = ["business_date", "branch_code", "kind", "account_code", "tax_type", "rate_code", "codes", "amount", "ci_tax"]
    if lines.empty:
        return pd.DataFrame(columns=columns)
    branch_of = dict(zip(validated.invoices["invoice_no"], validated.invoices["branch_code"]))
    analysis = lines["analysis_code"].to_numpy(dtype=object)
    gst_code = lines["gst_code"].to_numpy(dtype=object)
    line_gst = lines["line_gst_cents"].to_numpy(dtype=np.int64)
    vouchers = np.isin(analysis, list(rules.voucher_analysis_codes))
    rounding = np.isin(analysis, list(rules.rounding_analysis_codes))
    taxed_voucher = vouchers & (line_gst != 0) & (rules.voucher_gst == "taxed_at_sale")
    untaxed = (vouchers & ~taxed_voucher) | rounding  # NONE, no tax
    kind = np.where(vouchers, VOUCHERS, np.where(rounding, ROUNDING, SALES)).astype(object)
    sales_accounts = dict(rules.sales_accounts)
    accounts = np.array([
        rules.voucher_liability_account if k == VOUCHERS else rules.rounding_account if k == ROUNDING else sales_accounts[code]
        for k, code in zip(kind.tolist(), analysis.tolist())
    ], dtype=object)
    tax_types = np.array([rules.tax_types[code] for code in gst_code.tolist()], dtype=object)
    tax_types[untaxed] = rules.exempt_tax_type
    rate_codes = gst_code.copy()
    rate_codes[untaxed] = "E"
    frame = pd.DataFrame({
        "business_date": lines["business_date"].to_numpy(dtype=object),
        "branch_code": np.array([branch_of[number] for number in lines["invoice_no"].tolist()], dtype=object),
        "kind": kind, "account_code": accounts, "tax_type": tax_types, "rate_code": rate_codes,
        "analysis_code": analysis,
        "amount": lines["line_total_incl_cents"].to_numpy(dtype=np.int64), "ci_tax": line_gst,
    })
    grouped = (
        frame.groupby(["business_date", "branch_code", "kind", "account_code", "tax_type", "rate_code"], sort=True)
        .agg(codes=("analysis_code", lambda codes: ", ".join(sorted(set(codes)))), amount=("amount", "sum"), ci_tax=("ci_tax", "sum"))
        .reset_index()
    )
    return grouped[columns]


def build_takings_documents(validated: ValidatedTakings, rules: TakingsRules) -> TakingsBooks:
    """The takings documents and their payments for the postable branch-days of `validated`."""
    if rate_ratio(rules.gst_rates.get("E", 0))[0] != 0:
        raise ValueError("the exempt gst_code E has a GST rate: NONE lines need a code without GST")
    document_rules = rules.document_rules()
    notices = Notices()
    number = Decimals()
    days = validated.branch_days[~validated.branch_days["quarantined"].to_numpy(dtype=bool)].reset_index(drop=True)
    if days.empty:
        return _empty_books()
    options = branch_options_of(
        pd.DataFrame({"branch_code": days["branch_code"], "branch_name": days["branch_name"], "business_date": days["business_date"]}),
        document_rules, notices,
    ).tolist()
    # the content groups and cash-ups of each branch-day, as plain rows (one pass over each frame)
    groups = _content_groups(validated, rules)
    content_of: dict[tuple[str, str], list] = defaultdict(list)
    if len(groups):
        # Xero's own tax of each group's amount; a credit note shows −amount, whose tax is −tax (half up
        # rounds away from zero, the same either way)
        own_taxes = _xero_tax(groups["amount"].to_numpy(dtype=np.int64), groups["rate_code"].to_numpy(), rules).tolist()
        for group, own_tax in zip(groups.itertuples(index=False), own_taxes):
            content_of[(group.business_date, group.branch_code)].append((group, int(own_tax)))
    tenders_of: dict[tuple[str, str], list] = defaultdict(list)
    for tender in validated.tender_days.itertuples(index=False):
        tenders_of[(tender.business_date, tender.branch_code)].append(tender)

    documents, payments, tender_lines, totals, tender_rows, no_document = [], [], [], [], [], []
    # GST adjustment pairs, made in one go after the loop: (document's items, where they go, CI tax, own tax, code, account, tracking)
    differing: list[tuple[list, int, int, int, str, str, list]] = []
    zero_balance = rules.zero_balance
    for day_row, option in zip(days.itertuples(index=False), options):
        day, branch = day_row.business_date, day_row.branch_code
        key = takings_document_key(branch, day)
        tracking = [{"Name": rules.tracking_category, "Option": option}]
        content = content_of.get((day, branch), [])
        tender_list = tenders_of.get((day, branch), [])
        takings = {t.tender_type: int(t.counted_cents) - int(t.other_process_cents) for t in tender_list}
        over_short = {t.tender_type: int(t.counted_cents) - int(t.expected_cents) for t in tender_list}
        content_total = sum(int(group.amount) for group, _ in content)
        ci_tax = sum(int(group.ci_tax) for group, _ in content)
        if content_total != int(day_row.total_incl_cents) or ci_tax != int(day_row.total_gst_cents):
            raise ValueError(f"{key}: the lines add up to {cents_to_decimal(content_total)} (GST {cents_to_decimal(ci_tax)}), "
                             f"the documents to {cents_to_decimal(day_row.total_incl_cents)} (GST "
                             f"{cents_to_decimal(day_row.total_gst_cents)}): validation lets no such day through")
        net = content_total + sum(over_short.values())
        if net != sum(takings.values()):
            raise ValueError(f"{key}: Σ tenders {cents_to_decimal(sum(takings.values()))} ≠ documents and over/short "
                             f"{cents_to_decimal(net)}: validation lets no such day through")
        sign = 1 if zero_balance or net >= 0 else -1
        credit = sign < 0
        document_number = takings_number(rules, branch, day, credit)
        endpoint = "CreditNotes" if credit else "Invoices"

        items: list[dict[str, Any]] = []
        shown_tax = 0
        adjusted = False
        for group, own_tax in content:
            amount, group_ci_tax, own_tax = sign * int(group.amount), sign * int(group.ci_tax), sign * own_tax
            shown_tax += group_ci_tax
            if amount != 0:
                items.append(_item(_content_description(group, day, option, document_rules, document_number, notices),
                                   amount, own_tax, group.account_code, group.tax_type, tracking, number))
            if group_ci_tax != own_tax:
                adjusted = True
                differing.append((items, -1, group_ci_tax, own_tax, group.rate_code, group.account_code, tracking))
        if adjusted:  # the pairs go right after the content lines
            at = len(items)
            for index in range(len(differing) - 1, -1, -1):
                if differing[index][0] is not items:
                    break
                differing[index] = (items, at, *differing[index][2:])
        for tender in tender_list:
            amount = sign * over_short[tender.tender_type]
            if amount != 0:
                what = "over" if over_short[tender.tender_type] > 0 else "short"
                items.append(_item(
                    f"Till {what} {tender.tender_type} {day}: counted {cents_to_decimal(tender.counted_cents)}, "
                    f"expected {cents_to_decimal(tender.expected_cents)}",
                    amount, 0, tender.over_short_account, rules.exempt_tax_type, tracking, number))
        paid: dict[str, int] = {}
        lined: dict[str, int] = {}
        numbers = tuple(day_row.ci_invoice_nos)
        for tender in tender_list:
            tender_type, account = tender.tender_type, tender.account_code
            shown = sign * takings[tender_type]
            if shown == 0:
                continue
            if zero_balance or shown < 0:
                # zero-balance: a negative line, the tender as the invoice's balancing entry; sign rule: a
                # tender running against the document, as a positive line
                lined[tender_type] = -shown
                what = "takings" if zero_balance else ("refunds and cash out" if sign > 0 else "taken")
                items.append(tender_line(tender_type, account, -shown, f"{tender_type} {what} {day}", tracking, rules.exempt_tax_type))
                tender_lines.append({"document_key": key, "business_date": day, "branch_code": branch, "tender_type": tender_type,
                                     "account_code": account, "amount_cents": -shown})
            else:
                paid[tender_type] = shown
                reference = payment_key(document_number, tender_type)
                payments.append({
                    "payment_key": reference, "document_key": key, "business_date": day, "branch_code": branch,
                    "endpoint": "Payments", "document_endpoint": endpoint, "document_number": document_number,
                    "tender_type": tender_type, "account_code": account, "amount_cents": shown, "ci_invoice_nos": numbers,
                    "payload": payment_payload(endpoint, document_number, account, day, shown, reference),
                })
        has_document = bool(items) or adjusted
        for tender in tender_list:
            paid_cents, line_cents = paid.get(tender.tender_type, 0), lined.get(tender.tender_type, 0)
            # an invoice line credits its account, a payment into it debits it; a credit note the other way round
            movement = (paid_cents - line_cents) if not credit else (line_cents - paid_cents)
            tender_rows.append({
                "business_date": day, "branch_code": branch, "document_key": key if has_document else None,
                "tender_type": tender.tender_type, "account_code": tender.account_code,
                "expected_cents": int(tender.expected_cents), "counted_cents": int(tender.counted_cents),
                "over_short_cents": over_short[tender.tender_type], "other_process_cents": int(tender.other_process_cents),
                "takings_cents": takings[tender.tender_type], "paid_cents": paid_cents, "line_cents": line_cents,
                "movement_cents": movement,
            })
        if not has_document:
            no_document.append({"business_date": day, "branch_code": branch, "invoice_nos": numbers,
                                "total_cents": content_total, "tax_cents": ci_tax, "reason": NOTHING_TO_POST})
            continue
        total = sum(decimal_to_cents(item["LineAmount"]) for item in items)  # (adjustment pairs add nothing)
        reference = f"CI takings {day}, branch {branch}: {len(numbers)} documents"
        contact = rules.contact_for(branch, day_row.branch_name)
        payload: dict[str, Any] = {
            "Type": "ACCRECCREDIT" if credit else "ACCREC",
            ("CreditNoteNumber" if credit else "InvoiceNumber"): document_number,
            "Reference": reference, "Contact": contact, "Date": day, "Status": rules.status,
            "LineAmountTypes": "Inclusive", "CurrencyCode": rules.currency_code, "LineItems": items,
        }
        if not credit:
            payload["DueDate"] = day
        documents.append({
            "document_key": key, "business_date": day, "branch_code": branch, "endpoint": endpoint,
            "document_type": payload["Type"], "number": document_number, "reference": reference,
            "contact_name": contact["Name"], "status": rules.status, "total_cents": total, "tax_cents": shown_tax,
            "line_count": 0, "ci_invoice_nos": numbers, "payload": payload,
        })
        totals.append({
            "business_date": day, "branch_code": branch, "document_key": key, "number": document_number, "endpoint": endpoint,
            "layout": "zero_balance" if zero_balance else ("credit_note" if credit else "paid"),
            "ci_invoice_count": len(numbers), "ci_total_cents": content_total, "ci_gst_cents": ci_tax,
            "over_short_cents": sum(over_short.values()), "takings_cents": sum(takings.values()),
            "document_total_cents": total, "document_tax_cents": shown_tax,
            "tender_lines_cents": sum(lined.values()), "payments_cents": sum(paid.values()),
        })
    _add_adjustments(differing, document_rules, number)
    for document in documents:
        document["line_count"] = len(document["payload"]["LineItems"])
    return TakingsBooks(
        documents=_documents_frame(documents),
        payments=payments_frame(payments),
        tender_lines=_integer_frame(tender_lines, TENDER_LINE_COLUMNS),
        totals=_integer_frame(totals, TAKINGS_TOTAL_COLUMNS),
        tenders=_integer_frame(tender_rows, TAKINGS_TENDER_COLUMNS),
        no_document=_integer_frame(no_document, NO_DOCUMENT_COLUMNS),
        notices=notices.frame(),
    )


def _add_adjustments(differing: list, document_rules: Any, number: Decimals) -> None:
    """The GST adjustment pairs of every document, made in one call, put where each belongs (after its
    document's content lines, in the order of its groups)."""
    if not differing:
        return
    _, _, ci_taxes, own_taxes, codes, accounts, trackings = (list(column) for column in zip(*differing))
    pairs = gst_adjustments(ci_taxes, own_taxes, codes, accounts, trackings, document_rules, number)
    placed: dict[int, tuple[list, int, list]] = {}
    for (items, at, *_), pair in zip(differing, pairs):
        found = placed.setdefault(id(items), (items, at, []))
        found[2].extend(pair)
    for items, at, lines in placed.values():
        items[at:at] = lines


def _xero_tax(amount_cents: np.ndarray, rate_codes: np.ndarray, rules: TakingsRules) -> np.ndarray:
    return xero_tax_cents(amount_cents, rate_codes, rules.gst_rates, "TakingsRules.gst_rates")


def _item(description: str, amount: int, tax: int, account: str, tax_type: str, tracking: list, number: Decimals) -> dict[str, Any]:
    return {
        "Description": description, "Quantity": number(1, 0), "UnitAmount": number(amount), "LineAmount": number(amount),
        "TaxAmount": number(tax), "AccountCode": account, "TaxType": tax_type, "Tracking": tracking,
    }


def _content_description(group: Any, day: str, option: str, document_rules: Any, document_number: str, notices: Notices) -> str:
    if group.kind == VOUCHERS:
        text = f"{VOUCHERS_SOLD} {day}: {group.codes}"
    elif group.kind == ROUNDING:
        text = f"Cash rounding {day}: {group.codes}"
    else:
        text = f"Takings {day}: {group.codes} ({gst_label(group.rate_code, document_rules)}), {option}"
    if len(text) > DESCRIPTION_LIMIT:
        notices.add([day], None, [None], "description_cut",
                    [f"{document_number}: the description of a takings line ({group.account_code}, {group.tax_type}) has "
                     f"{len(text):,} characters, cut to Xero's {DESCRIPTION_LIMIT:,}"])
        text = text[:DESCRIPTION_LIMIT]
    return text


def _documents_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return _integer_frame([], DOCUMENT_COLUMNS)
    frame = pd.DataFrame(rows, columns=DOCUMENT_COLUMNS)
    return frame.sort_values(["business_date", "document_key"], kind="stable").reset_index(drop=True)


_INTEGER_COLUMNS = {
    "total_cents", "tax_cents", "line_count", "amount_cents", "ci_invoice_count", "ci_total_cents", "ci_gst_cents",
    "over_short_cents", "takings_cents", "document_total_cents", "document_tax_cents", "tender_lines_cents", "payments_cents",
    "expected_cents", "counted_cents", "other_process_cents", "paid_cents", "line_cents", "movement_cents",
}


def _integer_frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    for column in columns:
        if column in _INTEGER_COLUMNS:
            frame[column] = frame[column].astype("int64")
    return frame


def _empty_books() -> TakingsBooks:
    return TakingsBooks(
        documents=_integer_frame([], DOCUMENT_COLUMNS), payments=empty_payments(),
        tender_lines=_integer_frame([], TENDER_LINE_COLUMNS), totals=_integer_frame([], TAKINGS_TOTAL_COLUMNS),
        tenders=_integer_frame([], TAKINGS_TENDER_COLUMNS), no_document=_integer_frame([], NO_DOCUMENT_COLUMNS),
        notices=empty_notices(),
    )


def takings_sales_cents(line_items: list[dict[str, Any]], rules: TakingsRules) -> int:
    """Σ of the lines of a takings document (as sent, or as Xero holds it) that carry CI's takings: sales,
    vouchers sold, cash rounding and GST adjustments, leaving out what the books add beside them: till
    over/short, and tenders made lines (the sign rule, the zero-balance layout). As shown on the document."""
    over_short = {rules.over_short_account, *rules.over_short_accounts.values()} - {None}
    tender_accounts = {account for account in rules.tender_accounts.values() if account}
    total = 0
    for line in line_items:
        account = line.get("AccountCode")
        if account in over_short or account in tender_accounts:
            continue
        if account == rules.voucher_liability_account and not str(line.get("Description") or "").startswith(VOUCHERS_SOLD):
            continue  # a GIFT_VOUCHER tender made a line
        total += decimal_to_cents(line.get("LineAmount") or 0)
    return total


# -- the blocking check of the books before they reach Xero --------------------------------------

CHECK_COLUMNS = ["business_date", "branch_code", "document_key", "check", "message"]


def check_takings_books(validated: ValidatedTakings, books: TakingsBooks, rules: TakingsRules) -> pd.DataFrame:
    """Every way the books could differ from CI, judged from the payloads alone (CHECK_COLUMNS; empty
    when they agree): per document Σ LineAmount = total and Σ TaxAmount = tax; every line's TaxAmount is
    what Xero computes for it; its tracking is the branch's; the payments add up to the total (0.00 and
    none in the zero-balance layout); its tax (with its sign) is CI's GST; and every account the document
    and its payments touch moves by what CI's figures say: a tender's account by the amount counted less
    what another process posts, a sales, voucher or rounding account by CI's lines, the over/short
    account by counted − expected (GST adjustment pairs net to nothing). Every postable branch-day has a
    document or says why not."""
    rate_of = {rules.tax_types[code]: rate for code, rate in rules.gst_rates.items() if code in rules.tax_types}
    problems: list[dict[str, Any]] = []
    payments_of: dict[str, list] = defaultdict(list)
    for payment in books.payments.itertuples(index=False):
        payments_of[payment.document_key].append(payment)
    days = {(row.business_date, row.branch_code): row for row in validated.branch_days.itertuples(index=False) if not row.quarantined}
    tender_days = defaultdict(list)
    for row in validated.tender_days.itertuples(index=False):
        tender_days[(row.business_date, row.branch_code)].append(row)
    # what Xero computes for each (tax type, amount) the documents send, worked out once per rate
    sent: dict[str, set[int]] = defaultdict(set)
    for payload in books.documents["payload"]:
        for item in payload["LineItems"]:
            sent[item["TaxType"]].add(decimal_to_cents(item["LineAmount"]))
    xero_tax: dict[tuple[str, int], int] = {}
    for tax_type, found in sent.items():
        if tax_type in rate_of:
            values = sorted(found)
            xero_tax.update(zip(((tax_type, value) for value in values),
                                inclusive_tax_cents(np.array(values, dtype=np.int64), rate_of[tax_type]).tolist()))
    content: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group in _content_groups(validated, rules).itertuples(index=False):
        content[(group.business_date, group.branch_code)][group.account_code] += int(group.amount)
    seen = set()
    for document in books.documents.itertuples(index=False):
        day, branch, key = document.business_date, document.branch_code, document.document_key
        seen.add((day, branch))

        def problem(check: str, message: str) -> None:
            problems.append({"business_date": day, "branch_code": branch, "document_key": key, "check": check, "message": message})

        items = document.payload["LineItems"]
        amounts = [decimal_to_cents(item["LineAmount"]) for item in items]
        taxes = [decimal_to_cents(item["TaxAmount"]) for item in items]
        if sum(amounts) != document.total_cents or sum(taxes) != document.tax_cents:
            problem("totals", f"lines {cents_to_decimal(sum(amounts))} / tax {cents_to_decimal(sum(taxes))}, document "
                              f"{cents_to_decimal(document.total_cents)} / {cents_to_decimal(document.tax_cents)}")
        for item, amount, tax in zip(items, amounts, taxes):
            own = xero_tax.get((item["TaxType"], amount))
            if own != tax:
                problem("line_tax", f"{item['Description']}: TaxAmount {cents_to_decimal(tax)}, Xero computes {own}")
            if not item.get("Tracking") or item["Tracking"][0].get("Name") != rules.tracking_category:
                problem("tracking", f"{item['Description']}: no branch tracking")
        paid = sum(p.amount_cents for p in payments_of.get(key, []))
        if rules.zero_balance:
            if document.total_cents != 0 or paid:
                problem("zero_balance", f"total {cents_to_decimal(document.total_cents)}, payments {cents_to_decimal(paid)}")
        elif paid != document.total_cents:
            problem("paid", f"payments {cents_to_decimal(paid)} ≠ total {cents_to_decimal(document.total_cents)}")
        ci = days.get((day, branch))
        if ci is None:
            problem("branch_day", "no postable branch-day of CI behind the document")
            continue
        sign = -1 if document.endpoint == "CreditNotes" else 1
        if sign * document.tax_cents != ci.total_gst_cents:
            problem("ci_gst", f"tax {cents_to_decimal(sign * document.tax_cents)}, CI GST {cents_to_decimal(ci.total_gst_cents)}")
        # each account as the payload moves it (debit +): an invoice's line credits its account, a payment
        # debits the account it goes into; a credit note the other way round
        moved: dict[str, int] = defaultdict(int)
        for item, amount in zip(items, amounts):
            moved[item["AccountCode"]] -= sign * amount
        for payment in payments_of.get(key, []):
            moved[payment.account_code] += sign * payment.amount_cents
        # … and as CI says it must move: by the takings part of what each tender counted, less the
        # sales, vouchers and rounding credited to it and the over/short it takes
        expected: dict[str, int] = defaultdict(int)
        for tender in tender_days[(day, branch)]:
            expected[tender.account_code] += int(tender.counted_cents) - int(tender.other_process_cents)
            expected[tender.over_short_account or ""] -= int(tender.counted_cents) - int(tender.expected_cents)
        for account, amount in content.get((day, branch), {}).items():
            expected[account] -= amount
        for account in sorted(set(moved) | set(expected)):
            if moved.get(account, 0) != expected.get(account, 0):
                problem("account_movement", f"account {account} moves by {cents_to_decimal(moved.get(account, 0))}; "
                                            f"CI's figures move it by {cents_to_decimal(expected.get(account, 0))}")
    covered = seen | {(row.business_date, row.branch_code) for row in books.no_document.itertuples(index=False)}
    for day, branch in sorted(set(days) - covered, key=str):
        problems.append({"business_date": day, "branch_code": branch, "document_key": None, "check": "missing_document",
                         "message": "a postable branch-day has no document and no reason"})
    return pd.DataFrame(problems, columns=CHECK_COLUMNS)


__all__ = [
    "BRANCH_DAY_COLUMNS", "CHECK_COLUMNS", "EXCLUDED_DOCUMENT_COLUMNS", "NO_DOCUMENT_COLUMNS", "PAYMENT_COLUMNS",
    "TAKINGS_QUARANTINE_COLUMNS", "TAKINGS_TENDER_COLUMNS", "TAKINGS_TOTAL_COLUMNS", "TENDER_DAY_COLUMNS", "TakingsBooks",
    "TakingsRules", "ValidatedTakings", "build_takings_documents", "check_takings_books", "takings_document_key",
    "takings_number", "takings_source_evidence", "validate_takings",
]

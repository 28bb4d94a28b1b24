"""End-of-day takings: the site's rules, and which branch-days of CI's POS sales can be posted.

The unit of takings is the branch-day (one Xero document per branch per trading day, processes.md §1),
so a problem anywhere in a branch-day holds the whole branch-day back: posting part of a day would
misstate its tenders, and so the clearing accounts. Each problem is one quarantine row naming the CI
document (or cash-up row), the branch and the day, with the figures; the other branch-days still post.

What is not takings is excluded, never quarantined: E-Retailer documents (their own process), account
customer documents, and POS documents with an ACCOUNT tender (the account-customer process posts them,
and pays their other tenders on that invoice). HELD and VOID documents are skipped, kept as evidence.

Quarantined (check: reason):
- every problem validate_sales_documents finds in a POS document (the CI contract, totals, mapping of
  analysis, GST and branch codes, repeated headers, excess decimals);
- unmapped_tender_type: a tender type with no Xero account;
- missing_cash_up: a tender with money and no ci_cash_ups row (unless missing_cash_up is
  counted_is_expected);
- tenders_not_documents: Σ tenders ≠ Σ documents of the branch-day (with both figures, and the
  documents whose own tenders do not add up);
- cash_up_expected: a cash-up's expected ≠ Σ that day's tenders of its type (with both figures);
- unmapped_over_short, unmapped_voucher_liability, unmapped_rounding: an amount with nowhere to go;
- voucher_gst: a gift voucher sale line on which CI charged GST (unless voucher_gst is taxed_at_sale);
  rounding_gst: a cash rounding line with GST;
- duplicate_tender, duplicate_cash_up, excess_decimals: the views repeat a row, or hold a value with
  more decimals than the contract gives it;
- unmapped_branch_code: a branch-day of cash-ups only whose branch has no tracking option.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from ..ci.extract import empty_orphan_tenders
from ..money import cents_to_decimal
from .rules import NZ_GST_RATES, NZ_TAX_TYPES, EretailerRules
from .schemas import NOTICE_COLUMNS, combined_notices, empty_notices, notices_frame
from .tenders import ACCOUNT_TENDER, TenderMapping
from .validation import SKIPPED_COLUMNS, UNMAPPED_COLUMNS, empty_orphan_lines, validate_sales_documents

POS = "POS"
NOT_FINAL = ("HELD", "VOID")
# one row per problem; invoice_no / line_no / tender_type name what it is about where there is one
TAKINGS_QUARANTINE_COLUMNS = ["business_date", "branch_code", "invoice_no", "line_no", "tender_type", "check", "reason"]
# every branch-day the read holds: CI's takings figures, and whether it can be posted
BRANCH_DAY_COLUMNS = [
    "business_date", "branch_code", "branch_name", "ci_invoice_nos", "total_incl_cents", "total_gst_cents",
    "counted_cents", "over_short_cents", "quarantined",
]
# one row per branch, day and tender type of the postable branch-days: what the cash-up says, and the
# part of it another process posts (tenders of POS documents paid ON ACCOUNT)
TENDER_DAY_COLUMNS = [
    "business_date", "branch_code", "tender_type", "account_code", "over_short_account", "expected_cents",
    "counted_cents", "other_process_cents", "counted_is_expected",
]
EXCLUDED_DOCUMENT_COLUMNS = [
    "business_date", "branch_code", "invoice_no", "source", "total_incl_cents", "total_gst_cents", "process", "reason",
]
_PLACEHOLDER = "\0unset"  # an account a validation rule reports itself, never sent


@dataclass(frozen=True)
class TakingsRules:
    """The site's rules for end-of-day takings, as plain data (a settings section fills them).

    The sales mapping is the E-Retailer's (analysis code → account, gst_code → tax type, rates,
    tolerance, tracking). Tenders: tender_accounts (tender_type → clearing or bank account; GIFT_VOUCHER
    defaults to voucher_liability_account); over/short to over_short_account, or per tender to
    over_short_accounts[tender]; lines whose analysis code is in rounding_analysis_codes to
    rounding_account; lines whose analysis code is in voucher_analysis_codes (gift vouchers sold) to
    voucher_liability_account, tax type NONE. The takings contact of a branch is
    takings_contacts[branch] ({"ContactNumber": …, "Name": …}), else contact_number_format /
    contact_name_format ({branch_code}, {branch_name}); Xero finds contacts by ContactNumber.

    status DRAFT needs zero_balance (Xero pays only AUTHORISED documents): the takings invoice then
    carries the tenders as negative lines to their accounts, totals 0.00 and has no payments.
    missing_cash_up: quarantine a branch-day whose tender has money but no cash-up row, or take
    counted = expected (= Σ that day's tenders of the type). voucher_gst: quarantine a voucher sale line
    on which CI charged GST, or post it taxed_at_sale (to the liability account with its tax type and
    CI's GST)."""

    sales_accounts: Mapping[str, str] = field(default_factory=dict)
    tax_types: Mapping[str, str] = field(default_factory=lambda: dict(NZ_TAX_TYPES))
    gst_rates: Mapping[str, Decimal] = field(default_factory=lambda: dict(NZ_GST_RATES))
    gst_tolerance_cents: int = 2
    tracking_category: str = "CI Branches"
    tracking_options: Mapping[str, str] = field(default_factory=dict)
    currency_code: str = "NZD"
    tender_accounts: Mapping[str, str] = field(default_factory=dict)
    over_short_account: str | None = None
    over_short_accounts: Mapping[str, str] = field(default_factory=dict)
    rounding_account: str | None = None
    rounding_analysis_codes: tuple[str, ...] = ()
    voucher_analysis_codes: tuple[str, ...] = ()
    voucher_liability_account: str | None = None
    voucher_gst: Literal["quarantine", "taxed_at_sale"] = "quarantine"
    takings_contacts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    contact_number_format: str = "TAKINGS-{branch_code}"
    contact_name_format: str = "Takings {branch_name}"
    status: Literal["DRAFT", "AUTHORISED"] = "AUTHORISED"
    zero_balance: bool = False
    missing_cash_up: Literal["quarantine", "counted_is_expected"] = "quarantine"
    number_prefix: str = "EOD-"
    credit_note_prefix: str = "EODCR-"

    def __post_init__(self) -> None:
        if self.status == "DRAFT" and not self.zero_balance:
            raise ValueError("takings in DRAFT need zero_balance: Xero pays only AUTHORISED documents, so a DRAFT "
                             "takings invoice can only carry its tenders as lines (total 0.00)")
        both = sorted(set(self.rounding_analysis_codes) & set(self.voucher_analysis_codes))
        if both:
            raise ValueError(f"analysis code(s) {both} cannot be both cash rounding and gift vouchers")
        if self.number_prefix == self.credit_note_prefix:
            raise ValueError("the takings credit note needs a number prefix of its own")

    @property
    def exempt_tax_type(self) -> str:
        return self.tax_types.get("E", "NONE")

    def tender_mapping(self) -> TenderMapping:
        return TenderMapping(accounts=dict(self.tender_accounts), voucher_liability_account=self.voucher_liability_account)

    def over_short_account_for(self, tender_type: str) -> str | None:
        return self.over_short_accounts.get(tender_type) or self.over_short_account or None

    def document_rules(self) -> EretailerRules:
        """The rules validate_sales_documents judges a POS document by: the sales mapping, with the
        voucher and rounding codes mapped to their accounts (or a placeholder that validate_takings
        reports as a missing setting of its own)."""
        accounts = dict(self.sales_accounts)
        for code in self.voucher_analysis_codes:
            accounts[code] = self.voucher_liability_account or _PLACEHOLDER
        for code in self.rounding_analysis_codes:
            accounts[code] = self.rounding_account or _PLACEHOLDER
        return EretailerRules(
            mode="summary", summary_grouping="branch_day", status=self.status, sales_accounts=accounts,
            tax_types=dict(self.tax_types), gst_rates=dict(self.gst_rates), tracking_category=self.tracking_category,
            tracking_options=dict(self.tracking_options), currency_code=self.currency_code,
            gst_tolerance_cents=self.gst_tolerance_cents,
        )

    def contact_for(self, branch_code: str, branch_name: Any) -> dict[str, str]:
        """The branch's takings contact, keyed by ContactNumber (Xero's unique key for contacts)."""
        configured = self.takings_contacts.get(branch_code)
        name = branch_name if isinstance(branch_name, str) and branch_name.strip() else branch_code
        if configured:
            contact = {key: str(value) for key, value in configured.items() if key in ("ContactNumber", "Name") and value}
            contact.setdefault("ContactNumber", self.contact_number_format.format(branch_code=branch_code, branch_name=name))
            contact.setdefault("Name", self.contact_name_format.format(branch_code=branch_code, branch_name=name))
        else:
            contact = {"ContactNumber": self.contact_number_format.format(branch_code=branch_code, branch_name=name),
                       "Name": self.contact_name_format.format(branch_code=branch_code, branch_name=name)}
        return {"ContactNumber": contact["ContactNumber"][:50], "Name": contact["Name"][:255]}


@dataclass(frozen=True)
class ValidatedTakings:
    """The takings a read holds, split into what can be posted and what cannot, per branch-day.

    invoices / lines / tenders: the takings documents (FINAL POS documents without an ACCOUNT tender)
      of the postable branch-days, their lines and their tenders;
    tender_days (TENDER_DAY_COLUMNS): per postable branch-day and tender type, the cash-up;
    branch_days (BRANCH_DAY_COLUMNS): every branch-day of the read (postable or quarantined);
    quarantine (TAKINGS_QUARANTINE_COLUMNS): one row per problem of a quarantined branch-day;
    skipped (validation.SKIPPED_COLUMNS): HELD and VOID POS documents (evidence, never posted);
    excluded (EXCLUDED_DOCUMENT_COLUMNS): documents of other processes the read held;
    unmapped (validation.UNMAPPED_COLUMNS): codes the mapping lacks (kinds analysis_code, gst_code,
      branch_code, tender_type, over_short_account, voucher_liability_account, rounding_account);
    orphan_lines, orphan_tenders: rows read without their document (never posted, listed);
    notices (NOTICE_COLUMNS): said, nothing held back for it."""

    invoices: pd.DataFrame
    lines: pd.DataFrame
    tenders: pd.DataFrame
    tender_days: pd.DataFrame
    branch_days: pd.DataFrame
    quarantine: pd.DataFrame
    skipped: pd.DataFrame
    excluded: pd.DataFrame
    unmapped: pd.DataFrame
    orphan_lines: pd.DataFrame = field(default_factory=empty_orphan_lines)
    orphan_tenders: pd.DataFrame = field(default_factory=empty_orphan_tenders)
    notices: pd.DataFrame = field(default_factory=empty_notices)

    @property
    def quarantined_days(self) -> pd.DataFrame:
        """The branch-days held back (BRANCH_DAY_COLUMNS), with CI's figures for the reconciliation."""
        return self.branch_days[self.branch_days["quarantined"].to_numpy(dtype=bool)].reset_index(drop=True)

    @property
    def unmapped_codes(self) -> dict[str, list[str]]:
        return {str(kind): sorted(set(group["code"].astype(str))) for kind, group in self.unmapped.groupby("kind", sort=True)}


class _Quarantine:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.unmapped: list[dict[str, Any]] = []

    def add(self, day: Any, branch: Any, check: str, reason: str, invoice_no: Any = None, line_no: Any = None,
            tender_type: Any = None) -> None:
        self.rows.append({"business_date": day, "branch_code": branch, "invoice_no": invoice_no, "line_no": line_no,
                          "tender_type": tender_type, "check": check, "reason": reason})

    def unmapped_code(self, day: Any, kind: str, code: Any, invoice_no: Any = None) -> None:
        self.unmapped.append({"business_date": day, "kind": kind, "code": code, "invoice_no": invoice_no})

    def days(self) -> set[tuple[Any, Any]]:
        return {(row["business_date"], row["branch_code"]) for row in self.rows}


def _money(cents: int) -> str:
    return str(cents_to_decimal(int(cents)))


def _key(day: Any, branch: Any) -> tuple[Any, Any]:
    return (day, branch if isinstance(branch, str) else None)


def validate_takings(read: Any, rules: TakingsRules) -> ValidatedTakings:
    """Split a read (extract.SalesWithTenders; documents of any source) into postable branch-days and
    quarantined ones."""
    invoices = read.documents.invoices
    excluded = [_excluded(invoices[(invoices["source"] != POS).to_numpy(dtype=bool)], "not a POS document")]
    documents = read.of_source(POS).documents
    checked = validate_sales_documents(documents, rules.document_rules())
    quarantine = _Quarantine()
    notices = [checked.notices]

    # the FINAL POS documents (postable or quarantined by their own checks), one header row each
    doc_problems = checked.quarantine
    final_headers = pd.concat([
        checked.invoices[["invoice_no", "business_date", "branch_code", "total_incl_cents", "total_gst_cents"]],
        doc_problems.drop_duplicates("invoice_no")[["invoice_no", "business_date", "branch_code", "total_incl_cents", "total_gst_cents"]],
    ], ignore_index=True)
    final_numbers = set(final_headers["invoice_no"].tolist())
    tenders = read.tenders
    final_tenders = tenders[tenders["invoice_no"].isin(final_numbers).to_numpy(dtype=bool)].reset_index(drop=True)
    on_account = set(final_tenders.loc[final_tenders["tender_type"] == ACCOUNT_TENDER, "invoice_no"].tolist())
    account_headers = final_headers[final_headers["invoice_no"].isin(on_account)]
    excluded.append(_excluded_headers(account_headers, read.documents.invoices, "account customers",
                                      "paid ON ACCOUNT: the account-customer process posts it (and pays its other tenders)"))
    takings_headers = final_headers[~final_headers["invoice_no"].isin(on_account)].reset_index(drop=True)

    # problems of the takings documents themselves hold their branch-days back
    for row in doc_problems[~doc_problems["invoice_no"].isin(on_account)].itertuples(index=False):
        quarantine.add(row.business_date, _key(row.business_date, row.branch_code)[1], row.check, row.reason,
                       invoice_no=row.invoice_no, line_no=None if pd.isna(row.line_no) else int(row.line_no))
    unmapped_docs = checked.unmapped[~checked.unmapped["invoice_no"].isin(on_account)]
    quarantine.unmapped.extend(unmapped_docs.to_dict("records"))

    branch_names = _branch_names(read, invoices)
    cash_ups = read.cash_ups
    cash_ups = _without_account_rows(cash_ups, notices)

    days = _branch_day_figures(takings_headers, final_tenders, on_account, cash_ups)
    _check_tenders(days, final_tenders, on_account, takings_headers, quarantine)
    _check_cash_ups(days, cash_ups, rules, quarantine)
    _check_lines(checked, takings_headers, rules, quarantine)
    _check_branches(days, branch_names, takings_headers, rules, quarantine)
    _check_excess_decimals(getattr(read, "excess_decimals", None), quarantine)

    held = quarantine.days()
    branch_days = _branch_days_frame(days, branch_names, held)
    postable_keys = {key for key in days if key not in held}
    keep = np.array([(_key(day, branch) in postable_keys) and number not in on_account for number, day, branch in zip(
        checked.invoices["invoice_no"], checked.invoices["business_date"], checked.invoices["branch_code"])], dtype=bool)
    postable = checked.invoices[keep].reset_index(drop=True)
    numbers = set(postable["invoice_no"].tolist())
    tender_days = _tender_days_frame(days, postable_keys, rules)
    unmapped = (pd.DataFrame(quarantine.unmapped, columns=UNMAPPED_COLUMNS).drop_duplicates(["business_date", "kind", "code"])
                .reset_index(drop=True) if quarantine.unmapped else pd.DataFrame(columns=UNMAPPED_COLUMNS))
    quarantine_frame = pd.DataFrame(quarantine.rows, columns=TAKINGS_QUARANTINE_COLUMNS)
    quarantine_frame["line_no"] = quarantine_frame["line_no"].astype("Int64")
    quarantine_frame = quarantine_frame.sort_values(
        ["business_date", "branch_code", "invoice_no", "line_no", "check"], na_position="first", kind="stable"
    ).reset_index(drop=True)
    parts = [part for part in excluded if len(part)]
    excluded_frame = (pd.concat(parts, ignore_index=True) if parts else _excluded(invoices.iloc[0:0], ""))
    return ValidatedTakings(
        invoices=postable,
        lines=_of(checked.lines, numbers),
        tenders=_of(final_tenders, numbers),
        tender_days=tender_days,
        branch_days=branch_days,
        quarantine=quarantine_frame,
        skipped=checked.skipped[SKIPPED_COLUMNS],
        excluded=excluded_frame.reset_index(drop=True),
        unmapped=unmapped,
        orphan_lines=checked.orphan_lines,
        orphan_tenders=getattr(read, "orphan_tenders", empty_orphan_tenders()),
        notices=combined_notices(notices),
    )


def _of(frame: pd.DataFrame, numbers: set) -> pd.DataFrame:
    return frame[frame["invoice_no"].isin(numbers).to_numpy(dtype=bool)].reset_index(drop=True)


def _excluded(invoices: pd.DataFrame, reason: str) -> pd.DataFrame:
    """Documents of other sources: whose process they are, and why takings leave them."""
    process = invoices["source"].map({"ERETAILER": "E-Retailer", "ACCOUNT": "account customers"}).fillna("none")
    reasons = invoices["source"].map({
        "ERETAILER": "an E-Retailer document: the E-Retailer process posts it",
        "ACCOUNT": "an account customer document: the account-customer process posts it",
    }).fillna(f"{reason}: source is not ERETAILER, ACCOUNT or POS")
    return pd.DataFrame({
        "business_date": invoices["business_date"].to_numpy(dtype=object),
        "branch_code": invoices["branch_code"].to_numpy(dtype=object),
        "invoice_no": invoices["invoice_no"].to_numpy(dtype=object),
        "source": invoices["source"].to_numpy(dtype=object),
        "total_incl_cents": invoices["total_incl_cents"].astype("Int64").array,
        "total_gst_cents": invoices["total_gst_cents"].astype("Int64").array,
        "process": process.to_numpy(dtype=object),
        "reason": reasons.to_numpy(dtype=object),
    }, columns=EXCLUDED_DOCUMENT_COLUMNS)


def _excluded_headers(headers: pd.DataFrame, invoices: pd.DataFrame, process: str, reason: str) -> pd.DataFrame:
    frame = _excluded(invoices[invoices["invoice_no"].isin(set(headers["invoice_no"]))].drop_duplicates("invoice_no"), "")
    frame["process"] = process
    frame["reason"] = frame["invoice_no"].astype(str) + ": " + reason
    return frame


def _branch_names(read: Any, invoices: pd.DataFrame) -> dict[str, Any]:
    names: dict[str, Any] = {}
    branches = getattr(read, "branches", None)
    if branches is not None and len(branches):
        names.update(zip(branches["branch_code"].tolist(), branches["branch_name"].tolist()))
    for code, name in zip(invoices["branch_code"].tolist(), invoices["branch_name"].tolist()):
        if isinstance(code, str) and isinstance(name, str):
            names.setdefault(code, name)
    return names


def _without_account_rows(cash_ups: pd.DataFrame, notices: list[pd.DataFrame]) -> pd.DataFrame:
    """Cash-ups of the ACCOUNT tender are not money in a till: left out, with a notice."""
    account = (cash_ups["tender_type"] == ACCOUNT_TENDER).to_numpy(dtype=bool)
    if account.any():
        rows = cash_ups[account]
        notices.append(notices_frame(
            rows["business_date"], None, [None] * len(rows), "account_cash_up",
            [f"cash-up {branch} {day} ACCOUNT (expected {_money(expected)}, counted {_money(counted)}): charges to "
             "account are not money in the till; the account-customer process posts them"
             for branch, day, expected, counted in zip(rows["branch_code"], rows["business_date"],
                                                       rows["expected_cents"], rows["counted_cents"])],
        ))
    return cash_ups[~account].reset_index(drop=True)


@dataclass
class _Day:
    """What one branch-day holds."""

    numbers: list[str] = field(default_factory=list)  # its takings documents
    total: int = 0
    gst: int = 0
    tendered: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # takings documents' tenders
    all_tendered: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # every FINAL POS document's
    has_money: set[str] = field(default_factory=set)  # tender types with a non-zero tender (any FINAL POS document)
    takings_money: set[str] = field(default_factory=set)  # … on a takings document
    cash_ups: dict[str, tuple[int, int]] = field(default_factory=dict)  # tender → (expected, counted)
    counted_is_expected: set[str] = field(default_factory=set)


def _branch_day_figures(takings: pd.DataFrame, tenders: pd.DataFrame, on_account: set, cash_ups: pd.DataFrame) -> dict:
    days: dict[tuple[Any, Any], _Day] = defaultdict(_Day)
    for number, day, branch, total, gst in zip(takings["invoice_no"], takings["business_date"], takings["branch_code"],
                                               takings["total_incl_cents"], takings["total_gst_cents"]):
        found = days[_key(day, branch)]
        found.numbers.append(number)
        found.total += int(total)
        found.gst += int(gst)
    for number, day, branch, tender_type, amount in zip(tenders["invoice_no"], tenders["business_date"], tenders["branch_code"],
                                                        tenders["tender_type"], tenders["amount_cents"]):
        if tender_type == ACCOUNT_TENDER:
            continue
        found = days[_key(day, branch)]
        found.all_tendered[tender_type] += int(amount)
        if amount != 0:
            found.has_money.add(tender_type)
        if number not in on_account:
            found.tendered[tender_type] += int(amount)
            if amount != 0:
                found.takings_money.add(tender_type)
    for branch, day, tender_type, expected, counted in zip(cash_ups["branch_code"], cash_ups["business_date"],
                                                           cash_ups["tender_type"], cash_ups["expected_cents"],
                                                           cash_ups["counted_cents"]):
        found = days[_key(day, branch)]
        if tender_type not in found.cash_ups:  # a repeated row is quarantined (_check_cash_ups)
            found.cash_ups[tender_type] = (int(expected), int(counted))
    for found in days.values():
        found.numbers.sort()
    return dict(days)


def _check_tenders(days: dict, tenders: pd.DataFrame, on_account: set, takings: pd.DataFrame, quarantine: _Quarantine) -> None:
    """Σ tenders = Σ documents per branch-day (takings documents); each tender row once."""
    repeated = tenders[tenders.duplicated(["invoice_no", "tender_no"], keep=False).to_numpy(dtype=bool)]
    for (number, tender_no), group in repeated.groupby(["invoice_no", "tender_no"], sort=True):
        row = group.iloc[0]
        if number in on_account:
            continue
        quarantine.add(row["business_date"], _key(row["business_date"], row["branch_code"])[1], "duplicate_tender",
                       f"{number} tender {tender_no}: ci_sales_tenders returned {len(group)} rows for this one tender "
                       "(a join matching twice?): which is CI's cannot be told, so the branch-day waits until the view "
                       "returns it once", invoice_no=number, tender_type=row["tender_type"])
    own = tenders[~tenders["invoice_no"].isin(on_account).to_numpy(dtype=bool)]
    paid = own.groupby("invoice_no")["amount_cents"].sum() if len(own) else pd.Series(dtype="int64")
    total_of = dict(zip(takings["invoice_no"], takings["total_incl_cents"].astype("int64")))
    for (day, branch), found in days.items():
        tendered = sum(found.tendered.values())
        if tendered == found.total:
            continue
        odd = [f"{number} (tenders {_money(int(paid.get(number, 0)))}, total {_money(total_of[number])})"
               for number in found.numbers if int(paid.get(number, 0)) != total_of[number]]
        quarantine.add(day, branch, "tenders_not_documents", (
            f"branch {branch} {day}: the tenders add up to {_money(tendered)} but the documents to {_money(found.total)} "
            f"(CI disagrees with itself by {_money(tendered - found.total)})"
            + (f"; documents whose tenders differ from their total: {', '.join(odd)}" if odd else "")))


def _check_cash_ups(days: dict, cash_ups: pd.DataFrame, rules: TakingsRules, quarantine: _Quarantine) -> None:
    """A cash-up for each tender with money; expected = Σ tenders; somewhere to put every amount."""
    repeated = cash_ups[cash_ups.duplicated(["branch_code", "business_date", "tender_type"], keep=False).to_numpy(dtype=bool)]
    for (branch, day, tender_type), group in repeated.groupby(["branch_code", "business_date", "tender_type"], sort=True):
        quarantine.add(day, branch, "duplicate_cash_up",
                       f"cash-up {branch} {day} {tender_type}: ci_cash_ups returned {len(group)} rows for this one tender "
                       "type: which is CI's cannot be told, so the branch-day waits until the view returns it once",
                       tender_type=tender_type)
    mapping = rules.tender_mapping()
    for (day, branch), found in days.items():
        where = f"branch {branch} {day}"
        for tender_type in sorted(found.has_money - set(found.cash_ups), key=str):
            if rules.missing_cash_up == "counted_is_expected":
                amount = found.all_tendered[tender_type]
                found.cash_ups[tender_type] = (amount, amount)
                found.counted_is_expected.add(tender_type)
                continue
            numbers = sorted(found.numbers)
            quarantine.add(day, branch, "missing_cash_up", (
                f"{where}: tender {tender_type} took {_money(found.all_tendered[tender_type])} but ci_cash_ups has no row for it "
                f"(the till was not cashed up?): counted is not guessed (missing_cash_up: quarantine)"
                + (f"; documents: {', '.join(numbers[:20])}{' …' if len(numbers) > 20 else ''}" if numbers else "")),
                tender_type=tender_type)
        for tender_type, (expected, counted) in sorted(found.cash_ups.items(), key=lambda item: str(item[0])):
            tendered = found.all_tendered.get(tender_type, 0)
            if expected != tendered:
                quarantine.add(day, branch, "cash_up_expected", (
                    f"{where}: the cash-up of {tender_type} expects {_money(expected)} but that day's {tender_type} tenders "
                    f"add up to {_money(tendered)} (CI disagrees with itself by {_money(expected - tendered)})"),
                    tender_type=tender_type)
            if counted != expected and rules.over_short_account_for(tender_type) is None:
                quarantine.add(day, branch, "unmapped_over_short", (
                    f"{where}: {tender_type} is {'over' if counted > expected else 'short'} by {_money(abs(counted - expected))} "
                    f"(counted {_money(counted)}, expected {_money(expected)}) and no over/short account is set "
                    f"(over_short_account or over_short_accounts.{tender_type})"), tender_type=tender_type)
                quarantine.unmapped_code(day, "over_short_account", tender_type)
        for tender_type in sorted(set(found.cash_ups) | found.takings_money, key=str):
            if mapping.account_for(tender_type) is not None:
                continue
            other = found.all_tendered.get(tender_type, 0) - found.tendered.get(tender_type, 0)
            counted = found.cash_ups.get(tender_type, (0, None))[1]
            if tender_type not in found.takings_money and (counted is None or counted == other):
                continue  # nothing of it is takings: another process posts all of it
            figure = f"counted {_money(counted)}" if counted is not None else f"took {_money(found.tendered.get(tender_type, 0))}"
            quarantine.add(day, branch, "unmapped_tender_type",
                           f"{where}: tender {tender_type} ({figure}) has no Xero account ({mapping.setting_for(tender_type)})",
                           tender_type=tender_type)
            quarantine.unmapped_code(day, "tender_type", tender_type)


def _check_lines(checked: Any, takings: pd.DataFrame, rules: TakingsRules, quarantine: _Quarantine) -> None:
    """Gift voucher and cash rounding lines: somewhere to go, and no GST where none belongs."""
    codes = set(rules.voucher_analysis_codes) | set(rules.rounding_analysis_codes)
    if not codes:
        return
    lines = checked.lines
    special = lines[lines["analysis_code"].isin(codes).to_numpy(dtype=bool)]
    if special.empty:
        return
    branch_of = dict(zip(takings["invoice_no"], takings["branch_code"]))
    vouchers = set(rules.voucher_analysis_codes)
    for row in special.itertuples(index=False):
        if row.invoice_no not in branch_of:
            continue  # paid on account: not takings
        branch = _key(row.business_date, branch_of[row.invoice_no])[1]
        where = f"{row.invoice_no} line {row.line_no}"
        voucher = row.analysis_code in vouchers
        if voucher and not rules.voucher_liability_account:
            quarantine.add(row.business_date, branch, "unmapped_voucher_liability",
                           f"{where}: a gift voucher sold ({row.analysis_code}, {_money(row.line_total_incl_cents)}) and no "
                           "voucher liability account is set (voucher_liability_account)",
                           invoice_no=row.invoice_no, line_no=int(row.line_no))
            quarantine.unmapped_code(row.business_date, "voucher_liability_account", row.analysis_code, row.invoice_no)
        if not voucher and not rules.rounding_account:
            quarantine.add(row.business_date, branch, "unmapped_rounding",
                           f"{where}: cash rounding ({row.analysis_code}, {_money(row.line_total_incl_cents)}) and no "
                           "rounding account is set (rounding_account)", invoice_no=row.invoice_no, line_no=int(row.line_no))
            quarantine.unmapped_code(row.business_date, "rounding_account", row.analysis_code, row.invoice_no)
        if int(row.line_gst_cents) != 0:
            if voucher and rules.voucher_gst == "taxed_at_sale":
                continue
            if voucher:
                quarantine.add(row.business_date, branch, "voucher_gst", (
                    f"{where}: a gift voucher sold ({_money(row.line_total_incl_cents)}) on which CI charged GST "
                    f"{_money(row.line_gst_cents)}: NZ taxes a voucher when it is redeemed, so the sale goes to the liability "
                    "without GST; an accountant decides (voucher_gst: taxed_at_sale posts it as CI charged it)"),
                    invoice_no=row.invoice_no, line_no=int(row.line_no))
            else:
                quarantine.add(row.business_date, branch, "rounding_gst",
                               f"{where}: cash rounding {_money(row.line_total_incl_cents)} with GST {_money(row.line_gst_cents)}: "
                               "rounding carries no GST", invoice_no=row.invoice_no, line_no=int(row.line_no))


def _check_branches(days: dict, names: dict, takings: pd.DataFrame, rules: TakingsRules, quarantine: _Quarantine) -> None:
    """A branch-day with no document (cash-ups only) still needs its branch's tracking option; those
    with documents are judged with them (validate_sales_documents)."""
    with_documents = {_key(day, branch) for day, branch in zip(takings["business_date"], takings["branch_code"])}
    for (day, branch), found in days.items():
        if (day, branch) in with_documents:
            continue
        if branch is None:
            quarantine.add(day, branch, "missing_branch", f"{day}: cash-up rows without a branch_code")
        elif names.get(branch) is None and branch not in rules.tracking_options:
            quarantine.add(day, branch, "unmapped_branch_code",
                           f"branch {branch} {day}: cash-ups of a branch that is not in ci_branches and has no tracking "
                           "option (tracking.branch_options)")
            quarantine.unmapped_code(day, "branch_code", branch)


def _check_excess_decimals(found: pd.DataFrame | None, quarantine: _Quarantine) -> None:
    if found is None or found.empty:
        return
    for row in found.itertuples(index=False):
        quarantine.add(row.business_date, _key(row.business_date, row.branch_code)[1], "excess_decimals", row.reason,
                       invoice_no=row.invoice_no, tender_type=row.tender_type)


def _branch_days_frame(days: dict, names: dict, held: set) -> pd.DataFrame:
    rows = []
    for (day, branch), found in sorted(days.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))):
        counted = sum(counted for _, counted in found.cash_ups.values())
        over_short = sum(counted - expected for expected, counted in found.cash_ups.values())
        rows.append({
            "business_date": day, "branch_code": branch, "branch_name": names.get(branch),
            "ci_invoice_nos": tuple(found.numbers), "total_incl_cents": found.total, "total_gst_cents": found.gst,
            "counted_cents": counted, "over_short_cents": over_short, "quarantined": (day, branch) in held,
        })
    frame = pd.DataFrame(rows, columns=BRANCH_DAY_COLUMNS)
    for column in ("total_incl_cents", "total_gst_cents", "counted_cents", "over_short_cents"):
        frame[column] = frame[column].astype("int64")
    frame["quarantined"] = frame["quarantined"].astype(bool)
    return frame


def _tender_days_frame(days: dict, postable: set, rules: TakingsRules) -> pd.DataFrame:
    mapping = rules.tender_mapping()
    rows = []
    for (day, branch), found in sorted(days.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))):
        if (day, branch) not in postable:
            continue
        for tender_type, (expected, counted) in sorted(found.cash_ups.items(), key=lambda item: str(item[0])):
            rows.append({
                "business_date": day, "branch_code": branch, "tender_type": tender_type,
                "account_code": mapping.account_for(tender_type), "over_short_account": rules.over_short_account_for(tender_type),
                "expected_cents": expected, "counted_cents": counted,
                "other_process_cents": found.all_tendered.get(tender_type, 0) - found.tendered.get(tender_type, 0),
                "counted_is_expected": tender_type in found.counted_is_expected,
            })
    frame = pd.DataFrame(rows, columns=TENDER_DAY_COLUMNS)
    for column in ("expected_cents", "counted_cents", "other_process_cents"):
        frame[column] = frame[column].astype("int64")
    frame["counted_is_expected"] = frame["counted_is_expected"].astype(bool)
    return frame


def takings_source_evidence(validated: ValidatedTakings) -> dict[str, Any]:
    """What posting.SourceEvidence needs (as daybook.source_evidence gives it for E-Retailer): returned
    (day → every POS document number of the read, any status), withdrawn (VOID in CI), held_back
    (number → why it is not posted now: its branch-day quarantined, or not final)."""
    returned: dict[str, set[str]] = defaultdict(set)
    for day, numbers in zip(validated.branch_days["business_date"], validated.branch_days["ci_invoice_nos"]):
        returned[str(day)].update(str(number) for number in numbers)
    for day, number in zip(validated.skipped["business_date"], validated.skipped["invoice_no"]):
        returned[str(day)].add(str(number))
    skipped = validated.skipped
    withdrawn = frozenset(skipped.loc[skipped["status"] == "VOID", "invoice_no"].astype(str))
    held_back: dict[str, str] = {str(number): f"{status} in CI (not final)"
                                 for number, status in zip(skipped["invoice_no"], skipped["status"]) if status != "VOID"}
    first_reason: dict[tuple[Any, Any], str] = {}
    for day, branch, reason in zip(validated.quarantine["business_date"], validated.quarantine["branch_code"], validated.quarantine["reason"]):
        first_reason.setdefault((day, branch), reason)
    for row in validated.quarantined_days.itertuples(index=False):
        for number in row.ci_invoice_nos:
            held_back.setdefault(str(number), f"quarantined: {first_reason.get((row.business_date, row.branch_code), 'its branch-day')}")
    return {"returned": {day: frozenset(numbers) for day, numbers in returned.items()}, "withdrawn": withdrawn,
            "held_back": held_back}


__all__ = [
    "BRANCH_DAY_COLUMNS", "EXCLUDED_DOCUMENT_COLUMNS", "NOTICE_COLUMNS", "TAKINGS_QUARANTINE_COLUMNS",
    "TENDER_DAY_COLUMNS", "TakingsRules", "ValidatedTakings", "takings_source_evidence", "validate_takings",
]

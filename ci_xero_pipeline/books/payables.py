"""Inwards goods as supplier bills (processes.md §3): per FINAL CI goods receipt, one ACCPAY bill "for
approval", or (a receipt whose total is negative: goods returned) one ACCPAYCREDIT supplier credit note.
Pure: the site's rules, the validation of a read, the documents, the blocking check of the books, and the
figures the checks after posting compare. DataFrames in, plain data out.

The document (LineAmountTypes Exclusive; CI's goods received amounts are GST-exclusive):
- one line per CI line: Description (CI's stock description, cut to Xero's 4,000 characters with a
  notice), Quantity (3 places), UnitAmount (CI's unit_cost_excl, 4 places: the posting sends unitdp=4),
  LineAmount = CI's line_total_excl, which validation has checked is round(quantity × unit cost, 2) (the
  product Xero recomputes and refuses if it differs); AccountCode = the inventory account when COGS
  journals are on (perpetual stock: the purchase is an asset until sold), else
  purchases_accounts[analysis_code]; TaxType = tax_types[gst_code]; TaxAmount = exactly the tax Xero
  computes for an exclusive line, round_half_up(LineAmount × rate / 100); the branch's tracking option;
- where CI's GST (Σ line_gst) differs from Σ Xero's per-line tax (CI within mapping.gst_tolerance_cents
  of the rate on each line), a labelled pair of GST adjustment lines per account and gst_code carries the
  difference d: an amount a at the rated tax type whose own exclusive tax is exactly d, and −a at the
  exempt tax type. SubTotal stays CI's total_excl, TotalTax becomes CI's total_gst, to the cent (the
  E-Retailer and takings documents do the same for inclusive amounts; xero-facts "TaxAmount overrides").
- A return (total < 0) is a credit note with every amount turned positive (quantities turned), so Xero
  shows the supplier's credit as CI has it. Bills and credits alike: total_cents is Xero's Total
  (SubTotal + TotalTax, as shown), tax_cents its TotalTax.

Keys: document_key `payables/<receipt_no>`; the frame's `number` is CI's receipt_no (unique in CI: the
posting ledger's identity); the payload's InvoiceNumber (CreditNoteNumber) is the supplier's invoice
number, which Xero does not require to be unique (two suppliers, or one supplier twice, may use the same
one); a bill's Url carries the receipt (the lookup after a lost answer is among its day's bills, then by Url:
xero/kinds.py);
Reference is the receipt_no. The supplier is the contact, by ContactNumber = CI's supplier_code.

Quarantined per receipt (check: reason, each naming the receipt and the supplier): duplicate_header,
duplicate_line, missing_supplier_code, missing_supplier_invoice_no, missing_branch, unmapped_branch_code,
currency, no_lines, missing_value, unmapped_analysis_code (COGS off), unmapped_gst_code, line_total (CI's
line total is not its quantity × unit cost), gst_rate (a line's GST off its rate by more than the
tolerance), header_not_lines (the header's totals are not Σ lines), excess_decimals, orphan_line (a line
of the receipt the read could not pair with it). HELD and VOID receipts are skipped (evidence: a VOID one
is CI's word that a posted bill is withdrawn).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Mapping
from urllib.parse import quote

import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents
from .daybook import DOLLAR_COLUMNS
from .eretailer import ADJUSTMENT, DESCRIPTION_LIMIT, DOCUMENT_COLUMNS, NAME_LIMIT, Decimals, Notices, branch_options_of
from .rules import NZ_GST_RATES
from .schemas import amount_for_exclusive_tax, combined_notices, empty_notices, exclusive_tax_cents, rate_ratio

PROCESS = "payables"
NZ_PURCHASE_TAX_TYPES = {"S": "INPUT2", "Z": "ZERORATED", "E": "NONE"}
FINAL, NOT_FINAL = "FINAL", ("HELD", "VOID")
CONTACT_NUMBER_LIMIT = 50
# a bill must carry a Url (the key a lookup finds it by, xero/kinds.py) even on a site without a Dagster UI
# address: `.invalid` is reserved (RFC 6761) and never resolves, so this is a key in Url's shape, not a link
NO_UI_URL = "https://ci-xero.invalid/receipts/{receipt_no}"
CREDIT_ENDPOINTS = ("CreditNotes", "BillCredits")  # the books name a supplier credit CreditNotes; posting, BillCredits

PAYABLES_QUARANTINE_COLUMNS = [
    "business_date", "receipt_no", "supplier_code", "branch_code", "line_no", "total_excl_cents", "total_gst_cents",
    "check", "reason",
]
SKIPPED_COLUMNS = ["business_date", "receipt_no", "supplier_code", "branch_code", "status", "total_excl_cents", "total_gst_cents"]
UNMAPPED_COLUMNS = ["business_date", "kind", "code", "receipt_no"]
ORPHAN_COLUMNS = ["business_date", "receipt_no", "line_no", "reason"]
RECEIPT_COLUMNS = [
    "receipt_no", "supplier_code", "supplier_name", "branch_code", "branch_name", "business_date", "supplier_invoice_no",
    "status", "updated_at", "currency_code", "total_excl_cents", "total_gst_cents",
]
LINE_COLUMNS = [
    "business_date", "receipt_no", "line_no", "sku", "description", "quantity_x1000", "unit_cost_excl_x10000",
    "line_total_excl_cents", "line_gst_cents", "gst_code", "analysis_code",
]
# per document: CI's figures (CI's signs) beside the document's (as shown: positive on a credit note)
PAYABLES_TOTAL_COLUMNS = [
    "business_date", "receipt_no", "supplier_code", "supplier_invoice_no", "document_key", "endpoint",
    "ci_total_excl_cents", "ci_total_gst_cents", "document_subtotal_cents", "document_tax_cents", "document_total_cents",
    "adjusted_gst_cents",
]
CHECK_COLUMNS = ["business_date", "receipt_no", "document_key", "check", "message"]
CONTACT_COLUMNS = ["contact_number", "name", "email", "role", "source_keys", "business_date"]
# a difference between what we posted and CI, or between what we posted and what Xero holds now
BILL_DIFFERENCE_COLUMNS = ["business_date", "receipt_no", "number", "outcome", "field", "ours", "other"]
_INTEGER_COLUMNS = {
    "total_excl_cents", "total_gst_cents", "ci_total_excl_cents", "ci_total_gst_cents", "document_subtotal_cents",
    "document_tax_cents", "document_total_cents", "adjusted_gst_cents", "total_cents", "tax_cents", "line_count",
}


# -- GST on GST-exclusive amounts, on integers --------------------------------------------------------
def _line_total_cents(quantity_x1000: int, unit_cost_x10000: int) -> int:
    """round_half_up(quantity × unit cost, 2): 10⁻³ × 10⁻⁴ is 10⁻⁷, a cent is 10⁵ of those."""
    units = int(quantity_x1000) * int(unit_cost_x10000)
    magnitude = (abs(units) + 50_000) // 100_000
    return magnitude if units >= 0 else -magnitude


# -- the site's rules ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PayablesRules:
    """The site's rules for inwards goods, as plain data (payables_rules fills them from the settings).

    Lines go to inventory_account when cogs_enabled (perpetual stock: COGS journals move it to cost of
    sales), else to purchases_accounts[analysis_code]. tax_types: gst_code → purchase tax type; gst_rates
    and gst_tolerance_cents: the shared mapping's. status: the Xero status of a new bill (SUBMITTED is
    "Awaiting Approval"). contact_name_format: {supplier_name}, {supplier_code}. url_base: the Dagster UI's
    address, for each bill's Url (None: a key in Url's shape, NO_UI_URL)."""

    purchases_accounts: Mapping[str, str] = field(default_factory=dict)
    tax_types: Mapping[str, str] = field(default_factory=lambda: dict(NZ_PURCHASE_TAX_TYPES))
    gst_rates: Mapping[str, Decimal] = field(default_factory=lambda: dict(NZ_GST_RATES))
    gst_tolerance_cents: int = 2
    tracking_category: str = "CI Branches"
    tracking_options: Mapping[str, str] = field(default_factory=dict)
    currency_code: str = "NZD"
    status: Literal["DRAFT", "SUBMITTED", "AUTHORISED"] = "SUBMITTED"
    due_days: int = 20
    contact_name_format: str = "{supplier_name}"
    # the supplier's ContactNumber: CI's supplier code, or a format that keeps suppliers apart from account
    # customers whose codes are the same text (one ContactNumber is one Xero contact)
    contact_number_format: str = "{supplier_code}"
    cogs_enabled: bool = False
    inventory_account: str | None = None
    url_base: str | None = None

    def __post_init__(self) -> None:
        if self.status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            raise ValueError(f"payables.status {self.status!r}: use DRAFT, SUBMITTED or AUTHORISED")
        if self.cogs_enabled and not self.inventory_account:
            raise ValueError("cogs.enabled sends the bills' lines to cogs.inventory_account, which is not set")
        if self.due_days < 0:
            raise ValueError("payables.due_days cannot be negative")
        try:
            self.contact_name_format.format(supplier_name="", supplier_code="")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"payables.contact_name_format {self.contact_name_format!r}: use the placeholders "
                             "{supplier_name} and {supplier_code}") from error

    @property
    def exempt_tax_type(self) -> str:
        """The tax type of CI's exempt code E (NONE by default): the no-GST side of a GST adjustment."""
        return self.tax_types.get("E", "NONE")

    def account_for(self, analysis_code: Any) -> str | None:
        if self.cogs_enabled:
            return self.inventory_account
        return self.purchases_accounts.get(analysis_code) if isinstance(analysis_code, str) else None

    @property
    def account_setting(self) -> str:
        return "cogs.inventory_account" if self.cogs_enabled else "payables.purchases_accounts"

    def contact_for(self, supplier_code: str, supplier_name: Any) -> dict[str, str]:
        """The supplier as a Xero contact, keyed by ContactNumber (Xero's unique key for contacts)."""
        name = supplier_name.strip() if isinstance(supplier_name, str) and supplier_name.strip() else supplier_code
        shown = self.contact_name_format.format(supplier_name=name, supplier_code=supplier_code).strip() or supplier_code
        return {"ContactNumber": self.contact_number(supplier_code), "Name": shown[:NAME_LIMIT]}

    def contact_number(self, supplier_code: str) -> str:
        """The supplier's ContactNumber (validation quarantines a receipt whose number would be too long: cut,
        two suppliers would become one contact)."""
        return self.contact_number_format.format(supplier_code=supplier_code)

    def url_for(self, receipt_no: str, day: str) -> str:
        """The bill's Url: its day's page in the Dagster UI with the receipt as the last parameter (the
        posting layer finds the bill by it: xero.kinds.url_identity), or NO_UI_URL's key without a UI."""
        if not self.url_base:
            return NO_UI_URL.format(receipt_no=quote(receipt_no, safe=""))
        return (f"{self.url_base.rstrip('/')}/assets/posted_payables?view=partitions&partition={quote(day)}"
                f"&ci_receipt={quote(receipt_no, safe='')}")

    def mode_words(self) -> str:
        return "one bill per goods receipt" + (" (lines to inventory)" if self.cogs_enabled else "")


def payables_rules(settings: Any) -> PayablesRules:
    """The books' view of the site settings (a settings.SiteSettings): settings.payables, the shared
    mapping's GST rates and tolerance, the tracking category and branch options, cogs.enabled and
    cogs.inventory_account, and dagster_ui_url for the bills' Url."""
    payables, mapping, cogs = settings.payables, settings.mapping, settings.cogs
    return PayablesRules(
        purchases_accounts={str(k): str(v) for k, v in dict(payables.purchases_accounts).items()},
        tax_types=dict(payables.tax_types),
        gst_rates=dict(mapping.gst_rates),
        gst_tolerance_cents=mapping.gst_tolerance_cents,
        tracking_category=settings.tracking.category_name,
        tracking_options=dict(settings.tracking.branch_options),
        status=payables.status,
        due_days=payables.due_days,
        contact_name_format=payables.contact_name_format,
        contact_number_format=payables.contact_number_format,
        cogs_enabled=bool(cogs.enabled),
        inventory_account=cogs.inventory_account if cogs.enabled else None,
        url_base=getattr(settings, "dagster_ui_url", None),
    )


# -- validation --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidatedPayables:
    """The goods receipts a read holds, split into what can be posted and what cannot.

    receipts (RECEIPT_COLUMNS) / lines (LINE_COLUMNS): the postable FINAL receipts and their lines;
    quarantine (PAYABLES_QUARANTINE_COLUMNS): one row per problem of a FINAL receipt held back, with CI's
    header figures; skipped (SKIPPED_COLUMNS): HELD and VOID receipts (evidence, never posted);
    unmapped (UNMAPPED_COLUMNS): codes the mapping lacks (analysis_code, gst_code, branch_code);
    orphan_lines (ORPHAN_COLUMNS): lines read without their receipt (never posted; listed);
    notices (NOTICE_COLUMNS, invoice_no = receipt_no): said, nothing held back for it."""

    receipts: pd.DataFrame
    lines: pd.DataFrame
    quarantine: pd.DataFrame
    skipped: pd.DataFrame
    unmapped: pd.DataFrame
    orphan_lines: pd.DataFrame
    notices: pd.DataFrame = field(default_factory=empty_notices)

    @property
    def quarantined_receipts(self) -> pd.DataFrame:
        """One row per quarantined receipt: business_date, receipt_no, supplier_code, branch_code,
        total_excl_cents, total_gst_cents, reason (the first, and how many more)."""
        columns = ["business_date", "receipt_no", "supplier_code", "branch_code", "total_excl_cents", "total_gst_cents", "reason"]
        quarantine = self.quarantine
        if quarantine.empty:
            return _frame([], columns)
        reasons = quarantine.groupby("receipt_no", sort=False)["reason"].agg(list)
        first = quarantine.drop_duplicates("receipt_no").reset_index(drop=True)
        first["reason"] = [r[0] + (f" (+{len(r) - 1} more)" if len(r) > 1 else "") for r in reasons.reindex(first["receipt_no"])]
        return _frame(first[columns].to_dict("records"), columns)

    @property
    def unmapped_codes(self) -> dict[str, list[str]]:
        return {str(kind): sorted(set(group["code"].astype(str))) for kind, group in self.unmapped.groupby("kind", sort=True)}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _money(cents: Any) -> str:
    return "null" if cents is None else str(cents_to_decimal(int(cents)))


def _scaled(value: Any, places: int) -> str:
    return "null" if value is None else str(Decimal(int(value)).scaleb(-places))


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    for column in columns:
        if column in _INTEGER_COLUMNS:
            frame[column] = frame[column].astype("Int64" if frame[column].isna().any() else "int64")
    return frame


def _empty_read_frame(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})


def validate_payables(read: Any, rules: PayablesRules) -> ValidatedPayables:
    """Split a read (ci.extract.GoodsReceived: receipts, lines, orphan_lines, excess_decimals) into the
    postable FINAL receipts and the quarantined ones; HELD and VOID receipts skipped."""
    receipts: pd.DataFrame = read.receipts
    lines: pd.DataFrame = read.lines
    orphans_read = getattr(read, "orphan_lines", None)
    excess = getattr(read, "excess_decimals", None)
    quarantine: list[dict[str, Any]] = []
    unmapped: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    notices = Notices()

    counts = receipts["receipt_no"].value_counts() if len(receipts) else pd.Series(dtype="int64")
    lines_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines.to_dict("records"):
        lines_of[str(line["receipt_no"])].append(line)
    excess_of: dict[str, list[str]] = defaultdict(list)
    if excess is not None and len(excess):
        number_column = "receipt_no" if "receipt_no" in excess.columns else "invoice_no"
        for number, reason in zip(excess[number_column], excess["reason"]):
            excess_of[str(number)].append(str(reason))
    orphan_rows = orphans_read.to_dict("records") if orphans_read is not None and len(orphans_read) else []
    orphan_number = "receipt_no" if orphans_read is not None and "receipt_no" in orphans_read.columns else "invoice_no"
    orphans_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in orphan_rows:
        orphans_of[str(row.get(orphan_number))].append(row)

    postable: list[dict[str, Any]] = []
    postable_lines: list[dict[str, Any]] = []
    seen_repeated: set[str] = set()
    for receipt in receipts.to_dict("records"):
        number = str(receipt["receipt_no"])
        day = receipt["business_date"]
        status = receipt["status"]
        header = {
            "business_date": day, "receipt_no": number, "supplier_code": _text(receipt.get("supplier_code")),
            "branch_code": _text(receipt.get("branch_code")),
            "total_excl_cents": _int(receipt.get("total_excl_cents")), "total_gst_cents": _int(receipt.get("total_gst_cents")),
        }
        if status in NOT_FINAL:
            skipped.append({**header, "status": status})
            continue
        supplier = header["supplier_code"]
        where = f"receipt {number} (supplier {supplier or 'unknown'}{_name_part(receipt.get('supplier_name'))})"
        problems: list[tuple[str, Any, str]] = []  # (check, line_no, reason)

        def problem(check: str, reason: str, line_no: Any = None) -> None:
            problems.append((check, line_no, f"{where}: {reason}"))

        if status != FINAL:
            problem("status", f"status {status!r} is none of FINAL, HELD, VOID: which it is cannot be told")
        if int(counts.get(number, 1)) > 1:
            if number in seen_repeated:
                continue  # quarantined once, with the first of its rows
            seen_repeated.add(number)
            problem("duplicate_header", f"ci_goods_received returned {int(counts[number])} rows for this one receipt "
                    "(a join matching twice?): which is CI's cannot be told, so it waits until the view returns it once")
        if supplier is None:
            problem("missing_supplier_code", "no supplier_code: the supplier is the Xero contact (by ContactNumber)")
        elif len(rules.contact_number(str(supplier))) > CONTACT_NUMBER_LIMIT:
            problem("supplier_code_too_long", f"supplier_code {supplier!r} makes the ContactNumber "
                    f"{rules.contact_number(str(supplier))!r}, longer than Xero's {CONTACT_NUMBER_LIMIT} characters: cut, two "
                    "suppliers could become one contact; shorten the code in CI (or payables.contact_number_format)")
        if _text(receipt.get("supplier_invoice_no")) is None:
            problem("missing_supplier_invoice_no", "no supplier_invoice_no: the bill's number is the supplier's invoice number")
        branch = header["branch_code"]
        if branch is None:
            problem("missing_branch", "no branch_code: every line carries the branch's tracking option")
        elif _text(receipt.get("branch_name")) is None and branch not in rules.tracking_options:
            problem("unmapped_branch_code", f"branch {branch} is not in ci_branches and has no tracking option "
                    "(tracking.branch_options)")
            unmapped.append({"business_date": day, "kind": "branch_code", "code": branch, "receipt_no": number})
        currency = _text(receipt.get("currency_code")) or rules.currency_code
        if currency != rules.currency_code:
            problem("currency", f"currency {currency}, but the organisation's is {rules.currency_code}")
        if header["total_excl_cents"] is None or header["total_gst_cents"] is None:
            problem("missing_value", "total_excl or total_gst is null")
        own_lines = lines_of.get(number, [])
        if not own_lines:
            problem("no_lines", "no lines in ci_goods_received_lines: a bill needs at least one")
        line_numbers = [line["line_no"] for line in own_lines]
        for line_no in sorted({n for n in line_numbers if line_numbers.count(n) > 1}, key=str):
            problem("duplicate_line", f"line {line_no} is returned {line_numbers.count(line_no)} times by "
                    "ci_goods_received_lines: which is CI's cannot be told", line_no)
        sum_excl = sum_gst = 0
        for line in own_lines:
            line_no = line["line_no"]
            at = f"line {line_no}"
            values = {name: _int(line.get(name)) for name in
                      ("line_no", "quantity_x1000", "unit_cost_excl_x10000", "line_total_excl_cents", "line_gst_cents")}
            missing = [name for name, value in values.items() if value is None]
            if missing:
                problem("missing_value", f"{at}: {', '.join(missing)} null", line_no)
            sum_excl += values["line_total_excl_cents"] or 0
            sum_gst += values["line_gst_cents"] or 0
            analysis = _text(line.get("analysis_code"))
            if rules.account_for(analysis) is None:
                problem("unmapped_analysis_code", f"{at}: analysis code {analysis or 'null'} has no purchases account "
                        f"(payables.purchases_accounts{'.' + analysis if analysis else ''})", line_no)
                unmapped.append({"business_date": day, "kind": "analysis_code", "code": analysis, "receipt_no": number})
            gst_code = _text(line.get("gst_code"))
            if gst_code not in rules.tax_types or gst_code not in rules.gst_rates:
                setting = "payables.tax_types" if gst_code not in rules.tax_types else "mapping.gst_rates"
                problem("unmapped_gst_code", f"{at}: gst_code {gst_code or 'null'} has no purchase tax type or rate "
                        f"({setting}{'.' + gst_code if gst_code else ''})", line_no)
                unmapped.append({"business_date": day, "kind": "gst_code", "code": gst_code, "receipt_no": number})
            elif not missing:
                expected_total = _line_total_cents(values["quantity_x1000"], values["unit_cost_excl_x10000"])
                if expected_total != values["line_total_excl_cents"]:
                    problem("line_total", (
                        f"{at}: line_total_excl {_money(values['line_total_excl_cents'])} is not quantity "
                        f"{_scaled(values['quantity_x1000'], 3)} × unit_cost_excl {_scaled(values['unit_cost_excl_x10000'], 4)} "
                        f"= {_money(expected_total)} (Xero recomputes the line and would refuse it)"), line_no)
                own_tax = exclusive_tax_cents(values["line_total_excl_cents"], rules.gst_rates[gst_code])
                rated = rate_ratio(rules.gst_rates[gst_code])[0] != 0
                off = abs(values["line_gst_cents"] - own_tax)
                if (rated and off > rules.gst_tolerance_cents) or (not rated and values["line_gst_cents"] != 0):
                    problem("gst_rate", (
                        f"{at}: GST {_money(values['line_gst_cents'])} on {_money(values['line_total_excl_cents'])} is not "
                        f"{rules.gst_rates[gst_code]} % (that is {_money(own_tax)}"
                        + (f"; CI may round within {rules.gst_tolerance_cents} cents" if rated else "") + ")"), line_no)
            description = str(line.get("description") or "")
            if len(description) > DESCRIPTION_LIMIT:
                notices.add([day], [number], [line_no], "description_cut",
                            [f"{number} line {line_no}: the description has {len(description):,} characters, cut to "
                             f"Xero's {DESCRIPTION_LIMIT:,}"])
        if own_lines and header["total_excl_cents"] is not None and header["total_gst_cents"] is not None:
            if sum_excl != header["total_excl_cents"] or sum_gst != header["total_gst_cents"]:
                problem("header_not_lines", (
                    f"the header says {_money(header['total_excl_cents'])} + GST {_money(header['total_gst_cents'])}, the "
                    f"lines add up to {_money(sum_excl)} + GST {_money(sum_gst)} (CI disagrees with itself)"))
        for reason in excess_of.get(number, []):
            problem("excess_decimals", reason)
        for orphan in orphans_of.get(number, []):
            problem("orphan_line", f"line {orphan.get('line_no')} was read without the receipt: "
                    f"{orphan.get('reason') or 'the receipt changed while the day was read'}; run the day again",
                    orphan.get("line_no"))
        if problems:
            for check, line_no, reason in problems:
                quarantine.append({**header, "line_no": line_no, "check": check, "reason": reason})
            continue
        postable.append({column: receipt.get(column) for column in RECEIPT_COLUMNS})
        for line in sorted(own_lines, key=lambda row: int(row["line_no"])):
            postable_lines.append({**{column: line.get(column) for column in LINE_COLUMNS}, "business_date": day})

    # lines whose receipt the read did not return at all: listed, never posted
    known = set(receipts["receipt_no"].astype(str)) if len(receipts) else set()
    first_day = min(receipts["business_date"]) if len(receipts) else None
    orphan_list = []
    for row in orphan_rows:
        if str(row.get(orphan_number)) in known:
            continue
        orphan_list.append({"business_date": row.get("business_date") or first_day, "receipt_no": row.get(orphan_number),
                            "line_no": row.get("line_no"), "reason": row.get("reason") or "read without its receipt"})
    for number, own in lines_of.items():
        if number not in known:
            for line in own:
                orphan_list.append({"business_date": line.get("business_date") or first_day, "receipt_no": number,
                                    "line_no": line.get("line_no"),
                                    "reason": f"{number} line {line.get('line_no')}: its receipt is not among those read"})

    return ValidatedPayables(
        receipts=_typed_receipts(postable),
        lines=_typed_lines(postable_lines),
        quarantine=_frame(quarantine, PAYABLES_QUARANTINE_COLUMNS),
        skipped=_frame(skipped, SKIPPED_COLUMNS),
        unmapped=_frame(unmapped, UNMAPPED_COLUMNS),
        orphan_lines=_frame(orphan_list, ORPHAN_COLUMNS),
        notices=notices.frame(),
    )


def _name_part(name: Any) -> str:
    return f", {name.strip()}" if isinstance(name, str) and name.strip() else ""


def _typed_receipts(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=RECEIPT_COLUMNS) if rows else _empty_read_frame(RECEIPT_COLUMNS)
    for column in ("total_excl_cents", "total_gst_cents"):
        frame[column] = frame[column].astype("int64")
    return frame


def _typed_lines(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=LINE_COLUMNS) if rows else _empty_read_frame(LINE_COLUMNS)
    for column in ("line_no", "quantity_x1000", "unit_cost_excl_x10000", "line_total_excl_cents", "line_gst_cents"):
        frame[column] = frame[column].astype("int64")
    return frame


def payables_source_evidence(validated: ValidatedPayables) -> dict[str, Any]:
    """What posting.SourceEvidence needs: returned (day → every receipt number of the read, any status),
    withdrawn (VOID in CI: CI's word that a posted bill is withdrawn), held_back (number → why its
    current version is not posted: HELD, or quarantined)."""
    returned: dict[str, set[str]] = defaultdict(set)
    for frame in (validated.receipts, validated.quarantine, validated.skipped):
        for day, number in zip(frame["business_date"], frame["receipt_no"]):
            returned[str(day)].add(str(number))
    skipped = validated.skipped
    withdrawn = frozenset(skipped.loc[skipped["status"] == "VOID", "receipt_no"].astype(str))
    held_back: dict[str, str] = {str(n): f"{s} in CI (not final)" for n, s in zip(skipped["receipt_no"], skipped["status"]) if s != "VOID"}
    for number, reason in zip(validated.quarantine["receipt_no"], validated.quarantine["reason"]):
        held_back.setdefault(str(number), f"quarantined: {reason}")
    return {"returned": {day: frozenset(numbers) for day, numbers in returned.items()}, "withdrawn": withdrawn,
            "held_back": held_back}


def payables_contacts(validated: ValidatedPayables, rules: PayablesRules) -> pd.DataFrame:
    """The suppliers the bills need (CONTACT_COLUMNS), one row per supplier and day, keyed by
    ContactNumber = CI's supplier_code; source_keys: the receipts that need it."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for receipt in validated.receipts.itertuples(index=False):
        contact = rules.contact_for(str(receipt.supplier_code), receipt.supplier_name)
        row = rows.setdefault((str(receipt.business_date), contact["ContactNumber"]), {
            "contact_number": contact["ContactNumber"], "name": contact["Name"], "email": None, "role": "supplier",
            "source_keys": [], "business_date": str(receipt.business_date)})
        row["source_keys"].append(str(receipt.receipt_no))
    found = [{**row, "source_keys": tuple(sorted(row["source_keys"]))} for _, row in sorted(rows.items())]
    return _frame(found, CONTACT_COLUMNS)


# -- the documents -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PayablesBooks:
    """What build_payables_documents makes: documents (books.eretailer DOCUMENT_COLUMNS), totals
    (PAYABLES_TOTAL_COLUMNS: CI beside each document) and notices (NOTICE_COLUMNS)."""

    documents: pd.DataFrame
    totals: pd.DataFrame
    notices: pd.DataFrame


def payables_document_key(receipt_no: str) -> str:
    return f"{PROCESS}/{receipt_no}"


def _due_date(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def build_payables_documents(validated: ValidatedPayables, rules: PayablesRules) -> PayablesBooks:
    """One bill (or supplier credit note) per postable receipt of `validated`."""
    if rate_ratio(rules.gst_rates.get("E", 0))[0] != 0:
        raise ValueError("the exempt gst_code E has a GST rate: a GST adjustment needs a tax type without GST")
    notices = Notices()
    number = Decimals()
    receipts = validated.receipts
    if receipts.empty:
        return PayablesBooks(_frame([], DOCUMENT_COLUMNS), _frame([], PAYABLES_TOTAL_COLUMNS), validated.notices)
    options = branch_options_of(receipts[["branch_code", "branch_name", "business_date"]], rules, notices).tolist()
    lines_of: dict[str, list] = defaultdict(list)
    for line in validated.lines.itertuples(index=False):
        lines_of[str(line.receipt_no)].append(line)
    documents, totals = [], []
    for receipt, option in zip(receipts.itertuples(index=False), options):
        receipt_no, day = str(receipt.receipt_no), str(receipt.business_date)
        key = payables_document_key(receipt_no)
        ci_excl, ci_gst = int(receipt.total_excl_cents), int(receipt.total_gst_cents)
        sign = -1 if ci_excl + ci_gst < 0 else 1  # goods returned: a supplier credit, amounts as the credit shows them
        credit = sign < 0
        tracking = [{"Name": rules.tracking_category, "Option": option}]
        items: list[dict[str, Any]] = []
        # (account, gst_code) → [CI's GST, Xero's own tax] of the lines, as shown
        taxes: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for line in lines_of.get(receipt_no, []):
            amount = sign * int(line.line_total_excl_cents)
            rate = rules.gst_rates[line.gst_code]
            own_tax = exclusive_tax_cents(amount, rate)
            account = rules.account_for(line.analysis_code)
            found = taxes[(account, line.gst_code)]
            found[0] += sign * int(line.line_gst_cents)
            found[1] += own_tax
            items.append({
                "Description": _description(line, receipt_no),
                "Quantity": number(sign * int(line.quantity_x1000), 3),
                "UnitAmount": number(int(line.unit_cost_excl_x10000), 4),
                "LineAmount": number(amount),
                "TaxAmount": number(own_tax),
                "AccountCode": account,
                "TaxType": rules.tax_types[line.gst_code],
                "Tracking": tracking,
            })
        adjusted = 0
        for (account, gst_code), (ci_tax, own_tax) in sorted(taxes.items()):
            if ci_tax != own_tax:
                items.extend(_gst_adjustment(ci_tax, own_tax, gst_code, account, tracking, rules, number))
                adjusted += ci_tax - own_tax
        subtotal = sum(decimal_to_cents(item["LineAmount"]) for item in items)
        tax = sum(decimal_to_cents(item["TaxAmount"]) for item in items)
        supplier_number = str(receipt.supplier_invoice_no).strip()
        contact = rules.contact_for(str(receipt.supplier_code), receipt.supplier_name)
        payload: dict[str, Any] = {
            "Type": "ACCPAYCREDIT" if credit else "ACCPAY",
            ("CreditNoteNumber" if credit else "InvoiceNumber"): supplier_number[:NAME_LIMIT],
            "Reference": receipt_no,
            "Contact": contact,
            "Date": day,
            "Status": rules.status,
            "LineAmountTypes": "Exclusive",
            "CurrencyCode": rules.currency_code,
            "LineItems": items,
        }
        if not credit:
            payload["DueDate"] = _due_date(day, rules.due_days)
            payload["Url"] = rules.url_for(receipt_no, day)  # Xero's CreditNote has no Url: its Reference says it
        documents.append({
            "document_key": key, "business_date": day, "branch_code": receipt.branch_code,
            "endpoint": "CreditNotes" if credit else "Bills", "document_type": payload["Type"], "number": receipt_no,
            "reference": receipt_no, "contact_name": contact["Name"], "status": rules.status,
            "total_cents": subtotal + tax, "tax_cents": tax, "line_count": len(items), "ci_invoice_nos": (receipt_no,),
            "payload": payload,
        })
        totals.append({
            "business_date": day, "receipt_no": receipt_no, "supplier_code": receipt.supplier_code,
            "supplier_invoice_no": supplier_number, "document_key": key, "endpoint": documents[-1]["endpoint"],
            "ci_total_excl_cents": ci_excl, "ci_total_gst_cents": ci_gst, "document_subtotal_cents": subtotal,
            "document_tax_cents": tax, "document_total_cents": subtotal + tax, "adjusted_gst_cents": adjusted,
        })
    frame = pd.DataFrame(documents, columns=DOCUMENT_COLUMNS)
    for column in ("total_cents", "tax_cents", "line_count"):
        frame[column] = frame[column].astype("int64")
    frame = frame.sort_values(["business_date", "document_key"], kind="stable").reset_index(drop=True)
    return PayablesBooks(frame, _frame(totals, PAYABLES_TOTAL_COLUMNS), combined_notices([validated.notices, notices.frame()]))


def _description(line: Any, receipt_no: str) -> str:
    text = str(line.description).strip() if isinstance(line.description, str) and line.description.strip() else ""
    if not text:
        text = str(line.sku) if isinstance(line.sku, str) and line.sku else f"Goods received {receipt_no} line {line.line_no}"
    return text[:DESCRIPTION_LIMIT]  # (validation's notice says so)


def _gst_adjustment(ci_tax: int, own_tax: int, gst_code: str, account: str, tracking: list, rules: PayablesRules,
                    number: Decimals) -> list[dict[str, Any]]:
    """The pair of lines that moves d = CI's GST − Xero's per-line tax into the document's tax without
    touching its SubTotal: a at the group's rated tax type, whose own exclusive tax is exactly d, and −a
    at the exempt tax type, both on the group's account and tracking."""
    difference = ci_tax - own_tax
    rate = rules.gst_rates[gst_code]
    if rate_ratio(rate)[0] == 0:
        raise ValueError(f"lines of gst_code {gst_code} (no GST) carry GST in CI: validation lets none through")
    size = amount_for_exclusive_tax(difference, rate)
    one = number(1, 0)
    return [
        {"Description": f"{ADJUSTMENT} (CI {cents_to_decimal(ci_tax)}, per-line {cents_to_decimal(own_tax)})",
         "Quantity": one, "UnitAmount": number(size), "LineAmount": number(size), "TaxAmount": number(difference),
         "AccountCode": account, "TaxType": rules.tax_types[gst_code], "Tracking": tracking},
        {"Description": f"{ADJUSTMENT}: the balancing amount, without GST",
         "Quantity": one, "UnitAmount": number(-size), "LineAmount": number(-size), "TaxAmount": number(0),
         "AccountCode": account, "TaxType": rules.exempt_tax_type, "Tracking": tracking},
    ]


# -- the blocking check of the books, before anything is sent --------------------------------------------
def check_payables_books(validated: ValidatedPayables, books: PayablesBooks, rules: PayablesRules) -> pd.DataFrame:
    """Every way a document could differ from CI, judged from its payload alone (CHECK_COLUMNS; empty
    when all agree): Σ LineAmount = SubTotal = CI's total_excl and Σ TaxAmount = CI's total_gst (with the
    document's sign), its frame figures are the payload's; every line's TaxAmount is what Xero computes
    for it and its LineAmount is Quantity × UnitAmount; every line has its account, the branch's
    tracking; type, endpoint, contact and numbers fit; every postable receipt has exactly one document."""
    rate_of = {rules.tax_types[code]: rate for code, rate in rules.gst_rates.items() if code in rules.tax_types}
    ci = {str(r.receipt_no): r for r in validated.receipts.itertuples(index=False)}
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = defaultdict(int)
    for document in books.documents.itertuples(index=False):
        payload = document.payload
        receipt_no = str(document.number)

        def problem(check: str, message: str) -> None:
            problems.append({"business_date": document.business_date, "receipt_no": receipt_no,
                             "document_key": document.document_key, "check": check, "message": message})

        seen[receipt_no] += 1
        receipt = ci.get(receipt_no)
        if receipt is None:
            problem("receipt", "no postable CI receipt behind the document")
            continue
        credit = document.endpoint in CREDIT_ENDPOINTS
        if (payload.get("Type"), document.document_type) != (("ACCPAYCREDIT",) * 2 if credit else ("ACCPAY",) * 2) \
                or document.endpoint not in ("Bills", *CREDIT_ENDPOINTS):
            problem("type", f"endpoint {document.endpoint}, type {payload.get('Type')} / {document.document_type}")
        if payload.get("LineAmountTypes") != "Exclusive":
            problem("basis", f"LineAmountTypes {payload.get('LineAmountTypes')}, CI's amounts are GST-exclusive")
        number_field = "CreditNoteNumber" if credit else "InvoiceNumber"
        if payload.get(number_field) != str(receipt.supplier_invoice_no).strip()[:NAME_LIMIT]:
            problem("number", f"{number_field} {payload.get(number_field)!r}, the supplier's is {receipt.supplier_invoice_no!r}")
        if document.document_key != payables_document_key(receipt_no) or payload.get("Reference") != receipt_no \
                or (not credit and f"{quote(receipt_no, safe='')}" not in str(payload.get("Url") or "")):
            problem("key", "the document's key, Reference or Url does not carry its receipt")
        contact = payload.get("Contact") or {}
        if contact.get("ContactNumber") != str(receipt.supplier_code)[:CONTACT_NUMBER_LIMIT]:
            problem("contact", f"contact {contact.get('ContactNumber')!r}, the supplier is {receipt.supplier_code!r}")
        items = payload.get("LineItems") or []
        amounts = [decimal_to_cents(item["LineAmount"]) for item in items]
        taxes = [decimal_to_cents(item["TaxAmount"]) for item in items]
        for item, amount, tax in zip(items, amounts, taxes):
            rate = rate_of.get(item.get("TaxType"))
            if rate is None or exclusive_tax_cents(amount, rate) != tax:
                problem("line_tax", f"{item.get('Description')}: TaxAmount {cents_to_decimal(tax)}, Xero computes "
                        f"{cents_to_decimal(exclusive_tax_cents(amount, rate)) if rate is not None else 'no rate for ' + str(item.get('TaxType'))}")
            shown = Decimal(item["Quantity"]) * Decimal(item["UnitAmount"])
            if decimal_to_cents(shown.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)) != amount:
                problem("line_amount", f"{item.get('Description')}: LineAmount {cents_to_decimal(amount)} ≠ "
                        f"{item['Quantity']} × {item['UnitAmount']}")
            if not item.get("AccountCode"):
                problem("account", f"{item.get('Description')}: no account")
            tracking = item.get("Tracking") or []
            if not tracking or tracking[0].get("Name") != rules.tracking_category or not tracking[0].get("Option"):
                problem("tracking", f"{item.get('Description')}: no branch tracking")
        subtotal, tax = sum(amounts), sum(taxes)
        sign = -1 if credit else 1
        if sign * subtotal != int(receipt.total_excl_cents):
            problem("ci_total_excl", f"SubTotal {cents_to_decimal(sign * subtotal)}, CI's total_excl "
                    f"{cents_to_decimal(receipt.total_excl_cents)}")
        if sign * tax != int(receipt.total_gst_cents):
            problem("ci_total_gst", f"tax {cents_to_decimal(sign * tax)}, CI's total_gst {cents_to_decimal(receipt.total_gst_cents)}")
        if (int(document.total_cents), int(document.tax_cents), int(document.line_count)) != (subtotal + tax, tax, len(items)):
            problem("frame", f"the frame says total {cents_to_decimal(document.total_cents)}, tax "
                    f"{cents_to_decimal(document.tax_cents)}, {document.line_count} lines; the payload "
                    f"{cents_to_decimal(subtotal + tax)}, {cents_to_decimal(tax)}, {len(items)}")
        if subtotal + tax < 0:
            problem("negative", f"total {cents_to_decimal(subtotal + tax)}: Xero approves no negative document")
    for receipt_no, receipt in ci.items():
        if seen.get(receipt_no, 0) != 1:
            problems.append({"business_date": receipt.business_date, "receipt_no": receipt_no,
                             "document_key": payables_document_key(receipt_no), "check": "document_count",
                             "message": f"a postable receipt has {seen.get(receipt_no, 0)} documents, not one"})
    return pd.DataFrame(problems, columns=CHECK_COLUMNS)


# -- after posting: what we posted, what Xero holds, and CI ---------------------------------------------
GOOD = ("posted", "already_posted", "updated", "reposted")  # Xero holds it as we posted it, by the posting's word
NOT_OURS = ("differs", "conflict")  # the number or the CI documents are another document's: not counted as ours
GONE = ("VOIDED", "DELETED")
ID_FIELDS = ("InvoiceID", "CreditNoteID")


def bills_held(results: pd.DataFrame, held: Mapping[Any, dict]) -> dict[str, dict]:
    """document_key → the document Xero holds now for each result, found by its Xero id (bill numbers are
    the suppliers' and repeat), else by (endpoint, number) as the posting step keys what it read back."""
    by_id = {str(document.get(name)).lower(): document for document in held.values() for name in ID_FIELDS if document.get(name)}
    found: dict[str, dict] = {}
    for key, endpoint, number, xero_id in zip(results["document_key"], results["endpoint"], results["number"], results["xero_id"]):
        document = by_id.get(str(xero_id).lower()) if isinstance(xero_id, str) and xero_id else None
        if document is None:
            document = held.get((endpoint, number))
        if document is None and endpoint in ("Bills", *CREDIT_ENDPOINTS):
            document = held.get(("Invoices" if endpoint == "Bills" else "CreditNotes", number))
        if document is not None:
            found[key] = document
    return found


def _present(document: dict | None) -> bool:
    return document is not None and document.get("Status") not in GONE


def _posted_amounts(row: Any) -> tuple[int, int]:
    """(SubTotal, TotalTax) as we posted them: Xero's answer to our send (or lookup) when the result
    carries it, else the document's, which the ledger holds as posted (its content hash is CI's)."""
    total = row.xero_total_cents if row.xero_total_cents is not None and not pd.isna(row.xero_total_cents) else row.total_cents
    tax = row.xero_tax_cents if row.xero_tax_cents is not None and not pd.isna(row.xero_tax_cents) else row.tax_cents
    return int(total) - int(tax), int(tax)


def _receipt_of(results_row: Any, books: PayablesBooks) -> str | None:
    keys = getattr(results_row, "ci_invoice_nos", None)
    if keys is None:
        keys = getattr(results_row, "source_keys", None)
    if keys:
        return str(tuple(keys)[0])
    key = str(results_row.document_key)
    return key.split("/", 1)[1] if key.startswith(f"{PROCESS}/") else None


def bills_at_posting(validated: ValidatedPayables, books: PayablesBooks, results: pd.DataFrame) -> pd.DataFrame:
    """The bills posted (or found posted) whose SubTotal or tax as posted is not CI's total_excl or
    total_gst to the cent (BILL_DIFFERENCE_COLUMNS; empty: all equal). CI's figures from the validated
    receipts; ours from Xero's answer at posting, or the ledger's version."""
    ci = {str(r.receipt_no): r for r in validated.receipts.itertuples(index=False)}
    rows = []
    for row in results.itertuples(index=False):
        if row.outcome not in GOOD:
            continue
        receipt_no = _receipt_of(row, books)
        receipt = ci.get(receipt_no)
        if receipt is None:
            continue  # (a posted bill CI no longer makes: the posting's outcome says what became of it)
        sign = -1 if row.endpoint in CREDIT_ENDPOINTS else 1
        subtotal, tax = _posted_amounts(row)
        for name, ours, theirs in (("subtotal", sign * subtotal, int(receipt.total_excl_cents)),
                                   ("tax", sign * tax, int(receipt.total_gst_cents))):
            if ours != theirs:
                rows.append((row.business_date, receipt_no, row.number, row.outcome, name, str(cents_to_decimal(ours)),
                             str(cents_to_decimal(theirs))))
    return pd.DataFrame(rows, columns=BILL_DIFFERENCE_COLUMNS)


def _lines_of(items: list[dict]) -> list[tuple[str, str, int, int]]:
    return sorted((str(i.get("AccountCode") or ""), str(i.get("TaxType") or ""), decimal_to_cents(i.get("LineAmount") or 0),
                   decimal_to_cents(i.get("TaxAmount") or 0)) for i in items)


def bills_as_approved(books: PayablesBooks, results: pd.DataFrame, held: Mapping[Any, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Documents the accounts-payable clerk changed in Xero after we posted them (BILL_DIFFERENCE_COLUMNS:
    ours = as posted, other = as Xero holds it now): lines (account, tax type, amount, tax), SubTotal, tax,
    or taken out of the books (voided or deleted). Approving (SUBMITTED → AUTHORISED) and paying are not
    changes. Reported, never overwritten. Second frame: the documents CI changed after posting that were
    left as Xero holds them (outcome changed_in_xero), with CI's figures beside Xero's."""
    payloads = dict(zip(books.documents["document_key"], books.documents["payload"]))
    found = bills_held(results, held)
    edits, left = [], []
    for row in results.itertuples(index=False):
        xero = found.get(row.document_key)
        receipt_no = str(row.number)
        if row.outcome == "changed_in_xero":
            if xero is not None:
                left.append((row.business_date, receipt_no, row.number, row.outcome, "total",
                             str(cents_to_decimal(int(row.total_cents))), str(xero.get("Total"))))
            continue
        if row.outcome not in GOOD or row.document_key not in payloads:
            continue
        payload = payloads[row.document_key]

        def edit(name: str, ours: Any, other: Any) -> None:
            edits.append((row.business_date, receipt_no, row.number, row.outcome, name, str(ours), str(other)))

        if xero is None or not _present(xero):
            edit("status", payload.get("Status"), (xero or {}).get("Status", "not in Xero"))
            continue
        subtotal, tax = _posted_amounts(row)
        if decimal_to_cents(xero.get("SubTotal", 0)) != subtotal:
            edit("subtotal", cents_to_decimal(subtotal), xero.get("SubTotal"))
        if decimal_to_cents(xero.get("TotalTax", 0)) != tax:
            edit("tax", cents_to_decimal(tax), xero.get("TotalTax"))
        ours_lines, xero_lines = _lines_of(payload.get("LineItems") or []), _lines_of(xero.get("LineItems") or [])
        if ours_lines != xero_lines:
            gone = [line for line in ours_lines if line not in xero_lines]
            new = [line for line in xero_lines if line not in ours_lines]
            edit("lines", "; ".join(_line_text(line) for line in gone) or "-", "; ".join(_line_text(line) for line in new) or "-")
    return pd.DataFrame(edits, columns=BILL_DIFFERENCE_COLUMNS), pd.DataFrame(left, columns=BILL_DIFFERENCE_COLUMNS)


def _line_text(line: tuple[str, str, int, int]) -> str:
    account, tax_type, amount, tax = line
    return f"{account} {tax_type} {cents_to_decimal(amount)} (tax {cents_to_decimal(tax)})"


def payables_dollars_by_day(validated: ValidatedPayables, books: PayablesBooks, results: pd.DataFrame,
                            held: Mapping[Any, dict], days: list[str]) -> pd.DataFrame:
    """Per day (daybook.DOLLAR_COLUMNS; amounts GST-exclusive beside GST): Σ CI FINAL receipts = Σ bills in
    Xero + Σ quarantined + Σ excluded, to the cent. A bill counts as we posted it while Xero holds it (a
    clerk's later edit is the clerk's, reported by bills_as_approved; a bill voided or deleted in Xero
    counts nothing); a document a rule left as Xero holds it (CI changed it after posting, a locked
    period, CI's version held back) counts as Xero holds it, so CI's change stays unaccounted until a
    person settles it; a new document a rule kept out (locked, never in Xero) is excluded. Credit notes
    subtract."""
    ci: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    quarantined: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for frame, sums in ((validated.receipts, ci), (validated.quarantined_receipts, quarantined)):
        for day, excl, gst in zip(frame["business_date"], frame["total_excl_cents"], frame["total_gst_cents"]):
            sums[str(day)][0] += _int(excl) or 0
            sums[str(day)][1] += _int(gst) or 0
    for day, (excl, gst) in quarantined.items():
        ci[day][0] += excl
        ci[day][1] += gst
    ci_of = {str(r.receipt_no): r for r in validated.receipts.itertuples(index=False)}
    found = bills_held(results, held)
    in_xero: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    excluded: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in results.itertuples(index=False):
        sign = -1 if row.endpoint in CREDIT_ENDPOINTS else 1
        xero = found.get(row.document_key)
        day = str(row.business_date)
        if row.outcome == "withdrawn" or row.outcome in NOT_OURS:
            continue
        if row.outcome in GOOD:
            if _present(xero):
                subtotal, tax = _posted_amounts(row)
                in_xero[day][0] += sign * subtotal
                in_xero[day][1] += sign * tax
            continue
        if _present(xero):
            in_xero[day][0] += sign * decimal_to_cents(xero.get("SubTotal", 0))
            in_xero[day][1] += sign * decimal_to_cents(xero.get("TotalTax", 0))
        elif row.outcome == "locked" and (row.xero_id is None or pd.isna(row.xero_id)):
            receipt = ci_of.get(_receipt_of(row, books) or "")
            if receipt is not None:
                excluded[day][0] += int(receipt.total_excl_cents)
                excluded[day][1] += int(receipt.total_gst_cents)
    rows = []
    for day in days:
        c, x, q, e = ci.get(day, [0, 0]), in_xero.get(day, [0, 0]), quarantined.get(day, [0, 0]), excluded.get(day, [0, 0])
        rows.append((day, c[0], c[1], x[0], x[1], q[0], q[1], e[0], e[1], c[0] - x[0] - q[0] - e[0], c[1] - x[1] - q[1] - e[1]))
    return pd.DataFrame(rows, columns=DOLLAR_COLUMNS)


__all__ = [
    "BILL_DIFFERENCE_COLUMNS", "CHECK_COLUMNS", "CONTACT_COLUMNS", "LINE_COLUMNS", "NO_UI_URL", "NZ_PURCHASE_TAX_TYPES",
    "ORPHAN_COLUMNS", "PAYABLES_QUARANTINE_COLUMNS", "PAYABLES_TOTAL_COLUMNS", "PayablesBooks", "PayablesRules",
    "CREDIT_ENDPOINTS", "RECEIPT_COLUMNS", "SKIPPED_COLUMNS", "UNMAPPED_COLUMNS", "ValidatedPayables", "amount_for_exclusive_tax",
    "bills_as_approved", "bills_at_posting", "bills_held", "build_payables_documents", "check_payables_books",
    "exclusive_tax_cents", "payables_contacts", "payables_document_key", "payables_dollars_by_day", "payables_rules",
    "payables_source_evidence", "validate_payables",
]

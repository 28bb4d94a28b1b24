"""Cost of goods sold as Xero manual journals (processes.md §4): per branch per NZ trading day, one POSTED
journal over every FINAL sales document of the day, of every source (POS, E-Retailer, account customers),
invoices and credits alike. Pure: frames in, plain data out.

The cost of a stock line (sku not null) is quantity × unit_cost_excl, exact: quantity_x1000 ×
unit_cost_excl_x10000, an integer of 10⁻⁷ dollars. A credit's negative quantity returns stock, so its cost
is negative. Per branch-day the costs are summed per COGS account (cogs_accounts[analysis_code]) and each
sum is rounded ONCE to the cent, half up (a half cent away from zero, as CI and Xero round money): never
line by line, so the journal is CI's exact cost to within half a cent per account.

The journal: one line per COGS account carrying its rounded sum (a positive LineAmount is a debit; an account
whose returns outweigh its sales comes out negative, a credit to COGS), then one line to the inventory
account (a CURRENT asset: Xero's INVENTORY type is for Xero's own tracked items) of −Σ of them, so it nets to
exactly 0.00. LineAmountTypes NoTax, Status POSTED, the branch's tracking option on every line (named as
takings and E-Retailer name it, books.eretailer.branch_options_of). A branch-day whose every account rounds
to 0.00 has no journal: the totals say "nothing to post".

Its key is in its Narration, fixed text naming the branch and the day and never an amount, so that a CI
change moves the lines and never the key (the posting layer finds a journal by where=Narration==):
"CI cost of goods sold AKL01 2026-03-02 [ci-xero cogs/AKL01/2026-03-02]".

Validation (validate_cogs), per branch-day, since a journal is a branch-day's:
- every FINAL document is judged by the CI contract as the sales processes judge it
  (validation.validate_sales_documents: the contract's types and arithmetic, GST, header totals, branch,
  repeated headers, excess decimals); CI disagreeing with itself about a document is not trusted for its
  quantities either. A document so quarantined holds its branch-day back when it has stock lines; one with
  none costs nothing and is only noticed. (Its sales analysis codes are the sales processes' mapping, not
  this one's: an analysis code without a sales account does not hold the cost back.)
- missing_cost: a stock line with no unit_cost_excl quarantines its branch-day (missing_cost: quarantine),
  or is costed at zero with a notice naming it (missing_cost: zero);
- negative_cost: a negative unit_cost_excl (an average cost below zero is not a cost) quarantines it;
- excess_decimals: a unit_cost_excl CI holds with more than its 4 decimals (extraction's
  cost_excess_decimals) quarantines it: a cost is never rounded silently;
- unmapped_cogs_account: a stock line whose analysis code has no COGS account (cogs.cogs_accounts);
- unmapped_inventory_account: no cogs.inventory_account; narration_too_long: a branch code so long that
  the Narration would pass NARRATION_LIMIT.
HELD and VOID documents are skipped (kept as evidence for the posting layer), non-stock lines (freight,
rounding: sku null) are not costed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents, round_half_up
from .eretailer import DESCRIPTION_LIMIT, DOCUMENT_COLUMNS, Decimals, Notices, branch_options_of
from .rules import NZ_GST_RATES, NZ_TAX_TYPES, EretailerRules
from .schemas import NOTICE_COLUMNS, combined_notices, empty_notices, notices_frame
from .validation import NOT_FINAL, SKIPPED_COLUMNS, UNMAPPED_COLUMNS, empty_orphan_lines, validate_sales_documents

PROCESS = "cogs"
ENDPOINT = "ManualJournals"
DOCUMENT_TYPE = "MANUALJOURNAL"  # the books' name for the kind (Xero's journals have no Type)
STATUS = "POSTED"
# Xero's spec sets no length on Narration; 255, the limit Xero gives the other keys it is searched by
# (InvoiceNumber, Reference), is taken as the safe one
NARRATION_LIMIT = 255
INVENTORY_DESCRIPTION = "Stock on hand at cost: goods sold less goods returned"
NOTHING_TO_POST = "every COGS account of the branch-day rounds to 0.00: nothing to post"
UNITS_PER_CENT = 100_000  # quantity (10⁻³) × unit cost (10⁻⁴) is in 10⁻⁷ dollars
_INT64_MAX = 2**63 - 1
_UNMAPPED = "(no COGS account) "  # the account key of an unmapped code's cost in a quarantined branch-day's figure

COGS_QUARANTINE_COLUMNS = ["business_date", "branch_code", "invoice_no", "line_no", "check", "reason"]
# the stock lines of the postable branch-days, one row each (unit cost null: costed at zero by missing_cost: zero)
STOCK_LINE_COLUMNS = [
    "business_date", "branch_code", "invoice_no", "line_no", "doc_type", "sku", "analysis_code", "account_code",
    "quantity_x1000", "unit_cost_excl_x10000", "missing_cost",
]
# every branch-day of the read with stock lines: CI's cost (rounded once per account; of a quarantined one, as far
# as CI's costs are known, an unmapped code's cost rounded on its own) and whether it can be posted
BRANCH_DAY_COLUMNS = [
    "business_date", "branch_code", "branch_name", "ci_invoice_nos", "stock_lines", "missing_cost_lines",
    "cost_cents", "quarantined",
]
# every document of the read (any status, any source): what the posting layer's evidence says CI returned
READ_COLUMNS = ["business_date", "invoice_no", "branch_code", "source", "status"]
# per branch-day built: CI's figures beside the journal's
COGS_TOTAL_COLUMNS = [
    "business_date", "branch_code", "document_key", "number", "ci_invoice_count", "stock_lines", "missing_cost_lines",
    "accounts", "cogs_cents", "debits_cents", "inventory_cents", "journal_lines", "outcome",
]
# per branch-day and COGS account: the exact cost, and the one rounding
COGS_ACCOUNT_COLUMNS = [
    "business_date", "branch_code", "document_key", "account_code", "analysis_codes", "stock_lines", "exact_cost",
    "amount_cents",
]
NO_DOCUMENT_COLUMNS = ["business_date", "branch_code", "invoice_nos", "reason"]
CHECK_COLUMNS = ["business_date", "branch_code", "document_key", "check", "message"]
_PLACEHOLDER = "\0cost"  # every analysis code "mapped" for validate_sales_documents: sales accounts are not ours


@dataclass(frozen=True)
class CogsRules:
    """The site's rules for cost of goods sold, as plain data (cogs_rules fills them from the settings).

    cogs_accounts: analysis_code → COGS account (DIRECTCOSTS or EXPENSE); inventory_account: the CURRENT
    asset the stock is carried in (credited with the cost of what was sold). missing_cost: a stock line with
    no unit_cost_excl quarantines its branch-day, or is costed at zero with a notice. The GST mapping,
    tolerance and currency are the shared sales mapping's: the CI contract is judged as the sales processes
    judge it. tracking_category / tracking_options: the branch tracking, as on every other document."""

    cogs_accounts: Mapping[str, str] = field(default_factory=dict)
    inventory_account: str | None = None
    missing_cost: Literal["quarantine", "zero"] = "quarantine"
    tax_types: Mapping[str, str] = field(default_factory=lambda: dict(NZ_TAX_TYPES))
    gst_rates: Mapping[str, Decimal] = field(default_factory=lambda: dict(NZ_GST_RATES))
    gst_tolerance_cents: int = 2
    tracking_category: str = "CI Branches"
    tracking_options: Mapping[str, str] = field(default_factory=dict)
    currency_code: str = "NZD"

    def __post_init__(self) -> None:
        if self.missing_cost not in ("quarantine", "zero"):
            raise ValueError(f"missing_cost is 'quarantine' or 'zero', not {self.missing_cost!r}")
        if self.inventory_account and self.inventory_account in set(self.cogs_accounts.values()):
            codes = sorted(code for code, account in self.cogs_accounts.items() if account == self.inventory_account)
            raise ValueError(f"cogs.inventory_account {self.inventory_account} is also the COGS account of {codes}: "
                             "a journal would debit and credit one account")

    def document_rules(self, analysis_codes: Any = ()) -> EretailerRules:
        """The rules validate_sales_documents judges a document by: the shared GST mapping and tracking, and
        every analysis code given counted as mapped (the sales accounts are the sales processes' business)."""
        return EretailerRules(
            mode="summary", summary_grouping="branch_day", status="AUTHORISED",
            sales_accounts={code: _PLACEHOLDER for code in analysis_codes if isinstance(code, str)},
            tax_types=dict(self.tax_types), gst_rates=dict(self.gst_rates), tracking_category=self.tracking_category,
            tracking_options=dict(self.tracking_options), currency_code=self.currency_code,
            gst_tolerance_cents=self.gst_tolerance_cents,
        )


def cogs_rules(settings: Any) -> CogsRules:
    """The books' view of the site settings (a settings.SiteSettings): `cogs:` (cogs_accounts,
    inventory_account, missing_cost), with the shared `mapping:` (tax types, GST rates, tolerance) and
    `tracking:` (category, branch options)."""
    cogs, mapping, tracking = settings.cogs, settings.mapping, settings.tracking
    return CogsRules(
        cogs_accounts=dict(cogs.cogs_accounts),
        inventory_account=cogs.inventory_account,
        missing_cost=cogs.missing_cost,
        tax_types=dict(mapping.tax_types),
        gst_rates=dict(mapping.gst_rates),
        gst_tolerance_cents=mapping.gst_tolerance_cents,
        tracking_category=tracking.category_name,
        tracking_options=dict(tracking.branch_options),
    )


def cogs_document_key(branch_code: str, day: str) -> str:
    return f"{PROCESS}/{branch_code}/{day}"


def cogs_narration(branch_code: str, day: str) -> str:
    """The journal's Narration: fixed text with its key and no amount (where=Narration== finds it)."""
    return f"CI cost of goods sold {branch_code} {day} [ci-xero {cogs_document_key(branch_code, day)}]"


# -- validation -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ValidatedCogs:
    """The cost of goods sold a read holds, per branch-day: postable, or quarantined with every reason.

    stock_lines (STOCK_LINE_COLUMNS): the stock lines of the postable branch-days;
    branch_days (BRANCH_DAY_COLUMNS): every branch-day with stock lines in a FINAL document;
    quarantine (COGS_QUARANTINE_COLUMNS): one row per problem of a quarantined branch-day;
    skipped (validation.SKIPPED_COLUMNS): HELD and VOID documents (never costed; evidence);
    read (READ_COLUMNS): every document of the read, for the posting layer's evidence;
    unmapped (validation.UNMAPPED_COLUMNS): kinds analysis_code (no COGS account), inventory_account and the
      contract's branch_code / gst_code;
    orphan_lines: lines read without their document (never costed, listed);
    notices (NOTICE_COLUMNS): said, nothing held back for it (stock lines costed at zero, quarantined
      documents without stock)."""

    stock_lines: pd.DataFrame
    branch_days: pd.DataFrame
    quarantine: pd.DataFrame
    skipped: pd.DataFrame
    read: pd.DataFrame
    unmapped: pd.DataFrame
    orphan_lines: pd.DataFrame = field(default_factory=empty_orphan_lines)
    notices: pd.DataFrame = field(default_factory=empty_notices)

    @property
    def quarantined_days(self) -> pd.DataFrame:
        return self.branch_days[self.branch_days["quarantined"].to_numpy(dtype=bool)].reset_index(drop=True)

    @property
    def postable_days(self) -> pd.DataFrame:
        return self.branch_days[~self.branch_days["quarantined"].to_numpy(dtype=bool)].reset_index(drop=True)

    @property
    def unmapped_codes(self) -> dict[str, list[str]]:
        return {str(kind): sorted(set(group["code"].astype(str))) for kind, group in self.unmapped.groupby("kind", sort=True)}


def _branch(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _scaled(value: Any, places: int) -> str:
    return "null" if value is None or pd.isna(value) else str(Decimal(int(value)).scaleb(-places))


def validate_cogs(read: Any, rules: CogsRules) -> ValidatedCogs:
    """Split a read (extract.SalesDocuments of every source, every status) into postable branch-days and
    quarantined ones."""
    invoices, lines = read.invoices, read.lines
    checked = validate_sales_documents(read, rules.document_rules(pd.unique(lines["analysis_code"].dropna())))
    rows: list[dict[str, Any]] = []
    notices = [checked.notices]

    def hold(day: Any, branch: Any, check: str, reason: str, invoice_no: Any = None, line_no: Any = None) -> None:
        rows.append({"business_date": day, "branch_code": _branch(branch), "invoice_no": invoice_no,
                     "line_no": None if line_no is None or pd.isna(line_no) else int(line_no), "check": check, "reason": reason})

    # the FINAL documents (postable or quarantined by the contract), one header row each
    final = invoices[~invoices["status"].isin(NOT_FINAL).to_numpy(dtype=bool)].drop_duplicates("invoice_no")
    header = {number: (day, _branch(branch), name, doc_type) for number, day, branch, name, doc_type in zip(
        final["invoice_no"], final["business_date"], final["branch_code"], final["branch_name"], final["doc_type"])}
    is_stock = lines["sku"].notna().to_numpy(dtype=bool) & lines["invoice_no"].isin(set(header)).to_numpy(dtype=bool)
    stock = lines[is_stock].reset_index(drop=True)
    with_stock = set(stock["invoice_no"].tolist())
    # the contract's unmapped codes (branch, GST) of the documents that carry stock: those hold the cost back
    unmapped: list[dict[str, Any]] = [row for row in checked.unmapped.to_dict("records")
                                      if row["kind"] != "analysis_code" and row["invoice_no"] in with_stock]

    # documents the contract quarantined hold their branch-day back if they carry stock, and so do those whose
    # lines the read did not bring whole (none, or not adding up to the header): whether they carry stock, and
    # how much, is not known, and a journal made without them would be lowered or taken back on a short read
    contract = checked.quarantine
    lines_unknown = set(contract.loc[contract["check"].isin(LINES_UNKNOWN), "invoice_no"].tolist())
    for row in contract.itertuples(index=False):
        if (row.invoice_no in with_stock or row.invoice_no in lines_unknown) and row.invoice_no in header:
            day, branch = header[row.invoice_no][0], header[row.invoice_no][1]
            hold(day, branch, row.check, row.reason, row.invoice_no, row.line_no)
    without_stock = contract[~contract["invoice_no"].isin(with_stock | lines_unknown).to_numpy(dtype=bool)].drop_duplicates("invoice_no")
    if len(without_stock):
        notices.append(notices_frame(
            without_stock["business_date"], without_stock["invoice_no"], [None] * len(without_stock), "quarantined_without_stock",
            [f"{number}: quarantined by the CI contract checks ({reason}); it has no stock lines, so the cost of goods "
             "sold does not wait for it" for number, reason in zip(without_stock["invoice_no"], without_stock["reason"])]))
    contract_held = set(contract["invoice_no"].tolist())

    # the stock lines of the documents the contract let through: a cost, and an account for it
    days_of = [header[number][0] for number in stock["invoice_no"].tolist()]
    branches_of = [header[number][1] for number in stock["invoice_no"].tolist()]
    stock.insert(0, "branch_code_of_document", branches_of)
    stock["business_date"] = days_of
    accounts = dict(rules.cogs_accounts)
    zero_rows: list[tuple[Any, Any, Any, str]] = []
    for line in stock.itertuples(index=False):
        if line.invoice_no in contract_held:
            continue
        day, branch = line.business_date, line.branch_code_of_document
        where = f"{line.invoice_no} line {line.line_no} (sku {line.sku}, quantity {_scaled(line.quantity_x1000, 3)})"
        code = line.analysis_code
        if code not in accounts:
            hold(day, branch, "unmapped_cogs_account",
                 f"{where}: analysis code {code} has no COGS account (cogs.cogs_accounts.{code})", line.invoice_no, line.line_no)
            unmapped.append({"business_date": day, "kind": "analysis_code", "code": str(code), "invoice_no": line.invoice_no})
        cost = line.unit_cost_excl_x10000
        if cost is None or pd.isna(cost):
            if rules.missing_cost == "quarantine":
                hold(day, branch, "missing_cost",
                     f"{where}: CI holds no unit_cost_excl for this stock line, so what it cost is not known; the "
                     "branch-day waits for CI's cost (or set cogs.missing_cost: zero to post it at zero)",
                     line.invoice_no, line.line_no)
            else:
                zero_rows.append((day, line.invoice_no, line.line_no,
                                  f"{where}: no unit_cost_excl in CI: costed at 0.00 (cogs.missing_cost: zero); the "
                                  "journal understates the cost of goods sold by this line's cost"))
        elif int(cost) < 0:
            hold(day, branch, "negative_cost",
                 f"{where}: unit_cost_excl {_scaled(cost, 4)} is negative: an average cost below zero is not a cost "
                 "(CI's stock valuation needs correcting)", line.invoice_no, line.line_no)
    # a unit cost CI holds with more decimals than the contract's 4 (the frame holds it rounded): its
    # branch-day waits, never a cost rounded silently (extraction reports these apart from the sales values)
    stock_keys = set(zip(stock["invoice_no"].tolist(), stock["line_no"].tolist()))
    for row in _cost_excess(read).itertuples(index=False):
        if row.invoice_no in header and row.invoice_no not in contract_held and (row.invoice_no, row.line_no) in stock_keys:
            day, branch = header[row.invoice_no][0], header[row.invoice_no][1]
            hold(day, branch, "excess_decimals", row.reason, row.invoice_no, row.line_no)
    if zero_rows:
        notices.append(notices_frame([r[0] for r in zero_rows], [r[1] for r in zero_rows], [r[2] for r in zero_rows],
                                     "missing_cost", [r[3] for r in zero_rows]))

    # the branch-days with stock (or with a document whose lines did not come whole), and what holds each back
    days: dict[tuple[Any, Any], list[str]] = defaultdict(list)
    for number in sorted(with_stock | (lines_unknown & set(header))):
        day, branch = header[number][0], header[number][1]
        days[(day, branch)].append(number)
    names = {branch: name for _day, branch, name, _type in header.values() if isinstance(branch, str) and isinstance(name, str)}
    for (day, branch) in sorted(days, key=lambda key: (str(key[0]), str(key[1]))):
        if not rules.inventory_account:
            hold(day, branch, "unmapped_inventory_account",
                 f"branch {branch} {day}: stock was sold and no inventory account is set (cogs.inventory_account)")
            unmapped.append({"business_date": day, "kind": "inventory_account", "code": "cogs.inventory_account", "invoice_no": None})
        if isinstance(branch, str) and len(cogs_narration(branch, day)) > NARRATION_LIMIT:
            hold(day, branch, "narration_too_long",
                 f"branch {branch[:40]}… {day}: the journal's Narration would be over Xero's {NARRATION_LIMIT} characters "
                 "(a branch code that long cannot key a journal)")
    held = {(row["business_date"], row["branch_code"]) for row in rows}

    stock = stock.assign(
        branch_code=stock["branch_code_of_document"],
        account_code=[accounts.get(code) for code in stock["analysis_code"].tolist()],
        doc_type=[header[number][3] for number in stock["invoice_no"].tolist()],
        missing_cost=stock["unit_cost_excl_x10000"].isna().to_numpy(dtype=bool),
    )
    in_held = np.array([(day, branch) in held for day, branch in zip(stock["business_date"], stock["branch_code"])], dtype=bool)
    figures = _branch_day_costs(stock)
    branch_days = pd.DataFrame([
        {"business_date": day, "branch_code": branch, "branch_name": names.get(branch) if branch else None,
         "ci_invoice_nos": tuple(numbers), "stock_lines": figures.get((day, branch), (0, 0, 0))[0],
         "missing_cost_lines": figures.get((day, branch), (0, 0, 0))[1], "cost_cents": figures.get((day, branch), (0, 0, 0))[2],
         "quarantined": (day, branch) in held}
        for (day, branch), numbers in sorted(days.items(), key=lambda item: (str(item[0][0]), str(item[0][1])))
    ], columns=BRANCH_DAY_COLUMNS)
    for column in ("stock_lines", "missing_cost_lines", "cost_cents"):
        branch_days[column] = branch_days[column].astype("int64")
    branch_days["quarantined"] = branch_days["quarantined"].astype(bool)

    postable = stock[~in_held].reset_index(drop=True)
    stock_lines = pd.DataFrame({
        "business_date": postable["business_date"].to_numpy(dtype=object),
        "branch_code": postable["branch_code"].to_numpy(dtype=object),
        "invoice_no": postable["invoice_no"].to_numpy(dtype=object),
        "line_no": postable["line_no"].astype("int64").to_numpy(),
        "doc_type": postable["doc_type"].to_numpy(dtype=object),
        "sku": postable["sku"].to_numpy(dtype=object),
        "analysis_code": postable["analysis_code"].to_numpy(dtype=object),
        "account_code": postable["account_code"].to_numpy(dtype=object),
        "quantity_x1000": postable["quantity_x1000"].astype("int64").to_numpy(),
        "unit_cost_excl_x10000": postable["unit_cost_excl_x10000"].astype("Int64").array,
        "missing_cost": postable["missing_cost"].to_numpy(dtype=bool),
    }, columns=STOCK_LINE_COLUMNS)

    quarantine = pd.DataFrame(rows, columns=COGS_QUARANTINE_COLUMNS)
    quarantine["line_no"] = quarantine["line_no"].astype("Int64")
    quarantine = quarantine.sort_values(["business_date", "branch_code", "invoice_no", "line_no", "check"],
                                        na_position="first", kind="stable").reset_index(drop=True)
    read_frame = pd.DataFrame({column: invoices[column].to_numpy(dtype=object) for column in READ_COLUMNS}, columns=READ_COLUMNS)
    unmapped_frame = (pd.DataFrame(unmapped, columns=UNMAPPED_COLUMNS).drop_duplicates(["business_date", "kind", "code"])
                      .reset_index(drop=True) if unmapped else pd.DataFrame(columns=UNMAPPED_COLUMNS))
    return ValidatedCogs(
        stock_lines=stock_lines, branch_days=branch_days, quarantine=quarantine, skipped=checked.skipped[SKIPPED_COLUMNS],
        read=read_frame, unmapped=unmapped_frame, orphan_lines=checked.orphan_lines, notices=combined_notices(notices),
    )


def _cost_excess(read: Any) -> pd.DataFrame:
    """The unit costs the read found with more than 4 decimals (extract.SalesDocuments.cost_excess_decimals)."""
    found = getattr(read, "cost_excess_decimals", None)
    if found is None or found.empty:
        return pd.DataFrame(columns=["business_date", "invoice_no", "line_no", "reason"])
    return found


# -- exact costs ------------------------------------------------------------------------------------------
def line_cost_units(quantity_x1000: pd.Series, unit_cost_x10000: pd.Series) -> list[int]:
    """Each line's cost in 10⁻⁷ dollars, exact (a null cost is 0): int64 where no product can overflow,
    Python integers otherwise."""
    quantity = quantity_x1000.astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    cost = unit_cost_x10000.astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    if not len(quantity):
        return []
    if int(np.abs(quantity).max()) * int(np.abs(cost).max()) * len(quantity) <= _INT64_MAX:
        return (quantity * cost).tolist()  # no product, and no sum of them all, can leave int64
    return [int(q) * int(c) for q, c in zip(quantity.tolist(), cost.tolist())]


def units_to_cents(units: int) -> int:
    """10⁻⁷ dollars to cents, rounded half up (away from zero): the one rounding of an account's sum."""
    return decimal_to_cents(round_half_up(Decimal(int(units)).scaleb(-7)))


def exact_cost(units: int) -> str:
    """The exact cost as text (the UI shows what was rounded)."""
    return format(Decimal(int(units)).scaleb(-7).normalize(), "f")


def _cost_sums(stock: pd.DataFrame, account_column: str = "account_code") -> dict[tuple[Any, Any], dict[str, list]]:
    """(day, branch) → account → [Σ units, stock lines, analysis codes] of the stock lines."""
    sums: dict[tuple[Any, Any], dict[str, list]] = defaultdict(dict)
    units = line_cost_units(stock["quantity_x1000"], stock["unit_cost_excl_x10000"])
    for day, branch, account, code, value in zip(stock["business_date"].tolist(), stock["branch_code"].tolist(),
                                                 stock[account_column].tolist(), stock["analysis_code"].tolist(), units):
        found = sums[(day, branch)].setdefault(account, [0, 0, set()])
        found[0] += int(value)
        found[1] += 1
        found[2].add(str(code))
    return sums


def _branch_day_costs(stock: pd.DataFrame) -> dict[tuple[Any, Any], tuple[int, int, int]]:
    """(day, branch) → (stock lines, lines without a cost, CI's cost: Σ per account rounded once; a code with no
    COGS account rounded on its own)."""
    if stock.empty:
        return {}
    keyed = stock.assign(cost_key=[account if isinstance(account, str) else f"{_UNMAPPED}{code}"
                                   for account, code in zip(stock["account_code"], stock["analysis_code"])])
    sums = _cost_sums(keyed, "cost_key")
    missing = defaultdict(int)
    for day, branch, none in zip(keyed["business_date"], keyed["branch_code"], keyed["missing_cost"]):
        missing[(day, branch)] += int(bool(none))
    return {key: (sum(v[1] for v in by.values()), missing[key], sum(units_to_cents(v[0]) for v in by.values()))
            for key, by in sums.items()}


# -- the journals -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CogsBooks:
    """What build_cogs_journals makes.

    documents: books.eretailer DOCUMENT_COLUMNS (endpoint ManualJournals, number = Narration, total = Σ
      debits, tax 0, payload = the ManualJournal); totals (COGS_TOTAL_COLUMNS) per postable branch-day;
    accounts (COGS_ACCOUNT_COLUMNS) per branch-day and COGS account; no_document (NO_DOCUMENT_COLUMNS);
    notices (NOTICE_COLUMNS): descriptions cut, tracking options cut or renamed."""

    documents: pd.DataFrame
    totals: pd.DataFrame
    accounts: pd.DataFrame
    no_document: pd.DataFrame
    notices: pd.DataFrame


def build_cogs_journals(validated: ValidatedCogs, rules: CogsRules) -> CogsBooks:
    """One POSTED manual journal per postable branch-day of `validated` whose accounts do not all round to 0.00."""
    days = validated.postable_days
    notices = Notices()
    if days.empty:
        return CogsBooks(_frame([], DOCUMENT_COLUMNS), _frame([], COGS_TOTAL_COLUMNS), _frame([], COGS_ACCOUNT_COLUMNS),
                         _frame([], NO_DOCUMENT_COLUMNS), empty_notices())
    if not rules.inventory_account:
        raise ValueError("no inventory account (cogs.inventory_account): validation lets no branch-day through without one")
    options = branch_options_of(days[["branch_code", "branch_name", "business_date"]], rules.document_rules(), notices).tolist()
    sums = _cost_sums(validated.stock_lines)
    number = Decimals()
    documents, totals, account_rows, no_document = [], [], [], []
    for row, option in zip(days.itertuples(index=False), options):
        day, branch = row.business_date, row.branch_code
        key, narration = cogs_document_key(branch, day), cogs_narration(branch, day)
        tracking = [{"Name": rules.tracking_category, "Option": option}]
        by_account = sums.get((day, branch), {})
        lines, net = [], 0
        for account in sorted(by_account):
            units, count, codes = by_account[account]
            amount = units_to_cents(units)
            account_rows.append({"business_date": day, "branch_code": branch, "document_key": key, "account_code": account,
                                 "analysis_codes": ", ".join(sorted(codes)), "stock_lines": count,
                                 "exact_cost": exact_cost(units), "amount_cents": amount})
            net += amount
            if amount:
                lines.append(_line(_description(f"COGS {', '.join(sorted(codes))}", day, key, notices), amount, account,
                                   tracking, number))
        if net:
            lines.append(_line(INVENTORY_DESCRIPTION, -net, rules.inventory_account, tracking, number))
        debits = sum(decimal_to_cents(line["LineAmount"]) for line in lines if line["LineAmount"] > 0)
        base = {"business_date": day, "branch_code": branch, "number": narration, "ci_invoice_count": len(row.ci_invoice_nos),
                "stock_lines": int(row.stock_lines), "missing_cost_lines": int(row.missing_cost_lines),
                "accounts": len(by_account), "cogs_cents": net, "debits_cents": debits, "inventory_cents": -net if net else 0,
                "journal_lines": len(lines)}
        if not lines:
            no_document.append({"business_date": day, "branch_code": branch, "invoice_nos": tuple(row.ci_invoice_nos),
                                "reason": NOTHING_TO_POST})
            totals.append({**base, "document_key": None, "outcome": "nothing to post"})
            continue
        payload = {"Narration": narration, "Date": day, "Status": STATUS, "LineAmountTypes": "NoTax", "JournalLines": lines}
        documents.append({
            "document_key": key, "business_date": day, "branch_code": branch, "endpoint": ENDPOINT,
            "document_type": DOCUMENT_TYPE, "number": narration, "reference": key, "contact_name": None, "status": STATUS,
            "total_cents": debits, "tax_cents": 0, "line_count": len(lines), "ci_invoice_nos": tuple(row.ci_invoice_nos),
            "payload": payload,
        })
        totals.append({**base, "document_key": key, "outcome": "journal"})
    documents_frame = _frame(documents, DOCUMENT_COLUMNS)
    if len(documents_frame):
        documents_frame = documents_frame.sort_values(["business_date", "document_key"], kind="stable").reset_index(drop=True)
    return CogsBooks(documents_frame, _frame(totals, COGS_TOTAL_COLUMNS), _frame(account_rows, COGS_ACCOUNT_COLUMNS),
                     _frame(no_document, NO_DOCUMENT_COLUMNS), notices.frame())


def _line(description: str, amount: int, account: str, tracking: list, number: Decimals) -> dict[str, Any]:
    return {"Description": description, "LineAmount": number(amount), "AccountCode": account, "Tracking": tracking}


def _description(text: str, day: str, key: str, notices: Notices) -> str:
    if len(text) > DESCRIPTION_LIMIT:
        notices.add([day], None, [None], "description_cut",
                    [f"{key}: a journal line's description has {len(text):,} characters, cut to Xero's {DESCRIPTION_LIMIT:,}"])
        return text[:DESCRIPTION_LIMIT]
    return text


_INTEGER_COLUMNS = {
    "total_cents", "tax_cents", "line_count", "ci_invoice_count", "stock_lines", "missing_cost_lines", "accounts",
    "cogs_cents", "debits_cents", "inventory_cents", "journal_lines", "amount_cents",
}


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    for column in columns:
        if column in _INTEGER_COLUMNS:
            frame[column] = frame[column].astype("int64")
    return frame


def journal_cogs_cents(journal_lines: list[dict[str, Any]], inventory_account: str | None) -> int:
    """Σ of a journal's lines (as sent, or as Xero holds it) off the inventory account: the cost of goods sold
    it books (= −its inventory line when it nets to zero)."""
    return sum(decimal_to_cents(line.get("LineAmount") or 0) for line in journal_lines
               if str(line.get("AccountCode")) != str(inventory_account))


# -- the blocking check of the books before they reach Xero ------------------------------------------------
_AMOUNT = re.compile(r"\d+\.\d{2}\b")


def ci_cost_by_account(validated: ValidatedCogs, rules: CogsRules) -> dict[tuple[str, str], dict[str, int]]:
    """(day, branch) → COGS account → CI's cost of the postable branch-days, worked out on Decimals line by line
    straight from the stock lines and the site's mapping (not from the builder's integers), each account's sum
    rounded once, half up."""
    exact: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    lines = validated.stock_lines
    for day, branch, code, quantity, cost in zip(lines["business_date"], lines["branch_code"], lines["analysis_code"],
                                                 lines["quantity_x1000"], lines["unit_cost_excl_x10000"]):
        unit_cost = Decimal(0) if cost is None or pd.isna(cost) else Decimal(int(cost)).scaleb(-4)
        exact[(day, branch)][rules.cogs_accounts[code]] += Decimal(int(quantity)).scaleb(-3) * unit_cost
    return {key: {account: decimal_to_cents(round_half_up(value)) for account, value in by.items()} for key, by in exact.items()}


def check_cogs_books(validated: ValidatedCogs, books: CogsBooks, rules: CogsRules) -> pd.DataFrame:
    """Every way the journals could differ from CI, judged from the payloads (CHECK_COLUMNS; empty when they
    agree): each journal nets to 0.00; each COGS account's line is CI's Σ quantity × unit_cost_excl of the
    branch-day's stock lines of that account rounded once (ci_cost_by_account), and the inventory line is −Σ
    of them; no other account; its Narration is its key's fixed text, carries no amount and is within
    NARRATION_LIMIT; Date, Status POSTED, NoTax, the branch's tracking on every line, no 0.00 line; its total
    is Σ debits and its tax 0. Every postable branch-day has a journal or nets to 0.00 in every account
    (nothing to post); no journal is of another branch-day."""
    expected = ci_cost_by_account(validated, rules)
    postable = {(row.business_date, row.branch_code): row for row in validated.postable_days.itertuples(index=False)}
    options = dict(zip(zip(validated.postable_days["business_date"], validated.postable_days["branch_code"]),
                       branch_options_of(validated.postable_days[["branch_code", "branch_name", "business_date"]],
                                         rules.document_rules()).tolist())) if len(postable) else {}
    problems: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for document in books.documents.itertuples(index=False):
        day, branch, key = document.business_date, document.branch_code, document.document_key
        seen.add((day, branch))

        def problem(check: str, message: str) -> None:
            problems.append({"business_date": day, "branch_code": branch, "document_key": key, "check": check, "message": message})

        payload = document.payload
        lines = payload.get("JournalLines") or []
        amounts = [decimal_to_cents(line["LineAmount"]) for line in lines]
        if sum(amounts) != 0:
            problem("nets_to_zero", f"the lines add up to {cents_to_decimal(sum(amounts))}, not 0.00")
        if len(lines) < 2 or 0 in amounts:
            problem("lines", f"{len(lines)} lines, {amounts.count(0)} of them 0.00: a journal needs two non-zero lines or more")
        if (day, branch) not in postable:
            problem("branch_day", "no postable branch-day of CI behind the journal")
            continue
        wanted = {account: cents for account, cents in expected.get((day, branch), {}).items() if cents}
        moved: dict[str, int] = defaultdict(int)
        for line, amount in zip(lines, amounts):
            moved[str(line["AccountCode"])] += amount
        inventory = moved.pop(str(rules.inventory_account), 0)
        for account in sorted(set(moved) | set(wanted)):
            if moved.get(account, 0) != wanted.get(account, 0):
                problem("cost", f"account {account}: {cents_to_decimal(moved.get(account, 0))} in the journal; CI's Σ "
                                f"quantity × cost is {cents_to_decimal(wanted.get(account, 0))}")
        if inventory != -sum(wanted.values()):
            problem("inventory", f"inventory account {rules.inventory_account}: {cents_to_decimal(inventory)}; CI's cost "
                                 f"takes it by {cents_to_decimal(-sum(wanted.values()))}")
        narration = payload.get("Narration") or ""
        if narration != cogs_narration(branch, day) or document.number != narration or key != cogs_document_key(branch, day):
            problem("narration", f"Narration {narration!r} / number {document.number!r} is not the journal's key text")
        if len(narration) > NARRATION_LIMIT or _AMOUNT.search(narration):
            problem("narration", f"Narration {narration!r}: over {NARRATION_LIMIT} characters or carrying an amount")
        if (payload.get("Date"), payload.get("Status"), payload.get("LineAmountTypes")) != (day, STATUS, "NoTax"):
            problem("payload", f"Date {payload.get('Date')}, Status {payload.get('Status')}, LineAmountTypes "
                               f"{payload.get('LineAmountTypes')}: wanted {day}, {STATUS}, NoTax")
        branch_tracking = [{"Name": rules.tracking_category, "Option": options.get((day, branch))}]
        for line in lines:
            if line.get("Tracking") != branch_tracking:
                problem("tracking", f"{line.get('Description')}: tracking {line.get('Tracking')}, the branch's is {branch_tracking}")
        debits = sum(amount for amount in amounts if amount > 0)
        if int(document.total_cents) != debits or int(document.tax_cents) != 0:
            problem("totals", f"total {cents_to_decimal(document.total_cents)} / tax {cents_to_decimal(document.tax_cents)}; "
                              f"the debits are {cents_to_decimal(debits)}, and a journal carries no tax")
    nothing = {(row.business_date, row.branch_code) for row in books.no_document.itertuples(index=False)}
    for day, branch in sorted(set(postable) - seen, key=str):
        if (day, branch) in nothing and not any(expected.get((day, branch), {}).values()):
            continue
        problems.append({"business_date": day, "branch_code": branch, "document_key": None, "check": "missing_journal",
                         "message": "a postable branch-day with cost has no journal"
                         + (f" (CI's cost {cents_to_decimal(sum(expected.get((day, branch), {}).values()))})"
                            if (day, branch) in expected else "")})
    return pd.DataFrame(problems, columns=CHECK_COLUMNS)


# -- what the posting layer is told --------------------------------------------------------------------------
# the contract's checks that say a document's lines did not come whole with the read
LINES_UNKNOWN = ("no_lines", "totals")


def cogs_source_evidence(validated: ValidatedCogs, books: CogsBooks | None = None) -> dict[str, Any]:
    """What posting.SourceEvidence needs: returned (day → every document number of the read, any status, any
    source), withdrawn (VOID in CI; and, given the books, the FINAL documents that no journal is made of and
    no quarantine holds back: CI's own word that their branch-day's cost is now 0.00, so a journal posted for
    it earlier comes out), held_back (number → why its current version is not posted now: its branch-day
    quarantined, or not final)."""
    returned: dict[str, set[str]] = defaultdict(set)
    for day, number in zip(validated.read["business_date"], validated.read["invoice_no"]):
        returned[str(day)].add(str(number))
    skipped = validated.skipped
    withdrawn = frozenset(skipped.loc[skipped["status"] == "VOID", "invoice_no"].astype(str))
    held_back: dict[str, str] = {str(number): f"{status} in CI (not final)"
                                 for number, status in zip(skipped["invoice_no"], skipped["status"]) if status != "VOID"}
    first_reason: dict[tuple[Any, Any], str] = {}
    for day, branch, reason in zip(validated.quarantine["business_date"], validated.quarantine["branch_code"],
                                   validated.quarantine["reason"]):
        first_reason.setdefault((day, branch), reason)
    for row in validated.quarantined_days.itertuples(index=False):
        for number in row.ci_invoice_nos:
            held_back.setdefault(str(number), f"quarantined: {first_reason.get((row.business_date, row.branch_code), 'its branch-day')}")
    if books is not None:
        in_journals = {str(number) for numbers in books.documents["ci_invoice_nos"] for number in numbers} if len(books.documents) else set()
        # a document the contract checks quarantined is no evidence of anything, stock or not
        doubtful = set(validated.notices.loc[validated.notices["kind"] == "quarantined_without_stock", "invoice_no"].astype(str)) \
            if len(validated.notices) and "kind" in validated.notices else set()
        final = validated.read.loc[validated.read["status"] == "FINAL", "invoice_no"].astype(str)
        withdrawn = withdrawn | frozenset(n for n in final if n not in in_journals and n not in held_back and n not in doubtful)
    return {"returned": {day: frozenset(numbers) for day, numbers in returned.items()}, "withdrawn": withdrawn,
            "held_back": held_back}


__all__ = [
    "BRANCH_DAY_COLUMNS", "CHECK_COLUMNS", "COGS_ACCOUNT_COLUMNS", "COGS_QUARANTINE_COLUMNS", "COGS_TOTAL_COLUMNS",
    "CogsBooks", "CogsRules", "DOCUMENT_TYPE", "ENDPOINT", "NARRATION_LIMIT", "NOTHING_TO_POST", "NOTICE_COLUMNS",
    "NO_DOCUMENT_COLUMNS", "READ_COLUMNS", "STOCK_LINE_COLUMNS", "ValidatedCogs", "build_cogs_journals",
    "check_cogs_books", "ci_cost_by_account", "cogs_document_key", "cogs_narration", "cogs_rules",
    "cogs_source_evidence", "exact_cost", "journal_cogs_cents", "line_cost_units", "units_to_cents", "validate_cogs",
]

"""Which CI documents can be posted, and why the others cannot.

A document with any problem is quarantined whole, with one row per problem naming the CI document,
the line and the reason; half an invoice is never posted, and the rest of the day still posts.
Documents that are not FINAL (HELD, VOID) are skipped, not errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from ..money import cents_to_decimal
from .rules import EretailerRules
from .schemas import CISalesInvoiceLines, CISalesInvoices, expected_line_total_cents, gst_inclusive

QUARANTINE_COLUMNS = ["invoice_no", "business_date", "branch_code", "line_no", "total_incl_cents", "check", "reason"]
SKIPPED_COLUMNS = ["invoice_no", "business_date", "branch_code", "status", "total_incl_cents"]
UNMAPPED_COLUMNS = ["business_date", "kind", "code", "invoice_no"]


@dataclass(frozen=True)
class ValidatedSales:
    invoices: pd.DataFrame  # FINAL documents that can be posted
    lines: pd.DataFrame  # their lines
    quarantine: pd.DataFrame  # one row per problem (QUARANTINE_COLUMNS)
    skipped: pd.DataFrame  # not FINAL (SKIPPED_COLUMNS)
    unmapped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=UNMAPPED_COLUMNS))

    @property
    def unmapped_codes(self) -> dict[str, list[str]]:
        """CI codes the site's mapping lacks, by kind (analysis_code, gst_code, branch_code)."""
        return {
            str(kind): sorted(set(group["code"].astype(str)))
            for kind, group in self.unmapped.groupby("kind", sort=True)
        }


@dataclass
class _Problems:
    """Problems found so far: (invoice_no, line_no or None, check, reason)."""

    rows: list[pd.DataFrame] = field(default_factory=list)

    def add(self, invoice_no: pd.Series, line_no: pd.Series | None, check: str, reason: pd.Series) -> None:
        if len(invoice_no) == 0:
            return
        self.rows.append(
            pd.DataFrame(
                {
                    "invoice_no": invoice_no.to_numpy(),
                    "line_no": (line_no.to_numpy() if line_no is not None else pd.NA),
                    "check": check,
                    "reason": reason.to_numpy(),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame(columns=["invoice_no", "line_no", "check", "reason"])
        return pd.concat(self.rows, ignore_index=True)


def _money(cents: pd.Series) -> pd.Series:
    return cents.map(lambda value: "null" if pd.isna(value) else str(cents_to_decimal(int(value))))


def _scaled(values: pd.Series, places: int) -> pd.Series:
    return values.map(lambda value: "null" if pd.isna(value) else str(cents_to_decimal(int(value)).scaleb(2 - places)))


def _where(frame: pd.DataFrame, line: bool) -> pd.Series:
    where = frame["invoice_no"].astype(str)
    return where + " line " + frame["line_no"].astype(str) if line else where


# -- the source contract, as pandera checks ----------------------------------------------------

def _contract_failures(frame: pd.DataFrame, model: type[pa.DataFrameModel]) -> pd.DataFrame:
    """Rows failing the model: index, column, check, failure_case. Frame-wide failures raise."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        frame_wide = cases[cases["index"].isna()]
        if len(frame_wide):
            # a missing column or a wrong type is a bug in extraction or the view, not a data problem
            raise ValueError(f"CI data does not have the contract's shape: {frame_wide.to_dict('records')}") from None
        return cases[["index", "column", "check", "failure_case"]].drop_duplicates(["index", "check"])
    return pd.DataFrame(columns=["index", "column", "check", "failure_case"])


_INVOICE_CHECK_REASONS = {
    "sign_matches_doc_type": "an INVOICE must not have a negative total, nor a CREDIT a positive one",
    "gst_within_total": "GST is larger than the document total",
}


def _invoice_contract(invoices: pd.DataFrame, problems: _Problems) -> None:
    failures = _contract_failures(invoices, CISalesInvoices)
    if failures.empty:
        return
    rows = invoices.loc[failures["index"].astype(int)]
    reasons = [
        f"{doc}: {_INVOICE_CHECK_REASONS.get(check) or f'{column} {value!r} breaks the CI contract ({check})'}"
        for doc, check, column, value in zip(rows["invoice_no"], failures["check"], failures["column"], failures["failure_case"])
    ]
    problems.add(rows["invoice_no"], None, "ci_contract", pd.Series(reasons))


def _line_contract(lines: pd.DataFrame, problems: _Problems) -> None:
    failures = _contract_failures(lines, CISalesInvoiceLines)
    if failures.empty:
        return
    failures = failures.assign(index=failures["index"].astype(int))
    for check, group in failures.groupby("check", sort=False):
        rows = lines.loc[group["index"]]
        where = _where(rows, line=True)
        if check == "line_total_is_quantity_times_price_less_discount":
            expected = expected_line_total_cents(
                rows["quantity_x1000"], rows["unit_price_incl_x10000"], rows["discount_incl_cents"]
            )
            reason = (
                where + ": line total " + _money(rows["line_total_incl_cents"]) + " does not add up: quantity "
                + _scaled(rows["quantity_x1000"], 3) + " × unit price " + _scaled(rows["unit_price_incl_x10000"], 4)
                + " − discount " + _money(rows["discount_incl_cents"]) + " = " + _money(expected)
            )
        elif check == "gst_matches_gst_code":
            reason = (
                where + ": GST " + _money(rows["line_gst_cents"]) + " does not fit gst_code "
                + rows["gst_code"].astype(str) + " on " + _money(rows["line_total_incl_cents"])
                + " (15 % would be " + _money(gst_inclusive(rows["line_total_incl_cents"])) + ")"
            )
        else:
            column = group["column"].to_numpy()
            value = group["failure_case"].astype(str).to_numpy()
            reason = where + pd.Series([f": {c} {v!r} breaks the CI contract ({check})" for c, v in zip(column, value)], index=rows.index)
        problems.add(rows["invoice_no"], rows["line_no"], "ci_contract", reason)


# -- the documents as a whole ------------------------------------------------------------------

def _document_arithmetic(invoices: pd.DataFrame, lines: pd.DataFrame, problems: _Problems) -> None:
    sums = lines.groupby("invoice_no", sort=False)[["line_total_incl_cents", "line_gst_cents"]].sum()
    joined = invoices.join(sums, on="invoice_no")
    no_lines = joined["line_total_incl_cents"].isna()
    empty = joined[no_lines]
    problems.add(empty["invoice_no"], None, "no_lines", empty["invoice_no"] + ": the document has no lines")
    joined = joined[~no_lines]
    bad_total = joined[joined["total_incl_cents"] != joined["line_total_incl_cents"]]
    problems.add(
        bad_total["invoice_no"], None, "totals",
        bad_total["invoice_no"] + ": total_incl " + _money(bad_total["total_incl_cents"])
        + " is not the sum of its lines " + _money(bad_total["line_total_incl_cents"]),
    )
    bad_gst = joined[joined["total_gst_cents"] != joined["line_gst_cents"]]
    problems.add(
        bad_gst["invoice_no"], None, "totals",
        bad_gst["invoice_no"] + ": total_gst " + _money(bad_gst["total_gst_cents"])
        + " is not the sum of its lines' GST " + _money(bad_gst["line_gst_cents"]),
    )


# -- the site's mapping ------------------------------------------------------------------------

def _site_mapping(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules, problems: _Problems) -> pd.DataFrame:
    """Codes the site's settings cannot map; returns the unmapped (kind, code) rows."""
    unmapped: list[pd.DataFrame] = []

    def report(rows: pd.DataFrame, kind: str, line: bool, reason: pd.Series) -> None:
        if rows.empty:
            return
        problems.add(rows["invoice_no"], rows["line_no"] if line else None, f"unmapped_{kind}", reason)
        unmapped.append(
            pd.DataFrame({"business_date": rows["business_date"], "kind": kind, "code": rows[kind].astype(str), "invoice_no": rows["invoice_no"]})
        )

    no_branch = invoices[invoices["branch_code"].isna() | (invoices["branch_code"].astype(str).str.strip() == "")]
    problems.add(no_branch["invoice_no"], None, "missing_branch", no_branch["invoice_no"] + ": the document has no branch_code")
    has_branch = invoices.drop(no_branch.index)
    known = has_branch["branch_name"].notna() | has_branch["branch_code"].isin(list(rules.tracking_options))
    unknown = has_branch[~known]
    report(
        unknown, "branch_code", False,
        unknown["invoice_no"] + ": branch " + unknown["branch_code"].astype(str)
        + " is not in ci_branches and has no tracking option (tracking.branch_options)",
    )

    foreign = invoices[invoices["currency_code"].notna() & (invoices["currency_code"] != rules.currency_code)]
    problems.add(
        foreign["invoice_no"], None, "currency",
        foreign["invoice_no"] + ": currency " + foreign["currency_code"].astype(str)
        + f" is not the organisation's {rules.currency_code}",
    )

    valid_lines = lines[lines["analysis_code"].notna()]
    no_account = valid_lines[~valid_lines["analysis_code"].isin(list(rules.sales_accounts))]
    report(
        no_account, "analysis_code", True,
        _where(no_account, line=True) + ": analysis code " + no_account["analysis_code"].astype(str)
        + " has no Xero sales account (mapping.sales_accounts)",
    )
    coded = lines[lines["gst_code"].notna()]
    no_tax = coded[~coded["gst_code"].isin(list(rules.tax_types))]
    report(
        no_tax, "gst_code", True,
        _where(no_tax, line=True) + ": gst_code " + no_tax["gst_code"].astype(str)
        + " has no Xero tax type (mapping.tax_types)",
    )
    if not unmapped:
        return pd.DataFrame(columns=UNMAPPED_COLUMNS)
    return pd.concat(unmapped, ignore_index=True).drop_duplicates(["business_date", "kind", "code"])[UNMAPPED_COLUMNS]


def validate_sales_documents(documents, rules: EretailerRules) -> ValidatedSales:
    """Split the extracted documents into postable FINAL documents, quarantined ones and skipped ones."""
    invoices = documents.invoices.reset_index(drop=True)
    lines = documents.lines.reset_index(drop=True)

    not_final = invoices[invoices["status"].isin(["HELD", "VOID"])]
    skipped = not_final[SKIPPED_COLUMNS].reset_index(drop=True)
    candidates = invoices.drop(not_final.index)
    candidate_lines = lines[lines["invoice_no"].isin(candidates["invoice_no"])]

    problems = _Problems()
    _invoice_contract(candidates, problems)
    _line_contract(candidate_lines, problems)
    _document_arithmetic(candidates, candidate_lines, problems)
    unmapped = _site_mapping(candidates, candidate_lines, rules, problems)

    found = problems.frame()
    bad = set(found["invoice_no"])
    header = candidates.drop_duplicates("invoice_no").set_index("invoice_no")
    quarantine = found.join(header[["business_date", "branch_code", "total_incl_cents"]], on="invoice_no")
    quarantine["line_no"] = quarantine["line_no"].astype("Int64")
    quarantine = quarantine[QUARANTINE_COLUMNS].sort_values(["business_date", "invoice_no", "line_no"], na_position="first")

    postable = candidates[~candidates["invoice_no"].isin(bad)].reset_index(drop=True)
    postable_lines = candidate_lines[~candidate_lines["invoice_no"].isin(bad)].reset_index(drop=True)
    return ValidatedSales(
        invoices=postable,
        lines=postable_lines,
        quarantine=quarantine.reset_index(drop=True),
        skipped=skipped,
        unmapped=unmapped.reset_index(drop=True),
    )

"""A trading day's CI sales accounted for: what CI said about each document, and where every dollar went.

Pure functions over validated CI rows and posting results. `source_evidence` is what the posting layer
needs to take a document back only on CI's word; `hold_back_days` is the all-or-nothing-day option;
`dollars_by_day` is the per-day reconciliation Σ CI FINAL = Σ in Xero + Σ quarantined + Σ excluded.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

import pandas as pd

from ..money import cents_to_decimal, decimal_to_cents
from .eretailer import EXCLUDED_COLUMNS
from .validation import ValidatedSales

DOLLAR_COLUMNS = [
    "business_date", "ci_final_cents", "ci_final_gst_cents", "in_xero_cents", "in_xero_gst_cents",
    "quarantined_cents", "quarantined_gst_cents", "excluded_cents", "excluded_gst_cents",
    "unaccounted_cents", "unaccounted_gst_cents",
]


def source_evidence(validated: ValidatedSales) -> dict[str, Any]:
    """returned (day → every CI document number the read gave, any status), withdrawn (VOID in CI),
    held_back (number → why its current version is not posted: quarantined or not final)."""
    returned: dict[str, set[str]] = defaultdict(set)
    for frame in (validated.invoices, validated.quarantine, validated.skipped):
        for day, number in zip(frame["business_date"], frame["invoice_no"]):
            returned[str(day)].add(str(number))
    skipped = validated.skipped
    withdrawn = frozenset(skipped.loc[skipped["status"] == "VOID", "invoice_no"].astype(str))
    held_back: dict[str, str] = {}
    for number, status in zip(skipped["invoice_no"], skipped["status"]):
        if status != "VOID":
            held_back[str(number)] = f"{status} in CI (not final)"
    for number, reason in zip(validated.quarantine["invoice_no"], validated.quarantine["reason"]):
        held_back.setdefault(str(number), f"quarantined: {reason}")
    return {
        "returned": {day: frozenset(numbers) for day, numbers in returned.items()},
        "withdrawn": withdrawn,
        "held_back": held_back,
    }


def hold_back_days(validated: ValidatedSales) -> tuple[ValidatedSales, pd.DataFrame]:
    """All-or-nothing days: a day with any quarantined document posts none of its documents. Returns
    the postable rows without those days, and the documents held back (EXCLUDED_COLUMNS)."""
    days = set(validated.quarantine["business_date"])
    if not days:
        return validated, pd.DataFrame(columns=EXCLUDED_COLUMNS)
    held = validated.invoices["business_date"].isin(days)
    held_numbers = set(validated.invoices.loc[held, "invoice_no"])
    excluded = pd.DataFrame({
        "business_date": validated.invoices.loc[held, "business_date"],
        "branch_code": validated.invoices.loc[held, "branch_code"],
        "invoice_nos": [(n,) for n in validated.invoices.loc[held, "invoice_no"]],
        "total_cents": validated.invoices.loc[held, "total_incl_cents"].astype("int64"),
        "tax_cents": validated.invoices.loc[held, "total_gst_cents"].astype("int64"),
        "reason": "all-or-nothing day: another document of the day is quarantined",
    }, columns=EXCLUDED_COLUMNS).reset_index(drop=True)
    kept = dataclasses.replace(
        validated,
        invoices=validated.invoices[~held].reset_index(drop=True),
        lines=validated.lines[~validated.lines["invoice_no"].isin(held_numbers)].reset_index(drop=True),
    )
    return kept, excluded


def postable_rows(validated: ValidatedSales, all_or_nothing_days: bool) -> tuple[ValidatedSales, pd.DataFrame]:
    """The rows to build documents from, and the documents a site rule withholds (EXCLUDED_COLUMNS)."""
    if all_or_nothing_days:
        return hold_back_days(validated)
    return validated, pd.DataFrame(columns=EXCLUDED_COLUMNS)


def locked_out(results: pd.DataFrame) -> pd.DataFrame:
    """New documents Xero's lock date kept out (EXCLUDED_COLUMNS, CI's signs): reported, and excluded by
    that rule. A locked change (Xero holds the earlier version) is not excluded: it stays a difference."""
    locked = results[(results["outcome"] == "locked") & results["xero_id"].isna()]
    sign = locked["endpoint"].map({"Invoices": 1, "CreditNotes": -1}).astype("int64")
    return pd.DataFrame({
        "business_date": locked["business_date"],
        "branch_code": locked["branch_code"],
        "invoice_nos": locked["ci_invoice_nos"],
        "total_cents": locked["total_cents"].astype("int64") * sign,
        "tax_cents": locked["tax_cents"].astype("int64") * sign,
        "reason": "dated on or before Xero's lock date: not posted",
    }, columns=EXCLUDED_COLUMNS).reset_index(drop=True)


def _signed_xero(results: pd.DataFrame, held: dict[tuple[str, str], dict[str, Any]]) -> dict[str, list[int]]:
    """Σ Total and Σ TotalTax per day of the documents Xero holds for these results (credit notes
    subtract). A withdrawn document is out of the books: voided, deleted, or reversed by a credit note."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    seen = set()
    for day, endpoint, number, outcome in zip(results["business_date"], results["endpoint"], results["number"], results["outcome"]):
        xero = held.get((endpoint, number))
        if outcome == "withdrawn" or xero is None or xero.get("Status") in ("VOIDED", "DELETED") or (endpoint, number) in seen:
            continue
        seen.add((endpoint, number))
        sign = -1 if endpoint == "CreditNotes" else 1
        sums[str(day)][0] += sign * decimal_to_cents(xero.get("Total", 0))
        sums[str(day)][1] += sign * decimal_to_cents(xero.get("TotalTax", 0))
    return sums


def dollars_by_day(
    validated: ValidatedSales, withheld: pd.DataFrame, excluded: pd.DataFrame, results: pd.DataFrame,
    held: dict[tuple[str, str], dict[str, Any]], days: list[str],
) -> pd.DataFrame:
    """Per day: CI's FINAL documents beside what Xero holds, what is quarantined and what a rule
    excluded; `unaccounted` is what is left, and must be 0.00. `validated` is as validation made it;
    `withheld`: its documents a rule took out of the postable rows (all-or-nothing days); `excluded`: postable documents that made no Xero document
    (a Summary day netting to zero). Both are EXCLUDED_COLUMNS frames."""
    quarantined = validated.quarantine.drop_duplicates("invoice_no")
    money = ["business_date", "total_cents", "tax_cents"]
    postable = validated.invoices.rename(columns={"total_incl_cents": "total_cents", "total_gst_cents": "tax_cents"})[money]
    quarantined = quarantined.rename(columns={"total_incl_cents": "total_cents", "total_gst_cents": "tax_cents"})[money]

    def by_day(*frames: pd.DataFrame) -> dict[str, tuple[int, int]]:
        frames = [f[money] for f in frames if len(f)]
        if not frames:
            return {}
        sums = pd.concat(frames).astype({"total_cents": "int64", "tax_cents": "int64"}).groupby("business_date").sum()
        return {str(day): (int(row.total_cents), int(row.tax_cents)) for day, row in sums.iterrows()}

    ci = by_day(postable, quarantined)  # `validated` is before any rule withheld documents
    xero = _signed_xero(results, held)
    held_back = by_day(quarantined)
    rule = by_day(withheld, excluded)
    rows = []
    for day in days:
        c, x, q, e = ci.get(day, (0, 0)), tuple(xero.get(day, (0, 0))), held_back.get(day, (0, 0)), rule.get(day, (0, 0))
        rows.append((day, c[0], c[1], x[0], x[1], q[0], q[1], e[0], e[1], c[0] - x[0] - q[0] - e[0], c[1] - x[1] - q[1] - e[1]))
    return pd.DataFrame(rows, columns=DOLLAR_COLUMNS)


def less_tender_lines(documents: pd.DataFrame, tender_lines: pd.DataFrame) -> pd.DataFrame:
    """The documents with each one's total less the tender lines the sign rule added to it (tender lines
    carry no tax): what CI's own totals are compared with."""
    if tender_lines.empty:
        return documents
    added = tender_lines.groupby("document_key")["amount_cents"].sum()
    less = documents["document_key"].map(added).fillna(0).astype("int64")
    return documents.assign(total_cents=documents["total_cents"].astype("int64") - less)


def less_tender_lines_held(held: dict[tuple[str, str], dict[str, Any]], results: pd.DataFrame,
                           tender_lines: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """What Xero holds, each document's Total less the tender lines we put on it (found by the results'
    key → number), for the per-day count of CI's dollars."""
    if tender_lines.empty or results.empty:
        return held
    added = tender_lines.groupby("document_key")["amount_cents"].sum().to_dict()
    adjusted = dict(held)
    for key, endpoint, number in zip(results["document_key"], results["endpoint"], results["number"]):
        xero = held.get((endpoint, number))
        if key in added and xero is not None and xero.get("Total") is not None:
            total = decimal_to_cents(xero["Total"]) - int(added[key])
            adjusted[(endpoint, number)] = {**xero, "Total": cents_to_decimal(total)}
    return adjusted

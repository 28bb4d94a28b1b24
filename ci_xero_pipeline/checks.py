"""Asset checks. Each is computed from evidence independent of the thing it checks."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from .assets.metadata import money, table
from .books.eretailer import ci_totals_by_day, document_totals_by_day

NO_QUARANTINE = "no_quarantined_rows"
CODES_MAPPED = "every_code_mapped"
TOTALS_MATCH_CI = "totals_match_ci_to_the_cent"
ALL_ACCEPTED = "every_document_in_xero"
XERO_MATCHES_CI = "xero_matches_ci"
EVERY_DOLLAR = "every_dollar_accounted_for"
TENDERS_PAID = "every_tender_paid_as_counted"


def severity(name: str) -> AssetCheckSeverity:
    """A site's check severity setting (error | warn) as Dagster's."""
    return AssetCheckSeverity.WARN if name == "warn" else AssetCheckSeverity.ERROR


def validation_check_specs(
    asset_name: str,
    quarantine: str = "No CI document was quarantined: money held back fails the day (an error unless the site set "
                      "quarantine_check_severity: warn).",
    mapped: str = "Every CI code in the data has a Xero mapping (warning).",
) -> list[AssetCheckSpec]:
    """Every process's two checks on its validated rows, in the process's own words."""
    return [
        AssetCheckSpec(NO_QUARANTINE, asset=asset_name, description=quarantine),
        AssetCheckSpec(CODES_MAPPED, asset=asset_name, description=mapped),
    ]


def validation_checks(validated: Any, severity: str = "error") -> list[AssetCheckResult]:
    quarantine = validated.quarantine
    unmapped = {kind: list(codes) for kind, codes in validated.unmapped_codes.items() if codes}
    return [
        AssetCheckResult(
            check_name=NO_QUARANTINE,
            passed=quarantine.empty,
            severity=AssetCheckSeverity.WARN if severity == "warn" else AssetCheckSeverity.ERROR,
            metadata={
                "quarantined_documents": int(quarantine["invoice_no"].nunique()),
                "quarantined_amount": money(quarantine.drop_duplicates("invoice_no")["total_incl_cents"].sum()),
                "reasons": table(quarantine, ["business_date", "invoice_no", "line_no", "reason"]),
            },
        ),
        AssetCheckResult(
            check_name=CODES_MAPPED,
            passed=not unmapped,
            severity=AssetCheckSeverity.WARN,
            metadata={"unmapped_codes": unmapped},
        ),
    ]


def totals_check_spec(asset_name: str) -> AssetCheckSpec:
    return AssetCheckSpec(
        TOTALS_MATCH_CI, asset=asset_name, blocking=True,  # a wrong builder never reaches Xero
        description="Per day, the Xero documents' totals and GST equal the postable CI documents' to the cent.",
    )


def compare_daily_totals(ci: pd.DataFrame, documents: pd.DataFrame) -> pd.DataFrame:
    """Per day: CI's totals beside the documents'; days where either side has data."""
    merged = ci.merge(documents, on="business_date", how="outer", suffixes=("_ci", "_xero")).fillna(0)
    for column in ("total_cents_ci", "tax_cents_ci", "total_cents_xero", "tax_cents_xero"):
        merged[column] = merged[column].astype("int64")
    merged["matches"] = (merged["total_cents_ci"] == merged["total_cents_xero"]) & (
        merged["tax_cents_ci"] == merged["tax_cents_xero"]
    )
    return merged.sort_values("business_date").reset_index(drop=True)


def totals_check(validated: Any, documents: pd.DataFrame) -> AssetCheckResult:
    comparison = compare_daily_totals(ci_totals_by_day(validated.invoices), document_totals_by_day(documents))
    mismatched = comparison[~comparison["matches"]]
    return AssetCheckResult(
        check_name=TOTALS_MATCH_CI,
        passed=mismatched.empty,
        metadata={
            "days_compared": len(comparison),
            "ci_total": money(comparison["total_cents_ci"].sum()),
            "documents_total": money(comparison["total_cents_xero"].sum()),
            "ci_gst": money(comparison["tax_cents_ci"].sum()),
            "documents_gst": money(comparison["tax_cents_xero"].sum()),
            "mismatched_days": table(
                mismatched,
                ["business_date", "total_cents_ci", "total_cents_xero", "tax_cents_ci", "tax_cents_xero"],
                money_columns=["total_cents_ci", "total_cents_xero", "tax_cents_ci", "tax_cents_xero"],
            ),
        },
    )


def posting_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            ALL_ACCEPTED, asset=asset_name,
            description="Every document is in Xero as CI has it (none failed, locked, or changed after posting).",
        ),
        AssetCheckSpec(
            EVERY_DOLLAR, asset=asset_name, blocking=True,
            description="Per day, Σ CI FINAL = Σ in Xero + Σ quarantined + Σ excluded by a rule, totals and GST "
            "to the cent.",
        ),
        AssetCheckSpec(
            XERO_MATCHES_CI, asset=asset_name,
            description="Read back from Xero after posting: each document's total, tax, status and tracking "
            "equal what CI's rows make them.",
        ),
    ]


def reconciliation_check(documents: pd.DataFrame, results: pd.DataFrame, held: dict) -> AssetCheckResult:
    from .xero.posting import GOOD_OUTCOMES
    from .xero.reconcile import compare_with_xero, tracking_of

    good = results[results["outcome"].isin(GOOD_OUTCOMES - {"withdrawn"})][["document_key", "number"]]
    expected = documents.drop(columns=["number"]).merge(good, on="document_key")
    expected = expected.assign(
        tracking=[tracking_of(payload.get("LineItems") or []) for payload in expected["payload"]]
    )
    differences = compare_with_xero(expected, held)
    return AssetCheckResult(
        check_name=XERO_MATCHES_CI,
        passed=differences.empty,
        metadata={
            "documents_compared": len(expected),
            "differences": len(differences),
            "difference_table": table(differences, ["business_date", "number", "field", "ci", "xero"]),
        },
    )


def posting_check(results: pd.DataFrame) -> AssetCheckResult:
    from .xero.posting import GOOD_OUTCOMES

    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    return AssetCheckResult(
        check_name=ALL_ACCEPTED,
        passed=problems.empty,
        metadata={
            "documents": len(results),
            "problems": table(
                problems, ["business_date", "number", "outcome", "message", "ci_invoice_nos"]
            ),
        },
    )


def dollars_check(dollars: pd.DataFrame) -> AssetCheckResult:
    """Every dollar of the day accounted for (books.daybook.dollars_by_day)."""
    unaccounted = dollars[(dollars["unaccounted_cents"] != 0) | (dollars["unaccounted_gst_cents"] != 0)]
    money_columns = [c for c in dollars.columns if c.endswith("_cents")]
    return AssetCheckResult(
        check_name=EVERY_DOLLAR,
        passed=unaccounted.empty,
        metadata={
            "ci_final": money(dollars["ci_final_cents"].sum()),
            "in_xero": money(dollars["in_xero_cents"].sum()),
            "quarantined": money(dollars["quarantined_cents"].sum()),
            "excluded_by_rule": money(dollars["excluded_cents"].sum()),
            "unaccounted": money(dollars["unaccounted_cents"].sum()),
            "unaccounted_days": table(unaccounted, list(dollars.columns), money_columns=money_columns),
        },
    )


def tenders_paid_spec(asset_name: str, description: str) -> AssetCheckSpec:
    return AssetCheckSpec(TENDERS_PAID, asset=asset_name, blocking=True, description=description)


def tenders_paid_check(differences: pd.DataFrame, compared: int, unpaid: pd.DataFrame | None = None,
                       note: str = "") -> AssetCheckResult:
    """Read back from Xero: each document paid, each payment with CI's amount (xero.reconcile.payment_differences),
    and no document the books had to leave unpaid (`unpaid`: books.tenders TENDER_PROBLEM_COLUMNS)."""
    unpaid = unpaid if unpaid is not None else pd.DataFrame(columns=["business_date", "number", "tender_type", "reason"])
    value: dict[str, Any] = {
        "payments_compared": compared,
        "differences": table(differences, ["number", "payment", "field", "ci", "xero"]),
        "left_unpaid": table(unpaid, ["business_date", "number", "tender_type", "reason"]),
    }
    if note:
        value["note"] = note
    return AssetCheckResult(check_name=TENDERS_PAID, passed=differences.empty and unpaid.empty, metadata=value)

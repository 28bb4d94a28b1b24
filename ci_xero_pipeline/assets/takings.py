"""The end-of-day takings process, declared (processes.md §1): per branch per NZ trading day, one takings
invoice (or, on a net-negative day, a credit note) and one payment per tender into its clearing account.
The steps are assets/process.py's; the accounting is books/takings.py's."""

from __future__ import annotations

from datetime import date

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSpec, MetadataValue

from .. import checks
from ..books.diagnosis import EXPLAINED_COLUMNS, SiteView, explain_failures
from ..books.takings import TakingsBooks, build_takings_documents, check_takings_books, takings_sales_cents
from ..books.takings_validation import ValidatedTakings, takings_source_evidence, validate_takings
from ..ci.extract import SalesWithTenders, extract_takings
from ..money import decimal_to_cents
from ..xero.client import parse_xero_date
from ..xero.reconcile import documents_in_books, payment_differences
from ..resources import CISourceResource, SiteResource
from ..xero.chart_check import needs_for_process
from ..xero.posting import GOOD_OUTCOMES, REPORTED_OUTCOMES, SourceEvidence
from . import metadata
from .process import Books, Posting, Process, RunWords, build_process_assets

GROUP = "takings"
BOOKS_MATCH_CI = "takings_match_ci_to_the_cent"
TAKINGS_SHOWN = ["business_date", "branch_code", "number", "endpoint", "ci_invoice_count", "ci_total_cents", "ci_gst_cents",
                 "over_short_cents", "document_total_cents", "document_tax_cents", "tender_lines_cents", "payments_cents"]
TAKINGS_MONEY = [c for c in TAKINGS_SHOWN if c.endswith("_cents") and c != "ci_invoice_count"]


def read(ci: CISourceResource, site: SiteResource, first: date, last: date) -> SalesWithTenders:
    """The POS documents (every status) with their lines and tenders, the cash-ups and the branches."""
    return extract_takings(ci.engine(), first, last, names=ci.names())


def describe_read(read: SalesWithTenders, day: str) -> dict:
    documents = read.documents.invoices
    return {
        "pos_documents": len(documents),
        "by_status": MetadataValue.json({str(k): int(v) for k, v in documents["status"].value_counts().items()}),
        "tenders": len(read.tenders),
        "cash_ups": len(read.cash_ups),
        "branches": int(documents["branch_code"].nunique()) if len(documents) else 0,
    }


def log_read(read: SalesWithTenders, days: list[str]) -> str:
    return (f"Read from CI for {metadata.day_range(days)}: {len(read.documents.invoices)} POS documents, "
            f"{len(read.tenders)} tenders, {len(read.cash_ups)} cash-up rows.")


def validate(read: SalesWithTenders, site: SiteResource) -> ValidatedTakings:
    return validate_takings(read, site.takings_rules())


def describe_validated(validated: ValidatedTakings) -> dict:
    days = validated.branch_days
    held = validated.quarantined_days
    return {
        "branch_days": len(days),
        "postable_branch_days": int(len(days) - len(held)),
        "quarantined_branch_days": len(held),
        "quarantined_amount": metadata.money(held["total_incl_cents"].sum() if len(held) else 0),
        "quarantine": metadata.table(validated.quarantine, ["business_date", "branch_code", "invoice_no", "tender_type", "check", "reason"]),
        "unmapped_codes": MetadataValue.json(validated.unmapped_codes),
        # tenders of till documents charged to an account customer: that process's payments, not these takings'
        "tenders_left_to_account_customers": metadata.money(
            validated.tender_days["other_process_cents"].sum() if len(validated.tender_days) else 0),
    }


def log_validated(validated: ValidatedTakings) -> list[str]:
    held = validated.quarantined_days
    lines = [f"{len(validated.branch_days) - len(held)} branch-days can be posted; {len(held)} quarantined."]
    for row in validated.quarantine.drop_duplicates(["business_date", "branch_code"]).head(5).itertuples(index=False):
        lines.append(f"Quarantined {row.business_date} {row.branch_code}: {row.reason}")
    return lines


def validation_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return checks.validation_check_specs(
        asset_name,
        quarantine="No branch-day was quarantined: takings held back fail the day (an error unless the "
        "site set takings.quarantine_check_severity: warn).",
        mapped="Every CI code and tender type in the data has a Xero mapping (warning).",
    )


def validation_checks(validated: ValidatedTakings, site: SiteResource) -> list[AssetCheckResult]:
    held = validated.quarantined_days
    severity = checks.severity(site.quarantine_severity("takings"))
    unmapped = {kind: codes for kind, codes in validated.unmapped_codes.items() if codes}
    return [
        AssetCheckResult(check_name=checks.NO_QUARANTINE, passed=held.empty, severity=severity, metadata={
            "quarantined_branch_days": len(held),
            "quarantined_amount": metadata.money(held["total_incl_cents"].sum() if len(held) else 0),
            "reasons": metadata.table(validated.quarantine, ["business_date", "branch_code", "invoice_no", "tender_type", "reason"]),
        }),
        AssetCheckResult(check_name=checks.CODES_MAPPED, passed=not unmapped, severity=checks.severity("warn"),
                         metadata={"unmapped_codes": unmapped}),
    ]


def build(validated: ValidatedTakings, site: SiteResource, days: list[str]) -> Books:
    """The takings documents of the postable branch-days and one payment per tender; blocking: the
    books equal CI's figures account by account."""
    rules = site.takings_rules()
    books = build_takings_documents(validated, rules)
    problems = check_takings_books(validated, books, rules)
    log = [f"Made {len(books.documents)} takings documents ({int((books.documents['endpoint'] == 'CreditNotes').sum()) if len(books.documents) else 0} "
           f"credit notes) and {len(books.payments)} payments, status {rules.status}."]
    log += [f"{row.business_date} {row.branch_code}: no document: {row.reason}" for row in books.no_document.itertuples(index=False)]
    totals_by_day = dict(tuple(books.totals.groupby("business_date"))) if len(books.totals) else {}
    check = AssetCheckResult(
        check_name=BOOKS_MATCH_CI, passed=problems.empty,
        metadata={
            "branch_days": len(books.totals),
            "problems": metadata.table(problems, ["business_date", "branch_code", "check", "message"]),
            "totals": metadata.table(books.totals, TAKINGS_SHOWN, money_columns=TAKINGS_MONEY),
        },
    )
    return Books(
        documents=books.documents, payments=books.payments, checks=[check], log=log,
        day_metadata=lambda part, day: {
            **metadata.xero_documents(part),
            "ci_beside_documents": metadata.table(totals_by_day.get(day, books.totals.iloc[0:0]), TAKINGS_SHOWN, money_columns=TAKINGS_MONEY),
        },
    )


def build_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(
        BOOKS_MATCH_CI, asset=asset_name, blocking=True,  # a wrong builder never reaches Xero
        description="Per branch-day, before anything is sent: each document's lines add up, every line's tax is what "
        "Xero computes, its tax is CI's GST, its payments add up to its total, and every account it touches moves by "
        "exactly CI's figures (each tender's account by what the cash-up counted).",
    )]


def explain(results: pd.DataFrame, documents: pd.DataFrame, site: SiteResource, validated: ValidatedTakings) -> pd.DataFrame:
    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    if problems.empty:
        return pd.DataFrame(columns=EXPLAINED_COLUMNS)
    rules = site.takings_rules().document_rules()
    options = {str(b): str(rules.tracking_options.get(b, n)) for b, n in zip(validated.branch_days["branch_code"], validated.branch_days["branch_name"])}
    return explain_failures(problems, documents, SiteView(rules, site.settings.tracking.strategy, options), "raw_takings")


def quarantined(validated: ValidatedTakings) -> pd.DataFrame:
    """One row per quarantined branch-day (its takings as CI has them), for the run log and the day's summary."""
    return metadata.quarantined_branch_days(validated.quarantined_days, validated.quarantine, "takings of {branch}", "total_incl_cents")


# -- after posting ----------------------------------------------------------------------------------------
def posted_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return checks.posting_check_specs(asset_name) + [checks.tenders_paid_spec(
        asset_name, "Read back from Xero: each takings document is PAID (or a 0.00 invoice), and each tender's payment "
        "is in Xero with CI's counted amount, into the tender's account.")]


def every_dollar(posting: Posting, books: TakingsBooks, rules) -> pd.DataFrame:
    """Per day: CI's FINAL takings = Xero's takings (the lines of the documents Xero holds that carry CI's
    takings, takings_sales_cents) + quarantined + excluded (branch-days with nothing to post, and new documents
    a rule kept out of Xero, e.g. dated in a locked period), totals and GST to the cent. A document Xero holds
    otherwise than CI now says (CI changed a locked day; a posted day now quarantined) leaves the difference
    unaccounted, and the check fails until a person settles it."""
    from ..books.daybook import DOLLAR_COLUMNS

    validated, results, held = posting.validated, posting.results, posting.held
    days = validated.branch_days
    built = {row.document_key: row for row in books.totals.itertuples(index=False)}
    xero_by_day: dict[str, list[int]] = {}
    for key, endpoint, _number, _outcome, xero in documents_in_books(results, held):
        day = parse_xero_date(xero.get("Date") or xero.get("DateString"))
        sign = -1 if endpoint == "CreditNotes" else 1
        sums = xero_by_day.setdefault(day.isoformat() if day else "", [0, 0])
        sums[0] += sign * takings_sales_cents(xero.get("LineItems") or [], rules)
        sums[1] += sign * decimal_to_cents(xero.get("TotalTax", 0))
    kept_out: dict[str, list[int]] = {}  # CI's takings of new documents a rule kept out of Xero (no Xero id)
    held_keys = {key for key, *_rest in documents_in_books(results, held)}
    for key, outcome in zip(results["document_key"], results["outcome"]):
        row = built.get(key)
        if row is not None and outcome in REPORTED_OUTCOMES and key not in held_keys:
            sums = kept_out.setdefault(str(row.business_date), [0, 0])
            sums[0] += int(row.ci_total_cents)
            sums[1] += int(row.ci_gst_cents)
    rows = []
    for day in posting.days:
        of_day = days[days["business_date"] == day]
        ci_total, ci_gst = int(of_day["total_incl_cents"].sum()), int(of_day["total_gst_cents"].sum())
        held_back = of_day[of_day["quarantined"].to_numpy(dtype=bool)]
        q_total, q_gst = int(held_back["total_incl_cents"].sum()), int(held_back["total_gst_cents"].sum())
        nothing = books.no_document[books.no_document["business_date"] == day]
        out = kept_out.get(day, [0, 0])
        e_total, e_gst = int(nothing["total_cents"].sum()) + out[0], int(nothing["tax_cents"].sum()) + out[1]
        x_total, x_gst = xero_by_day.get(day, [0, 0])
        rows.append((day, ci_total, ci_gst, x_total, x_gst, q_total, q_gst, e_total, e_gst,
                     ci_total - x_total - q_total - e_total, ci_gst - x_gst - q_gst - e_gst))
    return pd.DataFrame(rows, columns=DOLLAR_COLUMNS)


def posted_checks(posting: Posting) -> list[AssetCheckResult]:
    rules = posting.site.takings_rules()
    books = build_takings_documents(posting.validated, rules)  # pure and quick: what the documents step made
    differences = payment_differences(posting.payments, posting.results, posting.held, rules.zero_balance)
    return [
        checks.posting_check(posting.results),
        checks.reconciliation_check(posting.documents, posting.results, posting.held),
        checks.dollars_check(every_dollar(posting, books, rules)),
        checks.tenders_paid_check(differences, len(posting.payments)),
    ]


TAKINGS = Process(
    name=GROUP,
    title="End-of-day takings",
    read=read,
    describe_read=describe_read,
    log_read=log_read,
    validate=validate,
    describe_validated=describe_validated,
    log_validated=log_validated,
    validation_check_specs=validation_check_specs,
    validation_checks=validation_checks,
    build=build,
    build_check_specs=build_check_specs,
    chart_needs=lambda site: needs_for_process(site.settings, "takings"),
    evidence=lambda validated, site: SourceEvidence(**takings_source_evidence(validated)),
    quarantined=quarantined,
    explain=explain,
    posted_check_specs=posted_check_specs,
    posted_checks=posted_checks,
    rules=lambda site: RunWords("takings", site.takings_rules().status),
)



def build_takings_assets(partitions_def, xero_pool: str | None = None) -> list:
    return build_process_assets(TAKINGS, partitions_def, xero_pool)

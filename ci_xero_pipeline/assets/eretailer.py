"""The E-Retailer process, declared: web store invoices from CI to Xero in Summary or Detail mode, one NZ
trading day per partition, and (eretailer.pay_tenders) the web orders' tenders as payments of them.
The steps are assets/process.py's; this module says what each step does for E-Retailer."""

from __future__ import annotations

import dataclasses
from datetime import date

import pandas as pd
from dagster import MetadataValue

from .. import checks
from ..books.daybook import (
    dollars_by_day, less_tender_lines, less_tender_lines_held, locked_out, postable_rows, source_evidence,
)
from ..books.diagnosis import EXPLAINED_COLUMNS, SiteView, branch_options_used, ci_line_keys, explain_failures
from ..books.eretailer import build_eretailer_documents_with_notices, excluded_by_rule, with_source_links
from ..books.tenders import TenderPayments, build_eretailer_tender_payments, empty_payments
from ..books.validation import ValidatedSales, validate_sales_documents
from ..ci.extract import SalesDocuments, extract_sales_documents, extract_sales_with_tenders
from ..resources import CISourceResource, SiteResource
from ..xero.chart_check import needs_for_process
from ..xero.posting import GOOD_OUTCOMES, SourceEvidence
from ..xero.reconcile import PAYMENT_DIFFERENCE_COLUMNS, payment_differences
from . import metadata
from .process import Books, Posting, Process, build_process_assets

GROUP = "eretailer"
NOTICE_COLUMNS_SHOWN = ["business_date", "invoice_no", "line_no", "kind", "message"]


def read(ci: CISourceResource, site: SiteResource, first: date, last: date) -> SalesDocuments:
    """E-Retailer documents and their lines as CI holds them (every status); their tenders too when the
    site pays them (one read, one snapshot)."""
    if not site.settings.eretailer.pay_tenders:
        return extract_sales_documents(ci.engine(), first, last, source="ERETAILER", names=ci.names())
    read = extract_sales_with_tenders(ci.engine(), first, last, source="ERETAILER", names=ci.names())
    # a tender amount with more decimals than the contract quarantines its document, as a line's would
    tender_excess = read.excess_decimals[read.excess_decimals["invoice_no"].notna().to_numpy(dtype=bool)]
    excess = read.documents.excess_decimals
    if len(tender_excess):
        excess = pd.concat([excess, pd.DataFrame({
            "business_date": tender_excess["business_date"].to_numpy(dtype=object),
            "invoice_no": tender_excess["invoice_no"].to_numpy(dtype=object),
            "line_no": None,
            "column": [f"{view}.{column}" for view, column in zip(tender_excess["view"], tender_excess["column"])],
            "value": tender_excess["value"].to_numpy(dtype=object),
            "places": tender_excess["places"].to_numpy(),
            "reason": tender_excess["reason"].to_numpy(dtype=object),
        })], ignore_index=True)
    return dataclasses.replace(read.documents, tenders=read.tenders, excess_decimals=excess)


def validate(raw: SalesDocuments, site: SiteResource) -> ValidatedSales:
    """FINAL documents that can be posted; every other FINAL document quarantined with its reason."""
    validated = validate_sales_documents(raw, site.eretailer_rules())
    if len(raw.tenders):
        postable = raw.tenders["invoice_no"].isin(validated.invoices["invoice_no"]).to_numpy(dtype=bool)
        validated = dataclasses.replace(validated, tenders=raw.tenders[postable].reset_index(drop=True))
    return validated


@dataclasses.dataclass(frozen=True)
class EretailerBooks:
    postable: ValidatedSales
    withheld: pd.DataFrame  # documents a rule took out of the postable rows (all-or-nothing days)
    documents: pd.DataFrame
    notices: pd.DataFrame
    excluded: pd.DataFrame  # postable documents that made no Xero document (a Summary day netting to zero)
    tenders: TenderPayments | None  # None: the site does not pay tenders


def eretailer_books(validated: ValidatedSales, site: SiteResource, days: list[str]) -> EretailerBooks:
    """Pure: the days' documents (with their links back to Dagster) and, when the site pays tenders, their payments."""
    rules = site.eretailer_rules()
    postable, withheld = postable_rows(validated, site.settings.eretailer.all_or_nothing_days)
    documents, notices = build_eretailer_documents_with_notices(postable.invoices, postable.lines, rules)
    if site.settings.dagster_ui_url:  # each invoice links back to the day that made it ("Go to …" in Xero)
        documents = with_source_links(documents, {
            day: metadata.partition_url(site.settings.dagster_ui_url, "posted_eretailer", day) for day in days
        })
    excluded = excluded_by_rule(postable.invoices, documents, rules)
    tenders = None
    if site.settings.eretailer.pay_tenders:
        tenders = build_eretailer_tender_payments(documents, postable.invoices, validated.tenders, site.tender_mapping(),
                                                  rules.exempt_tax_type)
        documents = tenders.documents
    return EretailerBooks(postable, withheld, documents, notices, excluded, tenders)


def build(validated: ValidatedSales, site: SiteResource, days: list[str]) -> Books:
    """The exact Xero invoices and credit notes, in the site's Summary or Detail mode, and their payments."""
    built = eretailer_books(validated, site, days)
    log = [f"{row.business_date}: {row.reason} ({len(row.invoice_nos)} CI documents)" for row in built.excluded.itertuples(index=False)]
    payments, checked = empty_payments(), built.documents
    if built.tenders is not None:
        payments = built.tenders.payments
        log += [f"{p.business_date}: not paid: {p.reason}" for p in built.tenders.problems.itertuples(index=False)]
        # CI's totals are the documents' less the tender lines the sign rule added
        checked = less_tender_lines(built.documents, built.tenders.tender_lines)
    log.append(metadata.log_built(built.documents, site.eretailer_rules()))
    without_document = set(built.excluded["business_date"])
    notices = built.notices
    notices_by_day = dict(tuple(notices.groupby("business_date"))) if len(notices) else {}
    return Books(
        documents=built.documents,
        payments=payments,
        checks=[checks.totals_check(built.postable, checked)],
        log=log,
        day_metadata=lambda part, day: {
            **metadata.xero_documents(part),
            "days_without_document": MetadataValue.json([day] if day in without_document else []),
            "notices": metadata.table(notices_by_day.get(day, notices.iloc[0:0]), NOTICE_COLUMNS_SHOWN),
        },
        run_metadata={"days_without_document_in_run": MetadataValue.json(sorted(without_document))},
    )


def site_view(site: SiteResource, validated: ValidatedSales) -> SiteView:
    """What the diagnosis of a refusal reads of the site: its rules, and the options its branches carry."""
    rules = site.eretailer_rules()
    return SiteView(rules, site.settings.tracking.strategy, branch_options_used(validated.invoices, rules))


def explain(results: pd.DataFrame, documents: pd.DataFrame, site: SiteResource, validated: ValidatedSales) -> pd.DataFrame:
    """Every result that is not in Xero as CI has it, with Xero's words, the cause and the fix."""
    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    if problems.empty:  # the usual run: nothing to explain, nothing of CI to look at
        return pd.DataFrame(columns=EXPLAINED_COLUMNS)
    wanted = {str(n) for numbers in problems["ci_invoice_nos"] for n in (numbers or ())}
    lines = validated.lines[validated.lines["invoice_no"].isin(wanted)]
    ci_lines = ci_line_keys(validated.invoices, lines, site.eretailer_rules())
    return explain_failures(problems, documents, site_view(site, validated), "raw_eretailer", ci_lines)


def posted_checks(posting: Posting) -> list:
    """Every document in Xero; Xero read back equal to CI; every dollar of the day accounted for."""
    site, results, held = posting.site, posting.results, posting.held
    built = eretailer_books(posting.validated, site, posting.days)  # pure and quick: what the documents step made
    if built.tenders is None:
        paid = checks.tenders_paid_check(pd.DataFrame(columns=PAYMENT_DIFFERENCE_COLUMNS), 0,
                                         note="eretailer.pay_tenders is off: the bookkeeper applies the web payouts by hand")
        excluded = pd.concat([built.excluded, locked_out(results)], ignore_index=True)
    else:  # Xero's totals include the tender lines; CI's do not
        held = less_tender_lines_held(held, results, built.tenders.tender_lines)
        excluded = pd.concat([built.excluded, locked_out(less_tender_lines(results, built.tenders.tender_lines))],
                             ignore_index=True)
        paid = checks.tenders_paid_check(payment_differences(posting.payments, results, posting.held, zero_balance=False),
                                         len(posting.payments), built.tenders.problems)
    return [
        checks.posting_check(results),
        checks.reconciliation_check(posting.documents, results, posting.held),
        checks.dollars_check(dollars_by_day(posting.validated, built.withheld, excluded, results, held, posting.days)),
        paid,
    ]


def _quarantined(validated: ValidatedSales) -> pd.DataFrame:
    return metadata.quarantined_documents(validated.quarantine)


ERETAILER = Process(
    name=GROUP,
    title="E-Retailer invoices",
    read=read,
    describe_read=lambda part, day: metadata.raw_sales(part, [day]),
    log_read=metadata.log_read,
    validate=validate,
    describe_validated=metadata.validated_sales,
    log_validated=metadata.log_validated,
    validation_check_specs=checks.validation_check_specs,
    validation_checks=lambda validated, site: checks.validation_checks(validated, site.quarantine_severity("eretailer")),
    build=build,
    build_check_specs=lambda name: [checks.totals_check_spec(name)],
    chart_needs=lambda site: needs_for_process(site.settings, "eretailer"),
    evidence=lambda validated, site: SourceEvidence(**source_evidence(validated)),
    quarantined=_quarantined,
    explain=explain,
    posted_check_specs=lambda name: checks.posting_check_specs(name) + [checks.tenders_paid_spec(
        name, "With eretailer.pay_tenders, read back from Xero: each document is PAID and each web tender's payment is "
        "in Xero with CI's amount; no document was left unpaid (an unmapped tender, tenders that do not add up).")],
    posted_checks=posted_checks,
    rules=lambda site: site.eretailer_rules(),
)


def build_eretailer_assets(partitions_def, xero_pool: str | None = None) -> list:
    return build_process_assets(ERETAILER, partitions_def, xero_pool)

"""The account-customer process, declared (processes.md §2): per NZ trading day, one Xero invoice per CI
account invoice (and per POS document paid ON ACCOUNT), one credit note per CI credit, the tenders other
than ACCOUNT as payments, the customers as contacts by ContactNumber, and each credit allocated to the
invoice it reverses once both are in Xero. The steps are assets/process.py's; the accounting is
books/receivables.py's."""

from __future__ import annotations

from datetime import date

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSpec, MetadataValue
from .. import checks
from ..books.daybook import dollars_by_day, locked_out, source_evidence
from ..books.diagnosis import EXPLAINED_COLUMNS, SiteView, branch_options_used, ci_line_keys, explain_failures
from ..books.eretailer import EXCLUDED_COLUMNS, with_source_links
from ..books.receivables import (
    PROCESS, ValidatedReceivables, allocations_wanted, build_receivables_documents, check_receivables_books,
    contacts_wanted, credit_balances, validate_receivables,
)
from ..ci.extract import SalesWithTenders, extract_receivables
from ..resources import CISourceResource, SiteResource
from ..xero.allocations import credit_note_differences
from ..xero.chart_check import needs_for_process
from ..xero.posting import GOOD_OUTCOMES, SourceEvidence
from ..xero.reconcile import PAYMENT_DIFFERENCE_COLUMNS, payment_differences
from ..money import decimal_to_cents
from . import metadata
from .process import Books, Posting, Process, RunWords, build_process_assets

BOOKS_MATCH_CI = "receivables_match_ci_to_the_cent"
CREDITS_ACCOUNTED = "every_credit_accounted_for"
TOTALS_SHOWN = ["business_date", "number", "endpoint", "customer_code", "ci_total_cents", "ci_gst_cents", "document_total_cents",
                "document_tax_cents", "payments_cents", "on_account_cents"]
TOTALS_MONEY = [c for c in TOTALS_SHOWN if c.endswith("_cents")]
NOTICES_SHOWN = ["business_date", "invoice_no", "line_no", "kind", "message"]
BALANCES_SHOWN = ["business_date", "number", "total_cents", "allocated_cents", "refunded_cents", "remaining_cents",
                  "allocation_outcome", "why_unallocated"]


# -- the read --------------------------------------------------------------------------------------------
def read(ci: CISourceResource, site: SiteResource, first: date, last: date) -> SalesWithTenders:
    """The account-customer documents of the days (every status) with their lines and all their tenders."""
    return extract_receivables(ci.engine(), first, last, names=ci.names())


def describe_read(read: SalesWithTenders, day: str) -> dict:
    invoices = read.documents.invoices
    return {
        **metadata.raw_sales(read.documents, [day]),
        "by_source": MetadataValue.json({str(k): int(v) for k, v in invoices["source"].value_counts().items()}),
        "tenders": len(read.tenders),
    }


def log_read(read: SalesWithTenders, days: list[str]) -> str:
    invoices = read.documents.invoices
    by_status = ", ".join(f"{int(n)} {status}" for status, n in invoices["status"].value_counts().items()) or "none"
    return (f"Read from CI for {metadata.day_range(days)}: {len(invoices)} account-customer documents ({by_status}), "
            f"{len(read.documents.lines)} lines, {len(read.tenders)} tenders.")


# -- validation ------------------------------------------------------------------------------------------
def validate(read: SalesWithTenders, site: SiteResource) -> ValidatedReceivables:
    return validate_receivables(read, site.receivables_rules())


def describe_validated(validated: ValidatedReceivables) -> dict:
    links = validated.credit_links
    return {
        **metadata.validated_sales(validated),
        "excluded_other_processes": len(validated.excluded),
        "skipped_by_status": MetadataValue.json({str(k): int(v) for k, v in validated.skipped["status"].value_counts().items()}),
        "orphan_tenders": len(validated.orphan_tenders),
        "credits_to_allocate": int(links["wanted"].sum()) if len(links) else 0,
        "credit_links": metadata.table(links, ["business_date", "ci_credit_no", "ci_invoice_no", "wanted", "reason"]),
    }


def validation_checks(validated: ValidatedReceivables, site: SiteResource) -> list[AssetCheckResult]:
    return checks.validation_checks(validated, site.quarantine_severity(PROCESS))


# -- the documents ---------------------------------------------------------------------------------------
def build(validated: ValidatedReceivables, site: SiteResource, days: list[str]) -> Books:
    """The invoices and credit notes with the payments of their other tenders; blocking: the books equal
    CI's figures, document by document and line by line."""
    rules = site.receivables_rules()
    books = build_receivables_documents(validated, rules)
    problems = check_receivables_books(validated, books, rules)
    documents = books.documents
    if site.settings.dagster_ui_url:  # each invoice links back to the day that made it ("Go to …" in Xero)
        documents = with_source_links(documents, {
            day: metadata.partition_url(site.settings.dagster_ui_url, f"posted_{PROCESS}", day) for day in days})
    credits = int((documents["endpoint"] == "CreditNotes").sum()) if len(documents) else 0
    log = [f"Made {len(documents) - credits} invoices and {credits} credit notes for account customers, and "
           f"{len(books.payments)} payments of their other tenders, status {rules.status}; NZ$ "
           f"{metadata.money(books.totals['on_account_cents'].sum() if len(books.totals) else 0)} stays on account."]
    log += [f"{row.business_date} {row.invoice_no}: {row.message}" for row in books.notices.head(5).itertuples(index=False)]
    totals_by_day = dict(tuple(books.totals.groupby("business_date"))) if len(books.totals) else {}
    notices_by_day = dict(tuple(books.notices.groupby("business_date"))) if len(books.notices) else {}
    check = AssetCheckResult(
        check_name=BOOKS_MATCH_CI, passed=problems.empty,
        metadata={
            "documents": len(documents),
            "problems": metadata.table(problems, ["business_date", "invoice_no", "check", "message"]),
            "totals": metadata.table(books.totals, TOTALS_SHOWN, money_columns=TOTALS_MONEY),
        },
    )
    empty_totals = books.totals.iloc[0:0]
    return Books(
        documents=documents, payments=books.payments, checks=[check], log=log,
        day_metadata=lambda part, day: {
            **metadata.xero_documents(part),
            "ci_beside_documents": metadata.table(totals_by_day.get(day, empty_totals), TOTALS_SHOWN, money_columns=TOTALS_MONEY),
            "notices": metadata.table(notices_by_day.get(day, books.notices.iloc[0:0]), NOTICES_SHOWN),
        },
    )


def build_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(
        BOOKS_MATCH_CI, asset=asset_name, blocking=True,  # a wrong builder never reaches Xero
        description="Before anything is sent: each document's total and tax are CI's to the cent, each line is CI's line "
        "total as Xero computes it (Quantity × UnitAmount − DiscountAmount) with exactly Xero's own tax, the branch's "
        "tracking and the mapping's account, the contact is the CI customer code, and the payments are no more than the "
        "total, leaving on account exactly CI's ACCOUNT tender.",
    )]


# -- posting ---------------------------------------------------------------------------------------------
def explain(results: pd.DataFrame, documents: pd.DataFrame, site: SiteResource, validated: ValidatedReceivables) -> pd.DataFrame:
    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    if problems.empty:
        return pd.DataFrame(columns=EXPLAINED_COLUMNS)
    rules = site.receivables_rules().document_rules()
    wanted = {str(n) for numbers in problems["ci_invoice_nos"] for n in (numbers or ())}
    lines = validated.lines[validated.lines["invoice_no"].isin(wanted)]
    # the customer is the contact whose ContactNumber is CI's customer code; its name comes from the format
    view = SiteView(rules, site.settings.tracking.strategy, branch_options_used(validated.invoices, rules),
                    contact_settings=("receivables.contact_name_format",))
    return explain_failures(problems, documents, view, f"raw_{PROCESS}", ci_line_keys(validated.invoices, lines, rules))


def quarantined(validated: ValidatedReceivables) -> pd.DataFrame:
    return metadata.quarantined_documents(validated.quarantine)


def posted_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return checks.posting_check_specs(asset_name) + [
        checks.tenders_paid_spec(
            asset_name, "Read back from Xero: each tender other than ACCOUNT is a payment of its document with CI's amount, "
            "by its Reference (the ACCOUNT part stays due: the receivable)."),
        AssetCheckSpec(
            CREDITS_ACCOUNTED, asset=asset_name, blocking=True,
            description="Read back from Xero: each credit note's allocations + refunds + remaining credit = its total; what "
            "stays unallocated is listed with why (waiting for its invoice, nothing to allocate, locked, not wanted)."),
    ]


def tender_differences(posting: Posting) -> pd.DataFrame:
    """Each payment Xero does not hold as CI has it (a document staying AUTHORISED with its ACCOUNT part due is
    the receivable, not a difference)."""
    found = payment_differences(posting.payments, posting.results, posting.held, zero_balance=False)
    return found[found["field"] != "status"].reset_index(drop=True) if len(found) else found


def allocations_not_held(posting: Posting) -> pd.DataFrame:
    """Allocations the allocation step says Xero holds (allocated now, or found) that the credit note read back
    does not list, to that invoice and for that amount: Xero always keeps a credit's own sum, so this is what
    tells an allocation lost or changed in Xero (or made to another invoice) from one as recorded."""
    results = posting.allocation_results
    rows = []
    if results is None or results.empty:
        return pd.DataFrame(columns=["credit_number", "message"])
    by_id = {xero.get("CreditNoteID"): xero for (endpoint, _n), xero in posting.held.items() if endpoint == "CreditNotes"}
    for row in results[results["outcome"].isin({"allocated", "already_allocated"})].to_dict("records"):
        credit = by_id.get(row.get("credit_id"))
        if credit is None:
            continue  # dated outside the days read back: the posting step's own answer stands
        held = [a for a in credit.get("Allocations") or []
                if (a.get("Invoice") or {}).get("InvoiceID") == row.get("invoice_id")
                or (a.get("Invoice") or {}).get("InvoiceNumber") == row.get("invoice_number")]
        amounts = {decimal_to_cents(a.get("Amount") or 0) for a in held if not a.get("IsDeleted")}
        if not amounts or (row["outcome"] == "allocated" and int(row.get("amount_cents") or 0) not in amounts):
            rows.append({"credit_number": row.get("credit_number"), "message": (
                f"{row.get('credit_number')}: allocated {metadata.money(row.get('amount_cents') or 0)} to "
                f"{row.get('invoice_number')}, but the credit note Xero holds lists "
                f"{'no allocation to it' if not amounts else [metadata.money(a) for a in sorted(amounts)]}")})
    return pd.DataFrame(rows, columns=["credit_number", "message"])


def credits_check(posting: Posting) -> AssetCheckResult:
    """Each of our credit notes as Xero holds it adds up (xero.allocations.credit_note_differences); what
    stays as credit is listed with why (the allocation's outcome)."""
    balances = credit_balances(posting.results, posting.held, posting.allocation_results)
    ours = [posting.held[("CreditNotes", number)] for number in balances["number"]]
    wrong = credit_note_differences(ours)
    missing = allocations_not_held(posting)
    left = balances[balances["remaining_cents"].to_numpy() != 0]
    money_shown = [c for c in BALANCES_SHOWN if c.endswith("_cents")]
    return AssetCheckResult(
        check_name=CREDITS_ACCOUNTED, passed=wrong.empty and missing.empty,
        metadata={
            "credit_notes": len(balances),
            "allocations_not_as_recorded": metadata.table(missing, ["credit_number", "message"]),
            "not_adding_up": metadata.table(wrong, ["credit_number", "total_cents", "allocated_cents", "refunded_cents",
                                                    "remaining_cents", "message"],
                                            money_columns=["total_cents", "allocated_cents", "refunded_cents", "remaining_cents"]),
            "left_unallocated": metadata.table(left, BALANCES_SHOWN, money_columns=money_shown),
            "remaining_credit": metadata.money(left["remaining_cents"].sum() if len(left) else 0),
        },
    )


def posted_checks(posting: Posting) -> list[AssetCheckResult]:
    rules = posting.site.receivables_rules()
    paid = (checks.tenders_paid_check(tender_differences(posting), len(posting.payments)) if rules.pay_tenders else
            checks.tenders_paid_check(pd.DataFrame(columns=PAYMENT_DIFFERENCE_COLUMNS), 0,
                                      note="receivables.pay_tenders is off: the bookkeeper applies the other tenders by hand"))
    withheld = pd.DataFrame(columns=EXCLUDED_COLUMNS)  # (no all-or-nothing days for account customers)
    return [
        checks.posting_check(posting.results),
        checks.reconciliation_check(posting.documents, posting.results, posting.held),
        checks.dollars_check(dollars_by_day(posting.validated, withheld, locked_out(posting.results), posting.results,
                                            posting.held, posting.days)),
        paid,
        credits_check(posting),
    ]


RECEIVABLES = Process(
    name=PROCESS,
    title="Account customers",
    read=read,
    describe_read=describe_read,
    log_read=log_read,
    validate=validate,
    describe_validated=describe_validated,
    log_validated=metadata.log_validated,
    validation_check_specs=checks.validation_check_specs,
    validation_checks=validation_checks,
    build=build,
    build_check_specs=build_check_specs,
    chart_needs=lambda site: needs_for_process(site.settings, PROCESS),
    evidence=lambda validated, site: SourceEvidence(**source_evidence(validated)),
    quarantined=quarantined,
    explain=explain,
    posted_check_specs=posted_check_specs,
    posted_checks=posted_checks,
    rules=lambda site: RunWords(PROCESS, site.receivables_rules().status),
    description="Account customers' invoices and credit notes, their other tenders paid, credits allocated.",
    contacts=lambda validated, site: contacts_wanted(validated, site.receivables_rules()),
    allocations=lambda validated, site, documents: allocations_wanted(validated, site.receivables_rules(), documents),
)


def build_receivables_assets(partitions_def, xero_pool: str | None = None) -> list:
    return build_process_assets(RECEIVABLES, partitions_def, xero_pool)


__all__ = ["BOOKS_MATCH_CI", "CREDITS_ACCOUNTED", "RECEIVABLES", "build_receivables_assets"]

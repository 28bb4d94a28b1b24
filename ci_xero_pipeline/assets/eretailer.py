"""E-Retailer invoices: CI database → validated rows → Xero documents → posted, one NZ trading day
per partition. A backfill of many days is one run, so its documents go to Xero 50 to a request."""

from contextlib import contextmanager
from datetime import date
from typing import Iterator

import pandas as pd
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    asset,
)

from dagster_pandera import pandera_schema_to_dagster_type

from .. import checks
from ..books.daybook import dollars_by_day, locked_out, postable_rows, source_evidence
from ..books.diagnosis import (
    EXPLAINED_COLUMNS, SiteView, branch_options_used, ci_line_keys, explain_failures, failure_headline,
)
from ..books.eretailer import build_eretailer_documents_with_notices, excluded_by_rule, with_source_links
from ..books.schemas import XeroDocuments
from ..books.validation import ValidatedSales, validate_sales_documents
from ..ci.extract import SalesDocuments, extract_sales_documents
from ..resources import CISourceResource, SiteResource, XeroResource
from ..xero.oauth import ReconnectRequired, RefreshRefused
from ..xero.pacing import DailyLimitReached
from ..xero.posting import FAILED_OUTCOMES, GOOD_OUTCOMES, SourceEvidence, post_documents
from ..xero.reconcile import read_documents
from ..xero.tokens import NotConnectedError, TokenStoreError
from ..xero.tracking import tracking_options_used
from . import metadata

GROUP = "eretailer"
# the documents frame is type-checked against its pandera model on every materialisation
XERO_DOCUMENTS_TYPE = pandera_schema_to_dagster_type(XeroDocuments)


@contextmanager
def stop_when_disconnected() -> Iterator[None]:
    """A dead connection fails the run with one message saying how to reconnect, and no retry:
    retrying a revoked or expired grant cannot succeed."""
    try:
        yield
    except (ReconnectRequired, RefreshRefused, NotConnectedError, TokenStoreError) as error:
        raise Failure(description=str(error), allow_retries=False) from None


@contextmanager
def stop_at_daily_limit() -> Iterator[None]:
    """Xero's daily budget ran out outside the posting loop (tracking, reconciliation reads): stop
    cleanly; what was posted is in the ledger, and the next run resumes from there."""
    try:
        yield
    except DailyLimitReached as error:
        raise Failure(
            description=f"{error}. Nothing more was sent; the next run resumes where this one stopped.",
            allow_retries=False,
        ) from None


def trading_days(context: AssetExecutionContext) -> list[str]:
    return sorted(context.partition_keys)


def site_view(site: SiteResource, validated: ValidatedSales) -> SiteView:
    """What the diagnosis of a refusal reads of the site: its rules, and the options its branches carry."""
    rules = site.eretailer_rules()
    return SiteView(rules, site.settings.tracking.strategy, branch_options_used(validated.invoices, rules))


def explain_problems(results: pd.DataFrame, documents: pd.DataFrame, site: SiteResource, validated: ValidatedSales,
                     upstream: str) -> pd.DataFrame:
    """Every result that is not in Xero as CI has it, with Xero's words, the cause and the fix."""
    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    if problems.empty:  # the usual run: nothing to explain, nothing of CI to look at
        return pd.DataFrame(columns=EXPLAINED_COLUMNS)
    wanted = {str(n) for numbers in problems["ci_invoice_nos"] for n in (numbers or ())}
    lines = validated.lines[validated.lines["invoice_no"].isin(wanted)]
    invoices = validated.invoices
    ci_lines = ci_line_keys(invoices, lines, site.eretailer_rules())
    return explain_failures(problems, documents, site_view(site, validated), upstream, ci_lines)


def raise_if_documents_failed(explained: pd.DataFrame) -> None:
    """Fail the step (the partitions turn red) when a document that must be in Xero is not. The failure's
    headline names the cause and the fix; its table leads from each such document back to its CI rows."""
    failed = explained[explained["outcome"].isin(FAILED_OUTCOMES)]
    if failed.empty:
        return
    raise Failure(
        description=failure_headline(failed),
        metadata={
            **metadata.failed_documents(failed),
            # Dagster shows the checks of a step that raised as "Execution failed": they did not run
            "checks_not_run": MetadataValue.text(
                f"{checks.ALL_ACCEPTED}, {checks.EVERY_DOLLAR} and {checks.XERO_MATCHES_CI} did not run: the posting stopped "
                "before Xero was read back. They run again with the re-run of these days."),
        },
        allow_retries=False,
    )


def build_eretailer_assets(partitions_def: PartitionsDefinition, xero_pool: str | None = None) -> list:
    common = dict(
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        io_manager_key="daily_io_manager",
    )

    @asset(**common, kinds={"sql"})
    def raw_eretailer(context: AssetExecutionContext, ci: CISourceResource) -> SalesDocuments:
        """E-Retailer documents and their lines as CI holds them (every status), for the days."""
        days = trading_days(context)
        documents = extract_sales_documents(
            ci.engine(), date.fromisoformat(days[0]), date.fromisoformat(days[-1]), source="ERETAILER", names=ci.names()
        )
        metadata.add_per_day(context, documents, days, lambda part, day: metadata.raw_sales(part, [day]))
        context.log.info(metadata.log_read(documents, days))
        return documents

    @asset(**common, check_specs=checks.validation_check_specs("validated_eretailer"))
    def validated_eretailer(
        context: AssetExecutionContext, site: SiteResource, raw_eretailer: SalesDocuments
    ) -> Iterator:
        """FINAL documents that can be posted; every other FINAL document quarantined with its reason."""
        validated = validate_sales_documents(raw_eretailer, site.eretailer_rules())
        metadata.add_per_day(context, validated, trading_days(context), lambda part, _day: metadata.validated_sales(part))
        for line in metadata.log_validated(validated):
            context.log.info(line)
        yield Output(validated)
        yield from checks.validation_checks(validated, site.quarantine_severity())

    @asset(
        **common,
        check_specs=[checks.totals_check_spec("xero_eretailer_documents")],
        dagster_type=XERO_DOCUMENTS_TYPE,
    )
    def xero_eretailer_documents(
        context: AssetExecutionContext, site: SiteResource, validated_eretailer: ValidatedSales
    ) -> Iterator:
        """The exact Xero invoices and credit notes, in the site's Summary or Detail mode."""
        postable, _withheld = postable_rows(validated_eretailer, site.settings.eretailer.all_or_nothing_days)
        documents, notices = build_eretailer_documents_with_notices(postable.invoices, postable.lines, site.eretailer_rules())
        if site.settings.dagster_ui_url:  # each invoice links back to the day that made it ("Go to …" in Xero)
            documents = with_source_links(documents, {
                day: metadata.partition_url(site.settings.dagster_ui_url, "posted_eretailer", day) for day in trading_days(context)
            })
        excluded = excluded_by_rule(postable.invoices, documents, site.eretailer_rules())
        for row in excluded.itertuples(index=False):
            context.log.info(f"{row.business_date}: {row.reason} ({len(row.invoice_nos)} CI documents)")
        without_document = set(excluded["business_date"])
        context.log.info(metadata.log_built(documents, site.eretailer_rules()))
        notices_by_day = dict(tuple(notices.groupby("business_date"))) if len(notices) else {}
        metadata.add_per_day(context, documents, trading_days(context), lambda part, day: {
            **metadata.xero_documents(part), "days_without_document": MetadataValue.json([day] if day in without_document else []),
            "notices": metadata.table(notices_by_day.get(day, notices.iloc[0:0]), ["business_date", "invoice_no", "line_no", "kind", "message"]),
        })
        yield Output(documents, metadata={"days_without_document_in_run": MetadataValue.json(sorted(without_document))})
        yield checks.totals_check(postable, documents)

    @asset(
        **common,
        kinds={"xero"},
        check_specs=checks.posting_check_specs("posted_eretailer"),
        pool=xero_pool,  # one run at a time talks to the organisation: its rate limits are shared
    )
    def posted_eretailer(
        context: AssetExecutionContext, site: SiteResource, xero: XeroResource,
        validated_eretailer: ValidatedSales, xero_eretailer_documents: pd.DataFrame,
    ) -> Iterator:
        """What Xero holds for each document: posted now, already there, taken back, or why not.
        Fails (red) when a document that must be in Xero is not, with the CI rows it came from."""
        days = trading_days(context)
        documents = xero_eretailer_documents
        settings = site.settings
        quarantined = metadata.quarantined_documents(validated_eretailer.quarantine)
        with stop_when_disconnected(), stop_at_daily_limit():
            client = xero.client()
            tracking = None
            organisation: dict = {}
            if len(documents):
                organisation = client.organisation()  # its name for the log, its ShortCode for the links
                options = tracking_options_used(documents["payload"], xero.tracking_category)
                tracking = xero.ensure_tracking(client, options)
            for line in metadata.run_log_before(organisation.get("Name") or settings.xero.tenant_name or "",
                                                site.eretailer_rules(), days, documents, quarantined):
                context.log.info(line)
            ledger = xero.ledger(client.tenant_id, context.run.run_id)
            evidence = SourceEvidence(**source_evidence(validated_eretailer))
            results = post_documents(client, ledger, documents, days, site.posting_policy(), evidence)
            results = metadata.with_xero_links(results, settings.xero.document_link, organisation.get("ShortCode") or "")
            explained = explain_problems(results, documents, site, validated_eretailer, upstream="raw_eretailer")
            for line in metadata.run_log_after(results, quarantined, explained):
                context.log.info(line)
            # before reading Xero back: a failed partition yields no checks, and a spent day has no calls left
            raise_if_documents_failed(explained)
            held = read_documents(client, date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
        postable, withheld = postable_rows(validated_eretailer, settings.eretailer.all_or_nothing_days)
        excluded = pd.concat(
            [excluded_by_rule(postable.invoices, documents, site.eretailer_rules()), locked_out(results)], ignore_index=True
        )
        metadata.add_per_day_frames(
            context, days, lambda day, part, held_back, why: metadata.posted(part, client.calls, tracking, held_back, why),
            results, quarantined, explained,
        )
        yield Output(results)
        yield checks.posting_check(results)
        yield checks.reconciliation_check(documents, results, held)
        yield checks.dollars_check(dollars_by_day(validated_eretailer, withheld, excluded, results, held, days))

    return [raw_eretailer, validated_eretailer, xero_eretailer_documents, posted_eretailer]

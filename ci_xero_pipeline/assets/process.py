"""One asset factory for every CI process. A process is declared (`Process`): its CI read, its validation,
its pure document builder, and the checks of what it made; this module turns a declaration into the
same four steps for every process, one NZ trading day per partition, one group per process:

    raw_<process> → validated_<process> → xero_<process>_documents + xero_<process>_payments → posted_<process>

The posting step is the same for all: the mapping checked against the organisation (one read of the
accounts, one of the tax rates), the tracking options, our payments of documents CI changed released,
the documents posted exactly once (xero.posting), their payments posted exactly once (xero.payments),
the failures explained, Xero read back and the process's reconciliation checks run. The posting layer
takes opaque documents (key, endpoint, payload, totals, partition); the declaration joins the CI
lineage back.
"""


from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    BackfillPolicy,
    Failure,
    MetadataValue,
    Output,
    PartitionsDefinition,
    asset,
    multi_asset,
)
from dagster_pandera import pandera_schema_to_dagster_type

from ..books.diagnosis import failure_headline
from ..books.schemas import XeroDocuments
from ..books.tenders import XeroPayments
from ..resources import CISourceResource, SiteResource, XeroResource
from ..xero.chart_check import ChartVerdict, Need, create_missing, read_and_check
from ..xero.oauth import ReconnectRequired, RefreshRefused
from ..xero.pacing import DailyLimitReached
from ..xero.payments import FAILED_PAYMENT_OUTCOMES, post_documents_and_payments
from ..xero.kinds import posting_endpoint
from ..xero.posting import (
    FAILED_OUTCOMES, GOOD_OUTCOMES, RESULT_COLUMNS, SOURCE_KEYS, SourceEvidence, lock_date,
)
from ..xero.reconcile import kinds_in, read_documents
from ..xero.tokens import NotConnectedError, TokenStoreError
from ..xero.tracking import tracking_options_used
from . import metadata

# the frames between the steps are type-checked against their pandera models on every materialisation
XERO_DOCUMENTS_TYPE = pandera_schema_to_dagster_type(XeroDocuments)
XERO_PAYMENTS_TYPE = pandera_schema_to_dagster_type(XeroPayments)


@dataclass(frozen=True)
class Books:
    """What a process's builder made of the postable rows of a run's days."""

    documents: pd.DataFrame  # books.eretailer DOCUMENT_COLUMNS: what the posting layer takes
    payments: pd.DataFrame  # books.tenders PAYMENT_COLUMNS (empty when the process pays nothing)
    checks: list[AssetCheckResult]  # the documents against CI, before anything is sent (blocking)
    log: list[str] = field(default_factory=list)
    # one partition's metadata from its part of the documents: (documents of the day, day) → metadata
    day_metadata: Callable[[pd.DataFrame, str], dict[str, Any]] = lambda part, day: metadata.xero_documents(part)
    run_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Posting:
    """What the posting step hands to the process's reconciliation checks."""

    site: SiteResource
    validated: Any
    documents: pd.DataFrame
    payments: pd.DataFrame
    results: pd.DataFrame  # xero.posting RESULT_COLUMNS
    payment_results: pd.DataFrame  # xero.payments PAYMENT_RESULT_COLUMNS
    held: dict  # (endpoint, number) → the document Xero holds now (read back after posting)
    days: list[str]
    # xero.contacts ensure_contacts' results (empty when the process names no contacts)
    contact_results: pd.DataFrame = field(default_factory=pd.DataFrame)
    # xero.allocations allocate_credits' results (empty when the process allocates nothing)
    allocation_results: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class RunWords:
    """What the run log says of a process's mode and status (metadata.mode_words reads `mode`)."""

    mode: str
    status: str


@dataclass(frozen=True)
class Process:
    """A CI process, declared. Names: the steps are raw_<name>, validated_<name>, xero_<name>_documents,
    xero_<name>_payments and posted_<name>, in the group <name>."""

    name: str
    title: str  # in the product's words, e.g. "End-of-day takings"
    read: Callable[[CISourceResource, SiteResource, date, date], Any]
    describe_read: Callable[[Any, str], dict[str, Any]]  # (the read's part of one day, day) → metadata
    log_read: Callable[[Any, list[str]], str]
    validate: Callable[[Any, SiteResource], Any]
    describe_validated: Callable[[Any], dict[str, Any]]
    log_validated: Callable[[Any], list[str]]
    validation_check_specs: Callable[[str], list[AssetCheckSpec]]
    validation_checks: Callable[[Any, SiteResource], list[AssetCheckResult]]
    build: Callable[[Any, SiteResource, list[str]], Books]
    build_check_specs: Callable[[str], list[AssetCheckSpec]]
    # posting
    chart_needs: Callable[[SiteResource], list[Need]]
    evidence: Callable[[Any, SiteResource], SourceEvidence]
    quarantined: Callable[[Any], pd.DataFrame]  # metadata.quarantined_documents' shape
    explain: Callable[[pd.DataFrame, pd.DataFrame, SiteResource, Any], pd.DataFrame]
    posted_check_specs: Callable[[str], list[AssetCheckSpec]]
    posted_checks: Callable[[Posting], list[AssetCheckResult]]
    rules: Callable[[SiteResource], Any]  # what the run log says of the mode and status (mode_words, .status)
    description: str = ""
    # the contacts the documents name by ContactNumber (xero.contacts WANTED_COLUMNS): found in Xero, else
    # created, before the documents go; each document is then sent with its contact's ContactID
    contacts: Callable[[Any, SiteResource], pd.DataFrame] | None = None
    # the credit → invoice allocations wanted once both are in Xero (xero.allocations, without credit_id)
    allocations: Callable[[Any, SiteResource, pd.DataFrame], pd.DataFrame] | None = None

    @property
    def group(self) -> str:
        return self.name

    def asset_names(self) -> list[str]:
        return [f"raw_{self.name}", f"validated_{self.name}", f"xero_{self.name}_documents",
                f"xero_{self.name}_payments", f"posted_{self.name}"]


# -- what stops a run whole --------------------------------------------------------------------------------
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


LINEAGE = "ci_invoice_nos"  # the books' column of the CI documents behind each Xero document


def for_posting(documents: pd.DataFrame) -> pd.DataFrame:
    """The documents as the posting layer takes them: opaque, the CI lineage as plain source keys, and
    each named by its kind (a purchase document is a Bill or a BillCredit: xero.kinds)."""
    framed = documents.rename(columns={LINEAGE: SOURCE_KEYS})
    if len(framed):
        framed = framed.assign(endpoint=[posting_endpoint(e, t) for e, t in zip(framed["endpoint"], framed["document_type"])])
    return framed


def contacts_first(client: Any, ledger: Any, documents_ledger: Any, wanted: pd.DataFrame,
                   documents: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The contacts the documents need, found or created in Xero exactly once (xero.contacts); the documents
    that can go, now naming their contact by ContactID; and the result rows of those whose contact could
    not be had (failed with the contact's reason: nothing of theirs is sent). A document already in Xero as CI
    has it needs no contact now: it goes on to the posting layer, which sends nothing for it."""
    from ..xero.contacts import ensure_contacts, with_contact_ids
    from ..xero.ledger import POSTED, content_hash

    results = ensure_contacts(client, ledger, wanted)
    good = results[results["contact_id"].notna()] if len(results) else results
    ready, blocked = with_contact_ids(documents, dict(zip(good["contact_number"], good["contact_id"])) if len(good) else {})
    if len(blocked):
        entries = documents_ledger.entries(list(blocked["document_key"]))
        unchanged = [key for key, payload in zip(blocked["document_key"], blocked["payload"])
                     if key in entries and entries[key].state == POSTED and entries[key].content_hash == content_hash(payload)]
        ready = pd.concat([ready, blocked[blocked["document_key"].isin(unchanged)][ready.columns]], ignore_index=True)
        blocked = blocked[~blocked["document_key"].isin(unchanged)]
    why = dict(zip(results["contact_number"], results["message"])) if len(results) else {}
    rows = []
    for document in blocked.itertuples(index=False):
        number = ((document.payload or {}).get("Contact") or {}).get("ContactNumber")
        rows.append({
            "document_key": document.document_key, "business_date": document.business_date, "branch_code": document.branch_code,
            "endpoint": document.endpoint, "number": document.number, "revision": 0, "action": "contact", "outcome": "failed",
            "xero_id": None, "xero_status": None, "total_cents": int(document.total_cents), "tax_cents": int(document.tax_cents),
            "xero_total_cents": None, "xero_tax_cents": None, "attempts": 0,
            "message": f"{document.number}: not sent: its contact {number} could not be had in Xero: {why.get(number) or 'no answer'}",
            SOURCE_KEYS: tuple(getattr(document, SOURCE_KEYS)),
        })
    return results, ready, pd.DataFrame(rows, columns=RESULT_COLUMNS)


# outcomes whose Xero id is our own document (`differs` and `conflict` name someone else's, or another of ours)
OURS_IN_XERO = GOOD_OUTCOMES | {"kept", "paid", "locked"}


def allocations_after(client: Any, ledger: Any, documents_ledger: Any, wanted: pd.DataFrame, results: pd.DataFrame,
                      locked_until: Any) -> pd.DataFrame:
    """Each credit allocated to the invoice it reverses, now that both may be in Xero (xero.allocations):
    the credit's Xero id from this run's results (only one of our own documents), the invoice under its live
    number (the ledger's: `<number>-R1` once CI changed it)."""
    from ..xero.allocations import allocate_credits

    if wanted.empty:
        return allocate_credits(client, ledger, wanted.assign(credit_id=pd.Series(dtype=object)), locked_until)
    ours = results[results["outcome"].isin(OURS_IN_XERO) & results["xero_id"].notna()]
    ids = dict(zip(ours["document_key"], ours["xero_id"]))
    wanted = wanted.assign(credit_id=[ids.get(k) for k in wanted["credit_document_key"]])
    if "invoice_document_key" in wanted:
        held = documents_ledger.entries(sorted(set(wanted["invoice_document_key"].dropna())))
        live = {key: entry.number for key, entry in held.items() if entry.state == "posted"}
        wanted = wanted.assign(invoice_number=[live.get(key, number) for key, number
                                               in zip(wanted["invoice_document_key"], wanted["invoice_number"])])
    return allocate_credits(client, ledger, wanted, locked_until)


def with_lineage(results: pd.DataFrame) -> pd.DataFrame:
    """The posting layer's results with the CI lineage named again as the books and the UI name it."""
    return results.rename(columns={SOURCE_KEYS: LINEAGE})


def trading_days(context: AssetExecutionContext) -> list[str]:
    return sorted(context.partition_keys)


def check_the_mapping(client: Any, needs: Sequence[Need], create: bool, title: str,
                      days: Sequence[str] = ()) -> tuple[ChartVerdict, list[str]]:
    """The mapping against the organisation before anything of the process is sent: one read of the
    accounts, one of the tax rates. Missing accounts are created when the site allows it; any other
    problem stops the process's run whole, naming the setting and the Xero account."""
    verdict = read_and_check(client, needs)
    said: list[str] = []
    if not verdict.ok and create and verdict.missing_account_codes:
        result = create_missing(client, verdict, needs)
        said, verdict = result.lines(), result.verdict  # create_missing re-checks after its creations
    if not verdict.ok:
        raise Failure(
            description=f"{title}: nothing was posted, the mapping does not fit the Xero organisation: "
            f"{verdict.summary()}. Fix: {'; '.join(f.fix for f in verdict.problems)}.",
            metadata={
                # a fixed-width table: fenced, so the UI keeps its columns
                "mapping_problems": MetadataValue.md("```\n" + verdict.table() + "\n```"),
                # what the failure report and failed_runs read: the days not posted, the settings to fix
                "failed_days": MetadataValue.json(sorted(days)),
                "settings_to_check": MetadataValue.json(sorted({f.setting for f in verdict.problems})),
                **({"accounts_created": MetadataValue.json(said)} if said else {}),
            },
            allow_retries=False,
        )
    return verdict, said


ALLOCATION_FAILED = {"failed", "unknown", "deferred"}


def raise_if_failed(explained: pd.DataFrame, payment_results: pd.DataFrame, process: str,
                    allocation_results: pd.DataFrame | None = None) -> None:
    """Fail the step (the partitions turn red) when a document, payment or allocation that must be in Xero
    is not. The headline names the cause and the fix; the table leads from each document back to its CI rows."""
    failed = explained[explained["outcome"].isin(FAILED_OUTCOMES)]
    unpaid = payment_results[payment_results["outcome"].isin(FAILED_PAYMENT_OUTCOMES)] if len(payment_results) else payment_results
    allocations = allocation_results if allocation_results is not None else pd.DataFrame(columns=["outcome"])
    unallocated = allocations[allocations["outcome"].isin(ALLOCATION_FAILED)] if len(allocations) else allocations
    if failed.empty and unpaid.empty and unallocated.empty:
        return
    if len(failed):
        headline = failure_headline(failed)
    elif unpaid.empty:
        first = unallocated.iloc[0]
        headline = (f"{first['business_date']} allocation {first['allocation_key']}: {first['message']}"
                    + (f" (and {len(unallocated) - 1} more allocations)" if len(unallocated) > 1 else ""))
    else:
        first = unpaid.iloc[0]
        headline = (f"{first['business_date']} payment {first['payment_key']}: {first['message']}"
                    + (f" (and {len(unpaid) - 1} more payments)" if len(unpaid) > 1 else ""))
    fields: dict[str, Any] = metadata.failed_documents(failed) if len(failed) else {}
    if len(unpaid):
        fields["failed_payments"] = metadata.table(
            unpaid, ["business_date", "payment_key", "tender_type", "account_code", "amount_cents", "outcome", "message"],
            money_columns=["amount_cents"])
    if len(unallocated):
        fields["failed_allocations"] = metadata.table(
            unallocated, ["business_date", "allocation_key", "amount_cents", "outcome", "message"], money_columns=["amount_cents"])
    raise Failure(
        description=headline,
        metadata={
            **fields,
            # Dagster shows the checks of a step that raised as "Execution failed": they did not run
            "checks_not_run": MetadataValue.text(
                f"The checks of posted_{process} did not run: the posting stopped before Xero was read back. "
                "They run again with the re-run of these days."),
        },
        allow_retries=False,
    )


def with_status_held(results: pd.DataFrame, held: dict) -> pd.DataFrame:
    """Each result's xero_status as Xero holds the document now, read back after the payments (a paid
    document is PAID, not the AUTHORISED it was when it went in)."""
    if results.empty:
        return results
    now = [(held.get((endpoint, number)) or {}).get("Status") or status
           for endpoint, number, status in zip(results["endpoint"], results["number"], results["xero_status"])]
    return results.assign(xero_status=now)


# -- the factory ---------------------------------------------------------------------------------------------
def build_process_assets(process: Process, partitions_def: PartitionsDefinition, xero_pool: str | None = None) -> list:
    name = process.name
    raw_name, validated_name, documents_name, payments_name, posted_name = process.asset_names()
    common = dict(
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=process.group,
    )

    @asset(name=raw_name, **common, io_manager_key="daily_io_manager", kinds={"sql"},
           description=f"{process.title}: the CI rows as CI holds them (every status), for the days.")
    def raw(context: AssetExecutionContext, ci: CISourceResource, site: SiteResource):
        days = trading_days(context)
        value = process.read(ci, site, date.fromisoformat(days[0]), date.fromisoformat(days[-1]))
        metadata.add_per_day(context, value, days, process.describe_read)
        context.log.info(process.log_read(value, days))
        return value

    @asset(name=validated_name, **common, io_manager_key="daily_io_manager", ins={"raw": AssetIn(raw_name)},
           check_specs=process.validation_check_specs(validated_name),
           description=f"{process.title}: the rows that can be posted; everything else quarantined with its reason.")
    def validated(context: AssetExecutionContext, site: SiteResource, raw: Any) -> Iterator:
        value = process.validate(raw, site)
        metadata.add_per_day(context, value, trading_days(context), lambda part, _day: process.describe_validated(part))
        for line in process.log_validated(value):
            context.log.info(line)
        yield Output(value)
        yield from process.validation_checks(value, site)

    @multi_asset(
        name=f"build_{name}_documents",
        outs={
            documents_name: AssetOut(io_manager_key="daily_io_manager", dagster_type=XERO_DOCUMENTS_TYPE,
                                     description=f"{process.title}: the exact Xero documents, keyed by CI."),
            payments_name: AssetOut(io_manager_key="daily_io_manager", dagster_type=XERO_PAYMENTS_TYPE,
                                    description=f"{process.title}: the exact Xero payments (one per tender), "
                                    "each keyed by its Reference."),
        },
        ins={"validated": AssetIn(validated_name)},
        check_specs=process.build_check_specs(documents_name),
        can_subset=False,
        **common,
    )
    def build(context: AssetExecutionContext, site: SiteResource, validated: Any) -> Iterator:
        days = trading_days(context)
        books = process.build(validated, site, days)
        for line in books.log:
            context.log.info(line)
        metadata.add_per_day(context, books.documents, days, books.day_metadata, asset_key=documents_name)
        metadata.add_per_day(context, books.payments, days, lambda part, _day: metadata.xero_payments(part),
                             asset_key=payments_name)
        yield Output(books.documents, output_name=documents_name, metadata=books.run_metadata)
        yield Output(books.payments, output_name=payments_name)
        yield from books.checks

    @asset(
        name=posted_name, **common, io_manager_key="daily_io_manager", kinds={"xero"},
        ins={"validated": AssetIn(validated_name), "documents": AssetIn(documents_name), "payments": AssetIn(payments_name)},
        check_specs=process.posted_check_specs(posted_name),
        pool=xero_pool,  # one run at a time talks to the organisation: its rate limits are shared
        description=f"{process.title}: what Xero holds for each document and payment: posted now, already there, "
        "taken back, or why not. Fails (red) when one that must be in Xero is not, with the CI rows it came from.",
    )
    def posted(context: AssetExecutionContext, site: SiteResource, xero: XeroResource, validated: Any,
               documents: pd.DataFrame, payments: pd.DataFrame) -> Iterator:
        days = trading_days(context)
        settings = site.settings
        quarantined = process.quarantined(validated)
        with stop_when_disconnected(), stop_at_daily_limit():
            client = xero.client()
            tracking = None
            # its name for the log, its ShortCode for the links, and its lock date, which every run needs: even
            # one with no documents may take our payments back (CI voided a posted day) and must not in a locked period
            organisation: dict = client.organisation()
            if len(documents):
                verdict, created = check_the_mapping(client, process.chart_needs(site),
                                                     settings.mapping.create_missing_accounts, process.title, days)
                context.log.info(f"Mapping checked against the organisation: {len(verdict.findings)} accounts and tax types fit."
                                 + (" " + " ".join(created) if created else ""))
                tracking = xero.ensure_tracking(client, tracking_options_used(documents["payload"], xero.tracking_category))
            for line in metadata.run_log_before(organisation.get("Name") or settings.xero.tenant_name or "",
                                                process.rules(site), days, documents, quarantined):
                context.log.info(line)
            ledger_of = lambda kind: xero.ledger(client.tenant_id, context.run.run_id, process=f"{name}{kind}")  # noqa: E731
            sending, contact_results, no_contact = for_posting(documents), pd.DataFrame(), None
            if process.contacts is not None and len(documents):
                contact_results, sending, no_contact = contacts_first(
                    client, ledger_of("-contact"), ledger_of(""), process.contacts(validated, site), sending)
                for line in metadata.contacts_log(contact_results):
                    context.log.info(line)
            results, payment_results = post_documents_and_payments(
                client, ledger_of(""), sending, payments,
                days, site.posting_policy(name), process.evidence(validated, site), lock_date(organisation))
            if no_contact is not None and len(no_contact):
                # one row per document: a posted one held back by its contact is left as it is in Xero (the posting
                # layer called it `kept`); its contact's failure is what the day must show
                results = pd.concat([results[~results["document_key"].isin(no_contact["document_key"])], no_contact],
                                    ignore_index=True)
            allocation_results = pd.DataFrame()
            if process.allocations is not None:
                allocation_results = allocations_after(client, ledger_of("-allocation"), ledger_of(""),
                                                       process.allocations(validated, site, documents), results, lock_date(organisation))
                for line in metadata.allocations_log(allocation_results):
                    context.log.info(line)
            results = metadata.with_xero_links(with_lineage(results), settings.xero.document_link, organisation.get("ShortCode") or "")
            explained = process.explain(results, documents, site, validated)
            for line in metadata.run_log_after(results, quarantined, explained) + metadata.payments_log(payment_results):
                context.log.info(line)
            # before reading Xero back: a failed partition yields no checks, and a spent day has no calls left
            raise_if_failed(explained, payment_results, name, allocation_results)
            held = read_documents(client, date.fromisoformat(days[0]), date.fromisoformat(days[-1]),
                                  kinds_in(results))
        results = with_status_held(results, held)
        metadata.add_per_day_frames(
            context, days,
            lambda day, part, held_back, why, paid_part, allocated_part: {
                **metadata.posted(part, client.calls, tracking, held_back, why), **metadata.payments_posted(paid_part),
                **metadata.allocations_posted(allocated_part)},
            results, quarantined, explained, payment_results,
            allocation_results if len(allocation_results) else pd.DataFrame({"business_date": pd.Series(dtype=object)}),
        )
        yield Output(results)
        yield from process.posted_checks(Posting(site, validated, documents, payments, results, payment_results, held, days,
                                                 contact_results, allocation_results))

    return [raw, validated, build, posted]



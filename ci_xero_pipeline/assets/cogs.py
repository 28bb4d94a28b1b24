"""The cost of goods sold process, declared (processes.md §4): per branch per NZ trading day, one POSTED manual
journal over every FINAL sales document of the day (all sources): COGS debited per analysis code's account
with Σ quantity × unit_cost_excl (rounded once per account), the inventory account credited with −Σ. The
steps are assets/process.py's; the accounting is books/cogs.py's. A journal CI changes after posting is
updated in place by the posting layer (never in a locked period: reported `locked` there)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from dagster import AssetCheckResult, AssetCheckSpec, MetadataValue

from .. import checks
from ..books.cogs import (
    ENDPOINT, STATUS, CogsRules, ValidatedCogs, build_cogs_journals, check_cogs_books, ci_cost_by_account, cogs_rules,
    cogs_source_evidence, journal_cogs_cents, validate_cogs,
)
from ..books.daybook import DOLLAR_COLUMNS
from ..books.diagnosis import EXPLAINED_COLUMNS, SiteView, explain_failures
from ..books.tenders import empty_payments
from ..ci.extract import SalesDocuments, extract_sales_documents
from ..money import cents_to_decimal, decimal_to_cents
from ..resources import CISourceResource, SiteResource
from ..xero.chart_check import needs_for_cogs
from ..xero.client import parse_xero_date
from ..xero.posting import GOOD_OUTCOMES, REPORTED_OUTCOMES, SourceEvidence
from ..xero.reconcile import documents_in_books, tracking_of
from . import metadata
from .process import Books, Posting, Process, RunWords, build_process_assets

GROUP = "cogs"
BOOKS_MATCH_CI = "journals_match_ci_cost"
TOTALS_SHOWN = ["business_date", "branch_code", "outcome", "ci_invoice_count", "stock_lines", "missing_cost_lines",
                "cogs_cents", "debits_cents", "inventory_cents", "journal_lines"]
TOTALS_MONEY = ["cogs_cents", "debits_cents", "inventory_cents"]
ACCOUNTS_SHOWN = ["business_date", "branch_code", "account_code", "analysis_codes", "stock_lines", "exact_cost", "amount_cents"]
JOURNAL_DIFFERENCE_COLUMNS = ["business_date", "number", "field", "ci", "xero"]


def rules_of(site: SiteResource) -> CogsRules:
    return cogs_rules(site.settings)


def read(ci: CISourceResource, site: SiteResource, first: date, last: date) -> SalesDocuments:
    """Every sales document of the days (every source, every status) with its lines and their unit costs."""
    return extract_sales_documents(ci.engine(), first, last, source=None, names=ci.names())


def _stock(lines: pd.DataFrame) -> np.ndarray:
    return lines["sku"].notna().to_numpy(dtype=bool)


def describe_read(read: SalesDocuments, day: str) -> dict:
    invoices, lines = read.invoices, read.lines
    stock = _stock(lines)
    return {
        "documents": len(invoices),
        "by_status": MetadataValue.json({str(k): int(v) for k, v in invoices["status"].value_counts().items()}),
        "by_source": MetadataValue.json({str(k): int(v) for k, v in invoices["source"].value_counts().items()}),
        "stock_lines": int(stock.sum()),
        "stock_lines_without_cost": int((stock & lines["unit_cost_excl_x10000"].isna().to_numpy(dtype=bool)).sum()),
        "branches": int(invoices["branch_code"].nunique()) if len(invoices) else 0,
        "orphan_lines": len(read.orphan_lines),
    }


def log_read(read: SalesDocuments, days: list[str]) -> str:
    return (f"Read from CI for {metadata.day_range(days)}: {len(read.invoices)} sales documents (every source), "
            f"{int(_stock(read.lines).sum())} stock lines.")


def validate(read: SalesDocuments, site: SiteResource) -> ValidatedCogs:
    return validate_cogs(read, rules_of(site))


def describe_validated(validated: ValidatedCogs) -> dict:
    days, held = validated.branch_days, validated.quarantined_days
    return {
        "branch_days": len(days),
        "postable_branch_days": int(len(days) - len(held)),
        "quarantined_branch_days": len(held),
        "quarantined_cost": metadata.money(held["cost_cents"].sum() if len(held) else 0),
        "stock_lines": len(validated.stock_lines),
        "stock_lines_costed_at_zero": int(validated.stock_lines["missing_cost"].sum()) if len(validated.stock_lines) else 0,
        "quarantine": metadata.table(validated.quarantine, ["business_date", "branch_code", "invoice_no", "line_no", "check", "reason"]),
        "notices": metadata.table(validated.notices, ["business_date", "invoice_no", "line_no", "kind", "message"]),
        "unmapped_codes": MetadataValue.json(validated.unmapped_codes),
        "skipped_not_final": len(validated.skipped),
        "orphan_lines": metadata.table(validated.orphan_lines, ["business_date", "invoice_no", "line_no", "reason"]),
    }


def log_validated(validated: ValidatedCogs) -> list[str]:
    held = validated.quarantined_days
    lines = [f"{len(validated.branch_days) - len(held)} branch-days with stock can be posted; {len(held)} quarantined."]
    for row in validated.quarantine.drop_duplicates(["business_date", "branch_code"]).head(5).itertuples(index=False):
        lines.append(f"Quarantined {row.business_date} {row.branch_code}: {row.reason}")
    zero = validated.notices[validated.notices["kind"] == "missing_cost"] if len(validated.notices) else validated.notices
    if len(zero):
        lines.append(f"WARNING: {len(zero)} stock lines have no cost in CI and are posted at 0.00 (cogs.missing_cost: zero): "
                     + "; ".join(zero["message"].head(3)))
    return lines


def validation_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return checks.validation_check_specs(
        asset_name,
        quarantine="No branch-day was quarantined: cost held back fails the day (an error unless the site "
        "set cogs.quarantine_check_severity: warn). Stock lines posted at zero cost (cogs.missing_cost: "
        "zero) are listed here as a warning.",
        mapped="Every analysis code of a stock line has a COGS account, and the inventory account is "
        "set (warning).",
    )


def validation_checks(validated: ValidatedCogs, site: SiteResource) -> list[AssetCheckResult]:
    held = validated.quarantined_days
    severity = checks.severity(site.quarantine_severity(GROUP))
    zero = validated.notices[validated.notices["kind"] == "missing_cost"] if len(validated.notices) else validated.notices
    unmapped = {kind: codes for kind, codes in validated.unmapped_codes.items() if codes}
    return [
        AssetCheckResult(check_name=checks.NO_QUARANTINE, passed=held.empty, severity=severity, metadata={
            "quarantined_branch_days": len(held),
            "quarantined_cost": metadata.money(held["cost_cents"].sum() if len(held) else 0),
            "reasons": metadata.table(validated.quarantine, ["business_date", "branch_code", "invoice_no", "line_no", "reason"]),
            "stock_lines_costed_at_zero": metadata.table(zero, ["business_date", "invoice_no", "line_no", "message"]),
        }),
        AssetCheckResult(check_name=checks.CODES_MAPPED, passed=not unmapped, severity=checks.severity("warn"),
                         metadata={"unmapped_codes": unmapped}),
    ]


def build(validated: ValidatedCogs, site: SiteResource, days: list[str]) -> Books:
    """The journals of the postable branch-days; blocking: each nets to 0.00 and equals CI's cost per account."""
    rules = rules_of(site)
    books = build_cogs_journals(validated, rules)
    problems = check_cogs_books(validated, books, rules)
    log = [f"Made {len(books.documents)} cost of goods sold journals (status {STATUS}) of "
           f"{len(validated.postable_days)} postable branch-days."]
    log += [f"{row.business_date} {row.branch_code}: no journal: {row.reason}" for row in books.no_document.itertuples(index=False)]
    totals_by_day = dict(tuple(books.totals.groupby("business_date"))) if len(books.totals) else {}
    accounts_by_day = dict(tuple(books.accounts.groupby("business_date"))) if len(books.accounts) else {}
    check = AssetCheckResult(
        check_name=BOOKS_MATCH_CI, passed=problems.empty,
        metadata={
            "branch_days": len(books.totals),
            "journals": len(books.documents),
            "nothing_to_post": len(books.no_document),
            "problems": metadata.table(problems, ["business_date", "branch_code", "check", "message"]),
            "totals": metadata.table(books.totals, TOTALS_SHOWN, money_columns=TOTALS_MONEY),
        },
    )
    return Books(
        documents=books.documents, payments=empty_payments(), checks=[check], log=log,
        day_metadata=lambda part, day: {
            **metadata.xero_documents(part),
            "ci_beside_journals": metadata.table(totals_by_day.get(day, books.totals.iloc[0:0]), TOTALS_SHOWN, money_columns=TOTALS_MONEY),
            "cost_by_account": metadata.table(accounts_by_day.get(day, books.accounts.iloc[0:0]), ACCOUNTS_SHOWN,
                                              money_columns=["amount_cents"],
                                              descriptions={"exact_cost": "NZ$, Σ quantity × unit cost before the one rounding"}),
        },
    )


def build_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(
        BOOKS_MATCH_CI, asset=asset_name, blocking=True,  # a wrong builder never reaches Xero
        description="Per branch-day, before anything is sent: each journal nets to 0.00, each COGS account's line is CI's "
        "Σ quantity × unit_cost_excl rounded once, the inventory line −Σ of them, its Narration its key with no amount, "
        "and every postable branch-day with cost has its journal.",
    )]


def chart_needs(site: SiteResource) -> list:
    rules = rules_of(site)
    if not rules.inventory_account:
        return []  # validation holds every branch-day back: nothing is sent
    return needs_for_cogs(inventory_account=rules.inventory_account, cogs_accounts=rules.cogs_accounts)


_REFUSED_ACCOUNT = re.compile(r"Xero refused account (?P<code>\S+)")


def explain(results: pd.DataFrame, documents: pd.DataFrame, site: SiteResource, validated: ValidatedCogs) -> pd.DataFrame:
    """Why each journal is not in Xero as CI has it (diagnosis.explain_failures), an account Xero refused named
    by the cogs setting that sends it."""
    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    if problems.empty:
        return pd.DataFrame(columns=EXPLAINED_COLUMNS)
    rules = rules_of(site)
    document_rules = rules.document_rules(rules.cogs_accounts)
    options = dict(zip(validated.branch_days["branch_code"], validated.branch_days["branch_name"]))
    view = SiteView(document_rules, site.settings.tracking.strategy,
                    {str(b): str(rules.tracking_options.get(b, n)) for b, n in options.items() if isinstance(b, str)})
    explained = explain_failures(problems, documents, view, f"raw_{GROUP}")
    for index, cause in zip(explained.index, explained["cause"]):
        found = _REFUSED_ACCOUNT.search(str(cause))
        if found:
            code = found.group("code")
            settings = [f"cogs.cogs_accounts.{c}" for c, a in sorted(rules.cogs_accounts.items()) if a == code]
            settings += ["cogs.inventory_account"] if code == rules.inventory_account else []
            named = ", ".join(settings) or "no cogs setting now"
            explained.at[index, "cause"] = f"Xero refused account {code} on the journal, sent by {named}"
            explained.at[index, "fix"] = (f"point {named} in site.yaml at an account journals can use (COGS: DIRECTCOSTS or "
                                          "EXPENSE; inventory: a CURRENT asset, not Xero's INVENTORY type, a bank or a system "
                                          f"account), or restore account {code} in Xero")
            explained.at[index, "settings"] = tuple(settings)
    return explained


def quarantined(validated: ValidatedCogs) -> pd.DataFrame:
    """One row per quarantined branch-day (its cost as far as CI knows it), for the run log and the day's summary."""
    return metadata.quarantined_branch_days(validated.quarantined_days, validated.quarantine, "cost of goods sold of {branch}", "cost_cents")


# -- after posting -------------------------------------------------------------------------------------------
def posted_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(checks.ALL_ACCEPTED, asset=asset_name,
                       description="Every journal is in Xero as CI has it (none failed, locked, kept or changed after posting)."),
        AssetCheckSpec(checks.XERO_MATCHES_CI, asset=asset_name, blocking=True,
                       description="Read back from Xero after posting: each journal Xero holds for the days is POSTED, nets to "
                       "0.00, carries the branch's tracking, and each account moves by CI's Σ quantity × cost (rounded once), "
                       "the inventory account by −Σ; every journal posted is there."),
        AssetCheckSpec(checks.EVERY_DOLLAR, asset=asset_name, blocking=True,
                       description="Per day, CI's cost of goods sold = Σ booked by the journals Xero holds + Σ of branch-days "
                       "quarantined + Σ of those a rule kept out of Xero (reported), to the cent."),
    ]


def journal_differences(posting: Posting, rules: CogsRules) -> tuple[pd.DataFrame, int]:
    """One row per way a journal Xero holds (or should hold) differs from CI's figures; and how many were compared."""
    validated, results, held = posting.validated, posting.results, posting.held
    expected = ci_cost_by_account(validated, rules)
    postable = {(row.business_date, row.branch_code) for row in validated.postable_days.itertuples(index=False)}
    built = {row.document_key: row for row in posting.documents.itertuples(index=False)}
    rows: list[tuple] = []
    compared = 0
    in_xero = {key: (number, xero) for key, _endpoint, number, _outcome, xero in documents_in_books(results, held)}
    for key, day, branch, outcome, number in zip(results["document_key"], results["business_date"], results["branch_code"],
                                                 results["outcome"], results["number"]):
        if key not in in_xero:
            if outcome in GOOD_OUTCOMES - {"withdrawn"}:
                rows.append((day, number, "journal", "in Xero", "missing"))
            continue
        compared += 1
        number, xero = in_xero[key]
        lines = xero.get("JournalLines") or []
        amounts = [decimal_to_cents(line.get("LineAmount") or 0) for line in lines]
        if sum(amounts) != 0:
            rows.append((day, number, "nets_to", "0.00", str(cents_to_decimal(sum(amounts)))))
        if xero.get("Status") != STATUS:
            rows.append((day, number, "status", STATUS, str(xero.get("Status"))))
        if (day, branch) not in postable:
            rows.append((day, number, "branch_day", "postable in CI", "held back in CI now (quarantined or nothing to post)"))
            continue
        wanted = {account: cents for account, cents in expected.get((day, branch), {}).items() if cents}
        wanted[str(rules.inventory_account)] = -sum(wanted.values())
        moved: dict[str, int] = {}
        for line, amount in zip(lines, amounts):
            moved[str(line.get("AccountCode"))] = moved.get(str(line.get("AccountCode")), 0) + amount
        for account in sorted(set(moved) | set(wanted)):
            if moved.get(account, 0) != wanted.get(account, 0):
                rows.append((day, number, f"account {account}", str(cents_to_decimal(wanted.get(account, 0))),
                             str(cents_to_decimal(moved.get(account, 0)))))
        document = built.get(key)
        if document is not None:
            want, have = tracking_of(document.payload.get("JournalLines") or []), tracking_of(lines)
            if want.casefold() != have.casefold():
                rows.append((day, number, "tracking", want, have))
    return pd.DataFrame(rows, columns=JOURNAL_DIFFERENCE_COLUMNS), compared


def every_dollar(posting: Posting, rules: CogsRules) -> pd.DataFrame:
    """Per day: CI's cost of goods sold (every branch-day with stock) = what the journals Xero holds book to COGS
    (journal_cogs_cents) + quarantined + kept out of Xero by a rule (new journals with no Xero id, e.g. dated in a
    locked period). A journal Xero holds otherwise than CI now says (a change to a locked day; a posted day now
    quarantined) leaves the difference unaccounted, and the check fails until a person settles it."""
    validated, results, held = posting.validated, posting.results, posting.held
    days = validated.branch_days
    xero_by_day: dict[str, int] = {}
    held_keys = set()
    for key, _endpoint, _number, _outcome, xero in documents_in_books(results, held):
        held_keys.add(key)
        day = parse_xero_date(xero.get("Date") or xero.get("DateString"))
        xero_by_day[day.isoformat() if day else ""] = (xero_by_day.get(day.isoformat() if day else "", 0)
                                                      + journal_cogs_cents(xero.get("JournalLines") or [], rules.inventory_account))
    sent = {row.document_key: row for row in posting.documents.itertuples(index=False)}
    kept_out: dict[str, int] = {}
    for key, outcome in zip(results["document_key"], results["outcome"]):
        row = sent.get(key)
        if row is not None and outcome in REPORTED_OUTCOMES and key not in held_keys:
            day = str(row.business_date)
            kept_out[day] = kept_out.get(day, 0) + journal_cogs_cents(row.payload["JournalLines"], rules.inventory_account)
    out = []
    for day in posting.days:
        of_day = days[days["business_date"] == day]
        ci = int(of_day["cost_cents"].sum())
        quarantined_cost = int(of_day.loc[of_day["quarantined"].to_numpy(dtype=bool), "cost_cents"].sum())
        in_xero, excluded = xero_by_day.get(day, 0), kept_out.get(day, 0)
        out.append((day, ci, 0, in_xero, 0, quarantined_cost, 0, excluded, 0, ci - in_xero - quarantined_cost - excluded, 0))
    return pd.DataFrame(out, columns=DOLLAR_COLUMNS)


def posted_checks(posting: Posting) -> list[AssetCheckResult]:
    rules = rules_of(posting.site)
    differences, compared = journal_differences(posting, rules)
    return [
        checks.posting_check(posting.results),
        AssetCheckResult(check_name=checks.XERO_MATCHES_CI, passed=differences.empty, metadata={
            "journals_compared": compared,
            "differences": len(differences),
            "difference_table": metadata.table(differences, JOURNAL_DIFFERENCE_COLUMNS),
        }),
        checks.dollars_check(every_dollar(posting, rules)),
    ]


COGS = Process(
    name=GROUP,
    title="Cost of goods sold",
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
    chart_needs=chart_needs,
    # with the books (pure, quick): a branch-day CI now makes no journal of takes out the one posted for it
    evidence=lambda validated, site: SourceEvidence(**cogs_source_evidence(validated, build_cogs_journals(validated, site.cogs_rules()))),
    quarantined=quarantined,
    explain=explain,
    posted_check_specs=posted_check_specs,
    posted_checks=posted_checks,
    rules=lambda site: RunWords(GROUP, STATUS),
    description="One POSTED manual journal per branch per trading day: COGS debited, inventory credited, nets to 0.00.",
)



def build_cogs_assets(partitions_def: Any, xero_pool: str | None = None) -> list:
    return build_process_assets(COGS, partitions_def, xero_pool)


__all__ = ["COGS", "ENDPOINT", "build_cogs_assets"]

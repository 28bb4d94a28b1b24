"""Inwards goods, declared (processes.md §3): per NZ trading day, one supplier bill (ACCPAY, Awaiting
Approval unless the site says otherwise) per FINAL CI goods receipt, or a supplier credit note for goods
returned, the supplier found (or created) in Xero by ContactNumber = CI's supplier code. The steps are
assets/process.py's; the accounting is books/payables.py's.

Once a bill is in Xero the accounts-payable clerk may edit it while approving: such edits are reported
(bills_as_approved, a warning), never overwritten; a CI change to a posted bill is reported too (outcome
changed_in_xero, xero.posting)."""

from __future__ import annotations

import re
from datetime import date

import pandas as pd
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

from .. import checks
from ..books.diagnosis import EXPLAINED_COLUMNS, SiteView, explain_failures
from ..books.payables import (
    CHECK_COLUMNS, PAYABLES_TOTAL_COLUMNS, PayablesRules, ValidatedPayables, bills_as_approved,
    bills_at_posting, build_payables_documents, check_payables_books, payables_contacts, payables_dollars_by_day,
    payables_source_evidence, validate_payables,
)
from ..books.rules import EretailerRules
from ..books.tenders import empty_payments
from ..resources import CISourceResource, SiteResource
from ..xero.chart_check import Need, TaxTypeNeed, needs_for_process
from ..xero.posting import GOOD_OUTCOMES, SourceEvidence
from . import metadata
from .process import Books, Posting, Process, RunWords, build_process_assets

GROUP = "payables"
TITLE = "Inwards goods"
BOOKS_MATCH_CI = "bills_match_ci_to_the_cent"
AT_POSTING = "bills_match_ci_at_posting"
AS_APPROVED = "bills_as_approved"
QUARANTINE_SHOWN = ["business_date", "receipt_no", "supplier_code", "line_no", "total_excl_cents", "reason"]
TOTALS_MONEY = [c for c in PAYABLES_TOTAL_COLUMNS if c.endswith("_cents")]
DIFFERENCES_SHOWN = ["business_date", "receipt_no", "number", "outcome", "field", "ours", "other"]


def read(ci: CISourceResource, site: SiteResource, first: date, last: date):
    """The goods receipts received on the days (every status) with their lines."""
    from ..ci.extract import extract_goods_received

    return extract_goods_received(ci.engine(), first, last, names=ci.names())


def describe_read(read, day: str) -> dict:
    receipts = read.receipts
    final = receipts[receipts["status"] == "FINAL"]
    return {
        "goods_receipts": len(receipts),
        "by_status": MetadataValue.json({str(k): int(v) for k, v in receipts["status"].value_counts().items()}),
        "lines": len(read.lines),
        "suppliers": int(receipts["supplier_code"].nunique()) if len(receipts) else 0,
        "final_total_excl": metadata.money(final["total_excl_cents"].fillna(0).sum() if len(final) else 0),
        "final_total_gst": metadata.money(final["total_gst_cents"].fillna(0).sum() if len(final) else 0),
        "orphan_lines": len(read.orphan_lines),
        "values_with_excess_decimals": len(read.excess_decimals),
    }


def log_read(read, days: list[str]) -> str:
    statuses = ", ".join(f"{int(n)} {s}" for s, n in read.receipts["status"].value_counts().items()) or "none"
    return f"Read from CI for {metadata.day_range(days)}: {len(read.receipts)} goods receipts ({statuses}), {len(read.lines)} lines."


def validate(read, site: SiteResource) -> ValidatedPayables:
    return validate_payables(read, site.payables_rules())


def describe_validated(validated: ValidatedPayables) -> dict:
    held = validated.quarantined_receipts
    return {
        "postable_receipts": len(validated.receipts),
        "postable_total_excl": metadata.money(validated.receipts["total_excl_cents"].sum()),
        "quarantined_receipts": len(held),
        "quarantined_amount_excl": metadata.money(held["total_excl_cents"].fillna(0).sum() if len(held) else 0),
        "quarantine": metadata.table(validated.quarantine, QUARANTINE_SHOWN, money_columns=["total_excl_cents"]),
        "skipped_not_final": len(validated.skipped),
        "orphan_lines": metadata.table(validated.orphan_lines, ["business_date", "receipt_no", "line_no", "reason"]),
        "notices": metadata.table(validated.notices, ["business_date", "invoice_no", "line_no", "kind", "message"]),
        "unmapped_codes": MetadataValue.json(validated.unmapped_codes),
    }


def log_validated(validated: ValidatedPayables) -> list[str]:
    held = validated.quarantined_receipts
    lines = [f"{len(validated.receipts)} goods receipts can be posted; {len(held)} quarantined; "
             f"{len(validated.skipped)} not final (HELD or VOID)."]
    lines += [f"Quarantined {row.business_date} {row.receipt_no}: {row.reason}" for row in held.head(5).itertuples(index=False)]
    if len(validated.orphan_lines):
        lines.append(f"{len(validated.orphan_lines)} lines were read without their receipt (not posted; validated_payables lists them).")
    return lines


def validation_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return checks.validation_check_specs(
        asset_name,
        quarantine="No goods receipt was quarantined and no line was read without its receipt: bills held "
        "back fail the day (an error unless the site set payables.quarantine_check_severity: warn).",
        mapped="Every CI analysis code, GST code and branch in the data has a Xero mapping (warning).",
    )


def validation_checks(validated: ValidatedPayables, site: SiteResource) -> list[AssetCheckResult]:
    held = validated.quarantined_receipts
    unmapped = {kind: codes for kind, codes in validated.unmapped_codes.items() if codes}
    return [
        AssetCheckResult(
            check_name=checks.NO_QUARANTINE, passed=held.empty and validated.orphan_lines.empty,
            severity=checks.severity(site.quarantine_severity(GROUP)),
            metadata={
                "quarantined_receipts": len(held),
                "quarantined_amount_excl": metadata.money(held["total_excl_cents"].fillna(0).sum() if len(held) else 0),
                "reasons": metadata.table(validated.quarantine, QUARANTINE_SHOWN, money_columns=["total_excl_cents"]),
                "orphan_lines": metadata.table(validated.orphan_lines, ["business_date", "receipt_no", "line_no", "reason"]),
            }),
        AssetCheckResult(check_name=checks.CODES_MAPPED, passed=not unmapped, severity=AssetCheckSeverity.WARN,
                         metadata={"unmapped_codes": unmapped}),
    ]


def build(validated: ValidatedPayables, site: SiteResource, days: list[str]) -> Books:
    """The bills and supplier credits of the postable receipts; blocking: each one's SubTotal is CI's
    total_excl and its tax CI's total_gst, to the cent, and Xero would compute every line's tax as sent."""
    rules = site.payables_rules()
    books = build_payables_documents(validated, rules)
    problems = check_payables_books(validated, books, rules)
    documents = books.documents
    credits = int((documents["endpoint"] == "CreditNotes").sum()) if len(documents) else 0
    log = [f"Made {len(documents) - credits} bills and {credits} supplier credit notes, status {rules.status}, lines to "
           f"{'the inventory account ' + str(rules.inventory_account) if rules.cogs_enabled else 'the purchases accounts'}."]
    totals_by_day = dict(tuple(books.totals.groupby("business_date"))) if len(books.totals) else {}
    check = AssetCheckResult(
        check_name=BOOKS_MATCH_CI, passed=problems.empty,
        metadata={
            "documents": len(documents),
            "problems": metadata.table(problems, CHECK_COLUMNS),
            "totals": metadata.table(books.totals, PAYABLES_TOTAL_COLUMNS, money_columns=TOTALS_MONEY),
        },
    )
    return Books(
        documents=documents, payments=empty_payments(), checks=[check], log=log,
        day_metadata=lambda part, day: {
            "documents": len(part),
            "bills": int((part["endpoint"] == "Bills").sum()) if len(part) else 0,
            "supplier_credit_notes": int((part["endpoint"] == "CreditNotes").sum()) if len(part) else 0,
            "documents_table": metadata.table(
                part, ["business_date", "number", "document_type", "contact_name", "status", "total_cents", "tax_cents", "line_count"],
                money_columns=["total_cents", "tax_cents"]),
            "ci_beside_documents": metadata.table(totals_by_day.get(day, books.totals.iloc[0:0]), PAYABLES_TOTAL_COLUMNS,
                                                  money_columns=TOTALS_MONEY),
        },
    )


def build_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [AssetCheckSpec(
        BOOKS_MATCH_CI, asset=asset_name, blocking=True,  # a wrong builder never reaches Xero
        description="Per goods receipt, before anything is sent: the bill's SubTotal is CI's total_excl and its tax CI's "
        "total_gst to the cent; each line's tax is what Xero computes and its amount quantity × unit cost; supplier, "
        "numbers, tracking and the receipt's key are on it.",
    )]


def chart_needs(site: SiteResource) -> list[Need]:
    """The bills' accounts and purchase tax types (chart_check's needs of the process), and the exempt tax
    type the GST adjustment pairs use when payables.tax_types maps no E."""
    needs = needs_for_process(site.settings, GROUP)
    rules = site.payables_rules()
    if "E" not in rules.tax_types:
        needs.append(TaxTypeNeed("payables.tax_types.E", rules.exempt_tax_type, "INPUT"))
    return needs


def quarantined(validated: ValidatedPayables) -> pd.DataFrame:
    """One row per quarantined receipt (metadata.quarantined_documents' shape: its total is CI's total with GST)."""
    held = validated.quarantined_receipts
    total = held["total_excl_cents"].fillna(0).astype("int64") + held["total_gst_cents"].fillna(0).astype("int64")
    return pd.DataFrame({
        "business_date": held["business_date"].to_numpy(dtype=object), "invoice_no": held["receipt_no"].to_numpy(dtype=object),
        "branch_code": held["branch_code"].to_numpy(dtype=object), "total_incl_cents": total.to_numpy(dtype="int64"),
        "reason": held["reason"].to_numpy(dtype=object),
    }, columns=["business_date", "invoice_no", "branch_code", "total_incl_cents", "reason"])


# the diagnosis speaks of the sales mapping; a bill's lines come from the payables (or cogs) settings
def _payables_words(rules: PayablesRules) -> list[tuple[re.Pattern, str]]:
    return [(re.compile(pattern), words) for pattern, words in (
        (r"mapping\.sales_accounts", rules.account_setting),
        (r"mapping\.tax_types", "payables.tax_types"),
        (r"eretailer\.contact_name_format", "payables.contact_name_format"),
        (r"eretailer\.(?:contact_strategy|default_contact_name|summary_contact_name)", "payables.contact_name_format"),
        (r"eretailer\.missing_ci_documents", "payables.missing_ci_documents"),
        (r"eretailer\.mode, eretailer\.summary_grouping", "payables settings"),
        (r"a revenue account", "an inventory account (CURRENT)" if rules.cogs_enabled else "a purchases account"),
        (r"a sales tax type", "a purchases tax type"),
        (r"validated_eretailer", "validated_payables"),
    )]


def explain(results: pd.DataFrame, documents: pd.DataFrame, site: SiteResource, validated: ValidatedPayables) -> pd.DataFrame:
    """Every bill not in Xero as CI has it, with Xero's words, the cause and the fix (naming the payables settings)."""
    problems = results[~results["outcome"].isin(GOOD_OUTCOMES)]
    if problems.empty:
        return pd.DataFrame(columns=EXPLAINED_COLUMNS)
    rules = site.payables_rules()
    codes = sorted({str(c) for c in validated.lines["analysis_code"]}) if len(validated.lines) else []
    accounts = {code: rules.inventory_account for code in codes} if rules.cogs_enabled else dict(rules.purchases_accounts)
    view = EretailerRules(mode="detail", sales_accounts=accounts, tax_types=dict(rules.tax_types), gst_rates=dict(rules.gst_rates),
                          tracking_category=rules.tracking_category, tracking_options=dict(rules.tracking_options))
    options = {str(b): str(rules.tracking_options.get(b, n)) for b, n in zip(validated.receipts["branch_code"], validated.receipts["branch_name"])}
    explained = explain_failures(problems, documents, SiteView(view, site.settings.tracking.strategy, options), "raw_payables")
    words = _payables_words(rules)

    def said(text):
        if isinstance(text, str):
            for pattern, replacement in words:
                text = pattern.sub(replacement, text)
            return text
        if isinstance(text, (tuple, list)):
            return tuple(dict.fromkeys(said(item) for item in text))
        return text

    for column in ("reason", "cause", "fix", "settings"):
        explained[column] = [said(value) for value in explained[column]]
    # not a refusal: a rule of this process (the diagnosis knows only the sales documents' outcomes)
    changed = (explained["outcome"] == "changed_in_xero").to_numpy(dtype=bool)
    if changed.any():
        explained.loc[changed, "cause"] = ("CI changed the goods receipt after its bill went to Xero for approval; the "
                                           "bill was not overwritten (the payables clerk may have edited it)")
        explained.loc[changed, "fix"] = ("the payables clerk brings the bill in Xero to CI's figures, or CI's receipt is "
                                         "put back to the bill's; nothing is sent from here")
        explained.loc[changed, "settings"] = pd.Series([()] * int(changed.sum()), index=explained.index[changed], dtype=object)
    return explained


# -- after posting ----------------------------------------------------------------------------------------
def posted_check_specs(asset_name: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(checks.ALL_ACCEPTED, asset=asset_name,
                       description="Every bill and supplier credit is in Xero as CI has it (none failed, locked, or "
                       "changed in CI after it went to Xero for approval)."),
        AssetCheckSpec(AT_POSTING, asset=asset_name, blocking=True,
                       description="Each bill as posted (Xero's answer, or the ledger's version): its SubTotal is CI's "
                       "total_excl and its tax CI's total_gst, to the cent."),
        AssetCheckSpec(checks.EVERY_DOLLAR, asset=asset_name, blocking=True,
                       description="Per day, Σ CI FINAL goods receipts = Σ bills in Xero (as posted) + Σ quarantined + Σ "
                       "excluded by a rule, GST-exclusive amounts and GST to the cent; credit notes subtract."),
        AssetCheckSpec(AS_APPROVED, asset=asset_name,
                       description="Read back from Xero (warning): the bills the payables clerk changed after posting "
                       "(lines, totals, or deleted). They are reported, never overwritten; approving is not a change."),
    ]


def posted_checks(posting: Posting) -> list[AssetCheckResult]:
    rules = posting.site.payables_rules()
    books = build_payables_documents(posting.validated, rules)  # pure and quick: what the documents step made
    at_posting = bills_at_posting(posting.validated, books, posting.results)
    edits, changed = bills_as_approved(books, posting.results, posting.held)
    compared = int(posting.results["outcome"].isin(("posted", "already_posted", "updated", "reposted")).sum()) if len(posting.results) else 0
    return [
        checks.posting_check(posting.results),
        AssetCheckResult(check_name=AT_POSTING, passed=at_posting.empty, metadata={
            "bills_compared": compared,
            "differences": metadata.table(at_posting, DIFFERENCES_SHOWN),
        }),
        checks.dollars_check(payables_dollars_by_day(posting.validated, books, posting.results, posting.held, posting.days)),
        AssetCheckResult(check_name=AS_APPROVED, passed=edits.empty, severity=AssetCheckSeverity.WARN, metadata={
            "bills_compared": compared,
            "changed_by_the_clerk": int(edits["receipt_no"].nunique()) if len(edits) else 0,
            "edits": metadata.table(edits, DIFFERENCES_SHOWN),
            # CI changed these after posting; Xero's version was kept (every_document_in_xero reports them too)
            "changed_in_ci_kept_as_in_xero": metadata.table(changed, DIFFERENCES_SHOWN),
        }),
    ]



PAYABLES = Process(
    name=GROUP,
    title=TITLE,
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
    evidence=lambda validated, site: SourceEvidence(**payables_source_evidence(validated)),
    quarantined=quarantined,
    explain=explain,
    posted_check_specs=posted_check_specs,
    posted_checks=posted_checks,
    rules=lambda site: RunWords(GROUP, site.payables_rules().status),
    description="Inwards goods: one supplier bill per FINAL goods receipt, awaiting approval in Xero.",
    contacts=lambda validated, site: payables_contacts(validated, site.payables_rules()),
)


def build_payables_assets(partitions_def, xero_pool: str | None = None) -> list:
    return build_process_assets(PAYABLES, partitions_def, xero_pool)


__all__ = ["AS_APPROVED", "AT_POSTING", "BOOKS_MATCH_CI", "PAYABLES", "build_payables_assets"]

"""What a person sees on each asset in the Dagster UI: counts, exact totals, tables of rows."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping
from urllib.parse import quote

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from ..io_manager import split_by_day
from ..books.diagnosis import ci_documents_summary
from ..money import cents_to_decimal

TABLE_ROW_LIMIT = 200


def money(cents: Any) -> str:
    """Exact money for the UI (metadata numbers would be floats)."""
    return "" if cents is None or pd.isna(cents) else str(cents_to_decimal(int(cents)))


def _cell(value: Any) -> str | int | bool | None:
    if value is None or (not isinstance(value, (list, tuple)) and pd.isna(value)):
        return None
    if isinstance(value, (list, tuple)):
        shown = ", ".join(str(v) for v in value[:10])
        return shown + (f" … (+{len(value) - 10})" if len(value) > 10 else "")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return str(value)


# Money columns are shown in dollars under a name for dollars (never `*_cents` holding dollars)
MONEY_NAMES = {
    "total_cents": "total", "tax_cents": "gst", "xero_total_cents": "xero_total", "xero_tax_cents": "xero_gst",
    "total_incl_cents": "total_incl", "total_gst_cents": "gst", "amount_cents": "amount",
}


def shown_name(column: str, money: bool) -> str:
    """The name a column is shown under: a money column is named for dollars."""
    if not money:
        return column
    return MONEY_NAMES.get(column) or column.replace("_cents", "")


def table(
    frame: pd.DataFrame, columns: Iterable[str], money_columns: Iterable[str] = (),
    descriptions: Mapping[str, str] | None = None,
) -> MetadataValue:
    """A UI table of the first rows; money columns shown as exact decimals, under a name for dollars
    (`total_cents` → `total`). A longer table says how many rows are not shown, in a last row (never
    cut silently); the asset's stored value has them all."""
    columns, money_columns = list(columns), set(money_columns)
    names = [shown_name(name, name in money_columns) for name in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"two columns would be shown under one name: {names}")
    shown = frame.head(TABLE_ROW_LIMIT)
    records = []
    for row in shown[columns].itertuples(index=False):
        record = {}
        for column, name, value in zip(columns, names, row):
            record[name] = money(value) if column in money_columns else _cell(value)
        records.append(TableRecord(record))
    if len(frame) > TABLE_ROW_LIMIT:
        more = {name: None for name in names}
        more[names[0]] = f"… and {len(frame) - TABLE_ROW_LIMIT} more rows, not shown here (all are in the stored asset value)"
        records.append(TableRecord(more))
    described = descriptions or {}
    schema = TableSchema(columns=[
        TableColumn(name, "string", description=described.get(name) or ("NZ$, exact" if column in money_columns else None))
        for column, name in zip(columns, names)
    ])
    return MetadataValue.table(records=records, schema=schema)


def add_per_day(context: Any, value: Any, days: list[str], describe: Callable[[Any, str], dict[str, Any]],
                asset_key: str | None = None) -> None:
    """Each partition's metadata from that day's part of the value (a backfill of many days is one
    run; without this every partition would show the whole range). `asset_key`: which output of a step
    that makes several."""
    for day, part in split_by_day(value, days).items():
        context.add_asset_metadata(describe(part, day), asset_key=asset_key, partition_key=day)


def add_per_day_frames(context: Any, days: list[str], describe: Callable[..., dict[str, Any]], *frames: pd.DataFrame) -> None:
    """As add_per_day, for several frames of the run split alike: describe(day, part of each frame)."""
    parts = [split_by_day(frame, days) for frame in frames]
    for day in days:
        context.add_asset_metadata(describe(day, *(part[day] for part in parts)), partition_key=day)


def partition_url(ui_url: str, asset: str, day: str) -> str:
    """The Dagster UI's page of one partition of an asset (the UI's own form of the address)."""
    return f"{ui_url.rstrip('/')}/assets/{quote(asset)}?view=partitions&partition={quote(day)}"


def day_range(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]} … {days[-1]} ({len(days)} days)"


def raw_sales(documents: Any, days: list[str]) -> dict[str, Any]:
    invoices = documents.invoices
    final = invoices[invoices["status"] == "FINAL"]
    by_status = invoices["status"].value_counts().to_dict()
    return {
        "trading_days": day_range(days),
        "documents": len(invoices),
        "lines": len(documents.lines),
        "documents_by_status": MetadataValue.json({str(k): int(v) for k, v in by_status.items()}),
        "final_total_incl": money(final["total_incl_cents"].sum()),
        "final_total_gst": money(final["total_gst_cents"].sum()),
        "orphan_lines": len(documents.orphan_lines),
        "values_with_excess_decimals": len(documents.excess_decimals),
    }


def validated_sales(validated: Any) -> dict[str, Any]:
    quarantine = validated.quarantine
    held = quarantined_documents(quarantine)
    return {
        "postable_documents": len(validated.invoices),
        "postable_total_incl": money(validated.invoices["total_incl_cents"].sum()),
        "quarantined_documents": len(held),
        "quarantined_amount": money(held["total_incl_cents"].sum()),
        "quarantined_rows": table(
            quarantine,
            ["business_date", "invoice_no", "branch_code", "line_no", "total_incl_cents", "reason"],
            money_columns=["total_incl_cents"],
        ),
        "skipped_not_final": len(validated.skipped),
        "orphan_lines": table(validated.orphan_lines, ["business_date", "invoice_no", "line_no", "reason"]),
        "notices": table(validated.notices, ["business_date", "invoice_no", "line_no", "kind", "message"]),
        "unmapped_codes": MetadataValue.json({k: list(v) for k, v in validated.unmapped_codes.items()}),
    }


def quarantined_documents(quarantine: pd.DataFrame) -> pd.DataFrame:
    """One row per quarantined CI document (the quarantine has one per problem): business_date,
    invoice_no, branch_code, total_incl_cents (CI's signed total), reason (the first, and how many more)."""
    columns = ["business_date", "invoice_no", "branch_code", "total_incl_cents", "reason"]
    if not len(quarantine):
        return pd.DataFrame(columns=columns)
    problems = quarantine.groupby("invoice_no", sort=False)["reason"].agg(list)
    first = quarantine.drop_duplicates("invoice_no").set_index("invoice_no")
    reasons = [r[0] + (f" (+{len(r) - 1} more)" if len(r) > 1 else "") for r in problems.reindex(first.index)]
    return pd.DataFrame({
        "business_date": first["business_date"].to_numpy(), "invoice_no": first.index.to_numpy(),
        "branch_code": first["branch_code"].to_numpy(), "total_incl_cents": first["total_incl_cents"].to_numpy(),
        "reason": reasons,
    }, columns=columns)


def xero_documents(documents: pd.DataFrame) -> dict[str, Any]:
    shown = documents.assign(ci_documents=[ci_documents_summary(numbers) for numbers in documents["ci_invoice_nos"]])
    kinds = {"Invoices": "invoices", "CreditNotes": "credit_notes", "Bills": "bills", "BillCredits": "supplier_credits",
             "ManualJournals": "journals"}
    made = set(documents["endpoint"]) if len(documents) else set()
    sales_only = made <= {"Invoices", "CreditNotes"}  # a sales process shows both counts, even at 0
    counted = {label: int((documents["endpoint"] == kind).sum()) for kind, label in kinds.items()
               if kind in made or (sales_only and kind in ("Invoices", "CreditNotes"))}
    return {
        "documents": len(documents),
        **counted,
        "xero_lines": int(documents["line_count"].sum()) if len(documents) else 0,
        "documents_table": table(
            shown,
            ["business_date", "number", "document_type", "branch_code", "contact_name", "status",
             "total_cents", "tax_cents", "line_count", "ci_documents"],
            money_columns=["total_cents", "tax_cents"],
        ),
    }


# -- posted_eretailer --------------------------------------------------------------------------------

GOOD = ("posted", "already_posted", "updated", "reposted", "withdrawn")
# Xero's page of a document (developer.xero.com, "Deep link to Xero")
XERO_PAGES = {
    "Invoices": "/AccountsReceivable/View.aspx?InvoiceID={id}",
    "CreditNotes": "/AccountsReceivable/ViewCreditNote.aspx?creditNoteID={id}",
    "Bills": "/AccountsPayable/View.aspx?InvoiceID={id}",
    "BillCredits": "/AccountsPayable/ViewCreditNote.aspx?creditNoteID={id}",
    "ManualJournals": "/Journal/View.aspx?invoiceID={id}",
}
LINKED_OUTCOMES = ("posted", "already_posted", "updated", "reposted")
LINKS_SHOWN = 50  # clickable links listed per day (the table holds every one)


def xero_link(template: str, endpoint: str, xero_id: str, short_code: str = "") -> str:
    """The address of a document in Xero, from the site's template (settings xero.document_link)."""
    page = XERO_PAGES[endpoint].format(id=xero_id)
    return template.format(short_code=short_code, page=page, id=xero_id, endpoint=endpoint)


def with_xero_links(results: pd.DataFrame, template: str | None, short_code: str = "") -> pd.DataFrame:
    """The results with `xero_link` for each document in Xero as CI has it (None for the others)."""
    links = [
        xero_link(template, endpoint, xero_id, short_code)
        if template and outcome in LINKED_OUTCOMES and isinstance(xero_id, str) and xero_id else None
        for endpoint, xero_id, outcome in zip(results["endpoint"], results["xero_id"], results["outcome"])
    ]
    return results.assign(xero_link=pd.Series(links, index=results.index, dtype=object))


def _signed(frame: pd.DataFrame, column: str = "total_cents") -> int:
    """Σ of document totals with credit notes subtracted (a results frame holds them unsigned)."""
    if not len(frame):
        return 0
    sign = frame["endpoint"].map({"Invoices": 1, "CreditNotes": -1, "Bills": 1, "BillCredits": -1}).fillna(1).astype("int64")
    return int((frame[column].fillna(0).astype("int64") * sign).sum())


def posted(
    results: pd.DataFrame, calls: Any, tracking: Any, quarantined: pd.DataFrame | None = None,
    explained: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """One day's posting: what Xero holds, and what is not there — documents Xero refused or a rule
    reported, and CI documents quarantined before posting (a day with money in quarantine is not posted
    in full, and says so). `quarantined`: quarantined_documents of the day; `explained`: the day's
    problem documents as books.diagnosis.explain_failures explains them."""
    quarantined = quarantined if quarantined is not None else quarantined_documents(pd.DataFrame(columns=["invoice_no", "reason"]))
    outcomes = {str(k): int(v) for k, v in results["outcome"].value_counts().items()} if len(results) else {}
    problems = results[~results["outcome"].isin(GOOD)]
    if len(quarantined):
        outcomes["quarantined (CI documents held back)"] = len(quarantined)
    problem_rows = _problem_rows(problems, quarantined, explained)
    ci_not_posted = sum(len(numbers or ()) for numbers in problems["ci_invoice_nos"]) + len(quarantined)
    amount_not_posted = _signed(problems) + int(quarantined["total_incl_cents"].fillna(0).astype("int64").sum())
    if "xero_link" not in results.columns:
        results = results.assign(xero_link=None)
    linked = results[results["xero_link"].notna()]
    # what Xero holds where it answered, else CI's figures
    shown = results.assign(total=results["xero_total_cents"].where(results["xero_total_cents"].notna(), results["total_cents"]),
                           gst=results["xero_tax_cents"].where(results["xero_tax_cents"].notna(), results["tax_cents"]))
    value = {
        "summary": day_summary(results, quarantined),
        "outcomes": MetadataValue.json(outcomes),
        "posted": int(outcomes.get("posted", 0)),
        "already_in_xero": int(outcomes.get("already_posted", 0)),
        # CI documents of the day that are not in Xero as CI has them: refused or reported, and quarantined
        "not_posted": ci_not_posted,
        "not_posted_amount": money(amount_not_posted),
        "quarantined_documents": len(quarantined),
        "quarantined_amount": money(quarantined["total_incl_cents"].fillna(0).astype("int64").sum()),
        "xero_calls": calls.total,
        "xero_writes": calls.writes,
        "xero_rate_limited_responses": calls.rate_limited,
        "tracking_category": tracking.category_name if tracking else "",
        "tracking_options_created": MetadataValue.json(list(tracking.created_options) if tracking else []),
        "problem_documents": table(
            problem_rows, ["business_date", "number", "outcome", "amount_cents", "reason", "fix", "ci_documents"],
            money_columns=["amount_cents"],
        ),
        "documents_in_xero": table(
            shown, ["business_date", "number", "endpoint", "outcome", "xero_status", "total", "gst", "xero_link"],
            money_columns=["total", "gst"],
            descriptions={"total": "NZ$, as Xero holds it", "gst": "NZ$, as Xero holds it",
                          "xero_link": "the document in Xero (settings xero.document_link)"},
        ),
    }
    if len(linked) == 1:
        value["xero_link"] = MetadataValue.url(linked["xero_link"].iloc[0])
    elif len(linked) > 1:
        value["xero_links"] = MetadataValue.md(links_markdown(linked))
    return value


def links_markdown(linked: pd.DataFrame) -> str:
    """A clickable list of the documents in Xero (table cells are plain text in the UI)."""
    shown = linked.head(LINKS_SHOWN)
    lines = [f"- [{number}]({link}) {'credit note' if endpoint == 'CreditNotes' else 'invoice'} {money(total)}"
             for number, link, endpoint, total in zip(shown["number"], shown["xero_link"], shown["endpoint"], shown["total_cents"])]
    if len(linked) > LINKS_SHOWN:
        lines.append(f"- … and {len(linked) - LINKS_SHOWN} more (every link is in documents_in_xero)")
    return "\n".join(lines)


def _problem_rows(problems: pd.DataFrame, quarantined: pd.DataFrame, explained: pd.DataFrame | None) -> pd.DataFrame:
    columns = ["business_date", "number", "outcome", "amount_cents", "reason", "fix", "ci_documents"]
    fixes = dict(zip(explained["document_key"], explained["fix"])) if explained is not None and len(explained) else {}
    reasons = dict(zip(explained["document_key"], explained["reason"])) if explained is not None and len(explained) else {}
    rows = [
        {"business_date": row.business_date, "number": row.number, "outcome": row.outcome,
         "amount_cents": row.total_cents, "reason": reasons.get(row.document_key, row.message), "fix": fixes.get(row.document_key, ""),
         "ci_documents": ci_documents_summary(row.ci_invoice_nos or ())}
        for row in problems.itertuples(index=False)
    ]
    rows += [
        {"business_date": row.business_date, "number": row.invoice_no, "outcome": "quarantined",
         "amount_cents": row.total_incl_cents, "reason": row.reason,
         "fix": "correct the CI document or the mapping named in the reason (the quarantined_rows of the process's validated_ step), "
                "then re-run the day",
         "ci_documents": ci_documents_summary([row.invoice_no])}
        for row in quarantined.itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=columns)


def day_summary(results: pd.DataFrame, quarantined: pd.DataFrame) -> str:
    """One line a person reads first: is the day in Xero in full, and if not, what is missing."""
    problems = results[~results["outcome"].isin(GOOD)]
    good = len(results) - len(problems)
    parts = [f"{good} document(s) in Xero as CI has them"]
    if len(problems):
        counts = problems["outcome"].value_counts()
        parts.append(", ".join(f"{n} {outcome}" for outcome, n in counts.items()))
    if len(quarantined):
        amount = money(quarantined["total_incl_cents"].fillna(0).astype("int64").sum())
        parts.append(f"{len(quarantined)} CI document(s) (NZ$ {amount}) held in quarantine, not in Xero")
    head = "Posted in full" if not len(problems) and not len(quarantined) else "NOT posted in full"
    return f"{head}: " + "; ".join(parts) + "."


# -- the failure of posted_eretailer -------------------------------------------------------------------

FAILED_DOCUMENT_COLUMNS = ["business_date", "number", "outcome", "amount_cents", "reason", "fix", "ci_documents",
                           "failed_lines", "ci_rows"]
FAILED_DOCUMENT_DESCRIPTIONS = {
    "amount": "NZ$, the document's total as CI makes it",
    "reason": "Xero's own words (or why it was not sent)",
    "fix": "what to change, and where",
    "ci_documents": "the CI documents behind it (all of them: ci_invoice_nos_by_document)",
    "failed_lines": "the Xero lines Xero refused (account · tax type · tracking option) and the CI lines behind them",
    "ci_rows": "where the CI rows are: the upstream partition, the CI view and keys",
}


def failed_documents(explained: pd.DataFrame) -> dict[str, Any]:
    """The step failure's metadata: the readable table, and the full CI key list where a person can open it."""
    return {
        "failed_documents": table(explained, FAILED_DOCUMENT_COLUMNS, money_columns=["amount_cents"],
                                  descriptions=FAILED_DOCUMENT_DESCRIPTIONS),
        "ci_invoice_nos_by_document": MetadataValue.json(
            {str(number): [str(n) for n in numbers] for number, numbers in zip(explained["number"], explained["ci_invoice_nos"])}
        ),
        "failed_days": MetadataValue.json(sorted(set(explained["business_date"]))),
        "settings_to_check": MetadataValue.json(sorted({s for settings in explained["settings"] for s in settings})),
    }


# -- the run log: what the run does, in the product's words --------------------------------------------

REFUSALS_LOGGED = 3


def _numbers(numbers: list[str], shown: int = 3) -> str:
    return ", ".join(numbers[:shown]) + (f" … (+{len(numbers) - shown})" if len(numbers) > shown else "")


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


PROCESS_WORDS = {
    "receivables": "account customers (one Xero document per CI document, each credit allocated to its invoice)",
    "payables": "inwards goods (one supplier bill per goods receipt, for approval)",
    "cogs": "cost of goods sold (one manual journal per branch per day)",
}


def mode_words(rules: Any) -> str:
    if rules.mode == "takings":
        return "end-of-day takings (one document per branch per day, a payment per tender)"
    if rules.mode == "detail":
        return "Detail mode (one Xero document per CI document)"
    if rules.mode in PROCESS_WORDS:
        return PROCESS_WORDS[rules.mode]
    return "Summary mode (one invoice per " + ("branch per day" if rules.summary_grouping == "branch_day" else "day") + ")"


def log_read(documents: Any, days: list[str]) -> str:
    """What was read from CI."""
    by_status = documents.invoices["status"].value_counts()
    statuses = ", ".join(f"{int(n)} {status}" for status, n in by_status.items()) or "none"
    return (f"Read from CI for {day_range(days)}: {_plural(len(documents.invoices), 'E-Retailer document')} ({statuses}), "
            f"{_plural(len(documents.lines), 'line')}.")


def log_validated(validated: Any) -> list[str]:
    """What can be posted, and what is held back with why (the first few)."""
    held = quarantined_documents(validated.quarantine)
    lines = [f"Ready to post: {_plural(len(validated.invoices), 'CI document')}, NZ$ "
             f"{money(validated.invoices['total_incl_cents'].sum())}; "
             + (f"held back in quarantine: {_plural(len(held), 'CI document')}, NZ$ {money(held['total_incl_cents'].sum())}."
                if len(held) else "nothing held back in quarantine.")]
    for row in held.head(REFUSALS_LOGGED).itertuples(index=False):
        lines.append(f"Quarantined: {row.business_date} {row.invoice_no}: {row.reason}")
    if len(held) > REFUSALS_LOGGED:
        lines.append(f"… and {len(held) - REFUSALS_LOGGED} more (the quarantined_rows of the process's validated_ step lists them all).")
    return lines


def log_built(documents: pd.DataFrame, rules: Any) -> str:
    """What the Xero documents are."""
    invoices = int((documents["endpoint"] == "Invoices").sum()) if len(documents) else 0
    return (f"Made {_plural(len(documents), 'Xero document')} ({_plural(invoices, 'invoice')}, "
            f"{_plural(len(documents) - invoices, 'credit note')}) in {mode_words(rules)}, status {rules.status}.")


def run_log_before(organisation: str, rules: Any, days: list[str], documents: pd.DataFrame, quarantined: pd.DataFrame) -> list[str]:
    """What the posting step is about to do, before its first write."""
    invoices = int((documents["endpoint"] == "Invoices").sum()) if len(documents) else 0
    credit_notes = len(documents) - invoices
    ci = sum(len(numbers) for numbers in documents["ci_invoice_nos"]) if len(documents) else 0
    lines = [
        f"Posting to Xero organisation {organisation!r}: {mode_words(rules)}, status {rules.status}, "
        f"{day_range(days)}.",
        (f"To bring into Xero: {_plural(len(documents), 'document')} ({_plural(invoices, 'invoice')}, "
         f"{_plural(credit_notes, 'credit note')}) made from {_plural(ci, 'CI document')}; a document already in Xero as CI "
         "has it is not sent again." if len(documents) else "Nothing to bring into Xero for these days."),
    ]
    if len(quarantined):
        by_day = quarantined.groupby("business_date").size()
        where = ", ".join(f"{day}: {count}" for day, count in by_day.items())
        lines.append(f"Held back in quarantine (not sent): {_plural(len(quarantined), 'CI document')}, NZ$ "
                     f"{money(quarantined['total_incl_cents'].fillna(0).astype('int64').sum())} ({where}).")
    else:
        lines.append("Nothing is held back in quarantine.")
    return lines


def run_log_after(results: pd.DataFrame, quarantined: pd.DataFrame, explained: pd.DataFrame) -> list[str]:
    """What the posting step did: in Xero now, not in Xero and why (the first few refusals)."""
    counts = results["outcome"].value_counts().to_dict() if len(results) else {}
    done = [("posted", "posted"), ("already_posted", "already in Xero"), ("updated", "updated"),
            ("reposted", "reposted"), ("withdrawn", "withdrawn")]
    lines = ["In Xero as CI has them: " + ", ".join(f"{int(counts.get(outcome, 0))} {words}" for outcome, words in done) + "."]
    missing = [f"{_plural(len(quarantined), 'CI document')} quarantined"] if len(quarantined) else []
    missing += [f"{int(n)} {outcome}" for outcome, n in counts.items() if outcome not in GOOD]
    lines.append("Not in Xero: " + (", ".join(missing) if missing else "nothing") + ".")
    refused = explained[explained["outcome"].isin(["failed"])] if len(explained) else explained
    groups = list(refused.groupby(["reason", "fix"], sort=False)) if len(refused) else []
    groups.sort(key=lambda group: -len(group[1]))  # the most common reason first
    for (reason, fix), group in groups[:REFUSALS_LOGGED]:
        first = group.iloc[0]
        which = (f"{first['business_date']} {first['number']}" if len(group) == 1
                 else f"{len(group)} documents ({_numbers(list(group['number']))})")
        lines.append(f"Refused: {which}: {reason} Fix: {fix}.")
    if len(groups) > REFUSALS_LOGGED:
        left = sum(len(group) for _key, group in groups[REFUSALS_LOGGED:])
        lines.append(f"… and {_plural(left, 'more document')} refused for other reasons (the step's failed_documents lists them all).")
    others = explained[~explained["outcome"].isin(["failed"])] if len(explained) else explained
    for row in others.drop_duplicates(["outcome", "fix"]).head(REFUSALS_LOGGED).itertuples(index=False):
        lines.append(f"{row.outcome.capitalize()}: {row.business_date} {row.number}: {row.fix}.")
    return lines


# -- payments -------------------------------------------------------------------------------------------
PAYMENT_SHOWN = ["business_date", "payment_key", "document_number", "tender_type", "account_code", "amount_cents"]
PAYMENT_RESULT_SHOWN = ["business_date", "payment_key", "tender_type", "account_code", "amount_cents", "outcome", "message"]
PAYMENT_GOOD = ("posted", "already_posted", "withdrawn")


def xero_payments(payments: pd.DataFrame) -> dict[str, Any]:
    """One day's payments to send: how many, how much, into which accounts."""
    by_account = (payments.groupby("account_code")["amount_cents"].sum().to_dict() if len(payments) else {})
    return {
        "payments": len(payments),
        "payments_amount": money(payments["amount_cents"].sum() if len(payments) else 0),
        "by_account": MetadataValue.json({str(k): money(v) for k, v in sorted(by_account.items())}),
        "payments_table": table(payments, PAYMENT_SHOWN, money_columns=["amount_cents"]),
    }


def payments_posted(results: pd.DataFrame) -> dict[str, Any]:
    """One day's payments as Xero holds them after the run (empty when the process pays nothing)."""
    if results is None or results.empty:
        return {"payments_in_xero": 0}
    outcomes = {str(k): int(v) for k, v in results["outcome"].value_counts().items()}
    good = results[results["outcome"].isin(("posted", "already_posted"))]
    return {
        "payments_in_xero": len(good),
        "payments_in_xero_amount": money(good["amount_cents"].sum() if len(good) else 0),
        "payment_outcomes": MetadataValue.json(outcomes),
        "payments_table": table(results, PAYMENT_RESULT_SHOWN, money_columns=["amount_cents"]),
    }


def payments_log(results: pd.DataFrame) -> list[str]:
    """What the payments step did, in a line (and the first refusals)."""
    if results is None or results.empty:
        return []
    counts = results["outcome"].value_counts().to_dict()
    line = "Payments: " + ", ".join(f"{int(n)} {outcome.replace('_', ' ')}" for outcome, n in sorted(counts.items())) + "."
    lines = [line]
    for row in results[~results["outcome"].isin(PAYMENT_GOOD)].head(REFUSALS_LOGGED).itertuples(index=False):
        lines.append(f"Payment {row.payment_key} ({row.business_date}, {money(row.amount_cents)}): {row.outcome}: {row.message}")
    return lines


def contacts_log(results: pd.DataFrame) -> list[str]:
    """What the contacts step did, in a line (and the first that could not be had)."""
    if results is None or results.empty:
        return []
    counts = results["outcome"].value_counts().to_dict()
    lines = ["Contacts by ContactNumber: " + ", ".join(f"{int(n)} {outcome}" for outcome, n in sorted(counts.items())) + "."]
    for row in results[~results["outcome"].isin({"found", "created"})].head(REFUSALS_LOGGED).itertuples(index=False):
        lines.append(f"Contact {row.contact_number}: {row.outcome}: {row.message}")
    return lines


ALLOCATION_SHOWN = ["business_date", "allocation_key", "amount_cents", "outcome", "message"]


def allocations_log(results: pd.DataFrame) -> list[str]:
    """What the allocation step did, in a line, and each credit left unallocated with why."""
    if results is None or results.empty:
        return []
    counts = results["outcome"].value_counts().to_dict()
    lines = ["Credit allocations: " + ", ".join(f"{int(n)} {outcome.replace('_', ' ')}" for outcome, n in sorted(counts.items())) + "."]
    for row in results[~results["outcome"].isin({"allocated", "already_allocated"})].head(REFUSALS_LOGGED).itertuples(index=False):
        lines.append(f"Allocation {row.allocation_key} ({row.business_date}): {row.outcome}: {row.message}")
    return lines


def allocations_posted(part: pd.DataFrame) -> dict[str, Any]:
    """A day's credit allocations: what was allocated, and what stays unallocated with why."""
    if part is None or part.empty or "outcome" not in part:
        return {}
    return {
        "allocations": table(part, [c for c in ALLOCATION_SHOWN if c in part], money_columns=["amount_cents"]),
        "credits_left_unallocated": int((~part["outcome"].isin({"allocated", "already_allocated"})).sum()),
    }


def quarantined_branch_days(held: pd.DataFrame, quarantine: pd.DataFrame, label: str, amount_column: str) -> pd.DataFrame:
    """One row per quarantined branch-day (its amount as CI has it, its first reason) in the shape of
    quarantined_documents, for the run log and the day's summary; `label` names it, e.g. "takings of {branch}"."""
    first_reason = quarantine.drop_duplicates(["business_date", "branch_code"]).set_index(["business_date", "branch_code"])["reason"]
    return pd.DataFrame({
        "business_date": held["business_date"].to_numpy(dtype=object),
        "invoice_no": [label.format(branch=b) for b in held["branch_code"]],
        "branch_code": held["branch_code"].to_numpy(dtype=object),
        "total_incl_cents": held[amount_column].to_numpy(dtype="int64"),
        "reason": [first_reason.get((d, b), "") for d, b in zip(held["business_date"], held["branch_code"])],
    }, columns=["business_date", "invoice_no", "branch_code", "total_incl_cents", "reason"])

"""What a person sees on each asset in the Dagster UI: counts, exact totals, tables of rows."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import pandas as pd
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from ..io_manager import split_by_day
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


def table(frame: pd.DataFrame, columns: Iterable[str], money_columns: Iterable[str] = ()) -> MetadataValue:
    """A UI table of the first rows; money columns shown as exact decimals. A longer table says how
    many rows are not shown, in a last row (never cut silently); the asset's stored value has them all."""
    columns, money_columns = list(columns), set(money_columns)
    shown = frame.head(TABLE_ROW_LIMIT)
    records = []
    for row in shown[columns].itertuples(index=False):
        record = {}
        for name, value in zip(columns, row):
            record[name] = money(value) if name in money_columns else _cell(value)
        records.append(TableRecord(record))
    if len(frame) > TABLE_ROW_LIMIT:
        more = {name: None for name in columns}
        more[columns[0]] = f"… and {len(frame) - TABLE_ROW_LIMIT} more rows, not shown here (all are in the stored asset value)"
        records.append(TableRecord(more))
    schema = TableSchema(
        columns=[TableColumn(name, "string" if name in money_columns else "string") for name in columns]
    )
    return MetadataValue.table(records=records, schema=schema)


def add_per_day(context: Any, value: Any, days: list[str], describe: Callable[[Any, str], dict[str, Any]]) -> None:
    """Each partition's metadata from that day's part of the value (a backfill of many days is one
    run; without this every partition would show the whole range)."""
    for day, part in split_by_day(value, days).items():
        context.add_asset_metadata(describe(part, day), partition_key=day)


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
    return {
        "postable_documents": len(validated.invoices),
        "postable_total_incl": money(validated.invoices["total_incl_cents"].sum()),
        "quarantined_documents": int(quarantine["invoice_no"].nunique()),
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


def xero_documents(documents: pd.DataFrame) -> dict[str, Any]:
    return {
        "documents": len(documents),
        "invoices": int((documents["endpoint"] == "Invoices").sum()),
        "credit_notes": int((documents["endpoint"] == "CreditNotes").sum()),
        "xero_lines": int(documents["line_count"].sum()) if len(documents) else 0,
        "documents_table": table(
            documents,
            ["business_date", "number", "document_type", "branch_code", "contact_name", "status",
             "total_cents", "tax_cents", "line_count", "ci_invoice_nos"],
            money_columns=["total_cents", "tax_cents"],
        ),
    }


def posted(results: pd.DataFrame, calls: Any, tracking: Any) -> dict[str, Any]:
    outcomes = results["outcome"].value_counts().to_dict() if len(results) else {}
    problems = results[~results["outcome"].isin(["posted", "already_posted", "updated", "reposted", "withdrawn"])]
    return {
        "outcomes": MetadataValue.json({str(k): int(v) for k, v in outcomes.items()}),
        "posted": int(outcomes.get("posted", 0)),
        "already_in_xero": int(outcomes.get("already_posted", 0)),
        "not_posted": len(problems),
        "xero_calls": calls.total,
        "xero_writes": calls.writes,
        "xero_rate_limited_responses": calls.rate_limited,
        "tracking_category": tracking.category_name if tracking else "",
        "tracking_options_created": MetadataValue.json(list(tracking.created_options) if tracking else []),
        "problem_documents": table(
            problems,
            ["business_date", "number", "branch_code", "outcome", "total_cents", "message", "ci_invoice_nos"],
            money_columns=["total_cents"],
        ),
        "documents_in_xero": table(
            results,
            ["business_date", "number", "endpoint", "outcome", "xero_status", "xero_id", "xero_total_cents",
             "xero_tax_cents"],
            money_columns=["xero_total_cents", "xero_tax_cents"],
        ),
    }


def failed_lineage(failed: pd.DataFrame, upstream: str) -> MetadataValue:
    """Each document not in Xero, with where its CI rows are: the upstream partition and the CI keys."""
    rows = failed.assign(
        amount=failed["total_cents"],
        reason=failed["message"],
        upstream_partition=upstream + " / " + failed["business_date"].astype(str),
        ci_keys=[
            "ci_sales_invoices.invoice_no IN (" + ", ".join(map(str, numbers)) + ") + their ci_sales_invoice_lines"
            for numbers in failed["ci_invoice_nos"]
        ],
    )
    return table(
        rows,
        ["ci_invoice_nos", "branch_code", "business_date", "number", "amount", "outcome", "reason",
         "upstream_partition", "ci_keys"],
        money_columns=["amount"],
    )

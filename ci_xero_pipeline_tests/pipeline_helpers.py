"""Helpers for end-to-end tests: connect a site, run days, read Xero back, sum CI by day."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance

from ci_xero_pipeline.ci.extract import engine_for, extract_sales_documents
from ci_xero_pipeline.money import decimal_to_cents
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.runner import RangeRun, run_days
from ci_xero_pipeline.settings import load_settings
from ci_xero_pipeline.xero.client import XeroClient, parse_xero_date
from ci_xero_pipeline.xero.oauth import connect


def connect_site(path: Path) -> None:
    settings = load_settings(path)
    xero = XeroResource.from_settings(settings)
    connect(xero.oauth_app(), xero.token_store(), settings.xero.tenant_name)


def xero_client(path: Path) -> XeroClient:
    return XeroResource.from_settings(load_settings(path)).client()


def run(path: Path, first: date, last: date, instance: DagsterInstance | None = None) -> RangeRun:
    return run_days(path, first, last, instance or DagsterInstance.ephemeral())


def xero_documents(path: Path) -> tuple[list[dict], list[dict]]:
    """Every invoice and credit note in the site's Xero organisation."""
    client = xero_client(path)
    invoices = client.get_all("Invoices", "Invoices", {"page": 1, "unitdp": 4})
    credit_notes = client.get_all("CreditNotes", "CreditNotes", {"page": 1, "unitdp": 4})
    return invoices, credit_notes


def xero_totals_by_day(path: Path) -> dict[str, tuple[int, int]]:
    """Σ Total and Σ TotalTax per document date as Xero holds them (credit notes subtract)."""
    invoices, credit_notes = xero_documents(path)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for sign, documents in ((1, invoices), (-1, credit_notes)):
        for document in documents:
            if document["Status"] in ("DELETED", "VOIDED"):
                continue
            day = parse_xero_date(document["Date"]).isoformat()
            totals[day][0] += sign * decimal_to_cents(document["Total"])
            totals[day][1] += sign * decimal_to_cents(document["TotalTax"])
    return {day: (total, tax) for day, (total, tax) in totals.items()}


def ci_final_totals_by_day(ci_url: str, first: date, last: date) -> dict[str, tuple[int, int]]:
    """Σ total_incl and Σ total_gst of the FINAL E-Retailer documents per day, straight from CI."""
    documents = extract_sales_documents(engine_for(ci_url), first, last)
    final = documents.invoices[documents.invoices["status"] == "FINAL"]
    sums = final.groupby("business_date")[["total_incl_cents", "total_gst_cents"]].sum()
    return {str(day): (int(row.total_incl_cents), int(row.total_gst_cents)) for day, row in sums.iterrows()}


def outcome_counts(results: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in results["outcome"].value_counts().items()}

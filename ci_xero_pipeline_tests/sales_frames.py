"""Handcrafted CI documents as the frames extraction returns (docs/data-contracts.md), for book tests.

Amounts are given as Decimal strings; a line's total and GST are computed as CI computes them unless
given, so a test can also hand in a line that does not add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd

INVOICE_COLUMNS = [
    "invoice_no", "doc_type", "source", "branch_code", "branch_name", "branch_active", "business_date",
    "created_at", "updated_at", "status", "customer_code", "customer_name", "customer_email", "order_ref",
    "original_invoice_no", "currency_code", "total_incl_cents", "total_gst_cents",
]
LINE_COLUMNS = [
    "invoice_no", "business_date", "line_no", "sku", "description", "quantity_x1000", "unit_price_incl_x10000",
    "discount_incl_cents", "line_total_incl_cents", "line_gst_cents", "gst_code", "analysis_code",
    "unit_cost_excl_x10000",
]
BRANCHES = {"WEB": "Online Store", "AKL01": "Auckland Queen Street", "WLG01": "Wellington Lambton Quay"}


@dataclass(frozen=True)
class Frames:
    invoices: pd.DataFrame
    lines: pd.DataFrame


def ci_line_total(quantity: Decimal, price: Decimal, discount: Decimal) -> Decimal:
    """The contract's line total: round(quantity × price − discount, 2) on an invoice line; on a credit
    line (quantity negative) −round(|quantity| × price − discount, 2): the discount reduces the refund."""
    size = (abs(quantity) * price - discount).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return -size if quantity < 0 else size


def ci_gst(total: Decimal, gst_code: str) -> Decimal:
    if gst_code != "S":
        return Decimal("0.00")
    return (total * 3 / 23).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def line(quantity: str, price: str, discount: str = "0", gst_code: str = "S", analysis_code: str = "APPAREL", **overrides: Any) -> dict:
    q, p, d = Decimal(quantity), Decimal(price), Decimal(discount)
    total = ci_line_total(q, p, d)
    values = {
        "sku": "SKU1", "description": "Merino crew tee", "quantity": q, "unit_price_incl": p,
        "discount_incl": d, "line_total_incl": total, "line_gst": ci_gst(total, gst_code),
        "gst_code": gst_code, "analysis_code": analysis_code,
    }
    values.update(overrides)
    return values


def document(invoice_no: str, day: str, lines: list[dict], doc_type: str = "INVOICE", branch: str | None = "WEB", **overrides: Any) -> dict:
    values = {
        "invoice_no": invoice_no, "doc_type": doc_type, "source": "ERETAILER", "branch_code": branch,
        "business_date": day, "status": "FINAL", "customer_code": "WC100", "customer_name": "Aroha Smith",
        "customer_email": "aroha@example.co.nz", "order_ref": f"ORD-{invoice_no}", "original_invoice_no": None,
        "currency_code": "NZD", "lines": lines,
    }
    values.update(overrides)
    return values


def _cents(amount: Decimal) -> int:
    return int(amount * 100)


def frames(documents: list[dict], branches: dict[str, str] | None = None) -> Frames:
    branches = BRANCHES if branches is None else branches
    invoice_rows, line_rows = [], []
    for doc in documents:
        lines = doc["lines"]
        totals = doc.get("total_incl", sum((item["line_total_incl"] for item in lines), Decimal(0)))
        gst = doc.get("total_gst", sum((item["line_gst"] for item in lines), Decimal(0)))
        when = pd.Timestamp(f"{doc['business_date']} 10:00")
        invoice_rows.append(
            {
                **{k: v for k, v in doc.items() if k not in ("lines", "total_incl", "total_gst")},
                "branch_name": branches.get(doc["branch_code"]),
                "branch_active": True if doc["branch_code"] in branches else pd.NA,
                "created_at": when, "updated_at": when,
                "total_incl_cents": _cents(totals), "total_gst_cents": _cents(gst),
            }
        )
        for number, item in enumerate(lines, start=1):
            line_rows.append(
                {
                    "invoice_no": doc["invoice_no"], "business_date": doc["business_date"], "line_no": number,
                    "sku": item["sku"], "description": item["description"],
                    "quantity_x1000": int(item["quantity"] * 1000),
                    "unit_price_incl_x10000": int(item["unit_price_incl"] * 10000),
                    "discount_incl_cents": _cents(item["discount_incl"]),
                    "line_total_incl_cents": _cents(item["line_total_incl"]),
                    "line_gst_cents": _cents(item["line_gst"]),
                    "gst_code": item["gst_code"], "analysis_code": item["analysis_code"],
                    "unit_cost_excl_x10000": None,
                }
            )
    invoices = pd.DataFrame(invoice_rows, columns=INVOICE_COLUMNS)
    lines = pd.DataFrame(line_rows, columns=LINE_COLUMNS)
    for column in ("total_incl_cents", "total_gst_cents"):
        invoices[column] = invoices[column].astype("Int64")
    invoices["branch_active"] = invoices["branch_active"].astype("boolean")
    for column in ("line_no", "quantity_x1000", "unit_price_incl_x10000", "discount_incl_cents",
                   "line_total_incl_cents", "line_gst_cents", "unit_cost_excl_x10000"):
        lines[column] = lines[column].astype("Int64")
    return Frames(invoices, lines)

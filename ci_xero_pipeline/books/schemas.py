"""Pandera models of the frames that pass between the E-Retailer assets.

The CI models state the source contract (`ci-source-contract.md`) as checks: a row that fails one is
quarantined by `books.validation`, with the check's name turned into a reason a person can act on.
The documents model states what the Xero side relies on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

DOC_TYPES = ["INVOICE", "CREDIT"]
STATUSES = ["FINAL", "HELD", "VOID"]
GST_CODES = ["S", "Z", "E"]
ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"

# |quantity_x1000| and |unit_price_x10000| below 2**31 keep their product inside int64.
_SAFE_FACTOR = 2**31


def expected_line_total_cents(quantity_x1000: pd.Series, unit_price_x10000: pd.Series, discount_cents: pd.Series) -> pd.Series:
    """round_half_up(quantity × unit_price − discount, 2) in cents, computed on integers.

    quantity (10⁻³) × price (10⁻⁴) is in 10⁻⁷; a cent is 10⁵ of those. Half-up rounds away from zero
    on negative (credit) lines, as Decimal's ROUND_HALF_UP does. Rows whose factors could overflow
    int64 are computed with Python integers.
    """
    q = quantity_x1000.astype("Int64")
    p = unit_price_x10000.astype("Int64")
    d = discount_cents.astype("Int64")
    safe = (q.abs() < _SAFE_FACTOR) & (p.abs() < _SAFE_FACTOR)
    safe = safe.fillna(True)
    if safe.all():  # the usual case: every row at once, without the masked assignment below
        units = q * p - d * 100_000
        magnitude = (units.abs() + 50_000) // 100_000
        return pd.Series((np.sign(units) * magnitude).array, index=q.index, dtype="Int64")
    result = pd.Series(pd.NA, index=q.index, dtype="Int64")
    if safe.any():
        units = q[safe] * p[safe] - d[safe] * 100_000
        magnitude = (units.abs() + 50_000) // 100_000
        result[safe] = np.sign(units) * magnitude
    for index in q.index[~safe]:
        units = int(q[index]) * int(p[index]) - int(d[index]) * 100_000
        magnitude = (abs(units) + 50_000) // 100_000
        result[index] = magnitude if units >= 0 else -magnitude
    return result


def gst_inclusive(total_cents: pd.Series, rate_percent: int = 15) -> pd.Series:
    """The GST inside a GST-inclusive amount, half-up to the cent: total × rate / (100 + rate)."""
    numerator = total_cents.astype("Int64") * rate_percent * 2
    denominator = (100 + rate_percent) * 2
    magnitude = (numerator.abs() + (100 + rate_percent)) // denominator
    return np.sign(total_cents.astype("Int64")) * magnitude


# -- the row-wise checks of the CI models ------------------------------------------------------
# Each judges every row on its own values alone (never on other rows), so that validation may screen
# a million rows with them cheaply and hand pandera only the rows that can fail (books.validation).

def sign_matches_doc_type(frame: pd.DataFrame) -> pd.Series:
    total = frame["total_incl_cents"]
    return ((frame["doc_type"] != "INVOICE") | (total >= 0)) & ((frame["doc_type"] != "CREDIT") | (total <= 0))


def gst_within_total(frame: pd.DataFrame) -> pd.Series:
    return frame["total_gst_cents"].abs() <= frame["total_incl_cents"].abs()


def line_total_is_quantity_times_price_less_discount(frame: pd.DataFrame) -> pd.Series:
    expected = expected_line_total_cents(
        frame["quantity_x1000"], frame["unit_price_incl_x10000"], frame["discount_incl_cents"]
    )
    return (frame["line_total_incl_cents"] == expected).fillna(False)


def gst_matches_gst_code(frame: pd.DataFrame) -> pd.Series:
    standard = frame["gst_code"] == "S"
    expected = gst_inclusive(frame["line_total_incl_cents"])
    # CI may compute GST per unit; two cents either way is rounding, more is a wrong GST code or amount
    close = (frame["line_gst_cents"] - expected).abs() <= 2
    zero = frame["line_gst_cents"] == 0
    return (standard & close | ~standard & zero).fillna(False)


# check name -> the function behind it, for the checks above (each row judged on its own)
ROW_WISE_CHECKS = {
    "sign_matches_doc_type": sign_matches_doc_type,
    "gst_within_total": gst_within_total,
    "line_total_is_quantity_times_price_less_discount": line_total_is_quantity_times_price_less_discount,
    "gst_matches_gst_code": gst_matches_gst_code,
}


class CISalesInvoices(pa.DataFrameModel):
    """ci_sales_invoices as extracted (money in integer cents)."""

    invoice_no: Series[str] = pa.Field(nullable=False, unique=True, str_length={"min_value": 1, "max_value": 255})
    doc_type: Series[str] = pa.Field(isin=DOC_TYPES, nullable=False)
    branch_code: Series[str] = pa.Field(nullable=True)
    business_date: Series[str] = pa.Field(str_matches=ISO_DAY, nullable=False)
    status: Series[str] = pa.Field(isin=STATUSES, nullable=False)
    currency_code: Series[str] = pa.Field(nullable=False)
    total_incl_cents: Series[pd.Int64Dtype] = pa.Field(nullable=False)
    total_gst_cents: Series[pd.Int64Dtype] = pa.Field(nullable=False)

    @pa.dataframe_check(name="sign_matches_doc_type")
    def _sign(cls, frame: pd.DataFrame) -> pd.Series:
        return sign_matches_doc_type(frame)

    @pa.dataframe_check(name="gst_within_total")
    def _gst_within_total(cls, frame: pd.DataFrame) -> pd.Series:
        return gst_within_total(frame)

    class Config:
        strict = False


class CISalesInvoiceLines(pa.DataFrameModel):
    """ci_sales_invoice_lines as extracted (integer units)."""

    invoice_no: Series[str] = pa.Field(nullable=False)
    line_no: Series[pd.Int64Dtype] = pa.Field(nullable=False)
    description: Series[str] = pa.Field(nullable=True)
    quantity_x1000: Series[pd.Int64Dtype] = pa.Field(nullable=False)
    unit_price_incl_x10000: Series[pd.Int64Dtype] = pa.Field(nullable=False)
    discount_incl_cents: Series[pd.Int64Dtype] = pa.Field(nullable=False, ge=0)
    line_total_incl_cents: Series[pd.Int64Dtype] = pa.Field(nullable=False)
    line_gst_cents: Series[pd.Int64Dtype] = pa.Field(nullable=False)
    gst_code: Series[str] = pa.Field(isin=GST_CODES, nullable=False)
    analysis_code: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})

    @pa.dataframe_check(name="line_total_is_quantity_times_price_less_discount")
    def _line_total(cls, frame: pd.DataFrame) -> pd.Series:
        return line_total_is_quantity_times_price_less_discount(frame)

    @pa.dataframe_check(name="gst_matches_gst_code")
    def _gst(cls, frame: pd.DataFrame) -> pd.Series:
        return gst_matches_gst_code(frame)

    class Config:
        strict = False
        unique = ["invoice_no", "line_no"]


class XeroDocuments(pa.DataFrameModel):
    """xero_eretailer_documents: one row per Xero document, totals as Xero must hold them."""

    document_key: Series[str] = pa.Field(unique=True, nullable=False)
    business_date: Series[str] = pa.Field(str_matches=ISO_DAY)
    branch_code: Series[str] = pa.Field(nullable=True)
    endpoint: Series[str] = pa.Field(isin=["Invoices", "CreditNotes"])
    document_type: Series[str] = pa.Field(isin=["ACCREC", "ACCRECCREDIT"])
    number: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    status: Series[str] = pa.Field(isin=["DRAFT", "AUTHORISED"])
    total_cents: Series[int] = pa.Field(ge=0)
    tax_cents: Series[int]
    line_count: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check(name="number_unique_per_endpoint")
    def _unique_numbers(cls, frame: pd.DataFrame) -> pd.Series:
        return ~frame.duplicated(["endpoint", "number"], keep=False)

    class Config:
        strict = False

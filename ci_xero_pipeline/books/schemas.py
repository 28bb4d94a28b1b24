"""Pandera models of the frames that pass between the E-Retailer assets.

The CI models state the source contract (`ci-source-contract.md`) as checks: a row that fails one is
quarantined by `books.validation`, with the check's name turned into a reason a person can act on.
The documents model states what the Xero side relies on.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from .rules import NZ_GST_RATES

DOC_TYPES = ["INVOICE", "CREDIT"]
STATUSES = ["FINAL", "HELD", "VOID"]
GST_CODES = ["S", "Z", "E"]
ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"
DEFAULT_GST_TOLERANCE_CENTS = 2  # EretailerRules.gst_tolerance_cents' default

# What a step reports without holding a document back (a cut description, a renamed tracking option, a
# repeated row of a document that is not posted anyway): one row each, dated, for the asset to show.
NOTICE_COLUMNS = ["business_date", "invoice_no", "line_no", "kind", "message"]


def notices_frame(business_date, invoice_no, line_no, kind, message) -> pd.DataFrame:
    """NOTICE_COLUMNS from equal-length sequences (or one value for every row: invoice_no / line_no
    None, kind)."""
    days = list(business_date)
    count = len(days)

    def column(values) -> list:
        if isinstance(values, str) or values is None:
            return [values] * count
        return list(values)

    return pd.DataFrame({
        "business_date": pd.Series(days, dtype=object),
        "invoice_no": pd.Series(column(invoice_no), dtype=object),
        "line_no": pd.Series(pd.array(column(line_no), dtype="Int64")),
        "kind": pd.Series(column(kind), dtype=object),
        "message": pd.Series(column(message), dtype=object),
    }, columns=NOTICE_COLUMNS)


def empty_notices() -> pd.DataFrame:
    return notices_frame([], None, None, None, [])


def combined_notices(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if len(part)]
    if not parts:
        return empty_notices()
    found = pd.concat(parts, ignore_index=True)[NOTICE_COLUMNS]
    found["line_no"] = found["line_no"].astype("Int64")
    return found.sort_values(["business_date", "invoice_no", "line_no", "kind"], na_position="first", kind="stable").reset_index(drop=True)


# |quantity_x1000| and |unit_price_x10000| below 2**31 keep their product inside int64.
_SAFE_FACTOR = 2**31
_INT64_MAX = 2**63 - 1


def expected_line_total_cents(quantity_x1000: pd.Series, unit_price_x10000: pd.Series, discount_cents: pd.Series) -> pd.Series:
    """The line total the source contract gives, in cents, computed on integers:
    round_half_up(quantity × unit_price − discount, 2) for a line of positive (or zero) quantity, and
    −round_half_up(|quantity| × unit_price − discount, 2) for a line of negative quantity (a credit's):
    the discount always reduces the line's size, so a refund of a discounted sale gives back what was
    paid, not more.

    quantity (10⁻³) × price (10⁻⁴) is in 10⁻⁷; a cent is 10⁵ of those. Half-up rounds away from zero,
    as Decimal's ROUND_HALF_UP does. Rows whose factors could overflow int64 are computed with Python
    integers.
    """
    q = quantity_x1000.astype("Int64")
    p = unit_price_x10000.astype("Int64")
    d = discount_cents.astype("Int64")
    safe = (q.abs() < _SAFE_FACTOR) & (p.abs() < _SAFE_FACTOR)
    safe = safe.fillna(True)

    def rounded(q: pd.Series, p: pd.Series, d: pd.Series):
        units = q.abs() * p - d * 100_000
        magnitude = (units.abs() + 50_000) // 100_000
        size = np.sign(units) * magnitude
        return size.where(q >= 0, -size)

    if safe.all():  # the usual case: every row at once, without the masked assignment below
        return pd.Series(rounded(q, p, d).array, index=q.index, dtype="Int64")
    result = pd.Series(pd.NA, index=q.index, dtype="Int64")
    if safe.any():
        result[safe] = rounded(q[safe], p[safe], d[safe])
    for index in q.index[~safe]:
        if pd.isna(q[index]) or pd.isna(p[index]) or pd.isna(d[index]):
            continue
        quantity = int(q[index])
        units = abs(quantity) * int(p[index]) - int(d[index]) * 100_000
        magnitude = (abs(units) + 50_000) // 100_000
        size = magnitude if units >= 0 else -magnitude
        result[index] = size if quantity >= 0 else -size
    return result


# -- GST on integers ---------------------------------------------------------------------------

def rate_ratio(rate: Any) -> tuple[int, int]:
    """A GST rate in per cent (Decimal, int or exact text) as a fraction (numerator, denominator)."""
    value = rate if isinstance(rate, Decimal) else Decimal(str(rate))
    if not value.is_finite() or value < 0:
        raise ValueError(f"GST rate {rate!r} is not a rate in per cent")
    return value.as_integer_ratio()


def inclusive_tax_cents(amount_cents: np.ndarray, rate: Any) -> np.ndarray:
    """The tax inside GST-inclusive amounts at `rate` per cent, each rounded half up (away from zero) to
    the cent: round_half_up(amount × rate / (100 + rate)), the figure Xero computes for a line of
    LineAmountTypes Inclusive. Integers only (int64, or Python integers where int64 could overflow)."""
    numerator, denominator = rate_ratio(rate)
    amount = np.asarray(amount_cents, dtype=np.int64)
    if numerator == 0:
        return np.zeros(amount.shape, dtype=np.int64)
    whole = 100 * denominator + numerator  # amount × n/d / (100 + n/d) = amount × n / (100·d + n)
    if amount.size and int(np.abs(amount).max()) > (_INT64_MAX - whole) // (2 * numerator):
        exact = [
            (1 if value >= 0 else -1) * ((2 * numerator * abs(value) + whole) // (2 * whole))
            for value in amount.tolist()
        ]
        return np.array(exact, dtype=np.int64)
    magnitude = (2 * numerator * np.abs(amount) + whole) // (2 * whole)
    return np.where(amount < 0, -magnitude, magnitude)


def amounts_for_tax(tax_cents: np.ndarray, rate: Any) -> np.ndarray:
    """For each tax figure d (cents), a GST-inclusive amount a whose own tax at `rate` is exactly d:
    inclusive_tax_cents(a, rate) == d. a = round_half_up(d × (100 + rate) / rate) always is one for a
    rate below 100 % (its tax is within half a cent × rate / (100 + rate) of d); the neighbours are
    searched should it not be."""
    numerator, denominator = rate_ratio(rate)
    tax = np.asarray(tax_cents, dtype=np.int64)
    if numerator == 0:
        if np.any(tax != 0):
            raise ValueError("no amount carries tax at a zero rate")
        return np.zeros(tax.shape, dtype=np.int64)
    whole = 100 * denominator + numerator
    magnitude = (2 * whole * np.abs(tax) + numerator) // (2 * numerator)
    amount = np.where(tax < 0, -magnitude, magnitude)
    wrong = inclusive_tax_cents(amount, rate) != tax
    for offset in (1, -1, 2, -2, 3, -3):
        if not wrong.any():
            break
        trial = amount + offset
        hit = wrong & (inclusive_tax_cents(trial, rate) == tax)
        amount = np.where(hit, trial, amount)
        wrong &= ~hit
    if wrong.any():
        raise ValueError(f"no GST-inclusive amount carries exactly the tax {tax[wrong][:5].tolist()} at {rate} %")
    return amount


def tax_cents_by_code(amount_cents: np.ndarray, gst_codes: np.ndarray, rates: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Each amount's tax at the rate of its gst_code (inclusive_tax_cents), and whether the code has a
    rate in `rates` (a line whose code has none gets 0). Judged once per distinct rate."""
    tax, known, _ = _tax_by_code(amount_cents, gst_codes, rates)
    return tax, known


def exclusive_tax_cents(amount_cents: int, rate: Any) -> int:
    """The tax Xero computes on a GST-exclusive line amount at `rate` per cent: round_half_up(amount ×
    rate / 100), half away from zero (so the tax of −a is −(tax of a)). Integers only."""
    numerator, denominator = rate_ratio(rate)
    amount = int(amount_cents)
    if numerator == 0:
        return 0
    whole = 100 * denominator  # amount × (n/d) / 100 = amount × n / (100·d)
    magnitude = (2 * numerator * abs(amount) + whole) // (2 * whole)
    return magnitude if amount >= 0 else -magnitude


def amount_for_exclusive_tax(tax_cents: int, rate: Any) -> int:
    """A GST-exclusive amount whose own tax at `rate` is exactly tax_cents (exclusive_tax_cents(a) == d):
    a = round(d × 100 / rate), or a neighbour (one always is for a rate up to 100 %: a cent of amount
    moves the tax by at most a cent)."""
    numerator, denominator = rate_ratio(rate)
    tax = int(tax_cents)
    if numerator == 0:
        if tax:
            raise ValueError("no amount carries tax at a zero rate")
        return 0
    whole = 100 * denominator
    magnitude = (2 * whole * abs(tax) + numerator) // (2 * numerator)
    amount = magnitude if tax >= 0 else -magnitude
    for offset in (0, 1, -1, 2, -2, 3, -3):
        if exclusive_tax_cents(amount + offset, rate) == tax:
            return amount + offset
    raise ValueError(f"no GST-exclusive amount carries exactly the tax {tax} at {rate} %")


def xero_tax_cents(amount_cents: np.ndarray, gst_codes: np.ndarray, rates: Mapping[str, Any], where: str) -> np.ndarray:
    """Xero's own tax of each GST-inclusive line amount at the rate of its gst_code; a code with no rate
    is the settings' error (`where` names them), never a silent 0."""
    tax, known = tax_cents_by_code(amount_cents, gst_codes, rates)
    if not known.all():
        missing = sorted({str(code) for code in np.asarray(gst_codes, dtype=object)[~known].tolist()})
        raise ValueError(f"gst_code(s) {missing} have no GST rate ({where})")
    return tax


def _tax_by_code(amount_cents, gst_codes, rates: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tax_cents_by_code, and which lines' codes have a non-zero rate."""
    amount = np.asarray(amount_cents, dtype=np.int64)
    codes, uniques = pd.factorize(np.asarray(gst_codes, dtype=object), use_na_sentinel=True)
    ratios = [rate_ratio(rates[code]) if code in rates else None for code in uniques.tolist()]
    known = np.array([ratio is not None for ratio in ratios] + [False], dtype=bool)[codes]
    rated = np.array([ratio is not None and ratio[0] != 0 for ratio in ratios] + [False], dtype=bool)[codes]
    by_rate: dict[tuple[int, int], list[int]] = {}
    for number, ratio in enumerate(ratios):
        if ratio is not None and ratio[0] != 0:
            by_rate.setdefault(ratio, []).append(number)
    if len(by_rate) == 1 and len(next(iter(by_rate.values()))) == len(uniques) and known.all():
        (numerator, denominator), = by_rate
        return inclusive_tax_cents(amount, Decimal(numerator) / Decimal(denominator)), known, rated  # one rate
    tax = np.zeros(amount.shape, dtype=np.int64)
    for (numerator, denominator), numbers in by_rate.items():
        rows = np.flatnonzero(np.isin(codes, numbers))
        tax[rows] = inclusive_tax_cents(amount[rows], Decimal(numerator) / Decimal(denominator))
    return tax, known, rated


def gst_inclusive(total_cents: pd.Series, rate_percent: Any = 15) -> pd.Series:
    """The GST inside a GST-inclusive amount, half-up to the cent: total × rate / (100 + rate)."""
    totals = total_cents.astype("Int64")
    present = totals.notna().to_numpy(dtype=bool)
    values = totals.fillna(0).to_numpy(dtype=np.int64)
    result = pd.Series(inclusive_tax_cents(values, rate_percent), index=totals.index, dtype="Int64")
    if not present.all():
        result[~present] = pd.NA
    return result


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


def gst_matches_gst_code(
    frame: pd.DataFrame, tolerance_cents: int = DEFAULT_GST_TOLERANCE_CENTS, rates: Mapping[str, Any] | None = None
) -> pd.Series:
    """A line's GST fits its gst_code: at a code's non-zero rate, within `tolerance_cents` of the GST
    inside the line total (CI may compute GST per unit: a few cents either way is rounding, more is a
    wrong GST code or amount); at a zero rate, none. A code without a rate fails."""
    rates = NZ_GST_RATES if rates is None else rates
    totals = frame["line_total_incl_cents"].astype("Int64")
    gst = frame["line_gst_cents"].astype("Int64")
    present = (totals.notna() & gst.notna()).to_numpy(dtype=bool)
    total_values = totals.fillna(0).to_numpy(dtype=np.int64)
    gst_values = gst.fillna(0).to_numpy(dtype=np.int64)
    expected, known, rated = _tax_by_code(total_values, frame["gst_code"].to_numpy(), rates)
    fits = np.where(rated, np.abs(gst_values - expected) <= tolerance_cents, gst_values == 0)
    return pd.Series(fits & known & present, index=frame.index)


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


def _lines_model(gst_check: Callable[[pd.DataFrame], pd.Series]) -> type[pa.DataFrameModel]:
    """The model of ci_sales_invoice_lines with the given GST check. Made afresh for each site's GST
    rules rather than subclassed: pandera renames inherited frame checks in a subclass."""

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
            return gst_check(frame)

        class Config:
            strict = False
            unique = ["invoice_no", "line_no"]

    _ROW_WISE_OF[CISalesInvoiceLines] = {**ROW_WISE_CHECKS, "gst_matches_gst_code": gst_check}
    return CISalesInvoiceLines


def gst_check_for(tolerance_cents: int, rates: Mapping[str, Any]) -> Callable[[pd.DataFrame], pd.Series]:
    """gst_matches_gst_code with a site's tolerance and rates."""

    def gst_matches_gst_code_of_site(frame: pd.DataFrame) -> pd.Series:
        return gst_matches_gst_code(frame, tolerance_cents, rates)

    return gst_matches_gst_code_of_site


_ROW_WISE_OF: dict[type, dict[str, Callable[[pd.DataFrame], pd.Series]]] = {}


def row_wise_checks_of(model: type[pa.DataFrameModel]) -> dict[str, Callable[[pd.DataFrame], pd.Series]]:
    """The row-wise functions behind a CI model's frame-level checks (by check name)."""
    return _ROW_WISE_OF.get(model, ROW_WISE_CHECKS)


# the contract's lines with the default GST rules (NZ rates, EretailerRules' default tolerance)
CISalesInvoiceLines = _lines_model(gst_matches_gst_code)


def ci_lines_model(tolerance_cents: int = DEFAULT_GST_TOLERANCE_CENTS, rates: Mapping[str, Any] | None = None) -> type[pa.DataFrameModel]:
    """The lines model with a site's GST tolerance and rates (EretailerRules.gst_tolerance_cents,
    .gst_rates) in its gst_matches_gst_code check: CISalesInvoiceLines itself for the defaults."""
    rates = NZ_GST_RATES if rates is None else rates
    key = tuple(sorted((str(code), Decimal(numerator) / Decimal(denominator))
                       for code, (numerator, denominator) in ((code, rate_ratio(rate)) for code, rate in rates.items())))
    return _ci_lines_model(int(tolerance_cents), key)


@lru_cache(maxsize=32)
def _ci_lines_model(tolerance_cents: int, rates: tuple[tuple[str, Decimal], ...]) -> type[pa.DataFrameModel]:
    default = tuple(sorted((code, Decimal(rate)) for code, rate in NZ_GST_RATES.items()))
    if tolerance_cents == DEFAULT_GST_TOLERANCE_CENTS and rates == default:
        return CISalesInvoiceLines
    return _lines_model(gst_check_for(tolerance_cents, dict(rates)))


class XeroDocuments(pa.DataFrameModel):
    """xero_eretailer_documents: one row per Xero document, totals as Xero must hold them."""

    document_key: Series[str] = pa.Field(unique=True, nullable=False)
    business_date: Series[str] = pa.Field(str_matches=ISO_DAY)
    branch_code: Series[str] = pa.Field(nullable=True)
    endpoint: Series[str] = pa.Field(isin=["Invoices", "CreditNotes", "Bills", "BillCredits", "ManualJournals"])
    # (a journal has no Type in Xero: its frame row says MANUALJOURNAL)
    document_type: Series[str] = pa.Field(isin=["ACCREC", "ACCRECCREDIT", "ACCPAY", "ACCPAYCREDIT", "MANUALJOURNAL"])
    # the document's identity (xero.kinds): a sales number, a CI receipt, a journal's Narration
    number: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    status: Series[str] = pa.Field(isin=["DRAFT", "SUBMITTED", "AUTHORISED", "POSTED"])
    total_cents: Series[int] = pa.Field(ge=0)
    tax_cents: Series[int]
    line_count: Series[int] = pa.Field(ge=1)

    @pa.dataframe_check(name="number_unique_per_endpoint")
    def _unique_numbers(cls, frame: pd.DataFrame) -> pd.Series:
        return ~frame.duplicated(["endpoint", "number"], keep=False)

    class Config:
        strict = False

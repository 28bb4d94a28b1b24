"""E-Retailer invoices as Xero documents, in Summary or Detail mode.

Every line carries CI's own GST-inclusive amount (`LineAmount`) and CI's own GST (`TaxAmount`), so
the totals and GST that Xero holds are CI's to the cent whatever rounding Xero would have done.
Summary: one ACCREC invoice per day (or per branch and day), lines grouped by Xero account × tax type ×
branch option; a day whose credits outweigh its sales becomes a credit note. Detail: one document per
CI document, CI's number as Xero's; CI credits become ACCRECCREDIT credit notes.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from .rules import EretailerRules

DOCUMENT_COLUMNS = [
    "document_key", "business_date", "branch_code", "endpoint", "document_type", "number", "reference",
    "contact_name", "status", "total_cents", "tax_cents", "line_count", "ci_invoice_nos", "payload",
]
DESCRIPTION_LIMIT = 4000  # Xero's limit on a line description
NAME_LIMIT = 255  # contact names, references and numbers

GST_LABELS = {"S": "GST 15%", "Z": "zero-rated", "E": "exempt"}


class _Decimals:
    """Decimal objects shared between equal amounts: a million lines repeat few distinct values."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], Decimal] = {}

    def __call__(self, value: int, places: int = 2) -> Decimal:
        key = (value, places)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = Decimal(value).scaleb(-places)
        return found


def _due_date(day: str, rules: EretailerRules) -> str:
    return (date.fromisoformat(day) + timedelta(days=rules.due_days)).isoformat()


def _branch_options(invoices: pd.DataFrame, rules: EretailerRules) -> pd.Series:
    """Each document's tracking option: the site's mapping, else the branch's name in CI."""
    mapped = invoices["branch_code"].map(dict(rules.tracking_options))
    return mapped.fillna(invoices["branch_name"]).astype(str).str.slice(0, 50)


def _empty_documents() -> pd.DataFrame:
    frame = pd.DataFrame({column: pd.Series(dtype=object) for column in DOCUMENT_COLUMNS})
    for column in ("total_cents", "tax_cents", "line_count"):
        frame[column] = frame[column].astype("int64")
    return frame


def build_eretailer_documents(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules) -> pd.DataFrame:
    """The Xero documents for validated FINAL E-Retailer documents, one row each (DOCUMENT_COLUMNS)."""
    if invoices.empty:
        return _empty_documents()
    if rules.mode == "summary":
        documents = _summary_documents(invoices, lines, rules)
    else:
        documents = _detail_documents(invoices, lines, rules)
    return documents.sort_values(["business_date", "document_key"]).reset_index(drop=True)[DOCUMENT_COLUMNS]


# -- Summary mode ------------------------------------------------------------------------------

def _summary_documents(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules) -> pd.DataFrame:
    by_branch = rules.summary_grouping == "branch_day"
    documents_of = invoices.assign(option=_branch_options(invoices, rules))
    lines = lines[["invoice_no", "analysis_code", "gst_code", "line_total_incl_cents", "line_gst_cents"]].merge(
        documents_of[["invoice_no", "business_date", "branch_code", "option"]], on="invoice_no", how="inner"
    )
    lines["account_code"] = lines["analysis_code"].map(dict(rules.sales_accounts))
    lines["tax_type"] = lines["gst_code"].map(dict(rules.tax_types))
    document_keys = ["business_date", "branch_code"] if by_branch else ["business_date"]
    line_keys = ["account_code", "tax_type", "option", "gst_code"]
    grouped = (
        lines.groupby(document_keys + line_keys, sort=True, dropna=False)
        .agg(
            amount=("line_total_incl_cents", "sum"),
            tax=("line_gst_cents", "sum"),
            codes=("analysis_code", lambda codes: ", ".join(sorted(set(codes)))),
        )
        .reset_index()
    )
    ci_numbers = documents_of.groupby(document_keys, sort=True).agg(
        ci_invoice_nos=("invoice_no", lambda numbers: tuple(sorted(numbers))),
        invoices=("doc_type", lambda types: int((types == "INVOICE").sum())),
        credits=("doc_type", lambda types: int((types == "CREDIT").sum())),
    )
    number = _Decimals()
    rows = []
    for keys, group in grouped.groupby(document_keys, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        day = keys[0]
        branch = keys[1] if by_branch else None
        info = ci_numbers.loc[keys if by_branch else day]
        total, tax = int(group["amount"].sum()), int(group["tax"].sum())
        sign = -1 if total < 0 else 1  # credits outweigh sales: a credit note for the net amount
        compact_day = day.replace("-", "")
        document_number = f"{rules.number_prefix}{compact_day}" + (f"-{branch}" if branch else "")
        items = []
        for line in group.itertuples(index=False):
            amount, line_tax = sign * int(line.amount), sign * int(line.tax)
            if amount == 0 and line_tax == 0:
                continue
            items.append(
                {
                    "Description": f"E-Retailer sales {day}: {line.codes} ({GST_LABELS.get(line.gst_code, line.gst_code)}), {line.option}",
                    "Quantity": number(1, 0),
                    "UnitAmount": number(amount),
                    "LineAmount": number(amount),
                    "TaxAmount": number(line_tax),
                    "AccountCode": line.account_code,
                    "TaxType": line.tax_type,
                    "Tracking": [{"Name": rules.tracking_category, "Option": line.option}],
                }
            )
        reference = f"CI E-Retailer {day}: {info.invoices} invoices, {info.credits} credits"
        if branch:
            reference += f", branch {branch}"
        endpoint = "CreditNotes" if sign < 0 else "Invoices"
        payload: dict[str, Any] = {
            "Type": "ACCRECCREDIT" if sign < 0 else "ACCREC",
            ("CreditNoteNumber" if sign < 0 else "InvoiceNumber"): document_number,
            "Reference": reference,
            "Contact": {"Name": rules.summary_contact_name},
            "Date": day,
            "Status": rules.status,
            "LineAmountTypes": "Inclusive",
            "CurrencyCode": rules.currency_code,
            "LineItems": items,
        }
        if sign > 0:
            payload["DueDate"] = _due_date(day, rules)
        rows.append(
            {
                "document_key": f"eretailer/summary/{day}" + (f"/{branch}" if branch else ""),
                "business_date": day,
                "branch_code": branch,
                "endpoint": endpoint,
                "document_type": payload["Type"],
                "number": document_number,
                "reference": reference,
                "contact_name": rules.summary_contact_name,
                "status": rules.status,
                "total_cents": sign * total,
                "tax_cents": sign * tax,
                "line_count": len(items),
                "ci_invoice_nos": info.ci_invoice_nos,
                "payload": payload,
            }
        )
    return pd.DataFrame(rows, columns=DOCUMENT_COLUMNS)


# -- Detail mode -------------------------------------------------------------------------------

def _contact(row: Any, rules: EretailerRules) -> dict[str, str]:
    """The web customer as a Xero contact (found by ContactNumber or name, else created), or the
    site's default contact."""
    name = row.customer_name if isinstance(row.customer_name, str) and row.customer_name.strip() else None
    if rules.contact_strategy == "default" or name is None:
        return {"Name": rules.default_contact_name}
    code = row.customer_code if isinstance(row.customer_code, str) else ""
    email = row.customer_email if isinstance(row.customer_email, str) else ""
    shown = rules.contact_name_format.format(customer_name=name.strip(), customer_code=code, customer_email=email)
    contact = {"Name": shown.replace(" []", "").strip()[:NAME_LIMIT]}
    if code:
        contact["ContactNumber"] = code[:50]
    if email:
        contact["EmailAddress"] = email
    return contact


def _cents_of(units_1e7: int) -> int:
    """10⁻⁷ units (quantity × unit price) to cents, half away from zero as CI rounds."""
    magnitude = (abs(units_1e7) + 50_000) // 100_000
    return magnitude if units_1e7 >= 0 else -magnitude


def _credit_pricing(quantity: int, price: int, discount: int, amount: int) -> tuple[int, int, int]:
    """Quantity (10⁻³) and unit amount (10⁻⁴) for a credit-note line of `amount` cents. Xero takes no
    discount on credit notes: CI's own price when there was none, else a price derived from the
    amount if it adds up exactly, else one unit of the whole amount."""
    units = -quantity
    if discount == 0:
        return units, price, amount
    if units:
        derived = int((Decimal(amount) * 100_000 / units).to_integral_value())  # 10⁻⁴
        if _cents_of(units * derived) == amount:
            return units, derived, amount
    return 1000, amount * 100, amount


def _detail_documents(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules) -> pd.DataFrame:
    invoices = invoices.assign(option=_branch_options(invoices, rules)).reset_index(drop=True)
    sign_of = dict(zip(invoices["invoice_no"], (invoices["doc_type"] == "CREDIT").map({True: -1, False: 1})))
    option_of = dict(zip(invoices["invoice_no"], invoices["option"]))
    accounts, tax_types = dict(rules.sales_accounts), dict(rules.tax_types)
    number = _Decimals()
    tracking_of: dict[str, list[dict[str, str]]] = {}

    items_of: dict[str, list[dict[str, Any]]] = {no: [] for no in invoices["invoice_no"]}
    columns = [
        lines[name].tolist()
        for name in (
            "invoice_no", "description", "sku", "analysis_code", "gst_code", "quantity_x1000",
            "unit_price_incl_x10000", "discount_incl_cents", "line_total_incl_cents", "line_gst_cents",
        )
    ]
    for invoice_no, description, sku, analysis, gst, quantity, price, discount, amount, tax in zip(*columns):
        sign = sign_of[invoice_no]
        option = option_of[invoice_no]
        tracking = tracking_of.get(option)
        if tracking is None:
            tracking = tracking_of[option] = [{"Name": rules.tracking_category, "Option": option}]
        text = description if isinstance(description, str) and description.strip() else (sku if isinstance(sku, str) else analysis)
        item: dict[str, Any] = {"Description": text[:DESCRIPTION_LIMIT]}
        if sign > 0:
            item["Quantity"] = number(quantity, 3)
            item["UnitAmount"] = number(price, 4)
            if discount:
                item["DiscountAmount"] = number(discount)
            item["LineAmount"] = number(amount)
            item["TaxAmount"] = number(tax)
        else:
            units, unit_price, line_amount = _credit_pricing(quantity, price, discount, -amount)
            item["Quantity"] = number(units, 3)
            item["UnitAmount"] = number(unit_price, 4)
            item["LineAmount"] = number(line_amount)
            item["TaxAmount"] = number(-tax)
        item["AccountCode"] = accounts[analysis]
        item["TaxType"] = tax_types[gst]
        item["Tracking"] = tracking
        items_of[invoice_no].append(item)

    rows = []
    for row in invoices.itertuples(index=False):
        credit = row.doc_type == "CREDIT"
        sign = -1 if credit else 1
        contact = _contact(row, rules)
        reference = row.order_ref if isinstance(row.order_ref, str) else ""
        if credit and isinstance(row.original_invoice_no, str):
            reference = f"{reference} credit for {row.original_invoice_no}".strip()
        payload: dict[str, Any] = {
            "Type": "ACCRECCREDIT" if credit else "ACCREC",
            ("CreditNoteNumber" if credit else "InvoiceNumber"): row.invoice_no,
            "Reference": reference[:NAME_LIMIT],
            "Contact": contact,
            "Date": row.business_date,
            "Status": rules.status,
            "LineAmountTypes": "Inclusive",
            "CurrencyCode": rules.currency_code,
            "LineItems": items_of[row.invoice_no],
        }
        if not credit:
            payload["DueDate"] = _due_date(row.business_date, rules)
        rows.append(
            {
                "document_key": f"eretailer/detail/{row.invoice_no}",
                "business_date": row.business_date,
                "branch_code": row.branch_code,
                "endpoint": "CreditNotes" if credit else "Invoices",
                "document_type": payload["Type"],
                "number": row.invoice_no,
                "reference": payload["Reference"],
                "contact_name": contact["Name"],
                "status": rules.status,
                "total_cents": sign * int(row.total_incl_cents),
                "tax_cents": sign * int(row.total_gst_cents),
                "line_count": len(payload["LineItems"]),
                "ci_invoice_nos": (row.invoice_no,),
                "payload": payload,
            }
        )
    return pd.DataFrame(rows, columns=DOCUMENT_COLUMNS)


# -- totals for the reconciliation checks ------------------------------------------------------

def document_totals_by_day(documents: pd.DataFrame) -> pd.DataFrame:
    """Σ total and Σ GST per day of the Xero documents, credit notes subtracting."""
    if documents.empty:
        return pd.DataFrame({"business_date": pd.Series(dtype=object), "total_cents": pd.Series(dtype="int64"), "tax_cents": pd.Series(dtype="int64")})
    sign = documents["endpoint"].map({"Invoices": 1, "CreditNotes": -1}).astype("int64")
    signed = pd.DataFrame(
        {
            "business_date": documents["business_date"],
            "total_cents": documents["total_cents"].astype("int64") * sign,
            "tax_cents": documents["tax_cents"].astype("int64") * sign,
        }
    )
    return signed.groupby("business_date", as_index=False, sort=True).sum()


def ci_totals_by_day(invoices: pd.DataFrame) -> pd.DataFrame:
    """Σ total_incl and Σ total_gst per day of CI documents (credits are negative in CI)."""
    totals = pd.DataFrame(
        {
            "business_date": invoices["business_date"],
            "total_cents": invoices["total_incl_cents"].astype("int64"),
            "tax_cents": invoices["total_gst_cents"].astype("int64"),
        }
    )
    if totals.empty:
        return totals
    return totals.groupby("business_date", as_index=False, sort=True).sum()

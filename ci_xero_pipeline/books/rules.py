"""The site's rules for turning CI E-Retailer documents into Xero documents, as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Mapping

NZ_TAX_TYPES = {"S": "OUTPUT2", "Z": "ZERORATED", "E": "NONE"}
# GST rate (per cent) behind each CI gst_code, i.e. the rate of the Xero tax type it maps to: used to
# check CI's own GST and to compute each Xero line's tax as Xero does.
NZ_GST_RATES = {"S": Decimal(15), "Z": Decimal(0), "E": Decimal(0)}


@dataclass(frozen=True)
class EretailerRules:
    mode: Literal["summary", "detail"] = "summary"
    summary_grouping: Literal["day", "branch_day"] = "day"
    status: Literal["DRAFT", "AUTHORISED"] = "DRAFT"
    sales_accounts: Mapping[str, str] = field(default_factory=dict)  # analysis_code -> Xero account code
    tax_types: Mapping[str, str] = field(default_factory=lambda: dict(NZ_TAX_TYPES))  # gst_code -> TaxType
    gst_rates: Mapping[str, Decimal] = field(default_factory=lambda: dict(NZ_GST_RATES))
    tracking_category: str = "CI Branches"
    tracking_options: Mapping[str, str] = field(default_factory=dict)  # branch_code -> option (default: branch_name)
    number_prefix: str = "ER-"
    summary_contact_name: str = "E-Retailer Sales"
    contact_strategy: Literal["customer", "default"] = "customer"
    default_contact_name: str = "E-Retailer Customer"
    contact_name_format: str = "{customer_name} [{customer_code}]"
    due_days: int = 0
    currency_code: str = "NZD"
    # CI may compute GST per unit and multiply, so a line's GST can be a few cents from the GST inside
    # its total. Up to this many cents it is CI's rounding (the documents carry the difference on GST
    # adjustment lines, never in a line's TaxAmount); beyond, a line's GST is a data problem.
    gst_tolerance_cents: int = 2

    @property
    def exempt_tax_type(self) -> str:
        """The tax type of CI's exempt code E (NONE by default): the no-GST side of a GST adjustment."""
        return self.tax_types.get("E", "NONE")

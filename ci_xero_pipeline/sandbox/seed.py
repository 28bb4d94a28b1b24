"""What a new sandbox organisation starts with: a realistic New Zealand chart of accounts and GST rates."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class SeedAccount:
    code: str
    name: str
    type: str  # Xero's AccountType
    account_class: str  # ASSET, EQUITY, EXPENSE, LIABILITY, REVENUE
    tax_type: str
    status: str = "ACTIVE"
    system_account: str = ""
    description: str = ""
    bank_account_number: str = ""


@dataclass(frozen=True)
class SeedTaxRate:
    tax_type: str
    name: str
    rate: Decimal  # per cent
    report_tax_type: str
    applies_to: frozenset[str]  # account classes: ASSET, EQUITY, EXPENSE, LIABILITY, REVENUE
    status: str = "ACTIVE"


_ALL = frozenset({"ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE"})

NZ_TAX_RATES: tuple[SeedTaxRate, ...] = (
    SeedTaxRate("OUTPUT2", "15% GST on Income", Decimal("15.0000"), "OUTPUT", frozenset({"ASSET", "EQUITY", "LIABILITY", "REVENUE"})),
    SeedTaxRate("INPUT2", "15% GST on Expenses", Decimal("15.0000"), "INPUT", frozenset({"ASSET", "EQUITY", "EXPENSE", "LIABILITY"})),
    SeedTaxRate("ZERORATED", "Zero Rated", Decimal("0.0000"), "NONE", _ALL),
    SeedTaxRate("NONE", "No GST", Decimal("0.0000"), "NONE", _ALL),
    SeedTaxRate("GSTONIMPORTS", "GST on Imports", Decimal("0.0000"), "GSTONIMPORTS", frozenset({"ASSET", "EXPENSE", "LIABILITY"})),
    # the 12.5 % rate NZ used before October 2010: kept, archived, as in long-lived Xero organisations
    SeedTaxRate("OUTPUT", "GST on Income (12.5%)", Decimal("12.5000"), "OUTPUT", frozenset({"ASSET", "EQUITY", "LIABILITY", "REVENUE"}), status="ARCHIVED"),
)

NZ_ACCOUNTS: tuple[SeedAccount, ...] = (
    SeedAccount("090", "Business Bank Account", "BANK", "ASSET", "NONE", bank_account_number="0212340123456700"),
    SeedAccount("091", "Business Savings Account", "BANK", "ASSET", "NONE", bank_account_number="0212340123456701"),
    SeedAccount("200", "Sales", "REVENUE", "REVENUE", "OUTPUT2", description="Income from any normal business activity"),
    SeedAccount("201", "Apparel sales", "REVENUE", "REVENUE", "OUTPUT2"),
    SeedAccount("202", "Footwear sales", "REVENUE", "REVENUE", "OUTPUT2"),
    SeedAccount("203", "Accessories sales", "REVENUE", "REVENUE", "OUTPUT2"),
    SeedAccount("204", "Gift sales", "REVENUE", "REVENUE", "OUTPUT2"),
    SeedAccount("205", "Freight income", "REVENUE", "REVENUE", "OUTPUT2"),
    SeedAccount("209", "Sales - old range", "REVENUE", "REVENUE", "OUTPUT2", status="ARCHIVED"),
    SeedAccount("260", "Other Revenue", "REVENUE", "REVENUE", "OUTPUT2"),
    SeedAccount("270", "Interest Income", "REVENUE", "REVENUE", "NONE"),
    SeedAccount("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "INPUT2"),
    SeedAccount("400", "Advertising", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("404", "Bank Fees", "OVERHEADS", "EXPENSE", "NONE"),
    SeedAccount("408", "Cleaning", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("412", "Consulting & Accounting", "EXPENSE", "EXPENSE", "INPUT2"),
    SeedAccount("429", "General Expenses", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("469", "Rent", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("477", "Wages and Salaries", "EXPENSE", "EXPENSE", "NONE"),
    SeedAccount("610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", system_account="DEBTORS"),
    SeedAccount("620", "Prepayments", "CURRENT", "ASSET", "NONE"),
    SeedAccount("630", "Inventory", "INVENTORY", "ASSET", "NONE"),
    SeedAccount("710", "Office Equipment", "FIXED", "ASSET", "INPUT2"),
    SeedAccount("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", system_account="CREDITORS"),
    SeedAccount("820", "GST", "CURRLIAB", "LIABILITY", "NONE", system_account="GST"),
    SeedAccount("835", "Gift voucher liability", "CURRLIAB", "LIABILITY", "NONE",
                description="Gift vouchers sold and not yet redeemed"),
    SeedAccount("840", "Historical Adjustment", "CURRLIAB", "LIABILITY", "NONE", system_account="HISTORICAL"),
    SeedAccount("860", "Rounding", "CURRLIAB", "LIABILITY", "NONE", system_account="ROUNDING"),
    SeedAccount("877", "Tracking Transfers", "CURRLIAB", "LIABILITY", "NONE", system_account="TRACKINGTRANSFERS"),
    SeedAccount("880", "Owner A Drawings", "EQUITY", "EQUITY", "NONE"),
    SeedAccount("960", "Retained Earnings", "EQUITY", "EQUITY", "NONE", system_account="RETAINEDEARNINGS"),
    SeedAccount("970", "Owner A Funds Introduced", "EQUITY", "EQUITY", "NONE"),
)

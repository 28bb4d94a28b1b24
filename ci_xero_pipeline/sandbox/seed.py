"""What a new sandbox organisation starts with: a realistic New Zealand chart of accounts and GST rates.

Payments go only to a BANK account or to one with `EnablePaymentsToAccount` (xero-facts.md, Payments;
the spec's Account.EnablePaymentsToAccount). The chart holds the two bank accounts of Xero's NZ demo
chart (090, 091), tender clearing accounts 611-617 (CURRENT assets with payments enabled, as
point-of-sale integrations use them; processes.md, end-of-day takings) and the gift voucher liability
835 with payments enabled (a GIFT_VOUCHER tender is a payment to it, processes.md section 5), and the
takings' own expense accounts, 481 Till over/short and 482 Cash rounding (tax type NONE: neither is a
supply, processes.md section 1). 620 Prepayments is a CURRENT asset without payments: a payment to it is
refused. For purchases and cost of goods sold (processes.md sections 3 and 4): 300 Purchases (DIRECTCOSTS,
INPUT2) takes bills when stock is not kept perpetually, 310 Cost of Goods Sold takes the journals' debits, and
631 Stock on hand (CI) is the CURRENT asset that perpetual bills debit and the journals credit. 630 Inventory
keeps Xero's INVENTORY type, which Xero reserves for its own tracked items (xero-facts.md, Accounts): the
sandbox refuses it on manual journals, so a site mapped to it finds out before real Xero tells it.
"""

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
    enable_payments: bool = False  # Xero's EnablePaymentsToAccount


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
    SeedAccount("300", "Purchases", "DIRECTCOSTS", "EXPENSE", "INPUT2",
                description="Goods bought for resale, when stock is not kept perpetually"),
    SeedAccount("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "INPUT2"),
    SeedAccount("400", "Advertising", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("404", "Bank Fees", "OVERHEADS", "EXPENSE", "NONE"),
    SeedAccount("408", "Cleaning", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("412", "Consulting & Accounting", "EXPENSE", "EXPENSE", "INPUT2"),
    SeedAccount("429", "General Expenses", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("469", "Rent", "OVERHEADS", "EXPENSE", "INPUT2"),
    SeedAccount("477", "Wages and Salaries", "EXPENSE", "EXPENSE", "NONE"),
    SeedAccount("481", "Till over/short", "OVERHEADS", "EXPENSE", "NONE",
                description="Cash counted at the tills less cash expected"),
    SeedAccount("482", "Cash rounding", "OVERHEADS", "EXPENSE", "NONE",
                description="Cash sales rounded to 10 cents"),
    SeedAccount("610", "Accounts Receivable", "CURRENT", "ASSET", "NONE", system_account="DEBTORS"),
    SeedAccount("611", "Cash clearing", "CURRENT", "ASSET", "NONE", enable_payments=True,
                description="Till cash counted, until banked"),
    SeedAccount("612", "EFTPOS clearing", "CURRENT", "ASSET", "NONE", enable_payments=True),
    SeedAccount("613", "Credit card clearing", "CURRENT", "ASSET", "NONE", enable_payments=True,
                description="Visa and Mastercard settlements"),
    SeedAccount("614", "Amex clearing", "CURRENT", "ASSET", "NONE", enable_payments=True),
    SeedAccount("615", "Online payments clearing", "CURRENT", "ASSET", "NONE", enable_payments=True),
    SeedAccount("616", "PayPal clearing", "CURRENT", "ASSET", "NONE", enable_payments=True),
    SeedAccount("617", "Afterpay clearing", "CURRENT", "ASSET", "NONE", enable_payments=True),
    SeedAccount("620", "Prepayments", "CURRENT", "ASSET", "NONE"),
    SeedAccount("630", "Inventory", "INVENTORY", "ASSET", "NONE"),  # Xero's tracked items only (xero-facts.md)
    SeedAccount("631", "Stock on hand (CI)", "CURRENT", "ASSET", "NONE",
                description="Stock valued by CI: bills debit it, cost of goods sold journals credit it"),
    SeedAccount("710", "Office Equipment", "FIXED", "ASSET", "INPUT2"),
    SeedAccount("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "NONE", system_account="CREDITORS"),
    SeedAccount("820", "GST", "CURRLIAB", "LIABILITY", "NONE", system_account="GST"),
    SeedAccount("835", "Gift voucher liability", "CURRLIAB", "LIABILITY", "NONE", enable_payments=True,
                description="Gift vouchers sold and not yet redeemed"),
    SeedAccount("840", "Historical Adjustment", "CURRLIAB", "LIABILITY", "NONE", system_account="HISTORICAL"),
    SeedAccount("860", "Rounding", "CURRLIAB", "LIABILITY", "NONE", system_account="ROUNDING"),
    SeedAccount("877", "Tracking Transfers", "CURRLIAB", "LIABILITY", "NONE", system_account="TRACKINGTRANSFERS"),
    SeedAccount("880", "Owner A Drawings", "EQUITY", "EQUITY", "NONE"),
    SeedAccount("960", "Retained Earnings", "EQUITY", "EQUITY", "NONE", system_account="RETAINEDEARNINGS"),
    SeedAccount("970", "Owner A Funds Introduced", "EQUITY", "EQUITY", "NONE"),
)

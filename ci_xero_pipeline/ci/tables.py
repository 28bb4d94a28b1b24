"""The CI source contract as SQLAlchemy tables (docs/design/ci-source-contract.md).

A site's views may carry other names; `CINames` maps contract names to the site's names (the
`ci_names` section of site.yaml, settings.CINamesSettings). Every Column
keeps the contract name as its `.key`, so the rest of the code always says `table.c.total_incl` while
the SQL says whatever the site calls it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Boolean, Column, Date, DateTime, Index, Integer, MetaData, Numeric, String, Table, Text
from sqlalchemy.types import TypeEngine

MONEY = Numeric(14, 2)
QUANTITY = Numeric(14, 3)
UNIT_PRICE = Numeric(14, 4)
CODE = String(20)
DOCUMENT_NO = String(30)
NAME = String(100)
# the contract's TEXT: a stock description carries through to Xero, which takes 4,000 characters (a
# longer one is cut and reported), so the demo holds some longer than any VARCHAR a server would cap
DESCRIPTION = Text()

# Contract view name -> (attribute on CITables, [(column, type, primary key, nullable)]).
ColumnSpec = tuple[str, TypeEngine, bool, bool]
CONTRACT: dict[str, tuple[str, list[ColumnSpec]]] = {
    "ci_branches": (
        "branches",
        [
            ("branch_code", CODE, True, False),
            ("branch_name", NAME, False, False),
            ("active", Boolean(create_constraint=False), False, False),
        ],
    ),
    "ci_sales_invoices": (
        "sales_invoices",
        [
            ("invoice_no", DOCUMENT_NO, True, False),
            ("doc_type", CODE, False, False),
            ("source", CODE, False, False),
            ("branch_code", CODE, False, False),
            ("business_date", Date(), False, False),
            ("created_at", DateTime(), False, False),
            ("updated_at", DateTime(), False, False),
            ("status", CODE, False, False),
            ("customer_code", String(30), False, True),
            ("customer_name", NAME, False, True),
            ("customer_email", String(254), False, True),
            ("order_ref", String(40), False, True),
            ("original_invoice_no", DOCUMENT_NO, False, True),
            ("currency_code", String(3), False, False),
            ("total_incl", MONEY, False, False),
            ("total_gst", MONEY, False, False),
        ],
    ),
    "ci_sales_invoice_lines": (
        "sales_invoice_lines",
        [
            ("invoice_no", DOCUMENT_NO, True, False),
            ("line_no", Integer(), True, False),
            ("sku", String(40), False, True),
            ("description", DESCRIPTION, False, False),
            ("quantity", QUANTITY, False, False),
            ("unit_price_incl", UNIT_PRICE, False, False),
            ("discount_incl", MONEY, False, False),
            ("line_total_incl", MONEY, False, False),
            ("line_gst", MONEY, False, False),
            ("gst_code", CODE, False, False),
            ("analysis_code", CODE, False, False),
            ("unit_cost_excl", UNIT_PRICE, False, True),
        ],
    ),
    "ci_sales_tenders": (
        "sales_tenders",
        [
            ("invoice_no", DOCUMENT_NO, True, False),
            ("tender_no", Integer(), True, False),
            ("tender_type", CODE, False, False),
            ("amount", MONEY, False, False),
            ("paid_at", DateTime(), False, False),
        ],
    ),
    "ci_cash_ups": (
        "cash_ups",
        [
            ("branch_code", CODE, True, False),
            ("business_date", Date(), True, False),
            ("tender_type", CODE, True, False),
            ("expected_amount", MONEY, False, False),
            ("counted_amount", MONEY, False, False),
        ],
    ),
    "ci_goods_received": (
        "goods_received",
        [
            ("receipt_no", DOCUMENT_NO, True, False),
            ("supplier_code", CODE, False, False),
            ("supplier_name", NAME, False, False),
            ("branch_code", CODE, False, False),
            ("received_date", Date(), False, False),
            ("supplier_invoice_no", String(40), False, True),
            ("status", CODE, False, False),
            ("updated_at", DateTime(), False, False),
            ("currency_code", String(3), False, False),
            ("total_excl", MONEY, False, False),
            ("total_gst", MONEY, False, False),
        ],
    ),
    "ci_goods_received_lines": (
        "goods_received_lines",
        [
            ("receipt_no", DOCUMENT_NO, True, False),
            ("line_no", Integer(), True, False),
            ("sku", String(40), False, True),
            ("description", DESCRIPTION, False, False),
            ("quantity", QUANTITY, False, False),
            ("unit_cost_excl", UNIT_PRICE, False, False),
            ("line_total_excl", MONEY, False, False),
            ("line_gst", MONEY, False, False),
            ("gst_code", CODE, False, False),
            ("analysis_code", CODE, False, False),
        ],
    ),
}

# Indexes the demo database creates (a site's DBA may want the same on the underlying CI tables).
DATE_INDEXES: dict[str, list[tuple[str, ...]]] = {
    "ci_sales_invoices": [("source", "business_date"), ("business_date",), ("updated_at",)],
    "ci_cash_ups": [("business_date",)],
    "ci_goods_received": [("received_date",), ("updated_at",)],
}


@dataclass(frozen=True)
class CINames:
    """How a site names the contract's views and columns; anything not listed keeps its contract name.

    views: contract view name -> site view name, e.g. {"ci_sales_invoices": "v_ci_invoices"}
    columns: contract view name -> {contract column -> site column}
    """

    views: dict[str, str] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown_views = (set(self.views) | set(self.columns)) - set(CONTRACT)
        if unknown_views:
            raise ValueError(f"not views of the CI contract: {sorted(unknown_views)}; known: {sorted(CONTRACT)}")
        blank = [view for view, name in self.views.items() if not isinstance(name, str) or not name.strip()]
        if blank:
            raise ValueError(f"the site name of view(s) {sorted(blank)} is empty")
        for view, renamed in self.columns.items():
            known = {spec[0] for spec in CONTRACT[view][1]}
            unknown = set(renamed) - known
            if unknown:
                raise ValueError(f"not columns of {view} in the CI contract: {sorted(unknown)}; known: {sorted(known)}")
            blank = [column for column, name in renamed.items() if not isinstance(name, str) or not name.strip()]
            if blank:
                raise ValueError(f"the site name of column(s) {sorted(blank)} of {view} is empty")
            # two contract columns read from one site column would silently stand for each other
            site_columns = [self.column(view, spec[0]) for spec in CONTRACT[view][1]]
            repeated = sorted({name for name in site_columns if site_columns.count(name) > 1})
            if repeated:
                raise ValueError(f"{view}: site column(s) {repeated} would stand for more than one contract column")
        site_views = [self.view(view) for view in CONTRACT]
        repeated = sorted({name for name in site_views if site_views.count(name) > 1})
        if repeated:
            raise ValueError(f"site view(s) {repeated} would stand for more than one view of the CI contract")

    def view(self, contract_view: str) -> str:
        return self.views.get(contract_view, contract_view)

    def column(self, contract_view: str, contract_column: str) -> str:
        return self.columns.get(contract_view, {}).get(contract_column, contract_column)


@dataclass(frozen=True)
class CITables:
    metadata: MetaData
    branches: Table
    sales_invoices: Table
    sales_invoice_lines: Table
    sales_tenders: Table
    cash_ups: Table
    goods_received: Table
    goods_received_lines: Table

    def all(self) -> list[Table]:
        return [getattr(self, attribute) for attribute, _ in CONTRACT.values()]


def split_view_name(name: str) -> tuple[str | None, str]:
    """'schema.view' as (schema, view); a name without a dot is (None, name): the connection's default
    schema. (A view whose own name holds a dot cannot be named through the settings.)"""
    schema, dot, view = name.rpartition(".")
    return (schema or None, view) if dot else (None, name)


def build_ci_tables(names: CINames | None = None, metadata: MetaData | None = None) -> CITables:
    """The contract's views as Tables named as the site names them (column keys stay contract names)."""
    names = names or CINames()
    metadata = metadata if metadata is not None else MetaData()
    tables: dict[str, Table] = {}
    for view, (attribute, specs) in CONTRACT.items():
        schema, site_view = split_view_name(names.view(view))
        columns = [
            Column(names.column(view, column), type_, key=column, primary_key=primary, nullable=nullable)
            for column, type_, primary, nullable in specs
        ]
        # SQLite: keep rows in key order (a line table is read in invoice order, one lookup per line)
        table = Table(site_view, metadata, *columns, schema=schema, sqlite_with_rowid=False)
        for keys in DATE_INDEXES.get(view, []):
            Index(f"ix_{site_view}_{'_'.join(keys)}", *(table.c[key] for key in keys))
        tables[attribute] = table
    return CITables(metadata=metadata, **tables)

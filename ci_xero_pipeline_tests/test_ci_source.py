"""The CI source layer: the demo database obeys the contract, and extraction returns exactly the
DataFrames docs/data-contracts.md describes, on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB run when CI_XERO_TEST_POSTGRES_URL / CI_XERO_TEST_MARIADB_URL name a server
(each test session works in a fresh schema / database and drops it afterwards)."""

from __future__ import annotations

import os
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from ci_xero_pipeline.ci.demo import create_ci_tables, create_demo_database, insert_documents
from ci_xero_pipeline.ci.extract import (
    SalesDocuments,
    changed_documents_since,
    engine_for,
    extract_sales_documents,
    scaled_integer,
)
from ci_xero_pipeline.ci.tables import CINames, build_ci_tables

END_DAY = date(2026, 10, 31)
DAYS = 8
FIRST_DAY = END_DAY - timedelta(days=DAYS - 1)
PER_DAY = (40, 80)
LINES = (1, 6)

INVOICE_DTYPES = {
    "invoice_no": "object", "doc_type": "object", "source": "object", "branch_code": "object",
    "branch_name": "object", "branch_active": "boolean", "business_date": "object",
    "created_at": "datetime64[ns]", "updated_at": "datetime64[ns]", "status": "object",
    "customer_code": "object", "customer_name": "object", "customer_email": "object", "order_ref": "object",
    "original_invoice_no": "object", "currency_code": "object", "total_incl_cents": "Int64",
    "total_gst_cents": "Int64",
}
LINE_DTYPES = {
    "invoice_no": "object", "business_date": "object", "line_no": "Int64", "sku": "object",
    "description": "object", "quantity_x1000": "Int64", "unit_price_incl_x10000": "Int64",
    "discount_incl_cents": "Int64", "line_total_incl_cents": "Int64", "line_gst_cents": "Int64",
    "gst_code": "object", "analysis_code": "object", "unit_cost_excl_x10000": "Int64",
}


def half_up(numerator: int, denominator: int) -> int:
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if numerator < 0 else magnitude


# ---------------------------------------------------------------------------------------------------
# The demo database (SQLite)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ci_source') / 'demo.sqlite'}"
    create_demo_database(url, days=DAYS, end_day=END_DAY, branches=5, invoices_per_day=PER_DAY, lines_per_invoice=LINES)
    return url


@pytest.fixture(scope="module")
def demo(demo_url) -> SalesDocuments:
    return extract_sales_documents(engine_for(demo_url), FIRST_DAY, END_DAY, source=None)


def scaled_rows(url: str, table_attribute: str, money: dict[str, int]) -> pd.DataFrame:
    """All rows of a table, money columns as integers (converted in SQL, as extraction does)."""
    table = getattr(build_ci_tables(), table_attribute)
    columns = [scaled_integer(c, money[c.key], c.key) if c.key in money else c for c in table.columns]
    with engine_for(url).connect() as connection:
        return pd.DataFrame([tuple(row) for row in connection.execute(select(*columns))], columns=[c.key for c in table.columns])


def test_demo_lines_and_totals_obey_the_contract(demo):
    lines = demo.lines
    for line in lines.itertuples():
        # the contract: a discount reduces a line's size, on a credit (quantity negative) as on an invoice
        size = half_up(abs(line.quantity_x1000) * line.unit_price_incl_x10000 - line.discount_incl_cents * 100_000, 100_000)
        expected = -size if line.quantity_x1000 < 0 else size
        assert line.line_total_incl_cents == expected, line
        gst = half_up(3 * line.line_total_incl_cents, 23) if line.gst_code == "S" else 0
        assert line.line_gst_cents == gst, line
        assert line.discount_incl_cents >= 0
    sums = lines.groupby("invoice_no")[["line_total_incl_cents", "line_gst_cents"]].sum()
    invoices = demo.invoices.set_index("invoice_no")
    assert set(sums.index) == set(invoices.index)  # every document has lines
    assert (invoices["total_incl_cents"] == sums["line_total_incl_cents"].reindex(invoices.index)).all()
    assert (invoices["total_gst_cents"] == sums["line_gst_cents"].reindex(invoices.index)).all()


def test_demo_credits_reverse_an_earlier_invoice_of_the_same_customer(demo):
    invoices = demo.invoices.set_index("invoice_no")
    credits = invoices[invoices["doc_type"] == "CREDIT"]
    assert len(credits) > 0
    assert (credits["total_incl_cents"] < 0).all() and (credits["total_gst_cents"] <= 0).all()
    credit_lines = demo.lines[demo.lines["invoice_no"].isin(credits.index)]
    assert (credit_lines["quantity_x1000"] < 0).all() and (credit_lines["discount_incl_cents"] > 0).any()
    assert (credit_lines["line_total_incl_cents"] < 0).all()
    for number, credit in credits.iterrows():
        original = invoices.loc[credit["original_invoice_no"]]
        assert original["doc_type"] == "INVOICE" and original["source"] == credit["source"]
        assert original["created_at"] <= credit["created_at"]
        assert original["customer_code"] == credit["customer_code"] or pd.isna(credit["customer_code"])
    assert invoices[invoices["doc_type"] == "INVOICE"]["original_invoice_no"].isna().all()


def test_demo_tenders_pay_the_documents(demo, demo_url):
    tenders = scaled_rows(demo_url, "sales_tenders", {"amount": 2})
    paid = tenders.groupby("invoice_no")["amount"].sum()
    invoices = demo.invoices.set_index("invoice_no")
    assert set(paid.index) == set(invoices.index)
    assert (paid.reindex(invoices.index) == invoices["total_incl_cents"]).all()
    web = tenders[tenders["invoice_no"].isin(invoices.index[invoices["source"] == "ERETAILER"])]
    assert set(web["tender_type"]) <= {"ONLINE", "VISA", "MASTERCARD", "PAYPAL", "AFTERPAY", "GIFT_VOUCHER"}
    assert "GIFT_VOUCHER" in set(web["tender_type"])


def test_demo_counts_respect_the_parameters(demo, demo_url, tmp_path):
    web = demo.invoices[demo.invoices["source"] == "ERETAILER"]
    per_day = web.groupby("business_date").size()
    assert list(per_day.index) == [(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(DAYS)]
    assert per_day.between(*PER_DAY).all()
    per_document = demo.lines.groupby("invoice_no").size()
    assert per_document[web["invoice_no"]].between(*LINES).all()
    assert (demo.lines.groupby("invoice_no")["line_no"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))).all()
    assert web["invoice_no"].is_unique and demo.invoices["invoice_no"].is_unique

    summary = create_demo_database(f"sqlite:///{tmp_path / 'small.sqlite'}", days=3, end_day=END_DAY, branches=2,
                                   invoices_per_day=(5, 5), lines_per_invoice=(2, 2), include_other_processes=False)
    assert (summary.days, summary.branches, summary.sales_invoices, summary.sales_invoice_lines) == (3, 2, 15, 30)
    assert summary.first_day == END_DAY - timedelta(days=2) and summary.last_day == END_DAY
    assert "15 sales documents" in str(summary) and "\n" not in str(summary)
    small = extract_sales_documents(engine_for(f"sqlite:///{tmp_path / 'small.sqlite'}"), summary.first_day, END_DAY, source=None)
    assert set(small.invoices["source"]) == {"ERETAILER"} and set(small.invoices["branch_code"]) <= {"WEB", "AKL01"}


def test_demo_has_the_variety_the_pipeline_must_handle(demo, demo_url):
    invoices, lines = demo.invoices, demo.lines
    web = invoices[invoices["source"] == "ERETAILER"]
    assert {"FINAL", "HELD", "VOID"} <= set(web["status"])
    assert {"INVOICE", "CREDIT"} == set(web["doc_type"])
    assert set(invoices["source"]) == {"ERETAILER", "POS", "ACCOUNT"}
    assert set(web["branch_code"]) > {"WEB"}  # click & collect from stores
    assert invoices["branch_code"].nunique() == 5
    assert (web["updated_at"] > web["created_at"]).any()
    assert (web["status"] == "VOID").sum() and (web[web["status"] == "VOID"]["updated_at"] > web[web["status"] == "VOID"]["created_at"]).all()
    assert web["customer_code"].str.match(r"^WC\d+$").all() and web["customer_code"].duplicated().any()
    assert web["order_ref"].str.match(r"^ORD-\d+$").all() and web["invoice_no"].str.match(r"^W\d{7}$").all()
    assert set(invoices["currency_code"]) == {"NZD"}
    web_lines = lines[lines["invoice_no"].isin(web["invoice_no"])]
    assert {"S", "Z", "E"} == set(web_lines["gst_code"])
    zero_rated = web_lines.groupby("invoice_no")["gst_code"].agg(set)
    assert any(codes == {"Z"} for codes in zero_rated)  # export orders: every line Z
    assert (web_lines["discount_incl_cents"] > 0).any()
    freight = web_lines[web_lines["analysis_code"] == "FREIGHT"]
    assert len(freight) and freight["sku"].isna().all() and (freight["description"] == "Freight").all()
    assert freight["invoice_no"].nunique() > len(web) / 3
    exempt = web_lines[web_lines["gst_code"] == "E"]
    assert exempt["sku"].isna().all() and (exempt["analysis_code"] == "GIFTS").all()
    # gift vouchers sold and cash rounding are lines of the tills' documents only
    assert set(lines["analysis_code"]) == {"APPAREL", "FOOTWEAR", "ACCESSORIES", "GIFTS", "FREIGHT", "VOUCHER", "ROUNDING"}
    assert not set(web_lines["analysis_code"]) & {"VOUCHER", "ROUNDING"}
    assert (web_lines["quantity_x1000"] > 1000).any() and (web_lines["quantity_x1000"] % 1000 != 0).any()
    assert (lines["unit_price_incl_x10000"] % 100 != 0).any()  # 4-decimal prices such as 33.3333
    assert lines["unit_cost_excl_x10000"].notna().sum() > len(lines) / 2

    branches = scaled_rows(demo_url, "branches", {})
    assert set(branches["branch_code"]) == {"WEB", "AKL01", "WLG01", "CHC01", "HAM01", "NWM01"}
    assert (~branches["active"].astype(bool)).sum() == 1
    cash_ups = scaled_rows(demo_url, "cash_ups", {"expected_amount": 2, "counted_amount": 2})
    assert len(cash_ups) and (cash_ups["counted_amount"] != cash_ups["expected_amount"]).any()
    receipts = scaled_rows(demo_url, "goods_received", {"total_excl": 2, "total_gst": 2})
    receipt_lines = scaled_rows(demo_url, "goods_received_lines", {"quantity": 3, "unit_cost_excl": 4, "line_total_excl": 2, "line_gst": 2})
    for line in receipt_lines.itertuples():
        assert line.line_total_excl == half_up(line.quantity * line.unit_cost_excl, 100_000)
        assert line.line_gst == (half_up(line.line_total_excl * 15, 100) if line.gst_code == "S" else 0)
    sums = receipt_lines.groupby("receipt_no")[["line_total_excl", "line_gst"]].sum()
    assert (receipts.set_index("receipt_no")["total_excl"] == sums["line_total_excl"]).all()
    assert {"FINAL", "HELD", "VOID"} <= set(receipts["status"]) or len(receipts) < 30


def test_demo_is_reproducible_from_its_seed(demo, tmp_path):
    again = f"sqlite:///{tmp_path / 'again.sqlite'}"
    other = f"sqlite:///{tmp_path / 'other.sqlite'}"
    arguments = dict(days=DAYS, end_day=END_DAY, branches=5, invoices_per_day=PER_DAY, lines_per_invoice=LINES)
    create_demo_database(again, **arguments)
    create_demo_database(other, **arguments, seed=7)
    same = extract_sales_documents(engine_for(again), FIRST_DAY, END_DAY, source=None)
    pd.testing.assert_frame_equal(same.invoices, demo.invoices)
    pd.testing.assert_frame_equal(same.lines, demo.lines)
    different = extract_sales_documents(engine_for(other), FIRST_DAY, END_DAY, source=None)
    assert not different.lines.equals(demo.lines)


# ---------------------------------------------------------------------------------------------------
# Extraction, on every dialect


def _postgres_engine(url: str):
    schema = f"ci_test_{secrets.token_hex(4)}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})

    def drop():
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


def _mariadb_engine(url: str):
    database = f"ci_test_{secrets.token_hex(4)}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
    engine = create_engine(make_url(url).set(database=database))

    def drop():
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE `{database}`"))
        admin.dispose()

    return engine, drop


SERVER_NAMES = {"postgres": "PostgreSQL", "mariadb": "MariaDB"}


def server_engine(dialect: str):
    """(engine, drop) on a schema (PostgreSQL) or database (MariaDB) of the caller's own on the server the
    environment names; the test is skipped, saying which variable to set, when it names none."""
    variable = f"CI_XERO_TEST_{dialect.upper()}_URL"
    url = os.environ.get(variable)
    if not url:
        pytest.skip(f"set {variable} to test against {SERVER_NAMES[dialect]}")
    return (_postgres_engine if dialect == "postgres" else _mariadb_engine)(url)


@pytest.fixture(
    scope="session",
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def database(request, tmp_path_factory) -> Engine:
    """A database of each dialect, empty of CI tables; a fresh schema/database on servers."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path_factory.mktemp('dialect') / 'ci.sqlite'}")
        yield engine
        engine.dispose()
        return
    engine, drop = server_engine(request.param)
    yield engine
    drop()


@pytest.fixture
def ci(database) -> Engine:
    """The database with freshly created (empty) contract tables and two branches."""
    create_ci_tables(database, drop=True)
    insert_documents(database, [], branches=[
        {"branch_code": "WEB", "branch_name": "Online Store", "active": True},
        {"branch_code": "OLD01", "branch_name": "Closed Shop", "active": False},
    ])
    return database


def document(number: str, day: date, *lines: dict, **values) -> tuple[dict, list[dict]]:
    invoice = {"invoice_no": number, "branch_code": "WEB", "business_date": day,
               "created_at": datetime.combine(day, datetime.min.time()) + timedelta(hours=10), **values}
    return invoice, [{"invoice_no": number, "line_no": n, "description": f"Item {n}", "analysis_code": "APPAREL",
                      "quantity": Decimal("1.000"), **line} for n, line in enumerate(lines, start=1)]


def insert(engine: Engine, *documents: tuple[dict, list[dict]], names: CINames | None = None) -> None:
    insert_documents(engine, [d[0] for d in documents], [line for d in documents for line in d[1]], names)


DAY = date(2026, 10, 15)


def test_extraction_columns_and_dtypes_follow_the_data_contract(ci):
    insert(ci, document("W1", DAY, {"unit_price_incl": Decimal("10.0000"), "sku": "AB-1", "unit_cost_excl": Decimal("4.1234")},
                        {"unit_price_incl": Decimal("5.0000")}))
    result = extract_sales_documents(ci, DAY, DAY)
    assert {k: str(v) for k, v in result.invoices.dtypes.items()} == INVOICE_DTYPES
    assert {k: str(v) for k, v in result.lines.dtypes.items()} == LINE_DTYPES
    assert len(result) == 1 and not result.empty
    invoice = result.invoices.iloc[0]
    assert invoice["business_date"] == "2026-10-15" and isinstance(invoice["business_date"], str)
    assert invoice["created_at"] == pd.Timestamp("2026-10-15 10:00:00")
    assert invoice["branch_name"] == "Online Store" and invoice["branch_active"] is np.True_ or invoice["branch_active"] == True  # noqa: E712
    assert (invoice["total_incl_cents"], invoice["total_gst_cents"]) == (1500, 130 + 65)
    assert list(result.lines["business_date"]) == ["2026-10-15", "2026-10-15"]
    assert list(result.lines["unit_cost_excl_x10000"].astype(object).where(result.lines["unit_cost_excl_x10000"].notna(), None)) == [41234, None]

    empty = extract_sales_documents(ci, date(2020, 1, 1), date(2020, 1, 31))
    assert empty.empty and len(empty.lines) == 0
    assert {k: str(v) for k, v in empty.invoices.dtypes.items()} == INVOICE_DTYPES
    assert {k: str(v) for k, v in empty.lines.dtypes.items()} == LINE_DTYPES


def test_awkward_amounts_extract_exactly(ci):
    insert(
        ci,
        document("W2", DAY,
                 {"quantity": Decimal("3.000"), "unit_price_incl": Decimal("33.3333")},  # 99.9999 -> 100.00
                 {"quantity": Decimal("1.500"), "unit_price_incl": Decimal("24.9950"), "discount_incl": Decimal("0.01")},
                 {"unit_price_incl": Decimal("0.0100"), "gst_code": "Z"},
                 {"unit_price_incl": Decimal("99999999.9900"), "gst_code": "E", "unit_cost_excl": Decimal("9999999999.9999")}),
        document("W3", DAY, {"quantity": Decimal("-2.000"), "unit_price_incl": Decimal("19.9900")},
                 doc_type="CREDIT", original_invoice_no="W2"),
    )
    result = extract_sales_documents(ci, DAY, DAY)
    lines = result.lines.set_index(["invoice_no", "line_no"])
    assert lines.loc[("W2", 1), ["quantity_x1000", "unit_price_incl_x10000", "line_total_incl_cents", "line_gst_cents"]].tolist() == [3000, 333333, 10000, 1304]
    assert lines.loc[("W2", 2), ["quantity_x1000", "unit_price_incl_x10000", "discount_incl_cents", "line_total_incl_cents"]].tolist() == [1500, 249950, 1, 3748]
    assert lines.loc[("W2", 3), ["line_total_incl_cents", "line_gst_cents", "gst_code"]].tolist() == [1, 0, "Z"]
    assert lines.loc[("W2", 4), ["unit_price_incl_x10000", "line_total_incl_cents", "unit_cost_excl_x10000"]].tolist() == [999999999900, 9999999999, 99999999999999]
    assert lines.loc[("W3", 1), ["quantity_x1000", "line_total_incl_cents", "line_gst_cents"]].tolist() == [-2000, -3998, -521]
    invoices = result.invoices.set_index("invoice_no")
    assert invoices.loc["W2", "total_incl_cents"] == 10000 + 3748 + 1 + 9999999999
    assert invoices.loc["W3", ["doc_type", "original_invoice_no", "total_incl_cents"]].tolist() == ["CREDIT", "W2", -3998]


def test_date_range_is_inclusive_and_ordered(ci):
    price = {"unit_price_incl": Decimal("1.0000")}
    insert(ci, *(document(f"W{n}", DAY + timedelta(days=offset), price, price) for n, offset in
                 ((10, -1), (14, 0), (11, 0), (12, 2), (13, 3))))
    result = extract_sales_documents(ci, DAY, DAY + timedelta(days=2))
    assert list(result.invoices["invoice_no"]) == ["W11", "W14", "W12"]  # business_date, then invoice_no
    assert list(zip(result.lines["invoice_no"], result.lines["line_no"])) == [
        ("W11", 1), ("W11", 2), ("W12", 1), ("W12", 2), ("W14", 1), ("W14", 2)]  # invoice_no, line_no
    assert list(result.lines["business_date"]) == ["2026-10-15", "2026-10-15", "2026-10-17", "2026-10-17", "2026-10-15", "2026-10-15"]


def test_source_filter_and_branches(ci):
    price = {"unit_price_incl": Decimal("2.0000")}
    insert(ci, document("W20", DAY, price), document("P20", DAY, price, source="POS", branch_code="OLD01"),
           document("W21", DAY, price, branch_code="GONE9"))
    web = extract_sales_documents(ci, DAY, DAY)
    assert list(web.invoices["invoice_no"]) == ["W20", "W21"] and set(web.lines["invoice_no"]) == {"W20", "W21"}
    missing = web.invoices.set_index("invoice_no").loc["W21"]
    assert pd.isna(missing["branch_name"]) and pd.isna(missing["branch_active"])
    everything = extract_sales_documents(ci, DAY, DAY, source=None).invoices.set_index("invoice_no")
    assert list(everything.index) == ["P20", "W20", "W21"]
    assert everything.loc["P20", "branch_active"] == False  # noqa: E712
    pos = extract_sales_documents(ci, DAY, DAY, source="POS")
    assert list(pos.invoices["invoice_no"]) == ["P20"] and list(pos.lines["invoice_no"]) == ["P20"]


def test_every_status_is_extracted_and_changes_are_found(ci):
    price = {"unit_price_incl": Decimal("3.0000")}
    created = datetime(2026, 10, 15, 9, 0, 0)
    insert(
        ci,
        document("W30", DAY, price, created_at=created),
        document("W31", DAY, price, created_at=created, updated_at=datetime(2026, 10, 16, 8, 0, 0), status="VOID"),
        document("W32", DAY - timedelta(days=1), price, created_at=created - timedelta(days=1),
                 updated_at=datetime(2026, 10, 17, 12, 30, 5), status="HELD"),
        document("P33", DAY, price, source="POS", created_at=created, updated_at=datetime(2026, 10, 18)),
    )
    assert set(extract_sales_documents(ci, DAY - timedelta(days=1), DAY).invoices["status"]) == {"FINAL", "VOID", "HELD"}
    changes = changed_documents_since(ci, datetime(2026, 10, 15, 9, 0, 0))
    assert list(changes.columns) == ["invoice_no", "business_date", "status", "updated_at"]
    assert list(changes["invoice_no"]) == ["W31", "W32"]
    assert list(changes["business_date"]) == ["2026-10-15", "2026-10-14"]
    assert changes["updated_at"].dtype == "datetime64[ns]"
    assert changes["updated_at"].iloc[1] == pd.Timestamp("2026-10-17 12:30:05")
    assert list(changed_documents_since(ci, datetime(2026, 10, 17, 12, 30, 5))["invoice_no"]) == []
    assert list(changed_documents_since(ci, datetime(2026, 10, 17, 12, 30, 4))["invoice_no"]) == ["W32"]
    assert len(changed_documents_since(ci, None)) == 3
    assert list(changed_documents_since(ci, datetime(2026, 10, 16), source=None)["invoice_no"]) == ["W31", "W32", "P33"]


def test_a_site_renames_views_and_columns_through_ci_names(database):
    names = CINames(
        views={"ci_sales_invoices": "site_invoices", "ci_sales_invoice_lines": "site_invoice_lines", "ci_branches": "site_shops"},
        columns={"ci_sales_invoices": {"total_incl": "grand_total", "business_date": "trading_day"},
                 "ci_sales_invoice_lines": {"quantity": "qty", "invoice_no": "doc_no"},
                 "ci_branches": {"branch_name": "shop_name"}},
    )
    create_ci_tables(database, names, drop=True)
    insert_documents(database, [], branches=[{"branch_code": "WEB", "branch_name": "Web Shop", "active": True}], names=names)
    insert(database, document("W40", DAY, {"quantity": Decimal("2.000"), "unit_price_incl": Decimal("7.5000")}), names=names)
    result = extract_sales_documents(database, DAY, DAY, names=names)
    assert result.invoices[["invoice_no", "branch_name", "business_date", "total_incl_cents"]].values.tolist() == [["W40", "Web Shop", "2026-10-15", 1500]]
    assert result.lines["quantity_x1000"].tolist() == [2000]
    assert list(changed_documents_since(database, None, names=names)["invoice_no"]) == ["W40"]
    table = build_ci_tables(names).sales_invoices
    assert table.name == "site_invoices" and table.c.total_incl.name == "grand_total"
    with pytest.raises(ValueError):
        CINames(columns={"ci_sales_invoices": {"no_such_column": "x"}})
    build_ci_tables(names).metadata.drop_all(database)


def test_demo_database_on_each_dialect(database):
    summary = create_demo_database(database, days=3, end_day=END_DAY, branches=3, invoices_per_day=(6, 10), lines_per_invoice=(1, 4))
    result = extract_sales_documents(database, summary.first_day, END_DAY, source=None)
    assert len(result.invoices) == summary.sales_invoices and len(result.lines) == summary.sales_invoice_lines
    sums = result.lines.groupby("invoice_no")["line_total_incl_cents"].sum()
    assert (result.invoices.set_index("invoice_no")["total_incl_cents"] == sums.reindex(result.invoices["invoice_no"])).all()
    changes = changed_documents_since(database, None)
    assert len(changes) == summary.eretailer_invoices


# ---------------------------------------------------------------------------------------------------
# Odds and ends


def test_money_is_converted_to_integers_in_sql_on_every_dialect():
    column = build_ci_tables().sales_invoices.c.total_incl
    expression = scaled_integer(column, 2, "total_incl_cents")
    assert "AS SIGNED" in str(select(expression).compile(dialect=mysql.dialect()))
    assert "AS BIGINT" in str(select(expression).compile(dialect=postgresql.dialect()))
    assert "AS BIGINT" in str(select(expression).compile(dialect=sqlite.dialect()))
    assert "* 100)" in str(select(expression).compile(dialect=sqlite.dialect()))


def test_engine_for_caches_and_resolves_relative_sqlite_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = engine_for("sqlite:///relative/ci.sqlite")
    assert engine is engine_for(f"sqlite:///{tmp_path / 'relative' / 'ci.sqlite'}")
    assert Path(engine.url.database).is_absolute()
    summary = create_demo_database("sqlite:///relative/ci.sqlite", days=1, end_day=END_DAY, invoices_per_day=(2, 2),
                                   include_other_processes=False)
    assert (tmp_path / "relative" / "ci.sqlite").is_file() and summary.sales_invoices == 2

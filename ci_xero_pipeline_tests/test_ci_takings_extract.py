"""Extraction for takings: POS documents with their lines and tenders, the branches' cash-ups and the
branches, read in one go per day range (ci.extract.extract_sales_with_tenders / extract_takings), on
the demo database and on every dialect.

PostgreSQL and MariaDB run when CI_XERO_TEST_POSTGRES_URL / CI_XERO_TEST_MARIADB_URL name a server;
each test gets a schema (database) of its own, dropped after it."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ci_xero_pipeline.books.takings import TakingsRules, build_takings_documents, check_takings_books, validate_takings
from ci_xero_pipeline.ci.demo import create_ci_tables, create_demo_database, insert_documents
from ci_xero_pipeline.ci.extract import (
    ORPHAN_TENDER_COLUMNS,
    TENDER_EXCESS_COLUMNS,
    TENDER_FRAME_COLUMNS,
    engine_for,
    extract_sales_documents,
    extract_sales_with_tenders,
    extract_takings,
)
from ci_xero_pipeline.ci.tables import CINames, build_ci_tables

from .conftest import DEMO_DAYS, DEMO_END_DAY
from .test_ci_source import server_engine

FIRST_DAY = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
DAY = date(2026, 10, 15)
TENDER_DTYPES = {
    "invoice_no": "object", "business_date": "object", "branch_code": "object", "source": "object", "status": "object",
    "doc_type": "object", "tender_no": "Int64", "tender_type": "object", "amount_cents": "Int64", "paid_at": "datetime64[ns]",
}
CASH_UP_DTYPES = {
    "branch_code": "object", "business_date": "object", "tender_type": "object", "expected_cents": "Int64", "counted_cents": "Int64",
}
SITE = TakingsRules(
    sales_accounts={"APPAREL": "201", "FOOTWEAR": "202", "ACCESSORIES": "203", "GIFTS": "204", "FREIGHT": "205"},
    tender_accounts={"CASH": "611", "EFTPOS": "612", "VISA": "613", "MASTERCARD": "613", "AMEX": "614"},
    over_short_account="429", voucher_liability_account="835",
    voucher_analysis_codes=("VOUCHER",), rounding_analysis_codes=("ROUNDING",), rounding_account="482",
)


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {column: str(dtype) for column, dtype in frame.dtypes.items()}


# -- the demo database ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def takings(demo_ci_url):
    return extract_takings(engine_for(demo_ci_url), FIRST_DAY, DEMO_END_DAY)


def test_takings_are_the_pos_documents_with_their_tenders_and_the_days_cash_ups(takings):
    invoices = takings.documents.invoices
    assert set(invoices["source"]) == {"POS"} and "FINAL" in set(invoices["status"])
    assert list(takings.tenders.columns) == TENDER_FRAME_COLUMNS and dtypes(takings.tenders) == TENDER_DTYPES
    assert dtypes(takings.cash_ups) == CASH_UP_DTYPES
    assert set(takings.tenders["invoice_no"]) == set(invoices["invoice_no"])  # every document's tenders, nothing else
    header = invoices.set_index("invoice_no")
    for column in ("business_date", "branch_code", "source", "status", "doc_type"):
        assert (takings.tenders[column].to_numpy() == header.loc[takings.tenders["invoice_no"], column].to_numpy()).all(), column
    paid = takings.tenders.groupby("invoice_no")["amount_cents"].sum()
    assert (paid.reindex(header.index) == header["total_incl_cents"]).all()  # the demo's tenders pay its documents
    order = takings.tenders[["business_date", "invoice_no", "tender_no"]].astype(str).values.tolist()
    assert order == sorted(order)

    final = takings.tenders[takings.tenders["status"] == "FINAL"]
    expected = final.groupby(["branch_code", "business_date", "tender_type"])["amount_cents"].sum()
    cash_ups = takings.cash_ups.set_index(["branch_code", "business_date", "tender_type"])
    assert cash_ups["expected_cents"].sort_index().to_dict() == expected.to_dict()
    assert (cash_ups["counted_cents"] != cash_ups["expected_cents"]).any()  # tills over and short
    assert set(takings.cash_ups["business_date"]) == {(FIRST_DAY + timedelta(days=n)).isoformat() for n in range(DEMO_DAYS)}
    keys = takings.cash_ups[["business_date", "branch_code", "tender_type"]].values.tolist()
    assert keys == sorted(keys)
    assert "Auckland Queen Street" in set(takings.branches["branch_name"]) and takings.excess_decimals.empty
    assert takings.orphan_tenders.empty and list(takings.orphan_tenders.columns) == ORPHAN_TENDER_COLUMNS


def test_one_read_of_every_source_serves_each_process(demo_ci_url, takings):
    engine = engine_for(demo_ci_url)
    statements: list[str] = []

    def count(_connection, _cursor, statement, *_):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        everything = extract_sales_with_tenders(engine, FIRST_DAY, DEMO_END_DAY)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # one statement on each view: headers, lines, tenders, cash-ups, branches
    assert len(statements) == 5
    assert sum("FROM ci_sales_invoice_lines" in s for s in statements) == 1
    assert sum("FROM ci_sales_tenders" in s for s in statements) == 1 and sum("FROM ci_cash_ups" in s for s in statements) == 1
    assert set(everything.documents.invoices["source"]) == {"ERETAILER", "POS", "ACCOUNT"}

    pos = everything.of_source("POS")
    pd.testing.assert_frame_equal(pos.documents.invoices, takings.documents.invoices)
    pd.testing.assert_frame_equal(pos.documents.lines, takings.documents.lines)
    pd.testing.assert_frame_equal(pos.tenders, takings.tenders)
    pd.testing.assert_frame_equal(pos.cash_ups, takings.cash_ups)
    web = everything.of_source("ERETAILER")
    alone = extract_sales_documents(engine, FIRST_DAY, DEMO_END_DAY, source="ERETAILER")
    pd.testing.assert_frame_equal(web.documents.invoices, alone.invoices)
    pd.testing.assert_frame_equal(web.documents.lines, alone.lines)
    assert set(web.tenders["tender_type"]) >= {"ONLINE", "GIFT_VOUCHER"} and set(web.tenders["source"]) == {"ERETAILER"}


def test_the_demos_takings_become_books_that_account_for_every_dollar(takings):
    validated = validate_takings(takings, SITE)
    books = build_takings_documents(validated, SITE)
    assert check_takings_books(validated, books, SITE).empty
    assert validated.quarantine.empty and len(books.documents) == len(validated.branch_days)
    # per day: CI's FINAL POS documents = takings (posted or quarantined) + account sales; the posted
    # takings = the documents' content (Σ lines less tender lines, signed) less over/short
    invoices = takings.documents.invoices
    ci = invoices[invoices["status"] == "FINAL"].groupby("business_date")["total_incl_cents"].sum().to_dict()
    accounted = defaultdict(int)
    for day, total in zip(validated.branch_days["business_date"], validated.branch_days["total_incl_cents"]):
        accounted[day] += int(total)
    for day, total in zip(validated.excluded["business_date"], validated.excluded["total_incl_cents"]):
        accounted[day] += int(total)
    assert ci == dict(accounted)
    sign = books.documents["endpoint"].map({"Invoices": 1, "CreditNotes": -1})
    content = (sign * (books.documents["total_cents"] - books.totals["tender_lines_cents"])).groupby(books.documents["business_date"]).sum()
    over_short = books.totals.groupby("business_date")["over_short_cents"].sum()
    posted = validated.branch_days.groupby("business_date")["total_incl_cents"].sum()
    assert (content - over_short).to_dict() == posted.to_dict()
    # every tender's account moves by what the till counted: the takings' payments (less tenders the sign rule
    # made lines of), plus the tenders of till sales on account, which the account-customer process pays; the
    # ACCOUNT row of a cash-up is no money in a till
    counted = takings.cash_ups[takings.cash_ups["tender_type"] != "ACCOUNT"].groupby(
        ["business_date", "branch_code", "tender_type"])["counted_cents"].sum()
    moved = books.tenders.set_index(["business_date", "branch_code", "tender_type"])
    assert (moved["movement_cents"] + moved["other_process_cents"]).sort_index().to_dict() == counted.to_dict()
    lines = books.tender_lines.groupby("document_key")["amount_cents"].sum()
    paid = books.payments.groupby("document_key")["amount_cents"].sum()
    shown = books.documents.set_index("document_key")["total_cents"]
    assert paid.reindex(shown.index, fill_value=0).to_dict() == shown.to_dict()
    assert len(lines) and (lines <= shown.reindex(lines.index)).all()


# -- every dialect ----------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database(request, tmp_path) -> Engine:
    """An empty database of each dialect, a schema (database) of this test's own on servers."""
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
        yield engine
        engine.dispose()
        return
    engine, drop = server_engine(request.param)
    yield engine
    drop()


def pos_document(number: str, day: date, price: str, tenders: list[tuple[str, str]], branch: str = "AKL01", **values) -> dict:
    created = datetime.combine(day, datetime.min.time()) + timedelta(hours=11)
    return {
        "invoice": {"invoice_no": number, "branch_code": branch, "business_date": day, "created_at": created, "source": "POS", **values},
        "lines": [{"invoice_no": number, "line_no": 1, "description": "Item", "analysis_code": "APPAREL",
                   "quantity": Decimal("1.000") if not values.get("doc_type") == "CREDIT" else Decimal("-1.000"),
                   "unit_price_incl": Decimal(price)}],
        "tenders": [{"invoice_no": number, "tender_no": n, "tender_type": tender_type, "amount": Decimal(amount),
                     "paid_at": created + timedelta(minutes=n)} for n, (tender_type, amount) in enumerate(tenders, start=1)],
    }


def fill(engine: Engine, documents: list[dict], cash_ups: list[tuple], names: CINames | None = None) -> None:
    tables = create_ci_tables(engine, names, drop=True)
    insert_documents(
        engine, [d["invoice"] for d in documents], [line for d in documents for line in d["lines"]], names,
        tenders=[tender for d in documents for tender in d["tenders"]],
        branches=[{"branch_code": "AKL01", "branch_name": "Auckland Queen Street", "active": True},
                  {"branch_code": "WEB", "branch_name": "Online Store", "active": True}],
    )
    with engine.begin() as connection:
        if cash_ups:
            connection.execute(tables.cash_ups.insert(), [
                {"branch_code": branch, "business_date": day, "tender_type": tender_type,
                 "expected_amount": Decimal(expected), "counted_amount": Decimal(counted)}
                for branch, day, tender_type, expected, counted in cash_ups
            ])


def test_tenders_and_cash_ups_extract_exactly_on_every_dialect(database):
    fill(database, [
        pos_document("P2", DAY, "99999999.9900", [("EFTPOS", "99999999.99")]),
        pos_document("P1", DAY, "30.0100", [("CASH", "30.02"), ("CASH", "-0.01")]),
        pos_document("C1", DAY, "0.0100", [("CASH", "-0.01")], doc_type="CREDIT", original_invoice_no="P1"),
        pos_document("P3", DAY - timedelta(days=1), "5.0000", [("VISA", "5.00")]),
        pos_document("W1", DAY, "12.0000", [("ONLINE", "12.00")], source="ERETAILER", branch="WEB"),
    ], [("AKL01", DAY, "CASH", "30.00", "29.95"), ("AKL01", DAY, "EFTPOS", "99999999.99", "99999999.99"),
        ("AKL01", DAY - timedelta(days=2), "CASH", "1.00", "1.00")])
    found = extract_takings(database, DAY, DAY)
    assert dtypes(found.tenders) == TENDER_DTYPES and dtypes(found.cash_ups) == CASH_UP_DTYPES
    assert found.tenders[["invoice_no", "tender_no", "tender_type", "amount_cents", "doc_type"]].values.tolist() == [
        ["C1", 1, "CASH", -1, "CREDIT"], ["P1", 1, "CASH", 3002, "INVOICE"], ["P1", 2, "CASH", -1, "INVOICE"],
        ["P2", 1, "EFTPOS", 9999999999, "INVOICE"]]
    assert found.tenders["paid_at"].iloc[1] == pd.Timestamp("2026-10-15 11:01:00")
    assert found.cash_ups.values.tolist() == [["AKL01", "2026-10-15", "CASH", 3000, 2995], ["AKL01", "2026-10-15", "EFTPOS", 9999999999, 9999999999]]
    assert list(found.documents.invoices["invoice_no"]) == ["C1", "P1", "P2"]
    assert found.excess_decimals.empty and found.orphan_tenders.empty
    every = extract_sales_with_tenders(database, DAY - timedelta(days=1), DAY)
    assert set(every.tenders["invoice_no"]) == {"C1", "P1", "P2", "P3", "W1"}
    nothing = extract_takings(database, date(2020, 1, 1), date(2020, 1, 31))
    assert nothing.tenders.empty and nothing.cash_ups.empty and nothing.documents.empty
    assert dtypes(nothing.tenders) == TENDER_DTYPES and dtypes(nothing.cash_ups) == CASH_UP_DTYPES


def test_site_names_for_the_tender_and_cash_up_views(database):
    names = CINames(
        views={"ci_sales_tenders": "site_payments", "ci_cash_ups": "site_till_counts"},
        columns={"ci_sales_tenders": {"amount": "paid_amount", "tender_type": "media"},
                 "ci_cash_ups": {"counted_amount": "declared", "business_date": "trading_day"}},
    )
    fill(database, [pos_document("P1", DAY, "20.0000", [("CASH", "20.00")])], [("AKL01", DAY, "CASH", "20.00", "19.50")], names)
    found = extract_takings(database, DAY, DAY, names=names)
    assert found.tenders[["invoice_no", "tender_type", "amount_cents"]].values.tolist() == [["P1", "CASH", 2000]]
    assert found.cash_ups[["business_date", "tender_type", "expected_cents", "counted_cents"]].values.tolist() == [
        ["2026-10-15", "CASH", 2000, 1950]]
    build_ci_tables(names).metadata.drop_all(database)


def test_the_demo_database_on_each_dialect(database):
    summary = create_demo_database(database, days=2, end_day=DEMO_END_DAY, branches=3, invoices_per_day=(4, 6), lines_per_invoice=(1, 3))
    found = extract_sales_with_tenders(database, summary.first_day, DEMO_END_DAY)
    assert len(found.tenders) == summary.sales_tenders and len(found.cash_ups) == summary.cash_ups
    paid = found.tenders.groupby("invoice_no")["amount_cents"].sum()
    totals = found.documents.invoices.set_index("invoice_no")["total_incl_cents"]
    assert (paid.reindex(totals.index) == totals).all()
    validated = validate_takings(found, SITE)
    assert validated.quarantine.empty and len(validated.branch_days) == 2 * 2  # two stores, two days
    books = build_takings_documents(validated, SITE)
    assert check_takings_books(validated, books, SITE).empty and len(books.documents) == 4


# -- what the read cannot put into its frames is reported (SQLite: values as the view holds them) -------

def test_money_with_more_decimals_than_the_contract_is_reported_and_quarantines_its_day(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    fill(engine, [pos_document("P1", DAY, "20.0000", [("CASH", "20.005"), ("EFTPOS", "-0.005")]),
                  pos_document("P2", DAY, "7.0000", [("CASH", "7.00")], branch="WEB")],
         [("AKL01", DAY, "CASH", "20.005", "20.0049"), ("WEB", DAY, "CASH", "7.00", "7.00")])
    found = extract_takings(engine, DAY, DAY)
    assert list(found.excess_decimals.columns) == TENDER_EXCESS_COLUMNS
    assert {(row.view, row.invoice_no, row.column, row.value) for row in found.excess_decimals.itertuples()} == {
        ("ci_sales_tenders", "P1", "amount", "20.005"), ("ci_sales_tenders", "P1", "amount", "-0.005"),
        ("ci_cash_ups", None, "expected_amount", "20.005"), ("ci_cash_ups", None, "counted_amount", "20.0049"),
    }
    assert found.excess_decimals["reason"].str.contains("it is not rounded").all()
    validated = validate_takings(found, SITE)
    assert set(validated.quarantine.loc[validated.quarantine["check"] == "excess_decimals", "branch_code"]) == {"AKL01"}
    assert list(validated.invoices["invoice_no"]) == ["P2"]  # the other branch-day still posts
    engine.dispose()


def test_a_tender_read_without_its_document_is_listed_not_dropped(tmp_path):
    path = tmp_path / "ci.sqlite"
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    fill(engine, [pos_document("P1", DAY, "10.0000", [("CASH", "10.00")])], [])
    writer = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    written = []

    def another_till_commits(_connection, _cursor, statement, *_):
        # a tender is committed for a document the header read did not see
        if not written and "FROM ci_sales_tenders" in statement:
            written.append(True)
            late = pos_document("P9", DAY, "4.0000", [("EFTPOS", "4.00")])
            insert_documents(writer, [late["invoice"]], late["lines"], tenders=late["tenders"])

    event.listen(engine, "before_cursor_execute", another_till_commits)
    try:
        found = extract_takings(engine, DAY, DAY)
    finally:
        event.remove(engine, "before_cursor_execute", another_till_commits)
        writer.dispose()
    assert written and list(found.tenders["invoice_no"]) == ["P1"]
    orphan = found.orphan_tenders
    assert orphan[["invoice_no", "tender_no", "tender_type", "amount_cents"]].values.tolist() == [["P9", 1, "EFTPOS", 400]]
    assert orphan["reason"].iloc[0].startswith("P9 tender 1: read without its document") and "run the day again" in orphan["reason"].iloc[0]
    assert validate_takings(found, SITE).orphan_tenders.equals(orphan)
    engine.dispose()


def test_a_view_that_repeats_a_tender_hands_both_rows_to_validation(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    fill(engine, [pos_document("P1", DAY, "10.0000", [("CASH", "10.00")])], [("AKL01", DAY, "CASH", "10.00", "10.00")])
    with engine.begin() as connection:
        connection.execute(text("CREATE VIEW v_tenders AS SELECT * FROM ci_sales_tenders UNION ALL SELECT * FROM ci_sales_tenders"))
    found = extract_takings(engine, DAY, DAY, names=CINames(views={"ci_sales_tenders": "v_tenders"}))
    assert found.tenders[["invoice_no", "tender_no"]].values.tolist() == [["P1", 1], ["P1", 1]]
    checks = set(validate_takings(found, SITE).quarantine["check"])
    assert "duplicate_tender" in checks
    engine.dispose()

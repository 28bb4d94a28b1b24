"""Extraction for issue 12: the account-customer documents (extract_receivables), the goods receipts
(extract_goods_received, changed_receipts_since) and the unit costs cost of goods sold reads
(SalesDocuments.cost_excess_decimals), on SQLite and, when CI_XERO_TEST_POSTGRES_URL /
CI_XERO_TEST_MARIADB_URL name a server, on PostgreSQL and MariaDB (a schema or database of each test's
own, dropped after it)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ci_xero_pipeline.books.rules import EretailerRules
from ci_xero_pipeline.books.validation import validate_sales_documents
from ci_xero_pipeline.ci.demo import create_ci_tables, create_demo_database, insert_documents
from ci_xero_pipeline.ci.extract import (
    EXCESS_DECIMAL_COLUMNS,
    RECEIPT_COLUMNS,
    RECEIPT_EXCESS_DECIMAL_COLUMNS,
    RECEIPT_LINE_COLUMNS,
    RECEIPT_ORPHAN_LINE_COLUMNS,
    TENDER_FRAME_COLUMNS,
    GoodsReceived,
    changed_documents_since,
    changed_receipts_since,
    engine_for,
    extract_goods_received,
    extract_receivables,
    extract_sales_documents,
    extract_sales_with_tenders,
    on_account_documents,
)
from ci_xero_pipeline.ci.tables import CINames, build_ci_tables

from .conftest import DEMO_DAYS, DEMO_END_DAY
from .test_ci_takings_extract import CASH_UP_DTYPES, TENDER_DTYPES, database, dtypes, fill, pos_document  # noqa: F401  (fixture)

D = Decimal
DAY = date(2026, 10, 15)
FIRST_DAY = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
RECEIPT_DTYPES = {
    "receipt_no": "object", "supplier_code": "object", "supplier_name": "object", "branch_code": "object",
    "branch_name": "object", "business_date": "object", "supplier_invoice_no": "object", "status": "object",
    "updated_at": "datetime64[ns]", "currency_code": "object", "total_excl_cents": "Int64", "total_gst_cents": "Int64",
}
RECEIPT_LINE_DTYPES = {
    "receipt_no": "object", "business_date": "object", "line_no": "Int64", "sku": "object", "description": "object", "quantity_x1000": "Int64",
    "unit_cost_excl_x10000": "Int64", "line_total_excl_cents": "Int64", "line_gst_cents": "Int64", "gst_code": "object",
    "analysis_code": "object",
}
WEB_RULES = EretailerRules(mode="detail", sales_accounts={"APPAREL": "201"})


# -- account customers: extract_receivables -----------------------------------------------------------

def account_document(number: str, day: date, price: str, tenders: list[tuple[str, str]], **values) -> dict:
    return pos_document(number, day, price, tenders, source=values.pop("source", "ACCOUNT"),
                        customer_code=values.pop("customer_code", "ACC001"), customer_name=values.pop("customer_name", "Harbourside"),
                        **values)


def receivables_fixture(engine: Engine, names: CINames | None = None) -> None:
    fill(engine, [
        account_document("A1", DAY, "100.0000", [("ACCOUNT", "100.00")]),
        account_document("A2", DAY, "20.0000", [("ACCOUNT", "-20.00")], doc_type="CREDIT", original_invoice_no="A9"),
        account_document("A3", DAY, "7.5000", [("ACCOUNT", "7.50")], status="HELD"),
        account_document("A4", DAY, "40.0000", [("CASH", "10.00"), ("ACCOUNT", "30.00")]),  # part paid at the counter
        account_document("A5", DAY - timedelta(days=1), "1.0000", [("ACCOUNT", "1.00")]),  # another day
        account_document("P1", DAY, "99999999.9900", [("EFTPOS", "99999999.00"), ("ACCOUNT", "0.99")], source="POS"),
        pos_document("P2", DAY, "30.0000", [("CASH", "30.00")]),  # a till sale: takings'
        pos_document("P3", DAY, "5.0000", [("ACCOUNT", "5.00")], status="VOID"),  # voided, still read
        pos_document("W1", DAY, "12.0000", [("ACCOUNT", "12.00")], source="ERETAILER", branch="WEB"),  # the web store's
    ], [("AKL01", DAY, "CASH", "30.00", "30.00")], names)


def test_receivables_are_the_account_documents_and_the_pos_documents_paid_on_account(database):
    receivables_fixture(database)
    statements: list[str] = []

    def count(_connection, _cursor, statement, *_):
        statements.append(statement)

    event.listen(database, "before_cursor_execute", count)
    try:
        found = extract_receivables(database, DAY, DAY)
    finally:
        event.remove(database, "before_cursor_execute", count)
    invoices = found.documents.invoices
    assert list(invoices["invoice_no"]) == ["A1", "A2", "A3", "A4", "P1", "P3"]
    assert list(invoices["source"]) == ["ACCOUNT"] * 4 + ["POS"] * 2
    assert list(invoices["status"]) == ["FINAL", "FINAL", "HELD", "FINAL", "FINAL", "VOID"]  # every status
    assert list(found.documents.lines["invoice_no"]) == ["A1", "A2", "A3", "A4", "P1", "P3"]
    # every tender of those documents, not only the ACCOUNT ones (the others become payments)
    assert list(found.tenders.columns) == TENDER_FRAME_COLUMNS and dtypes(found.tenders) == TENDER_DTYPES
    assert found.tenders[["invoice_no", "tender_no", "tender_type", "amount_cents", "source"]].values.tolist() == [
        ["A1", 1, "ACCOUNT", 10000, "ACCOUNT"], ["A2", 1, "ACCOUNT", -2000, "ACCOUNT"], ["A3", 1, "ACCOUNT", 750, "ACCOUNT"],
        ["A4", 1, "CASH", 1000, "ACCOUNT"], ["A4", 2, "ACCOUNT", 3000, "ACCOUNT"],
        ["P1", 1, "EFTPOS", 9999999900, "POS"], ["P1", 2, "ACCOUNT", 99, "POS"], ["P3", 1, "ACCOUNT", 500, "POS"]]
    assert invoices.set_index("invoice_no").loc["P1", "total_incl_cents"] == 9999999999
    assert found.cash_ups.empty and dtypes(found.cash_ups) == CASH_UP_DTYPES  # the tills' counts are takings'
    assert set(found.branches["branch_code"]) == {"AKL01", "WEB"}
    assert found.excess_decimals.empty and found.orphan_tenders.empty and found.documents.orphan_lines.empty
    # headers, lines, tenders, branches: no cash-up read
    assert len(statements) == 4 and not any("ci_cash_ups" in statement for statement in statements)
    assert set(found.of_source("POS").documents.invoices["invoice_no"]) == {"P1", "P3"}

    # the one read of every source holds the same documents (what the condition picks is what it says)
    everything = extract_sales_with_tenders(database, DAY, DAY)
    paid_on_account = set(everything.tenders.loc[everything.tenders["tender_type"] == "ACCOUNT", "invoice_no"])
    every = everything.documents.invoices
    wanted = every[(every["source"] == "ACCOUNT") | ((every["source"] == "POS") & every["invoice_no"].isin(paid_on_account))]
    pd.testing.assert_frame_equal(invoices, wanted.reset_index(drop=True))

    nothing = extract_receivables(database, date(2020, 1, 1), date(2020, 1, 2))
    assert nothing.documents.empty and nothing.tenders.empty and dtypes(nothing.tenders) == TENDER_DTYPES


def test_the_receivables_change_sensor_sees_account_documents_and_pos_documents_paid_on_account(database):
    receivables_fixture(database)
    changed = changed_documents_since(database, None, source=on_account_documents)
    assert sorted(changed["invoice_no"]) == ["A1", "A2", "A3", "A4", "A5", "P1", "P3"]
    assert list(changed.columns) == ["invoice_no", "business_date", "status", "updated_at"]
    later = changed_documents_since(database, datetime.combine(DAY, datetime.min.time()) + timedelta(hours=11), source=on_account_documents)
    assert later.empty  # every document was made at 11:00
    # the source names keep working as they did
    assert sorted(changed_documents_since(database, None, source="POS")["invoice_no"]) == ["P1", "P2", "P3"]


def test_receivables_through_site_names(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    names = CINames(views={"ci_sales_tenders": "site_payments", "ci_sales_invoices": "site_documents"},
                    columns={"ci_sales_tenders": {"tender_type": "media"}, "ci_sales_invoices": {"source": "origin"}})
    receivables_fixture(engine, names)
    found = extract_receivables(engine, DAY, DAY, names=names)
    assert list(found.documents.invoices["invoice_no"]) == ["A1", "A2", "A3", "A4", "P1", "P3"]
    assert len(found.tenders) == 8
    engine.dispose()


# -- goods received ------------------------------------------------------------------------------------

def receipt(number: str, day: date, lines: list[tuple], *, supplier: str = "SUP01", branch: str = "AKL01",
            status: str = "FINAL", invoice: str | None = "INV-1", updated: datetime | None = None, **totals) -> dict:
    """A receipt with its lines [(sku, quantity, unit cost, gst code, analysis code)]: each line's total
    round(quantity × cost, 2), GST 15 % on S; the receipt's totals Σ its lines unless given."""
    made = datetime.combine(day, datetime.min.time()) + timedelta(hours=9)
    rows = []
    for line_no, (sku, quantity, cost, gst_code, analysis) in enumerate(lines, start=1):
        total = (D(quantity) * D(cost)).quantize(D("0.01"), rounding="ROUND_HALF_UP")
        gst = (total * D("0.15")).quantize(D("0.01"), rounding="ROUND_HALF_UP") if gst_code == "S" else D("0.00")
        rows.append({"receipt_no": number, "line_no": line_no, "sku": sku, "description": f"{sku or 'Freight'} received",
                     "quantity": D(quantity), "unit_cost_excl": D(cost), "line_total_excl": total, "line_gst": gst,
                     "gst_code": gst_code, "analysis_code": analysis})
    header = {
        "receipt_no": number, "supplier_code": supplier, "supplier_name": f"Supplier {supplier}", "branch_code": branch,
        "received_date": day, "supplier_invoice_no": invoice, "status": status, "updated_at": updated or made,
        "currency_code": "NZD", "total_excl": totals.get("total_excl", sum((r["line_total_excl"] for r in rows), D("0.00"))),
        "total_gst": totals.get("total_gst", sum((r["line_gst"] for r in rows), D("0.00"))),
    }
    return {"header": header, "lines": rows}


def fill_receipts(engine: Engine, receipts: list[dict], names: CINames | None = None) -> None:
    tables = create_ci_tables(engine, names, drop=True)
    with engine.begin() as connection:
        connection.execute(tables.branches.insert(), [{"branch_code": "AKL01", "branch_name": "Auckland Queen Street", "active": True}])
        connection.execute(tables.goods_received.insert(), [r["header"] for r in receipts])
        connection.execute(tables.goods_received_lines.insert(), [line for r in receipts for line in r["lines"]])


RECEIPTS = [
    receipt("GR2", DAY, [("AP001-BLK", "24.000", "52.4567", "S", "APPAREL"), (None, "1.000", "185.0000", "Z", "APPAREL")],
            supplier="SUP06", invoice="INV-1"),
    receipt("GR1", DAY, [("FW013-NVY", "2.125", "99999.9999", "S", "FOOTWEAR")], invoice="INV-1"),  # the same number, another supplier
    receipt("GR3", DAY, [("AC020-BLK", "-5.000", "21.3000", "S", "ACCESSORIES")], supplier="SUP03", invoice="CN-9"),  # a return
    receipt("GR4", DAY, [("GF028-WHT", "3.000", "9.9900", "S", "GIFTS")], status="HELD", invoice=None, branch="OLD01"),
    receipt("GR5", DAY, [("GF028-WHT", "1.000", "9.9900", "S", "GIFTS")], status="VOID",
            updated=datetime(2026, 10, 16, 8, 30)),
    receipt("GR6", DAY - timedelta(days=1), [("GF028-WHT", "1.000", "1.0000", "S", "GIFTS")]),  # the day before
    receipt("GR7", DAY, [("AP001-BLK", "100000.000", "999.9999", "S", "APPAREL")]),  # 99,999,990.00: the contract's largest
]


def test_goods_received_extract_exactly_on_every_dialect(database):
    fill_receipts(database, RECEIPTS)
    found = extract_goods_received(database, DAY, DAY)
    assert isinstance(found, GoodsReceived) and len(found) == 6 and not found.empty
    receipts, lines = found.receipts, found.lines
    assert list(receipts.columns) == list(RECEIPT_COLUMNS) and dtypes(receipts) == RECEIPT_DTYPES
    # each line with its receipt's day after receipt_no (the asset store splits a read by day)
    assert list(lines.columns) == ["receipt_no", "business_date", *list(RECEIPT_LINE_COLUMNS)[1:]]
    assert dtypes(lines) == RECEIPT_LINE_DTYPES
    day_of = dict(zip(receipts["receipt_no"], receipts["business_date"]))
    assert [day_of[number] for number in lines["receipt_no"]] == list(lines["business_date"])
    assert receipts.drop(columns=["updated_at"]).values.tolist() == [
        ["GR1", "SUP01", "Supplier SUP01", "AKL01", "Auckland Queen Street", "2026-10-15", "INV-1", "FINAL", "NZD", 21250000, 3187500],
        ["GR2", "SUP06", "Supplier SUP06", "AKL01", "Auckland Queen Street", "2026-10-15", "INV-1", "FINAL", "NZD", 144396, 18884],
        ["GR3", "SUP03", "Supplier SUP03", "AKL01", "Auckland Queen Street", "2026-10-15", "CN-9", "FINAL", "NZD", -10650, -1598],
        ["GR4", "SUP01", "Supplier SUP01", "OLD01", None, "2026-10-15", None, "HELD", "NZD", 2997, 450],
        ["GR5", "SUP01", "Supplier SUP01", "AKL01", "Auckland Queen Street", "2026-10-15", "INV-1", "VOID", "NZD", 999, 150],
        ["GR7", "SUP01", "Supplier SUP01", "AKL01", "Auckland Queen Street", "2026-10-15", "INV-1", "FINAL", "NZD", 9999999000, 1499999850],
    ]
    assert receipts.loc[receipts["receipt_no"] == "GR5", "updated_at"].iloc[0] == pd.Timestamp("2026-10-16 08:30:00")
    assert lines.drop(columns=["business_date"]).values.tolist() == [
        ["GR1", 1, "FW013-NVY", "FW013-NVY received", 2125, 999999999, 21250000, 3187500, "S", "FOOTWEAR"],
        ["GR2", 1, "AP001-BLK", "AP001-BLK received", 24000, 524567, 125896, 18884, "S", "APPAREL"],
        ["GR2", 2, None, "Freight received", 1000, 1850000, 18500, 0, "Z", "APPAREL"],
        ["GR3", 1, "AC020-BLK", "AC020-BLK received", -5000, 213000, -10650, -1598, "S", "ACCESSORIES"],
        ["GR4", 1, "GF028-WHT", "GF028-WHT received", 3000, 99900, 2997, 450, "S", "GIFTS"],
        ["GR5", 1, "GF028-WHT", "GF028-WHT received", 1000, 99900, 999, 150, "S", "GIFTS"],
        ["GR7", 1, "AP001-BLK", "AP001-BLK received", 100000000, 9999999, 9999999000, 1499999850, "S", "APPAREL"],
    ]
    assert found.orphan_lines.empty and found.excess_decimals.empty
    assert list(found.orphan_lines.columns) == RECEIPT_ORPHAN_LINE_COLUMNS
    assert list(found.excess_decimals.columns) == RECEIPT_EXCESS_DECIMAL_COLUMNS

    both = extract_goods_received(database, DAY - timedelta(days=1), DAY)
    assert list(both.receipts["receipt_no"]) == ["GR6", "GR1", "GR2", "GR3", "GR4", "GR5", "GR7"]  # by day, then number
    nothing = extract_goods_received(database, date(2020, 1, 1), date(2020, 1, 31))
    assert nothing.empty and nothing.lines.empty
    assert dtypes(nothing.receipts) == RECEIPT_DTYPES and dtypes(nothing.lines) == RECEIPT_LINE_DTYPES


def test_the_payables_change_sensor_reads_receipts_changed_since(database):
    fill_receipts(database, RECEIPTS)
    every = changed_receipts_since(database, None)
    assert list(every.columns) == ["receipt_no", "business_date", "status", "updated_at"]
    assert len(every) == 7 and every["updated_at"].is_monotonic_increasing
    later = changed_receipts_since(database, datetime(2026, 10, 15, 9, 0))
    assert later.values.tolist() == [["GR5", "2026-10-15", "VOID", pd.Timestamp("2026-10-16 08:30:00")]]


def test_goods_received_through_site_names(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    names = CINames(views={"ci_goods_received": "v_deliveries", "ci_goods_received_lines": "v_delivery_lines"},
                    columns={"ci_goods_received": {"received_date": "delivered_on", "total_excl": "net"},
                             "ci_goods_received_lines": {"unit_cost_excl": "cost", "quantity": "qty"}})
    fill_receipts(engine, RECEIPTS[:2], names)
    found = extract_goods_received(engine, DAY, DAY, names=names)
    assert found.receipts[["receipt_no", "business_date", "total_excl_cents"]].values.tolist() == [
        ["GR1", "2026-10-15", 21250000], ["GR2", "2026-10-15", 144396]]
    assert list(found.lines["unit_cost_excl_x10000"]) == [999999999, 524567, 1850000]
    assert list(changed_receipts_since(engine, None, names=names)["receipt_no"]) == ["GR1", "GR2"]
    engine.dispose()


def test_receipt_values_with_more_decimals_than_the_contract_are_reported_not_rounded(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    fill_receipts(engine, [
        receipt("GR1", DAY, [("AP001-BLK", "1.000", "10.0000", "S", "APPAREL")], total_excl=D("10.005")),
        receipt("GR2", DAY, [("AP001-BLK", "1.0005", "2.12345", "S", "APPAREL")]),
        receipt("GR3", DAY, [("AP001-BLK", "1.000", "3.0000", "S", "APPAREL")]),
    ])
    found = extract_goods_received(engine, DAY, DAY)
    assert {(row.receipt_no, row.line_no if pd.notna(row.line_no) else None, row.column, row.value, row.places)
            for row in found.excess_decimals.itertuples()} == {
        ("GR1", None, "total_excl", "10.005", 2), ("GR2", 1, "quantity", "1.0005", 3), ("GR2", 1, "unit_cost_excl", "2.12345", 4),
    }
    assert (found.excess_decimals["business_date"] == "2026-10-15").all()
    assert found.excess_decimals["reason"].str.contains("it is not rounded: the receipt waits").all()
    assert list(found.receipts["receipt_no"]) == ["GR1", "GR2", "GR3"]  # still read, rounded, for validation to hold back
    engine.dispose()


def test_a_receipt_line_read_without_its_receipt_is_listed_not_dropped(tmp_path):
    path = tmp_path / "ci.sqlite"
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    fill_receipts(engine, [receipt("GR1", DAY, [("AP001-BLK", "1.000", "10.0000", "S", "APPAREL")])])
    writer = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    tables = build_ci_tables()
    written = []

    def the_dock_commits(_connection, _cursor, statement, *_):
        # a receipt is committed between the read of the receipts and the read of their lines
        if not written and "FROM ci_goods_received_lines" in statement:
            written.append(True)
            late = receipt("GR9", DAY, [("AP001-BLK", "2.000", "10.0000", "S", "APPAREL")])
            with writer.begin() as connection:
                connection.execute(tables.goods_received.insert(), [late["header"]])
                connection.execute(tables.goods_received_lines.insert(), late["lines"])

    event.listen(engine, "before_cursor_execute", the_dock_commits)
    try:
        found = extract_goods_received(engine, DAY, DAY)
    finally:
        event.remove(engine, "before_cursor_execute", the_dock_commits)
        writer.dispose()
    assert written and list(found.receipts["receipt_no"]) == ["GR1"] and list(found.lines["receipt_no"]) == ["GR1"]
    orphan = found.orphan_lines
    assert orphan[["business_date", "receipt_no", "line_no", "line_total_excl_cents", "line_gst_cents"]].values.tolist() == [
        ["2026-10-15", "GR9", 1, 2000, 300]]
    assert "read without its receipt (GR9 is FINAL" in orphan["reason"].iloc[0] and "run the day again" in orphan["reason"].iloc[0]
    engine.dispose()


def test_a_view_that_repeats_a_receipt_keeps_both_rows_and_its_lines_once(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    fill_receipts(engine, [receipt("GR1", DAY, [("AP001-BLK", "1.000", "10.0000", "S", "APPAREL"), ("AP001-BLK", "2.000", "1.0000", "S", "APPAREL")])])
    with engine.begin() as connection:
        connection.execute(text("CREATE VIEW v_receipts AS SELECT * FROM ci_goods_received UNION ALL SELECT * FROM ci_goods_received"))
    found = extract_goods_received(engine, DAY, DAY, names=CINames(views={"ci_goods_received": "v_receipts"}))
    assert list(found.receipts["receipt_no"]) == ["GR1", "GR1"]  # validation decides; nothing is hidden
    assert found.lines[["receipt_no", "line_no"]].values.tolist() == [["GR1", 1], ["GR1", 2]]
    engine.dispose()


# -- unit costs (cost of goods sold) --------------------------------------------------------------------

def test_a_unit_cost_with_more_than_4_decimals_is_reported_apart_and_quarantines_no_sales_document(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    create_ci_tables(engine, drop=True)
    made = datetime(2026, 10, 15, 10)
    insert_documents(engine, [
        {"invoice_no": "W1", "branch_code": "WEB", "business_date": DAY, "created_at": made},
        {"invoice_no": "W2", "branch_code": "WEB", "business_date": DAY, "created_at": made},
        {"invoice_no": "W3", "branch_code": "WEB", "business_date": DAY, "created_at": made},
    ], [
        {"invoice_no": "W1", "line_no": 1, "sku": "AP001", "description": "Jumper", "quantity": D("1.000"),
         "unit_price_incl": D("10.0000"), "analysis_code": "APPAREL", "unit_cost_excl": D("4.12345")},
        {"invoice_no": "W2", "line_no": 1, "sku": "AP001", "description": "Jumper", "quantity": D("1.000"),
         "unit_price_incl": D("10.00005"), "line_total_incl": D("10.00"), "line_gst": D("1.30"), "analysis_code": "APPAREL",
         "unit_cost_excl": D("4.00001")},
        {"invoice_no": "W3", "line_no": 1, "sku": "AP001", "description": "Jumper", "quantity": D("1.000"),
         "unit_price_incl": D("10.0000"), "analysis_code": "APPAREL", "unit_cost_excl": D("4.1234")},
    ], branches=[{"branch_code": "WEB", "branch_name": "Online Store", "active": True}])
    found = extract_sales_documents(engine, DAY, DAY, source=None)
    assert list(found.cost_excess_decimals.columns) == EXCESS_DECIMAL_COLUMNS
    assert found.cost_excess_decimals[["invoice_no", "line_no", "column", "value", "places"]].values.tolist() == [
        ["W1", 1, "unit_cost_excl", "4.12345", 4], ["W2", 1, "unit_cost_excl", "4.00001", 4]]
    assert found.cost_excess_decimals["reason"].str.contains("its cost of goods sold waits").all()
    # the price is the sales documents' concern, as before; a cost alone holds back no sales document
    assert found.excess_decimals[["invoice_no", "column", "value"]].values.tolist() == [["W2", "unit_price_incl", "10.00005"]]
    assert list(found.lines["unit_cost_excl_x10000"])[1:] == [40000, 41234]  # rounded in the frame, reported beside it
    checked = validate_sales_documents(found, WEB_RULES)
    assert set(checked.quarantine["invoice_no"]) == {"W2"}
    # the reads that split by source keep the cost report with its documents
    read = extract_sales_with_tenders(engine, DAY, DAY)
    assert list(read.of_source("ERETAILER").documents.cost_excess_decimals["invoice_no"]) == ["W1", "W2"]
    engine.dispose()


# -- the demo database ----------------------------------------------------------------------------------

def test_the_demos_receivables_read_matches_the_whole_read(demo_ci_url):
    engine = engine_for(demo_ci_url)
    found = extract_receivables(engine, FIRST_DAY, DEMO_END_DAY)
    everything = extract_sales_with_tenders(engine, FIRST_DAY, DEMO_END_DAY)
    on_account = set(everything.tenders.loc[everything.tenders["tender_type"] == "ACCOUNT", "invoice_no"])
    every = everything.documents.invoices
    keep = (every["source"] == "ACCOUNT") | ((every["source"] == "POS") & every["invoice_no"].isin(on_account))
    pd.testing.assert_frame_equal(found.documents.invoices, every[keep].reset_index(drop=True))
    numbers = set(found.documents.invoices["invoice_no"])
    lines = everything.documents.lines
    pd.testing.assert_frame_equal(found.documents.lines, lines[lines["invoice_no"].isin(numbers)].reset_index(drop=True))
    tenders = everything.tenders
    pd.testing.assert_frame_equal(found.tenders, tenders[tenders["invoice_no"].isin(numbers)].reset_index(drop=True))
    assert {"ACCOUNT", "POS"} == set(found.documents.invoices["source"])
    assert len(found.documents.invoices) > 20 and found.cash_ups.empty


def test_the_demo_database_on_each_dialect_holds_the_new_scenarios(database):
    summary = create_demo_database(database, days=5, end_day=DEMO_END_DAY, branches=5, invoices_per_day=(4, 6), lines_per_invoice=(1, 3))
    first = summary.first_day
    receivables = extract_receivables(database, first, DEMO_END_DAY)
    invoices, lines = receivables.documents.invoices.set_index("invoice_no"), receivables.documents.lines
    for name, scenario in summary.receivables_scenarios.items():
        assert set(scenario.numbers) <= set(invoices.index), name
    [long] = lines.loc[lines["description"].str.len() > 4000, "description"].tolist()  # the server keeps all of it
    assert long.startswith("Pique Polo Shirt") and len(long) > 4000
    assert invoices.loc["A3900008", "total_incl_cents"] == lines.loc[lines["invoice_no"] == "A3900008", "line_total_incl_cents"].sum()
    goods = extract_goods_received(database, first, DEMO_END_DAY)
    assert len(goods.receipts) == summary.goods_received and len(goods.lines) == summary.goods_received_lines
    assert goods.excess_decimals.empty and goods.orphan_lines.empty
    sums = goods.lines.groupby("receipt_no")[["line_total_excl_cents", "line_gst_cents"]].sum()
    header = goods.receipts.set_index("receipt_no")
    assert (header["total_excl_cents"] == sums["line_total_excl_cents"].reindex(header.index)).all()
    assert (header["total_gst_cents"] == sums["line_gst_cents"].reindex(header.index)).all()
    assert set(summary.payables_scenarios) == {"same_number_two_suppliers", "same_supplier_repeats_number", "goods_returned",
                                              "held_receipt", "void_receipt", "zero_rated_lines"}
    assert header.loc["GR490005", "total_excl_cents"] < 0

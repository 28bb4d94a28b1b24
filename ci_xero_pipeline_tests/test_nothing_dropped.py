"""Nothing is dropped without a word (issue 9, point 7): a header row the site's view repeats, lines
read without their document, money with more decimals than the contract, descriptions and tracking
option names cut to Xero's limits, Xero's own page count, and CI names renamed through the settings.

CI databases are small SQLite files built with the demo's create_ci_tables / insert_documents; the
site's views are SQLite views over them, named through CINames."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import responses
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from ci_xero_pipeline.books.eretailer import (
    DESCRIPTION_LIMIT, OPTION_LIMIT, build_eretailer_documents, build_eretailer_documents_with_notices,
)
from ci_xero_pipeline.books.rules import EretailerRules
from ci_xero_pipeline.books.schemas import NOTICE_COLUMNS
from ci_xero_pipeline.books.validation import ORPHAN_LINE_COLUMNS, validate_sales_documents
from ci_xero_pipeline.ci.demo import create_ci_tables, create_demo_database, insert_documents
from ci_xero_pipeline.ci.extract import EXCESS_DECIMAL_COLUMNS, changed_documents_since, extract_sales_documents
from ci_xero_pipeline.ci.tables import CINames, build_ci_tables
from ci_xero_pipeline.settings import SiteSettings

from .sales_frames import document as frame_document
from .sales_frames import frames, line

ACCOUNTS = {"APPAREL": "201", "FOOTWEAR": "202", "FREIGHT": "205"}
DAY = date(2026, 10, 15)
ISO_DAY = DAY.isoformat()


def rules(**changes) -> EretailerRules:
    return EretailerRules(sales_accounts=ACCOUNTS, **changes)


@pytest.fixture
def ci(tmp_path) -> Engine:
    """An empty CI database (the contract's tables) with the web branch."""
    engine = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    create_ci_tables(engine)
    insert_documents(engine, [], branches=[{"branch_code": "WEB", "branch_name": "Online Store", "active": True}])
    yield engine
    engine.dispose()


def ci_document(number: str, *lines: dict, day: date = DAY, **values) -> tuple[dict, list[dict]]:
    invoice = {"invoice_no": number, "branch_code": "WEB", "business_date": day,
               "created_at": datetime.combine(day, datetime.min.time()) + timedelta(hours=10), **values}
    return invoice, [{"invoice_no": number, "line_no": n, "description": f"Item {n}", "analysis_code": "APPAREL",
                      "quantity": Decimal("1.000"), **item} for n, item in enumerate(lines, start=1)]


def insert(engine: Engine, *documents: tuple[dict, list[dict]]) -> None:
    insert_documents(engine, [d[0] for d in documents], [item for d in documents for item in d[1]])


def price(amount: str) -> dict:
    return {"unit_price_incl": Decimal(amount)}


# ---------------------------------------------------------------------------------------------------
# 1. A header row the site's view repeats


def test_a_repeated_header_row_is_quarantined_with_its_reason_not_a_crash(ci):
    insert(ci, ci_document("W1", price("10.0000"), price("5.0000")), ci_document("W2", price("20.0000")))
    with ci.begin() as connection:  # the site's view repeats W1 (e.g. a join that matches twice)
        connection.execute(text(
            "CREATE VIEW v_invoices AS SELECT * FROM ci_sales_invoices "
            "UNION ALL SELECT * FROM ci_sales_invoices WHERE invoice_no = 'W1'"
        ))
    names = CINames(views={"ci_sales_invoices": "v_invoices"})

    documents = extract_sales_documents(ci, DAY, DAY, names=names)
    assert sorted(documents.invoices["invoice_no"]) == ["W1", "W1", "W2"]  # both rows, as the view gave them
    assert list(zip(documents.lines["invoice_no"], documents.lines["line_no"])) == [("W1", 1), ("W1", 2), ("W2", 1)]
    assert documents.orphan_lines.empty and documents.excess_decimals.empty

    validated = validate_sales_documents(documents, rules())
    assert list(validated.invoices["invoice_no"]) == ["W2"]
    held = validated.quarantine[validated.quarantine["invoice_no"] == "W1"]
    assert list(held["check"]) == ["duplicate_header"]  # one clear reason, not a cascade of sums
    reason = held["reason"].iloc[0]
    assert reason.startswith("W1: ci_sales_invoices returned 2 header rows for this one document") and "once" in reason
    assert held["total_incl_cents"].iloc[0] == 1500 and held["business_date"].iloc[0] == ISO_DAY

    for mode in ("summary", "detail"):
        chosen = rules(mode=mode)
        assert build_eretailer_documents(validated.invoices, validated.lines, chosen)["total_cents"].sum() == 2000
        # handed the unvalidated rows, the builder leaves W1 out with a notice instead of posting it twice
        built, notices = build_eretailer_documents_with_notices(documents.invoices, documents.lines, chosen)
        assert built["total_cents"].sum() == 2000
        assert notices[["invoice_no", "kind"]].values.tolist() == [["W1", "duplicate_header"]]


def test_a_repeated_document_that_is_not_final_is_skipped_once_with_a_notice():
    source = frames([
        frame_document("W5", ISO_DAY, [line("1", "10.00")], status="VOID"),
        frame_document("W5", ISO_DAY, [], status="HELD"),
        frame_document("W6", ISO_DAY, [line("1", "10.00")]),
    ])
    validated = validate_sales_documents(source, rules())
    assert list(validated.invoices["invoice_no"]) == ["W6"] and validated.quarantine.empty
    # taken as HELD: an ambiguous VOID never takes a posted document back
    assert validated.skipped[["invoice_no", "status"]].values.tolist() == [["W5", "HELD"]]
    assert list(validated.notices.columns) == NOTICE_COLUMNS
    assert validated.notices[["business_date", "invoice_no", "kind"]].values.tolist() == [[ISO_DAY, "W5", "duplicate_header"]]
    assert "2 header rows" in validated.notices["message"].iloc[0]


# ---------------------------------------------------------------------------------------------------
# 2. Lines whose header the read did not return


def test_lines_read_without_their_document_are_listed_not_dropped(ci, tmp_path):
    insert(ci, ci_document("W1", price("10.0000")))
    writer = create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}", poolclass=NullPool)
    written = []

    def another_till_commits(_connection, _cursor, statement, *_):
        # CI commits a document after the headers were read, before its lines are
        if not written and "FROM ci_sales_invoice_lines" in statement:
            written.append(True)
            insert(writer, ci_document("W9", price("7.0000"), price("3.0000")))

    event.listen(ci, "before_cursor_execute", another_till_commits)
    try:
        documents = extract_sales_documents(ci, DAY, DAY)
    finally:
        event.remove(ci, "before_cursor_execute", another_till_commits)
        writer.dispose()
    assert written and list(documents.invoices["invoice_no"]) == ["W1"] and list(documents.lines["invoice_no"]) == ["W1"]
    orphans = documents.orphan_lines
    assert list(orphans.columns) == ORPHAN_LINE_COLUMNS
    assert orphans[["business_date", "invoice_no", "line_no", "line_total_incl_cents"]].values.tolist() == [
        [ISO_DAY, "W9", 1, 700], [ISO_DAY, "W9", 2, 300]]
    assert orphans["reason"].str.startswith("W9 line ").all() and orphans["reason"].str.contains("run the day again").all()

    validated = validate_sales_documents(documents, rules())
    assert list(validated.invoices["invoice_no"]) == ["W1"]
    assert validated.orphan_lines[["invoice_no", "line_no"]].values.tolist() == [["W9", 1], ["W9", 2]]


def test_lines_of_no_document_of_the_read_are_listed_by_validation_and_the_builder():
    source = frames([frame_document("W1", ISO_DAY, [line("1", "10.00")]), frame_document("X7", ISO_DAY, [line("2", "4.00")])])
    lines = source.lines.copy()
    source = type(source)(source.invoices[source.invoices["invoice_no"] == "W1"].reset_index(drop=True), lines)
    validated = validate_sales_documents(source, rules())
    assert list(validated.lines["invoice_no"]) == ["W1"]
    orphans = validated.orphan_lines
    assert orphans[["business_date", "invoice_no", "line_no", "line_total_incl_cents"]].values.tolist() == [[ISO_DAY, "X7", 1, 800]]
    assert orphans["reason"].iloc[0].startswith("X7 line 1: no document of the read has this invoice_no")

    for mode in ("summary", "detail"):  # the builder too: left out with a notice (Detail raised KeyError)
        built, notices = build_eretailer_documents_with_notices(source.invoices, lines, rules(mode=mode))
        assert built["total_cents"].tolist() == [1000]
        assert notices[["invoice_no", "line_no", "kind"]].values.tolist() == [["X7", 1, "orphan_line"]]


# ---------------------------------------------------------------------------------------------------
# 3. Money with more than 2 decimals


@pytest.mark.parametrize("view", ["numeric", "text"])
def test_money_with_more_than_two_decimals_is_reported_and_quarantined_never_rounded(ci, view):
    insert(
        ci,
        ci_document("W1", {"unit_price_incl": Decimal("12.3450"), "line_total_incl": Decimal("12.345"), "line_gst": Decimal("1.61")}),
        ci_document("W2", price("20.0000"), price("0.1000")),
        ci_document("W3", {"unit_price_incl": Decimal("10.00001")}),  # a 5th decimal on a unit price
    )
    names = None
    if view == "text":  # a view whose money is text: trailing zeros are no decimals, a third decimal is
        with ci.begin() as connection:
            connection.execute(text(
                "CREATE VIEW v_lines AS SELECT invoice_no, line_no, sku, description, quantity, unit_price_incl, "
                "discount_incl, CASE WHEN invoice_no = 'W1' THEN CAST(line_total_incl AS TEXT) "
                "ELSE printf('%.2f', line_total_incl) END AS line_total_incl, printf('%.2f', line_gst) AS line_gst, "
                "gst_code, analysis_code, unit_cost_excl FROM ci_sales_invoice_lines"
            ))
        names = CINames(views={"ci_sales_invoice_lines": "v_lines"})
    documents = extract_sales_documents(ci, DAY, DAY, names=names)
    found = documents.excess_decimals
    assert list(found.columns) == EXCESS_DECIMAL_COLUMNS
    assert {(row.invoice_no, None if pd.isna(row.line_no) else int(row.line_no), row.column, row.value)
            for row in found.itertuples()} == {
        ("W1", None, "total_incl", "12.345"), ("W1", 1, "line_total_incl", "12.345"),
        ("W3", 1, "unit_price_incl", "10.00001"),
    }
    assert set(found["business_date"]) == {ISO_DAY}

    validated = validate_sales_documents(documents, rules())
    assert list(validated.invoices["invoice_no"]) == ["W2"]
    quarantine = validated.quarantine
    excess = quarantine[quarantine["check"] == "excess_decimals"]
    assert set(excess["invoice_no"]) == {"W1", "W3"}
    line_reason = excess[(excess["invoice_no"] == "W1") & excess["line_no"].notna()]["reason"].iloc[0]
    assert line_reason.startswith("W1 line 1: line_total_incl is 12.345 in CI, with more than the 2 decimals")
    assert "not rounded" in line_reason


def test_clean_money_is_not_taken_for_excess_decimals(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    summary = create_demo_database(url, days=2, end_day=DAY, branches=3, invoices_per_day=(30, 30),
                                   lines_per_invoice=(1, 5), include_other_processes=False)
    engine = create_engine(url, poolclass=NullPool)
    documents = extract_sales_documents(engine, summary.first_day, DAY, source=None)
    engine.dispose()
    assert len(documents.lines) == summary.sales_invoice_lines
    assert documents.excess_decimals.empty and documents.orphan_lines.empty


# ---------------------------------------------------------------------------------------------------
# 4. Descriptions cut to 4,000 characters and branch option names cut to 50


def test_a_description_cut_to_xeros_limit_is_a_notice():
    long_text = "Merino " * 700  # 4,900 characters
    source = frames([frame_document("W1", ISO_DAY, [line("1", "10.00"), line("1", "5.00", description=long_text)])])
    validated = validate_sales_documents(source, rules())
    built, notices = build_eretailer_documents_with_notices(validated.invoices, validated.lines, rules(mode="detail"))
    descriptions = [item["Description"] for item in built["payload"].iloc[0]["LineItems"]]
    assert len(descriptions[1]) == DESCRIPTION_LIMIT and descriptions[0] == "Merino crew tee"
    assert notices[["business_date", "invoice_no", "line_no", "kind"]].values.tolist() == [[ISO_DAY, "W1", 2, "description_cut"]]
    assert "4,900 characters" in notices["message"].iloc[0]


LONG = "Auckland Central Flagship Store and Click-and-Collect Depot"  # 59 characters


@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_two_branches_never_merge_into_one_option_and_each_cut_is_a_notice(mode):
    branches = {"WEB": "Online Store", "AKL01": LONG + " North", "AKL02": LONG + " South", "POP1": "Pop-up", "POP2": "Pop-up"}
    docs = [frame_document(f"W{n}", ISO_DAY, [line("1", f"{10 + n}.00")], branch=branch)
            for n, branch in enumerate(["WEB", "AKL01", "AKL02", "POP1", "POP2"])]
    chosen = rules(mode=mode, summary_grouping="day")
    validated = validate_sales_documents(frames(docs, branches=branches), chosen)
    built, notices = build_eretailer_documents_with_notices(validated.invoices, validated.lines, chosen)
    options = {}
    for payload in built["payload"]:
        for item in payload["LineItems"]:
            options.setdefault(item["Tracking"][0]["Option"], set()).add(item["LineAmount"])
    assert len(options) == 5, options  # five branches, five options: nothing merged
    assert all(len(name) <= OPTION_LIMIT for name in options)
    assert "Online Store" in options
    assert {name for name in options if name.endswith(("(AKL01)", "(AKL02)", "(POP1)", "(POP2)"))} == set(options) - {"Online Store"}
    kinds = notices.groupby("kind").size().to_dict()
    assert kinds == {"option_cut": 2, "option_renamed": 2}
    assert notices["business_date"].eq(ISO_DAY).all() and notices["invoice_no"].isna().all()
    cut = notices[notices["kind"] == "option_cut"]["message"].iloc[0]
    assert "65 characters" in cut and "(AKL01)" in cut


def test_a_cut_option_name_does_not_depend_on_the_other_branches_of_the_run():
    branches = {"AKL01": LONG + " North", "AKL02": LONG + " South"}
    alone = frames([frame_document("W1", ISO_DAY, [line("1", "10.00")], branch="AKL01")], branches=branches)
    both = frames([frame_document("W1", ISO_DAY, [line("1", "10.00")], branch="AKL01"),
                   frame_document("W2", ISO_DAY, [line("1", "10.00")], branch="AKL02")], branches=branches)
    chosen = rules(mode="detail")

    def option_of_w1(source) -> str:
        built = build_eretailer_documents(source.invoices, source.lines, chosen).set_index("number")
        return built.loc["W1", "payload"]["LineItems"][0]["Tracking"][0]["Option"]

    assert option_of_w1(alone) == option_of_w1(both)
    # a site that maps two branches to one option on purpose keeps it
    mapped = rules(mode="detail", tracking_options={"AKL01": "Auckland", "AKL02": "Auckland"})
    built, notices = build_eretailer_documents_with_notices(both.invoices, both.lines, mapped)
    assert {p["LineItems"][0]["Tracking"][0]["Option"] for p in built["payload"]} == {"Auckland"} and notices.empty


# ---------------------------------------------------------------------------------------------------
# 5. Paging reads Xero's own page count

API = "https://api.xero.test/api.xro/2.0"


class FixedToken:
    def token(self) -> dict:
        return {"access_token": "token"}


def _client():
    from ci_xero_pipeline.xero.client import XeroClient
    from ci_xero_pipeline.xero.pacing import PacingLimits, TenantPacer

    return XeroClient(FixedToken(), "tenant", API, pacer=TenantPacer(PacingLimits(60, 5, 60, 0)))


@responses.activate
def test_get_all_follows_xeros_page_count_whatever_page_size_it_gives():
    def page_of(request):
        page = int(request.params["page"])
        numbers = range((page - 1) * 100, min(page * 100, 250))  # Xero gives 100 a page, not the 1000 asked
        body = {"Invoices": [{"InvoiceNumber": f"ER-{n}"} for n in numbers],
                "pagination": {"page": page, "pageSize": 100, "pageCount": 3, "itemCount": 250}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback(responses.GET, f"{API}/Invoices", callback=page_of)
    client = _client()
    found = client.get_all("Invoices", "Invoices", {"page": 1, "pageSize": 1000})
    assert len(found) == 250 and len({d["InvoiceNumber"] for d in found}) == 250
    assert [int(call.request.params["page"]) for call in responses.calls] == [1, 2, 3]


@responses.activate
def test_get_all_stops_at_the_last_page_xero_counts():
    def page_of(request):
        page = int(request.params["page"])
        body = {"Contacts": [{"Name": f"C{n}"} for n in range(2)] if page == 1 else [],
                "pagination": {"page": page, "pageSize": 2, "pageCount": 1, "itemCount": 2}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback(responses.GET, f"{API}/Contacts", callback=page_of)
    found = _client().get_all("Contacts", "Contacts", {"page": 1, "pageSize": 2})
    assert len(found) == 2 and len(responses.calls) == 1  # a full last page asks for no empty page after it


def test_get_all_against_the_sandbox_reads_its_page_count(sandbox, monkeypatch):
    from ci_xero_pipeline.xero.client import XeroClient

    from .test_sandbox_accounting import connect, invoice, tenant_named, with_line

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    token = connect(sandbox)
    tenant = tenant_named(sandbox, token, "Test Retail Ltd")

    class Token:
        def token(self) -> dict:
            return token

    client = XeroClient(Token(), tenant, f"{sandbox.base_url}/api.xro/2.0")
    documents = [(f"k{n}", with_line(invoice(f"ER-PG{n}", Contact={"Name": f"Customer {n}"}), Tracking=None)) for n in range(4)]
    assert all(outcome.ok for outcome in client.create_documents("Invoices", documents))
    answer = client.request("GET", "Invoices", params={"page": 1, "pageSize": 2})
    assert answer["pagination"] == {"page": 1, "pageSize": 2, "pageCount": 2, "itemCount": 4}
    before = client.calls.by_kind[("GET", "Invoices")]
    assert len(client.get_all("Invoices", "Invoices", {"page": 1, "pageSize": 2})) == 4
    assert client.calls.by_kind[("GET", "Invoices")] - before == 2  # two pages, no third (empty) one
    contacts = client.request("GET", "Contacts", params={"page": 1, "pageSize": 3})
    assert contacts["pagination"]["pageCount"] == -(-contacts["pagination"]["itemCount"] // 3)
    assert len(client.get_all("Contacts", "Contacts", {"page": 1, "pageSize": 3})) == contacts["pagination"]["itemCount"]


# ---------------------------------------------------------------------------------------------------
# 6. CI view and column names renamed in the settings


def site_settings(ci_names: dict | None = None) -> SiteSettings:
    values = {
        "site_name": "Test site", "first_trading_day": "2026-01-01", "mapping": {"sales_accounts": ACCOUNTS},
        "xero": {"client_id": "x"},
    }
    if ci_names is not None:
        values["ci_names"] = ci_names
    return SiteSettings.model_validate(values)


def test_ci_view_and_column_names_are_settings(tmp_path):
    assert site_settings().ci_names.names() == CINames()
    settings = site_settings({
        "views": {"ci_sales_invoices": "site_invoices", "ci_sales_invoice_lines": "site_lines", "ci_branches": "site_shops"},
        "columns": {"ci_sales_invoices": {"total_incl": "grand_total", "business_date": "trading_day"},
                    "ci_sales_invoice_lines": {"line_total_incl": "amount", "invoice_no": "doc_no"},
                    "ci_branches": {"branch_name": "shop_name"}},
    })
    names = settings.ci_names.names()
    assert names.view("ci_sales_invoices") == "site_invoices" and names.column("ci_sales_invoice_lines", "invoice_no") == "doc_no"

    engine = create_engine(f"sqlite:///{tmp_path / 'site.sqlite'}", poolclass=NullPool)
    create_ci_tables(engine, names)
    insert_documents(engine, [], branches=[{"branch_code": "WEB", "branch_name": "Web Shop", "active": True}], names=names)
    invoice, lines = ci_document("W40", {"quantity": Decimal("2.000"), "unit_price_incl": Decimal("7.5000")})
    insert_documents(engine, [invoice], lines, names)
    documents = extract_sales_documents(engine, DAY, DAY, names=settings.ci_names.names())
    assert documents.invoices[["invoice_no", "branch_name", "total_incl_cents"]].values.tolist() == [["W40", "Web Shop", 1500]]
    assert documents.lines["line_total_incl_cents"].tolist() == [1500]
    assert list(changed_documents_since(engine, None, names=names)["invoice_no"]) == ["W40"]
    engine.dispose()

    from ci_xero_pipeline.settings import SettingsError, load_settings

    for wrong, words in (
        ({"views": {"ci_no_such_view": "x"}}, "not views of the CI contract"),
        ({"columns": {"ci_sales_invoices": {"no_such_column": "x"}}}, "not columns of ci_sales_invoices"),
        ({"columns": {"ci_sales_invoices": {"total_incl": "total_gst"}}}, "more than one contract column"),
        ({"views": {"ci_sales_invoices": " "}}, "is empty"),
        ({"view": {}}, "is not a known setting"),
    ):
        path = tmp_path / "site.yaml"
        import yaml

        path.write_text(yaml.safe_dump({
            "site_name": "Test site", "first_trading_day": "2026-01-01", "mapping": {"sales_accounts": ACCOUNTS},
            "xero": {"client_id": "x"}, "ci_names": wrong,
        }))
        with pytest.raises(SettingsError, match=words):
            load_settings(path)


def test_a_schema_qualified_view_name_is_a_schema_and_a_view():
    tables = build_ci_tables(CINames(views={"ci_sales_invoices": "dbo.v_ci_invoices"}))
    assert (tables.sales_invoices.schema, tables.sales_invoices.name) == ("dbo", "v_ci_invoices")
    assert (tables.branches.schema, tables.branches.name) == (None, "ci_branches")


def test_days_stored_before_these_reports_existed_read_back_with_them_empty():
    import pickle

    from ci_xero_pipeline.books.validation import ValidatedSales
    from ci_xero_pipeline.ci.extract import SalesDocuments

    for cls, fields in ((SalesDocuments, ("invoices", "lines")), (ValidatedSales, ("invoices", "lines", "quarantine", "skipped"))):
        old = object.__new__(cls)
        old.__dict__.update({name: pd.DataFrame({"business_date": [ISO_DAY]}) for name in fields})  # as an old day's pickle holds it
        again = pickle.loads(pickle.dumps(old))
        extra = [name for name in ("orphan_lines", "excess_decimals", "notices") if hasattr(cls, "__dataclass_fields__") and name in cls.__dataclass_fields__]
        assert extra and all(getattr(again, name).empty and "business_date" in getattr(again, name).columns for name in extra)

"""Cost of goods sold, pure: validation per branch-day and the manual journals (processes.md §4).

The expected figures are worked out here with Decimal from the handcrafted CI rows (quantity × unit cost,
summed per COGS account, rounded once), never from the code under test; every journal is checked against
Xero's OpenAPI spec (the committed subset test_client_conformance uses)."""

from __future__ import annotations

import dataclasses
import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd
import pytest
import requests

from ci_xero_pipeline.books.cogs import (
    NARRATION_LIMIT,
    NOTHING_TO_POST,
    CogsRules,
    build_cogs_journals,
    check_cogs_books,
    cogs_narration,
    cogs_source_evidence,
    line_cost_units,
    validate_cogs,
)
from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS
from ci_xero_pipeline.ci.extract import SalesDocuments
from ci_xero_pipeline.io_manager import combine_days, split_by_day
from ci_xero_pipeline.money import dumps_exact

from .sales_frames import BRANCHES, document, frames, line
from .test_client_conformance import SCHEMA_FILE, TENANT, XeroContract

D = Decimal
DAY, NEXT_DAY = "2026-10-01", "2026-10-02"
COGS = {"APPAREL": "310", "FOOTWEAR": "311", "GIFTS": "310"}
INVENTORY = "631"


def rules(**changes: Any) -> CogsRules:
    return CogsRules(**{"cogs_accounts": COGS, "inventory_account": INVENTORY, **changes})


def stock(quantity: str, price: str, cost: str | None, analysis_code: str = "APPAREL", sku: str | None = "SKU1", **changes: Any) -> dict:
    """A CI line with its unit_cost_excl (None: CI holds none)."""
    return line(quantity, price, analysis_code=analysis_code, sku=sku, unit_cost_excl=cost, **changes)


def sale(number: str, lines: list[dict], day: str = DAY, branch: str = "AKL01", source: str = "POS", **changes: Any) -> dict:
    return document(number, day, lines, branch=branch, source=source, **changes)


def read(docs: list[dict]) -> SalesDocuments:
    """The read extraction gives for these documents, each line with its unit_cost_excl."""
    built = frames(docs, {**BRANCHES, "CHC01": "Christchurch Riccarton"})
    costs = [item.get("unit_cost_excl") for doc in docs for item in doc["lines"]]
    built.lines["unit_cost_excl_x10000"] = pd.array(
        [None if cost is None else int(D(cost) * 10000) for cost in costs], dtype="Int64")
    return SalesDocuments(built.invoices, built.lines)


def books_of(docs: list[dict], site: CogsRules | None = None):
    site = site or rules()
    validated = validate_cogs(read(docs), site)
    books = build_cogs_journals(validated, site)
    problems = check_cogs_books(validated, books, site)
    assert problems.empty, problems.to_dict("records")
    return validated, books


def journal(books, branch: str = "AKL01", day: str = DAY) -> dict:
    rows = books.documents[(books.documents["branch_code"] == branch) & (books.documents["business_date"] == day)]
    assert len(rows) == 1, rows
    return rows.iloc[0].to_dict()


def by_account(payload: dict) -> dict[str, Decimal]:
    found: dict[str, Decimal] = {}
    for item in payload["JournalLines"]:
        found[item["AccountCode"]] = found.get(item["AccountCode"], D(0)) + item["LineAmount"]
    return found


def half_up(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def contract() -> XeroContract:
    return XeroContract(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def spec_problems(contract: XeroContract, payloads: list[dict]) -> list[str]:
    request = requests.Request(
        "PUT", "https://api.xero.com/api.xro/2.0/ManualJournals", params={"summarizeErrors": "false"},
        data=dumps_exact({"ManualJournals": payloads}).encode(), headers=TENANT,
    ).prepare()
    return contract.request_problems("accounting", "/ManualJournals", request)


# -- the journal of a branch-day ------------------------------------------------------------------------

def test_a_branch_day_is_one_posted_journal_debiting_cogs_per_account_and_crediting_inventory(contract):
    docs = [
        sale("P1", [stock("2", "49.00", "18.5000"), stock("1", "120.00", "55.2500", "FOOTWEAR"),
                    line("1", "9.00", sku=None, analysis_code="FREIGHT")]),  # freight: no stock, no cost
        sale("W1", [stock("1", "35.00", "12.1000", "GIFTS")], source="ERETAILER"),  # every source is costed
        sale("A1", [stock("3", "10.00", "4.0000")], source="ACCOUNT"),
        sale("P2", [stock("1", "60.00", "20.0000")], branch="WLG01"),
    ]
    validated, books = books_of(docs)
    assert validated.quarantine.empty and list(books.documents.columns) == DOCUMENT_COLUMNS
    akl = journal(books)
    # APPAREL and GIFTS share account 310: 2 × 18.50 + 12.10 + 3 × 4.00
    assert by_account(akl["payload"]) == {"310": D("61.10"), "311": D("55.25"), INVENTORY: D("-116.35")}
    assert (akl["endpoint"], akl["status"], akl["total_cents"], akl["tax_cents"]) == ("ManualJournals", "POSTED", 11635, 0)
    assert akl["ci_invoice_nos"] == ("A1", "P1", "W1")  # the documents with stock lines
    assert akl["document_key"] == "cogs/AKL01/2026-10-01"
    payload = akl["payload"]
    assert payload["Narration"] == akl["number"] == "CI cost of goods sold AKL01 2026-10-01 [ci-xero cogs/AKL01/2026-10-01]"
    assert (payload["Date"], payload["Status"], payload["LineAmountTypes"]) == (DAY, "POSTED", "NoTax")
    assert sum(item["LineAmount"] for item in payload["JournalLines"]) == 0
    assert {json.dumps(item["Tracking"]) for item in payload["JournalLines"]} == {
        json.dumps([{"Name": "CI Branches", "Option": "Auckland Queen Street"}])}
    assert [item["Description"] for item in payload["JournalLines"][:2]] == ["COGS APPAREL, GIFTS", "COGS FOOTWEAR"]
    wlg = journal(books, "WLG01")
    assert by_account(wlg["payload"]) == {"310": D("20.00"), INVENTORY: D("-20.00")}
    assert spec_problems(contract, list(books.documents["payload"])) == []


def test_the_cost_is_rounded_once_per_account_not_line_by_line():
    # each line costs 0.0049 (rounds to 0.00 on its own); the account's Σ 0.0098 rounds to 0.01
    lines = [stock("1", "1.00", "0.0049", sku=f"S{n}") for n in range(2)]
    # 1.333 × 2.2222 = 2.9621926 and 0.667 × 2.2222 = 1.4822074: Σ 4.4444 → 4.44 (line by line: 2.96 + 1.48)
    lines += [stock("1.333", "5.00", "2.2222", "FOOTWEAR"), stock("0.667", "5.00", "2.2222", "FOOTWEAR")]
    _, books = books_of([sale("P1", lines)])
    exact_apparel = 2 * D("0.0049")
    exact_footwear = D("1.333") * D("2.2222") + D("0.667") * D("2.2222")
    assert by_account(journal(books)["payload"]) == {
        "310": half_up(exact_apparel), "311": half_up(exact_footwear), INVENTORY: -(half_up(exact_apparel) + half_up(exact_footwear))}
    assert (half_up(exact_apparel), half_up(exact_footwear)) == (D("0.01"), D("4.44"))
    shown = books.accounts.set_index("account_code")
    assert shown.loc["311", "exact_cost"] == "4.4444" and shown.loc["310", "exact_cost"] == "0.0098"


def test_half_a_cent_rounds_away_from_zero_on_a_return_too():
    # one account's Σ is exactly 0.005 (sold) and the other's −0.005 (returned)
    _, books = books_of([sale("P1", [stock("1", "1.00", "0.0050")]),
                         sale("C1", [stock("-1", "1.00", "0.0050", "FOOTWEAR")], doc_type="CREDIT")])
    assert by_account(journal(books)["payload"]) == {"310": D("0.01"), "311": D("-0.01")}  # nets to zero: no inventory line


def test_a_credit_returns_stock_and_a_net_negative_account_is_a_credit_to_cogs(contract):
    docs = [
        sale("P1", [stock("1", "100.00", "40.0000"), stock("1", "80.00", "30.0000", "FOOTWEAR")]),
        # FOOTWEAR returned beyond what was sold: two pairs come back
        sale("C1", [stock("-2", "80.00", "30.0000", "FOOTWEAR")], doc_type="CREDIT"),
    ]
    _, books = books_of(docs)
    akl = journal(books)
    assert by_account(akl["payload"]) == {"310": D("40.00"), "311": D("-30.00"), INVENTORY: D("-10.00")}
    assert akl["total_cents"] == 4000  # Σ debits
    # a day of returns only: COGS credited, the stock back in inventory (a debit)
    _, returns = books_of([sale("C2", [stock("-1", "100.00", "40.0000")], day=NEXT_DAY, doc_type="CREDIT")])
    back = journal(returns, day=NEXT_DAY)
    assert by_account(back["payload"]) == {"310": D("-40.00"), INVENTORY: D("40.00")} and back["total_cents"] == 4000
    assert spec_problems(contract, [akl["payload"], back["payload"]]) == []


def test_a_branch_day_whose_every_account_rounds_to_zero_has_no_journal_and_says_so():
    docs = [sale("P1", [stock("1", "1.00", "0.0020")]),  # 0.002: rounds to 0.00
            sale("P2", [stock("1", "10.00", "3.0000")]), sale("C2", [stock("-1", "10.00", "3.0000")], doc_type="CREDIT"),
            sale("P3", [stock("1", "10.00", "3.0000")], day=NEXT_DAY)]
    validated, books = books_of(docs)
    assert list(books.documents["business_date"]) == [NEXT_DAY]
    assert books.no_document[["business_date", "branch_code", "reason"]].values.tolist() == [[DAY, "AKL01", NOTHING_TO_POST]]
    shown = books.totals.set_index("business_date")
    assert shown.loc[DAY, "outcome"] == "nothing to post" and shown.loc[NEXT_DAY, "outcome"] == "journal"


def test_held_and_void_documents_are_not_costed():
    docs = [sale("P1", [stock("1", "10.00", "3.0000")]), sale("P2", [stock("5", "10.00", "3.0000")], status="HELD"),
            sale("P3", [stock("7", "10.00", "3.0000")], status="VOID")]
    validated, books = books_of(docs)
    assert by_account(journal(books)["payload"]) == {"310": D("3.00"), INVENTORY: D("-3.00")}
    assert sorted(validated.skipped["invoice_no"]) == ["P2", "P3"]
    evidence = cogs_source_evidence(validated)
    assert evidence["returned"] == {DAY: frozenset({"P1", "P2", "P3"})}
    assert evidence["withdrawn"] == frozenset({"P3"}) and set(evidence["held_back"]) == {"P2"}


# -- what holds a branch-day back ---------------------------------------------------------------------------

def test_a_stock_line_without_a_cost_quarantines_its_branch_day_naming_the_document_and_line():
    docs = [sale("P1", [stock("1", "10.00", "3.0000"), stock("2", "10.00", None, sku="SKU-NOCOST")]),
            sale("P2", [stock("1", "10.00", "3.0000")], branch="WLG01")]
    validated, books = books_of(docs)
    [row] = validated.quarantine.to_dict("records")
    assert (row["business_date"], row["branch_code"], row["invoice_no"], row["line_no"], row["check"]) == (DAY, "AKL01", "P1", 2, "missing_cost")
    assert "SKU-NOCOST" in row["reason"] and "unit_cost_excl" in row["reason"] and "cogs.missing_cost" in row["reason"]
    assert list(books.documents["branch_code"]) == ["WLG01"]  # the other branch still posts
    held = validated.quarantined_days.iloc[0]
    assert (held["branch_code"], held["missing_cost_lines"], held["cost_cents"]) == ("AKL01", 1, 300)
    assert cogs_source_evidence(validated)["held_back"]["P1"].startswith("quarantined: P1 line 2")


def test_with_missing_cost_zero_the_line_is_costed_at_zero_and_a_notice_names_it():
    docs = [sale("P1", [stock("1", "10.00", "3.0000"), stock("2", "10.00", None, sku="SKU-NOCOST")])]
    validated, books = books_of(docs, rules(missing_cost="zero"))
    assert validated.quarantine.empty
    assert by_account(journal(books)["payload"]) == {"310": D("3.00"), INVENTORY: D("-3.00")}
    [notice] = validated.notices[validated.notices["kind"] == "missing_cost"].to_dict("records")
    assert (notice["invoice_no"], notice["line_no"]) == ("P1", 2) and "SKU-NOCOST" in notice["message"]
    assert books.totals.iloc[0]["missing_cost_lines"] == 1


def test_a_stock_line_whose_analysis_code_has_no_cogs_account_quarantines_its_branch_day_with_the_code():
    docs = [sale("P1", [stock("1", "10.00", "3.0000"), stock("1", "10.00", "2.0000", "HOMEWARE")]),
            # a non-stock line of an unmapped code costs nothing: it needs no COGS account
            sale("P2", [line("1", "5.00", sku=None, analysis_code="SERVICES")], branch="WLG01"),
            sale("P3", [stock("1", "10.00", "3.0000")], branch="WLG01")]
    validated, books = books_of(docs)
    [row] = validated.quarantine.to_dict("records")
    assert (row["branch_code"], row["invoice_no"], row["line_no"], row["check"]) == ("AKL01", "P1", 2, "unmapped_cogs_account")
    assert "HOMEWARE" in row["reason"] and "cogs.cogs_accounts.HOMEWARE" in row["reason"]
    assert validated.unmapped_codes == {"analysis_code": ["HOMEWARE"]}
    assert list(books.documents["branch_code"]) == ["WLG01"]
    assert validated.quarantined_days.iloc[0]["cost_cents"] == 500  # CI's cost as far as known, the unmapped code's too


def test_a_document_ci_disagrees_with_itself_on_holds_the_branch_day_only_when_it_carries_stock():
    broken = line("1", "10.00", analysis_code="APPAREL", sku="SKU1", unit_cost_excl="3.0000", line_total_incl=D("99.00"))
    no_stock = line("1", "10.00", sku=None, analysis_code="FREIGHT", line_total_incl=D("99.00"))
    docs = [sale("P1", [broken]), sale("P2", [no_stock], branch="WLG01"), sale("P3", [stock("1", "10.00", "3.0000")], branch="WLG01")]
    validated, books = books_of(docs)
    assert set(validated.quarantine["invoice_no"]) == {"P1"} and set(validated.quarantine["check"]) == {"ci_contract"}
    assert list(books.documents["branch_code"]) == ["WLG01"]
    notice = validated.notices[validated.notices["kind"] == "quarantined_without_stock"]
    assert list(notice["invoice_no"]) == ["P2"]


def test_a_negative_unit_cost_quarantines_its_branch_day():
    validated, books = books_of([sale("P1", [stock("1", "10.00", "-3.0000")])])
    assert list(validated.quarantine["check"]) == ["negative_cost"] and "-3.0000" in validated.quarantine["reason"].iloc[0]
    assert books.documents.empty


def test_without_an_inventory_account_every_branch_day_with_stock_waits():
    validated, books = books_of([sale("P1", [stock("1", "10.00", "3.0000")])], rules(inventory_account=None))
    assert list(validated.quarantine["check"]) == ["unmapped_inventory_account"] and books.documents.empty
    assert "cogs.inventory_account" in validated.quarantine["reason"].iloc[0]


def test_the_narration_is_fixed_text_with_the_key_no_amounts_and_within_the_limit():
    _, books = books_of([sale("P1", [stock("3", "12.34", "12.3400")])])
    narration = journal(books)["payload"]["Narration"]
    amounts = {str(item["LineAmount"]).lstrip("-") for item in journal(books)["payload"]["JournalLines"]}
    assert amounts == {"37.02"} and not any(amount in narration for amount in amounts)
    assert "cogs/AKL01/2026-10-01" in narration and len(narration) <= NARRATION_LIMIT
    # a CI change moves the lines, never the key
    _, changed = books_of([sale("P1", [stock("4", "12.34", "12.3400")])])
    assert journal(changed)["payload"]["Narration"] == narration
    # a branch code that would carry the Narration over the limit cannot key a journal
    long_branch = "B" * NARRATION_LIMIT
    assert len(cogs_narration(long_branch, DAY)) > NARRATION_LIMIT
    held, nothing = books_of([sale("P1", [stock("1", "10.00", "3.0000")], branch=long_branch)],
                             rules(tracking_options={long_branch: "Long branch"}))
    assert list(held.quarantine["check"]) == ["narration_too_long"] and nothing.documents.empty


# -- exactness, the check, the store ----------------------------------------------------------------------

def test_costs_beyond_int64_are_exact():
    quantity = pd.Series([10**13, -(10**13), 7], dtype="Int64")  # 10 000 000 000.000 units
    cost = pd.Series([10**13, 10**13 - 1, 3], dtype="Int64")
    assert line_cost_units(quantity, cost) == [10**26, -(10**26 - 10**13), 21]
    assert line_cost_units(pd.Series([2000], dtype="Int64"), pd.Series([None], dtype="Int64")) == [0]


def test_the_books_check_finds_a_journal_that_differs_from_ci():
    site = rules()
    validated = validate_cogs(read([sale("P1", [stock("1", "10.00", "3.0000")]), sale("P2", [stock("1", "10.00", "4.0000")], branch="WLG01")]), site)
    books = build_cogs_journals(validated, site)
    assert check_cogs_books(validated, books, site).empty
    tampered = books.documents.copy()
    payload = json.loads(json.dumps(tampered.at[0, "payload"], default=str))
    for item in payload["JournalLines"]:
        item["LineAmount"] = D(item["LineAmount"])
    payload["JournalLines"][0]["LineAmount"] += D("0.01")  # one cent off CI, and unbalanced
    payload["Narration"] = "CI cost of goods sold 3.01"
    tampered.at[0, "payload"] = payload
    checks = set(check_cogs_books(validated, dataclasses.replace(books, documents=tampered.drop(index=1)), site)["check"])
    assert checks == {"nets_to_zero", "cost", "narration", "totals", "missing_journal"}


def test_the_validated_cogs_is_stored_by_day_and_read_back_whole():
    validated = validate_cogs(read([sale("P1", [stock("1", "10.00", "3.0000")]),
                                    sale("P2", [stock("1", "10.00", None)], day=NEXT_DAY)]), rules())
    parts = split_by_day(validated, [DAY, NEXT_DAY])
    assert list(parts[DAY].branch_days["business_date"]) == [DAY] and parts[NEXT_DAY].quarantine["business_date"].tolist() == [NEXT_DAY]
    again = combine_days([parts[DAY], parts[NEXT_DAY]])
    assert again.branch_days.equals(validated.branch_days) and len(again.stock_lines) == len(validated.stock_lines)
    assert int(build_cogs_journals(again, rules()).documents["total_cents"].sum()) == 300


def test_a_branch_with_no_tracking_option_holds_its_cost_back():
    validated, books = books_of([sale("P1", [stock("1", "10.00", "3.0000")], branch="ZZZ01")])
    assert list(validated.quarantine["check"]) == ["unmapped_branch_code"] and books.documents.empty
    assert validated.unmapped_codes == {"branch_code": ["ZZZ01"]}


def test_a_unit_cost_with_more_decimals_than_the_contract_holds_its_branch_day_back():
    documents = read([sale("P1", [stock("1", "10.00", "3.0000")]), sale("P2", [stock("1", "10.00", "3.0000")], branch="WLG01")])
    excess = pd.DataFrame({"business_date": [DAY], "invoice_no": ["P1"], "line_no": pd.array([1], dtype="Int64"),
                           "column": ["unit_cost_excl"], "value": ["3.00005"], "places": [5],
                           "reason": ["P1 line 1: unit_cost_excl 3.00005 has 5 decimals, the contract 4"]})
    validated = validate_cogs(dataclasses.replace(documents, cost_excess_decimals=excess), rules())
    assert validated.quarantine[["branch_code", "invoice_no", "line_no", "check"]].values.tolist() == [["AKL01", "P1", 1, "excess_decimals"]]
    assert list(build_cogs_journals(validated, rules()).documents["branch_code"]) == ["WLG01"]

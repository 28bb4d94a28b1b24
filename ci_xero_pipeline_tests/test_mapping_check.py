"""The mapping checked against the Xero organisation (processes.md, "Shared by every process"): against
the real sandbox over HTTP (one GET /Accounts and one GET /TaxRates a check, nothing written), the
`ci-xero mapping check` command as a person runs it, and the pure verdict on hand-made Xero lists."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ci_xero_pipeline.xero.chart_check import (
    ARCHIVED,
    MISSING,
    PAYMENTS_NOT_ENABLED,
    SYSTEM_ACCOUNT,
    TAX_TYPE_ARCHIVED,
    TAX_TYPE_MISSING,
    TAX_TYPE_WRONG_SIDE,
    WRONG_TYPE,
    AccountNeed,
    TaxTypeNeed,
    check_chart,
    create_missing,
    needs_for_eretailer,
    needs_for_takings,
    read_and_check,
)
from ci_xero_pipeline.settings import load_settings

from .conftest import PROJECT_ROOT
from .pipeline_helpers import connect_site, xero_client

CLI = PROJECT_ROOT / ".venv" / "bin" / "ci-xero"


@pytest.fixture
def site(sandbox, demo_ci_url, make_site):
    def make(changes: dict | None = None) -> Path:
        path = make_site(sandbox, demo_ci_url, changes)
        connect_site(path)
        return path

    return make


def reads(client) -> dict:
    return {kind: n for kind, n in client.calls.by_kind.items()}


def archive(client, code: str) -> None:
    [account] = [a for a in client.accounts() if a["Code"] == code]
    client.request("POST", f"Accounts/{account['AccountID']}", body={"Accounts": [{"AccountID": account["AccountID"], "Status": "ARCHIVED"}]})


# -- against the sandbox ---------------------------------------------------------------------------
def test_the_demo_mapping_fits_with_one_read_of_each_list(site):
    path = site()
    client = xero_client(path)
    needs = needs_for_eretailer(load_settings(path))
    verdict = read_and_check(client, needs)
    assert verdict.ok, verdict.table()
    assert {f.setting for f in verdict.findings} == {
        *(f"mapping.sales_accounts.{c}" for c in ("APPAREL", "FOOTWEAR", "ACCESSORIES", "GIFTS", "FREIGHT")),
        *(f"mapping.tax_types.{c}" for c in ("S", "Z", "E")),
    }
    footwear = next(f for f in verdict.findings if f.setting == "mapping.sales_accounts.FOOTWEAR")
    assert (footwear.code, footwear.xero_name, footwear.xero_type, footwear.xero_status) == ("202", "Footwear sales", "REVENUE", "ACTIVE")
    assert reads(client) == {("GET", "Accounts"): 1, ("GET", "TaxRates"): 1}
    assert client.calls.writes == 0


def test_each_problem_is_named_with_its_setting(site):
    path = site({"mapping": {
        "sales_accounts": {"APPAREL": "201", "FOOTWEAR": "202", "UNKNOWN": "299", "WRONG": "429"},
        "tax_types": {"S": "OUTPUT2", "X": "GST99", "I": "INPUT2"},
        "gst_rates": {"S": 15, "X": 15, "I": 15},
    }})
    client = xero_client(path)
    archive(client, "202")
    needs = [*needs_for_eretailer(load_settings(path)),
             AccountNeed("takings.tender_accounts.CASH", "620", "clearing")]  # Prepayments: CURRENT, no payments
    client.calls.by_kind.clear()
    verdict = read_and_check(client, needs)
    assert reads(client) == {("GET", "Accounts"): 1, ("GET", "TaxRates"): 1}
    assert not verdict.ok
    problems = {f.setting: f.problem for f in verdict.problems}
    assert problems == {
        "mapping.sales_accounts.UNKNOWN": MISSING,
        "mapping.sales_accounts.FOOTWEAR": ARCHIVED,
        "mapping.sales_accounts.WRONG": WRONG_TYPE,
        "takings.tender_accounts.CASH": PAYMENTS_NOT_ENABLED,
        "mapping.tax_types.X": TAX_TYPE_MISSING,
        "mapping.tax_types.I": TAX_TYPE_WRONG_SIDE,  # INPUT2 is for expenses, not income
    }
    archived = verdict.problem_for("mapping.sales_accounts.FOOTWEAR")
    assert "202" in archived.message and "Footwear sales" in archived.message and "ARCHIVED" in archived.message
    assert "restore account 202" in archived.fix
    wrong = verdict.problem_for("mapping.sales_accounts.WRONG")
    assert "OVERHEADS" in wrong.message and "General Expenses" in wrong.message
    assert verdict.missing_account_codes == ("299",)


def test_create_missing_makes_a_clearing_account_and_a_liability_then_passes(site):
    path = site()
    client = xero_client(path)
    needs = [*needs_for_eretailer(load_settings(path)),
             *needs_for_takings(tender_accounts={"CASH": "618", "EFTPOS": "612"}, voucher_liability_account="836")]
    before = {a["Code"]: a for a in client.accounts()}
    verdict = read_and_check(client, needs)
    assert verdict.missing_account_codes == ("618", "836")
    client.calls.by_kind.clear()
    result = create_missing(client, verdict, needs)
    assert reads(client) == {("PUT", "Accounts"): 2, ("GET", "Accounts"): 1, ("GET", "TaxRates"): 1}
    assert result.refused == ()
    assert result.verdict.ok, result.verdict.table()
    after = {a["Code"]: a for a in client.accounts()}
    assert (after["618"]["Type"], after["618"]["EnablePaymentsToAccount"], after["618"]["Status"]) == ("CURRENT", True, "ACTIVE")
    assert (after["836"]["Type"], after["836"]["EnablePaymentsToAccount"]) == ("CURRLIAB", True)
    assert {c.code: c.settings for c in result.created} == {
        "618": ("takings.tender_accounts.CASH",), "836": ("takings.voucher_liability_account",)}
    # nothing else changed
    assert {code: a for code, a in after.items() if code not in ("618", "836")} == before


def test_create_missing_never_touches_an_existing_account(site):
    path = site()
    client = xero_client(path)
    archive(client, "202")
    needs = [*needs_for_eretailer(load_settings(path)), AccountNeed("takings.tender_accounts.CASH", "620", "clearing")]
    before = client.accounts()
    verdict = read_and_check(client, needs)
    client.calls.by_kind.clear()
    result = create_missing(client, verdict, needs)
    assert result.created == () and result.refused == ()
    assert client.calls.writes == 0
    assert client.accounts() == before
    assert {f.setting: f.problem for f in result.verdict.problems} == {
        "mapping.sales_accounts.FOOTWEAR": ARCHIVED, "takings.tender_accounts.CASH": PAYMENTS_NOT_ENABLED}


def _cli(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "--settings", str(path), "mapping", "check", *extra],
                          capture_output=True, text=True, timeout=120)


def test_the_command_prints_the_table_and_exits_by_the_verdict(site):
    bad = site({"mapping": {"sales_accounts": {"APPAREL": "201", "NEW": "250"}}})
    before = xero_client(bad).accounts()
    done = _cli(bad)
    assert done.returncode == 1, done.stdout + done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("mapping.sales_accounts.NEW"))
    assert "250" in row and "PROBLEM: missing" in row
    assert "fix: create account 250" in done.stdout
    assert "mapping.sales_accounts.FOOTWEAR" in done.stdout and "Footwear sales" in done.stdout
    # takings are on in the tests' site: their clearing, voucher, over/short and rounding accounts are checked too
    for setting, name in (("mapping.tender_accounts.CASH", "Cash clearing"),
                          ("mapping.voucher_liability_account", "Gift voucher liability"),
                          ("takings.over_short_account", "Till over/short"), ("takings.rounding_account", "Cash rounding")):
        row = next(line for line in done.stdout.splitlines() if line.startswith(setting + " "))
        assert name in row and row.endswith(" ok"), row
    assert done.stdout.count("PROBLEM") == 1 and "1 problem(s):" in done.stdout
    assert xero_client(bad).accounts() == before  # a check posts nothing

    done = _cli(bad, "--create-missing")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Created account 250 'Sales 250' (REVENUE) for mapping.sales_accounts.NEW" in done.stdout
    created = [a for a in xero_client(bad).accounts() if a["Code"] == "250"]
    assert [(a["Type"], a["Status"]) for a in created] == [("REVENUE", "ACTIVE")]
    rechecked = done.stdout.split("Created account 250")[1]  # the verdict after the creation: all well
    # 6 sales accounts, 3 tax types, 8 tenders (VISA and MASTERCARD share 613), the voucher liability,
    # over/short and rounding; the purchase tax types of payables (3), the stock account and the 4 COGS accounts
    assert "PROBLEM" not in rechecked and "All 28 mapped accounts and tax types fit" in rechecked


# -- the pure verdict --------------------------------------------------------------------------------
def account(code: str, type_: str, *, status: str = "ACTIVE", payments: bool = False, name: str | None = None, **extra) -> dict:
    return {"Code": code, "Name": name or f"Account {code}", "Type": type_, "Status": status,
            "EnablePaymentsToAccount": payments, **extra}


def rate(tax_type: str, *, revenue: bool = True, expenses: bool = True, status: str = "ACTIVE") -> dict:
    return {"TaxType": tax_type, "Name": tax_type, "Status": status, "CanApplyToRevenue": revenue, "CanApplyToExpenses": expenses}


ACCOUNTS = [
    account("200", "REVENUE"), account("260", "OTHERINCOME"), account("270", "SALES"),
    account("400", "OVERHEADS"), account("310", "DIRECTCOSTS"),
    account("090", "BANK"), account("611", "CURRENT", payments=True), account("620", "CURRENT"),
    account("630", "INVENTORY"), account("835", "CURRLIAB", payments=True), account("836", "CURRLIAB"),
    account("209", "REVENUE", status="ARCHIVED"), account("610", "CURRENT", payments=True, SystemAccount="DEBTORS"),
]
RATES = [rate("OUTPUT2", expenses=False), rate("INPUT2", revenue=False), rate("NONE"), rate("OUTPUT", status="ARCHIVED")]


@pytest.mark.parametrize("need, problem", [
    (AccountNeed("s", "200", "revenue"), None),
    (AccountNeed("s", "260", "revenue"), None),
    (AccountNeed("s", "270", "revenue"), None),
    (AccountNeed("s", "400", "revenue"), WRONG_TYPE),
    (AccountNeed("s", "209", "revenue"), ARCHIVED),
    (AccountNeed("s", "999", "revenue"), MISSING),
    (AccountNeed("s", "611", "clearing"), None),
    (AccountNeed("s", "090", "clearing"), None),  # a bank account takes payments by being one
    (AccountNeed("s", "620", "clearing"), PAYMENTS_NOT_ENABLED),
    (AccountNeed("s", "835", "clearing"), WRONG_TYPE),
    (AccountNeed("s", "610", "clearing"), SYSTEM_ACCOUNT),
    (AccountNeed("s", "835", "voucher_liability"), None),
    (AccountNeed("s", "836", "voucher_liability"), PAYMENTS_NOT_ENABLED),
    (AccountNeed("s", "611", "voucher_liability"), WRONG_TYPE),
    (AccountNeed("s", "400", "over_short"), None),
    (AccountNeed("s", "200", "rounding"), None),
    (AccountNeed("s", "620", "rounding"), WRONG_TYPE),
    (AccountNeed("s", "620", "inventory"), None),
    (AccountNeed("s", "630", "inventory"), WRONG_TYPE),  # Xero's INVENTORY type is for its tracked items
    (AccountNeed("s", "310", "cogs"), None),
    (AccountNeed("s", "400", "cogs"), WRONG_TYPE),
    (TaxTypeNeed("s", "OUTPUT2", "OUTPUT"), None),
    (TaxTypeNeed("s", "NONE", "OUTPUT"), None),
    (TaxTypeNeed("s", "INPUT2", "INPUT"), None),
    (TaxTypeNeed("s", "INPUT2", "OUTPUT"), TAX_TYPE_WRONG_SIDE),
    (TaxTypeNeed("s", "OUTPUT2", "INPUT"), TAX_TYPE_WRONG_SIDE),
    (TaxTypeNeed("s", "OUTPUT", "OUTPUT"), TAX_TYPE_ARCHIVED),
    (TaxTypeNeed("s", "GST99", "OUTPUT"), TAX_TYPE_MISSING),
])
def test_the_verdict_of_one_need(need, problem):
    [finding] = check_chart([need], ACCOUNTS, RATES).findings
    assert finding.problem == problem, finding
    assert finding.ok == (problem is None)
    if problem:
        assert finding.message.startswith("s → ") and finding.fix


def test_a_verdict_keeps_every_need_in_order_and_its_table_names_each():
    needs = [AccountNeed("mapping.sales_accounts.A", "200", "revenue"), AccountNeed("mapping.sales_accounts.B", "999", "revenue"),
             AccountNeed("takings.tender_accounts.CASH", "999", "clearing"), TaxTypeNeed("mapping.tax_types.S", "OUTPUT2", "OUTPUT")]
    verdict = check_chart(needs, ACCOUNTS, RATES)
    assert [f.setting for f in verdict.findings] == [n.setting for n in needs]
    assert verdict.missing_account_codes == ("999",)  # one account, however many settings name it
    table = verdict.table().splitlines()
    assert table[0].split() == ["SETTING", "CODE", "NEEDS", "XERO", "NAME", "TYPE", "STATUS", "VERDICT"]
    assert table[1].split() == ["mapping.sales_accounts.A", "200", "revenue", "Account", "200", "REVENUE", "ACTIVE", "ok"]
    assert "PROBLEM: missing" in table[2] and "2 problem(s):" in verdict.table()
    assert "tax rate (income)" in table[4] and table[4].endswith("ok")


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown account role"):
        AccountNeed("s", "200", "sales")  # type: ignore[arg-type]

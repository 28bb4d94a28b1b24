"""Taking back a bill or a manual journal (CI voided its sources) under the same rules as a sales document:
a lost answer settled by a lookup (never sent twice), a crash after the take-back settled from what Xero holds,
nothing touched in a locked period, and nothing touched on a short or empty CI read."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.xero.client import XeroClient
from ci_xero_pipeline.xero.ledger import PostingLedger
from ci_xero_pipeline.xero.posting import SourceEvidence, post_documents

from .test_issue12_traps import DAY, bill_row, frame, with_supplier
from .test_sandbox_accounting import FixedToken, _loopback_http, accounting_spec, error_validator, make_api  # noqa: F401  (fixtures)

D = Decimal
SOURCES = ("S1", "S2")


def journal_row(cents: int = 14565) -> dict:
    narration = f"CI cost of goods sold AKL01 {DAY} [ci-xero cogs/AKL01/{DAY}]"
    payload = {"Narration": narration, "Date": DAY, "Status": "POSTED", "LineAmountTypes": "NoTax", "JournalLines": [
        {"Description": "COGS", "LineAmount": D(cents) / 100, "AccountCode": "310"},
        {"Description": "Stock on hand", "LineAmount": -D(cents) / 100, "AccountCode": "631"}]}
    return {"document_key": f"cogs/AKL01/{DAY}", "business_date": DAY, "branch_code": "AKL01", "endpoint": "ManualJournals",
            "document_type": "MANUALJOURNAL", "number": narration, "reference": "", "contact_name": None, "status": "POSTED",
            "total_cents": cents, "tax_cents": 0, "line_count": 2, "ci_invoice_nos": SOURCES, "payload": payload,
            "source_keys": SOURCES}


@pytest.fixture(params=["Bills", "ManualJournals"])
def posted(request, make_api, tmp_path):
    """A bill (SUBMITTED) or a journal (POSTED) in Xero, recorded in the ledger: (api, client, ledger, kind)."""
    api = make_api()
    client = XeroClient(FixedToken(api.token), api.tenant_id, f"{api.server.base_url}/api.xro/2.0")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    if request.param == "Bills":
        row = bill_row("GR1", "INV-1")
        row["source_keys"] = row["ci_invoice_nos"] = SOURCES
        documents = with_supplier(client, engine, api.tenant_id, [row])
    else:
        documents = frame([journal_row()])
    ledger = PostingLedger(engine, api.tenant_id, "run", process="payables" if request.param == "Bills" else "cogs")
    assert list(post_documents(client, ledger, documents, [DAY])["outcome"]) == ["posted"]
    return api, client, ledger, request.param, documents


def held(api, kind: str) -> list[str]:
    """The statuses Xero holds for the document (every one under its identity: a second would show)."""
    if kind == "Bills":
        return [b["Status"] for b in api.get("Invoices", where='Type=="ACCPAY"', page=1)["Invoices"]]
    return [j["Status"] for j in api.get("ManualJournals", page=1)["ManualJournals"]]


def voided() -> SourceEvidence:
    return SourceEvidence({DAY: frozenset(SOURCES)}, frozenset(SOURCES))


TAKEN_BACK = {"Bills": "DELETED", "ManualJournals": "VOIDED"}  # a SUBMITTED bill is deleted, a POSTED journal voided


def test_a_take_back_whose_answer_is_lost_is_settled_by_a_lookup_and_never_sent_again(posted):
    api, client, ledger, kind, documents = posted
    api.server.faults.set(FaultPlan(script=("drop",), methods=("POST",),
                                    collections=("Invoices" if kind == "Bills" else "ManualJournals",)))
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided())
    assert api.server.faults.stats()["injected_total"] == 1  # the take-back's answer really was lost
    assert list(taken["outcome"]) == ["withdrawn"], taken["message"].tolist()
    assert held(api, kind) in ([TAKEN_BACK[kind]], [])  # Xero may list a deleted bill or not; never a live one
    again = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided())
    assert again.empty  # settled: nothing more to do, nothing sent


def test_a_take_back_done_before_a_crash_is_found_done(posted):
    api, client, ledger, kind, documents = posted
    xero_id = ledger.entries(list(documents["document_key"]))[documents.iloc[0].document_key].xero_id
    # the run voided (deleted) it in Xero and died before the ledger heard of it
    if kind == "Bills":
        answer = api.post(f"Invoices/{xero_id}", {"Invoices": [{"InvoiceID": xero_id, "Status": "DELETED"}]})
    else:
        answer = api.post("ManualJournals", {"ManualJournals": [{"ManualJournalID": xero_id, "Status": "VOIDED"}]})
    assert answer.status_code == 200, answer.text
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided())
    assert list(zip(taken["action"], taken["outcome"])) == [("mark_withdrawn", "withdrawn")]


def test_nothing_is_taken_back_in_a_locked_period(posted):
    api, client, ledger, kind, documents = posted
    api.server.store.execute("UPDATE organisations SET period_lock_date = ? WHERE tenant_id = ?", (DAY, api.tenant_id))
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=voided())
    assert list(taken["outcome"]) == ["locked"] and "lock date" in taken.iloc[0]["message"]
    assert held(api, kind) == ["SUBMITTED" if kind == "Bills" else "POSTED"]


@pytest.mark.parametrize("returned", [frozenset({"S1"}), frozenset()], ids=["short read", "empty read"])
def test_a_short_or_empty_ci_read_takes_nothing_back(posted, returned):
    api, client, ledger, kind, documents = posted
    evidence = SourceEvidence({DAY: returned} if returned else {})  # absence is not evidence
    taken = post_documents(client, ledger, documents.iloc[0:0], [DAY], evidence=evidence)
    assert list(taken["outcome"]) == ["stopped"]
    assert held(api, kind) == ["SUBMITTED" if kind == "Bills" else "POSTED"]

"""Xero's official Python SDK (xero-python) reads back what the pipeline posted to the sandbox for the demo's
account customers, goods receipts and cost of goods sold: the bills (two under one supplier number), the
supplier credit of goods returned, the credits' allocations (one larger than its invoice's amount due, one
whose invoice is on a later day) and the journals. If the SDK parses them, a real client of Xero's can."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from dagster import DagsterInstance

from ci_xero_pipeline.ci.demo import PAYABLES_SCENARIOS, RECEIVABLES_SCENARIOS
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.settings import load_settings

from .conftest import CLIENT_ID
from .pipeline_helpers import connect_site

FIRST, LAST = date(2026, 10, 27), date(2026, 10, 30)  # the days of the demo's scenarios for these processes


def test_the_sdk_reads_back_bills_allocations_and_journals(sandbox, make_site, demo_ci_url):
    """One posting of the four days (three processes), read back three ways."""
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    for process in ("receivables", "payables", "cogs"):
        outcome = run_days(site, FIRST, LAST, instance, process=process)
        assert outcome.success or outcome.failed_checks, process
    bills_read_back(site)
    allocations_read_back(site)
    journals_read_back(site)


def sdk_for(site):
    from xero_python.accounting import AccountingApi
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token

    settings = load_settings(site)
    keeper = XeroResource.from_settings(settings).keeper()
    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret="")), pool_threads=1)
    stored: dict = {}
    client.oauth2_token_getter(lambda: stored)
    client.oauth2_token_saver(stored.update)
    client.set_oauth2_token({**keeper.token(), "expires_at": time.time() + 1500})
    return AccountingApi(client, base_url=settings.xero.api_url), keeper.connection.tenant_id


def bills_read_back(posted):
    accounting, tenant = sdk_for(posted)
    bills = accounting.get_invoices(tenant, where='Type=="ACCPAY"', page=1, unitdp=4).invoices
    by_receipt = {bill.url.rsplit("ci_receipt=", 1)[1]: bill for bill in bills if bill.url and "ci_receipt=" in bill.url}
    shared = PAYABLES_SCENARIOS["same_number_two_suppliers"].numbers
    assert set(shared) <= set(by_receipt)
    first, second = (by_receipt[number] for number in shared)
    assert first.invoice_number == second.invoice_number and first.contact.contact_number != second.contact.contact_number
    assert all(str(bill.status).endswith("SUBMITTED") for bill in bills)  # Awaiting Approval, as site.yaml says
    assert all(bill.total == bill.sub_total + bill.total_tax for bill in bills)
    repeated = PAYABLES_SCENARIOS["same_supplier_repeats_number"].numbers
    assert len({by_receipt[number].invoice_id for number in repeated}) == 2  # one supplier, one number, two bills
    returned = accounting.get_credit_notes(tenant, where='Type=="ACCPAYCREDIT"', page=1).credit_notes
    assert [note.reference for note in returned] == list(PAYABLES_SCENARIOS["goods_returned"].numbers)
    assert returned[0].total > 0


def allocations_read_back(posted):
    accounting, tenant = sdk_for(posted)
    notes = {note.credit_note_number: note for note in accounting.get_credit_notes(tenant, where='Type=="ACCRECCREDIT"', page=1).credit_notes}
    for scenario in ("credit_exceeds_amount_due", "original_on_later_day"):
        invoice_no, credit_no = RECEIVABLES_SCENARIOS[scenario].numbers
        note = accounting.get_credit_note(tenant, notes[credit_no].credit_note_id).credit_notes[0]
        assert [allocation.invoice.invoice_number for allocation in note.allocations] == [invoice_no], scenario
        allocated = sum((allocation.amount for allocation in note.allocations), Decimal(0))
        assert allocated + note.remaining_credit == note.total  # no refunds on these: allocated + remaining = total
        invoice = accounting.get_invoices(tenant, invoice_numbers=[invoice_no]).invoices[0]
        if scenario == "credit_exceeds_amount_due":  # the invoice's due allocated, the rest stays as credit
            assert invoice.amount_due == 0 and note.remaining_credit > 0
        assert invoice.amount_credited == allocated


def journals_read_back(posted):
    accounting, tenant = sdk_for(posted)
    journals = accounting.get_manual_journals(tenant, page=1).manual_journals  # a page carries the lines
    assert len(journals) >= 8  # the demo's branches over four days
    for journal in journals:
        assert "[ci-xero cogs/" in journal.narration and str(journal.status).endswith("POSTED")
        assert len(journal.journal_lines) >= 2 and sum((line.line_amount for line in journal.journal_lines), Decimal(0)) == 0
        assert {line.account_code for line in journal.journal_lines} <= {"310", "631"}
    # and one by its id, as a client following a link would (the organisation's 60 calls a minute allow a few)
    one = accounting.get_manual_journal(tenant, journals[0].manual_journal_id).manual_journals[0]
    assert (one.narration, [line.line_amount for line in one.journal_lines]) == (
        journals[0].narration, [line.line_amount for line in journals[0].journal_lines])

"""The document kinds of the posting layer (xero/kinds.py): identities that are not Xero numbers, and the
rule that an allocated credit note is as untouchable as a paid one."""

from decimal import Decimal

from ci_xero_pipeline.xero.kinds import BILL_CREDITS, BILLS, KINDS, MANUAL_JOURNALS, Hint, bill_url, posting_endpoint, url_identity
from ci_xero_pipeline.xero.kinds import _credit_without_reference, with_url_identity
from ci_xero_pipeline.xero.posting import _payments_applied


def test_a_bill_is_known_by_the_receipt_in_its_url_and_a_revision_carries_its_own():
    url = bill_url("http://localhost:3000", "2026-11-02", "GR/400 001")
    assert url_identity(url) == "GR/400 001"
    revised = with_url_identity(url, "GR/400 001-R1")
    assert url_identity(revised) == "GR/400 001-R1" and revised.startswith("http://localhost:3000/assets/posted_payables")
    assert url_identity(bill_url(None, "2026-11-02", "GR1")) == "GR1"  # no UI address: still a key
    assert BILLS.identity({"Url": url, "InvoiceNumber": "INV-9"}) == "GR/400 001"  # never the supplier's number


def test_purchase_documents_named_by_their_endpoint_become_bills_and_bill_credits():
    assert posting_endpoint("Invoices", "ACCPAY") == "Bills"
    assert posting_endpoint("CreditNotes", "ACCPAYCREDIT") == "BillCredits"
    assert posting_endpoint("Invoices", "ACCREC") == "Invoices"
    assert {KINDS[name].path for name in ("Bills", "BillCredits", "ManualJournals")} == {"Invoices", "CreditNotes", "ManualJournals"}


def test_a_journal_total_is_its_debits_and_its_identity_the_narration():
    journal = {"Narration": "CI cost of goods sold AKL01 2026-11-02", "JournalLines": [
        {"LineAmount": Decimal("12.50"), "AccountCode": "310"}, {"LineAmount": Decimal("-12.50"), "AccountCode": "631"}]}
    assert MANUAL_JOURNALS.amounts(journal) == (1250, 0)
    assert MANUAL_JOURNALS.identity(journal) == journal["Narration"]
    assert MANUAL_JOURNALS.with_identity(journal, "N-R1")["Narration"] == "N-R1"


def test_a_supplier_credit_without_our_reference_is_ours_only_when_exactly_one_wanted_credit_fits():
    held = {"Type": "ACCPAYCREDIT", "CreditNoteNumber": "RTN-7", "Contact": {"ContactNumber": "SUP1"},
            "Date": "/Date(1762041600000+0000)/", "Reference": ""}
    payload = {"CreditNoteNumber": "RTN-7", "Contact": {"ContactNumber": "SUP1"}, "Date": "2025-11-02"}
    assert _credit_without_reference(BILL_CREDITS, held, ["GR9"], {"GR9": Hint(payload)}) == "GR9"
    other_day = {**payload, "Date": "2025-11-03"}
    assert _credit_without_reference(BILL_CREDITS, held, ["GR9"], {"GR9": Hint(other_day)}) is None
    # two returns to one supplier under one number on one day: not guessed
    assert _credit_without_reference(BILL_CREDITS, held, ["GR9", "GR10"], {"GR9": Hint(payload), "GR10": Hint(payload)}) is None
    assert _credit_without_reference(BILL_CREDITS, {**held, "Reference": "GR11"}, ["GR9"], {"GR9": Hint(payload)}) is None


def test_a_credit_note_allocated_in_part_is_applied_and_never_voided_or_revised():
    credit = {"Status": "AUTHORISED", "Total": Decimal("100.00"), "RemainingCredit": Decimal("40.00"), "AmountPaid": 0}
    assert _payments_applied(credit)
    assert _payments_applied({"Status": "AUTHORISED", "Total": Decimal("100.00"), "RemainingCredit": Decimal("100.00"),
                              "Allocations": [{"Amount": Decimal("1.00")}]})
    assert not _payments_applied({"Status": "AUTHORISED", "Total": Decimal("100.00"), "RemainingCredit": Decimal("100.00")})

"""Account customers through real Dagster runs against the sandbox Xero: a day of invoices and credits
posts with its contacts created once by ContactNumber (look-alike names are two contacts), its other
tenders paid, its credits allocated (one larger than its invoice's amount due allocates the due and
keeps the rest as credit, reported); a credit whose original is on a later day waits, and once that
day posts the allocation sensor runs the credit's day again and it allocates; a re-run writes nothing;
CI voids a posted invoice and it is taken back."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from ci_xero_pipeline.books.receivables import document_key
from ci_xero_pipeline.ci.demo import create_ci_tables, insert_documents
from ci_xero_pipeline.ci.extract import engine_for
from ci_xero_pipeline.money import decimal_to_cents
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.sensors import allocations_to_retry, credits_with_originals
from ci_xero_pipeline.settings import load_settings
from ci_xero_pipeline.xero.allocations import allocation_ledger_key

from .pipeline_helpers import connect_site, xero_client

D = Decimal
DAY, CREDIT_DAY, INVOICE_DAY = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)
PROCESS = "receivables"


def document(number: str, day: date, lines: list[tuple[str, str, str, str]], tenders: list[tuple[str, str]],
             code: str, name: str, source: str = "ACCOUNT", original: str | None = None) -> dict:
    """A FINAL CI document: lines (analysis code, quantity, unit price incl GST, discount); a negative
    quantity makes it a credit."""
    created = datetime.combine(day, datetime.min.time()) + timedelta(hours=10)
    credit = any(D(quantity) < 0 for _, quantity, _, _ in lines)
    invoice = {"invoice_no": number, "branch_code": "AKL01", "business_date": day, "created_at": created, "source": source,
               "doc_type": "CREDIT" if credit else "INVOICE", "customer_code": code, "customer_name": name,
               "customer_email": f"accounts@{code.lower()}.example.co.nz", "original_invoice_no": original}
    rows = [{"invoice_no": number, "line_no": n, "description": f"{analysis} {n}", "analysis_code": analysis, "sku": f"SKU{n}",
             "quantity": D(quantity), "unit_price_incl": D(price), "discount_incl": D(discount)}
            for n, (analysis, quantity, price, discount) in enumerate(lines, start=1)]
    return {"invoice": invoice, "lines": rows,
            "tenders": [{"invoice_no": number, "tender_no": n, "tender_type": t, "amount": D(a), "paid_at": created}
                        for n, (t, a) in enumerate(tenders, start=1)]}


DOCUMENTS = [
    # 2.5 × 10.1234 − 1.00 = 24.31, and 75.69: 100.00 on account
    document("A100", DAY, [("APPAREL", "2.5", "10.1234", "1.00"), ("FOOTWEAR", "1", "75.69", "0")], [("ACCOUNT", "100.00")],
             "C100", "Jane Smith"),
    # a look-alike name, another customer
    document("A101", DAY, [("APPAREL", "1", "40.00", "0")], [("ACCOUNT", "40.00")], "C200", "JANE SMITH "),
    document("A102", DAY, [("GIFTS", "1", "30.00", "0")], [("ACCOUNT", "30.00")], "C100", "Jane Smith"),
    document("A103", DAY, [("APPAREL", "-1", "20.00", "0")], [("ACCOUNT", "-20.00")], "C100", "Jane Smith", original="A100"),
    # part paid in cash at the counter: 20.00 due; its credit of 50.00 allocates the 20.00, 30.00 stays as credit
    document("A104", DAY, [("FOOTWEAR", "1", "50.00", "0")], [("CASH", "30.00"), ("ACCOUNT", "20.00")], "C300", "Kauri Builders"),
    document("A105", DAY, [("FOOTWEAR", "-1", "50.00", "0")], [("ACCOUNT", "-50.00")], "C300", "Kauri Builders", original="A104"),
    # a till sale charged partly to the account
    document("P100", DAY, [("ACCESSORIES", "1", "120.00", "0")], [("ACCOUNT", "70.00"), ("EFTPOS", "50.00")], "C200",
             "JANE SMITH ", source="POS"),
    # a credit dated before the invoice it reverses
    document("A200", CREDIT_DAY, [("APPAREL", "-1", "15.00", "0")], [("ACCOUNT", "-15.00")], "C100", "Jane Smith", original="A300"),
    document("A300", INVOICE_DAY, [("APPAREL", "1", "60.00", "0")], [("ACCOUNT", "60.00")], "C100", "Jane Smith"),
]


def fill(url: str) -> None:
    engine = sa.create_engine(url)
    create_ci_tables(engine, drop=True)
    insert_documents(engine, [d["invoice"] for d in DOCUMENTS], [line for d in DOCUMENTS for line in d["lines"]],
                     tenders=[tender for d in DOCUMENTS for tender in d["tenders"]],
                     branches=[{"branch_code": "AKL01", "branch_name": "Auckland Queen Street", "active": True}])
    engine.dispose()


@pytest.fixture
def site(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url)
    path = make_site(sandbox, url, {"receivables": {"enabled": True, "invoice_prefix": "AR-", "credit_note_prefix": "ARC-"},
                                    "mapping": {"create_missing_accounts": True}})
    connect_site(path)
    return path


def held(path) -> dict[str, dict]:
    client = xero_client(path)
    found = {}
    for endpoint, number_field in (("Invoices", "InvoiceNumber"), ("CreditNotes", "CreditNoteNumber")):
        for doc in client.get_all(endpoint, endpoint, {"page": 1, "unitdp": 4}):
            found[doc[number_field]] = doc
    return found


def credit_note(path, number: str) -> dict:
    """A credit note as Xero holds it, read by id (its Allocations with it)."""
    client = xero_client(path)
    found = client.get_all("CreditNotes", "CreditNotes", {"where": f'CreditNoteNumber=="{number}"', "page": 1})
    return client.request("GET", f"CreditNotes/{found[0]['CreditNoteID']}")["CreditNotes"][0]


def contacts(path) -> list[dict]:
    return [c for c in xero_client(path).get_all("Contacts", "Contacts", {"page": 1}) if c.get("ContactNumber")]


def payments(path) -> dict[str, tuple[str, Decimal]]:
    return {p["Reference"]: (p["Account"]["Code"], D(str(p["Amount"])))
            for p in xero_client(path).get_all("Payments", "Payments", {"page": 1}) if p.get("Status") != "DELETED"}


def latest(instance: DagsterInstance, asset: str, day: date) -> dict:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day.isoformat()]), limit=1).records
    return records[0].asset_materialization.metadata


def check_metadata(instance: DagsterInstance, run_id: str, check: str) -> dict:
    from dagster import DagsterEventType

    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.check_name == check:
            return {"passed": evaluation.passed, **{k: v.value for k, v in evaluation.metadata.items()}}
    raise AssertionError(f"no evaluation of {check} in run {run_id}")


def credits_due_again(path) -> list[tuple[str, str, str]]:
    """What the allocation sensor asks for: (credit's day, run key, why) of the credits whose original reached Xero."""
    settings = load_settings(path)
    xero = XeroResource.from_settings(settings)
    tenant = xero.token_store().load().tenant_id
    return allocations_to_retry(credits_with_originals(engine_for(settings.ci_database_url)), xero.ledger(tenant, process=PROCESS),
                                xero.ledger(tenant, process=f"{PROCESS}-allocation"), document_key,
                                lambda key: allocation_ledger_key(PROCESS, key))


def test_a_day_of_account_documents_posts_with_its_contacts_payments_and_allocations_and_a_rerun_writes_nothing(site):
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, DAY, DAY, instance, process=PROCESS)
    assert outcome.success and outcome.failed_checks == [], outcome.failed_checks
    assert set(outcome.results["outcome"]) == {"posted"} and len(outcome.results) == 7
    xero = held(site)

    invoice = xero["AR-A100"]
    assert (invoice["Type"], invoice["Total"], invoice["TotalTax"], invoice["Status"]) == ("ACCREC", D("100.00"), D("13.04"), "AUTHORISED")
    assert invoice["LineItems"][0]["UnitAmount"] == D("10.1234") and invoice["LineItems"][0]["LineAmount"] == D("24.31")
    assert invoice["DueDateString"].startswith("2026-03-22")
    # the credits: A103 allocated in full to A100; A105 larger than A104's 20.00 due
    assert (invoice["AmountCredited"], invoice["AmountDue"]) == (D("20.00"), D("80.00"))
    assert xero["ARC-A103"]["Status"] == "PAID" and xero["ARC-A103"]["RemainingCredit"] == D("0.00")
    part_paid = xero["AR-A104"]
    assert (part_paid["Status"], part_paid["AmountPaid"], part_paid["AmountCredited"], part_paid["AmountDue"]) == (
        "PAID", D("30.00"), D("20.00"), D("0.00"))
    larger = credit_note(site, "ARC-A105")
    assert larger["RemainingCredit"] == D("30.00") and [a["Amount"] for a in larger["Allocations"]] == [D("20.00")]
    # the till sale charged to the account: its EFTPOS paid, the rest due
    assert (xero["AR-P100"]["AmountPaid"], xero["AR-P100"]["AmountDue"]) == (D("50.00"), D("70.00"))
    assert payments(site) == {"AR-A104/CASH": ("611", D("30.00")), "AR-P100/EFTPOS": ("612", D("50.00"))}

    # one contact per customer code; the look-alike name is a second contact, never the first one
    found = contacts(site)
    assert sorted(c["ContactNumber"] for c in found) == ["C100", "C200", "C300"]
    by_number = {c["ContactNumber"]: c for c in found}
    assert by_number["C100"]["Name"] == "Jane Smith" and by_number["C200"]["Name"].startswith("JANE SMITH")
    assert by_number["C100"]["ContactID"] != by_number["C200"]["ContactID"]
    assert {xero[n]["Contact"]["ContactID"] for n in ("AR-A101", "AR-P100")} == {by_number["C200"]["ContactID"]}

    # what stays unallocated is reported with why
    credits = check_metadata(instance, outcome.run_id, "every_credit_accounted_for")
    assert credits["passed"]
    left = [record.data for record in credits["left_unallocated"].records]
    assert [(r["number"], r["remaining"]) for r in left] == [("ARC-A105", "30.00")] and left[0]["why_unallocated"]

    # a re-run writes nothing: no document, payment, contact or allocation twice
    again = run_days(site, DAY, DAY, instance, process=PROCESS)
    assert again.success and again.failed_checks == [], again.failed_checks
    assert set(again.results["outcome"]) == {"already_posted"}
    assert latest(instance, f"posted_{PROCESS}", DAY)["xero_writes"].value == 0
    assert len(contacts(site)) == 3 and len(payments(site)) == 2
    assert [a["Amount"] for a in credit_note(site, "ARC-A105")["Allocations"]] == [D("20.00")]
    assert held(site)["AR-A100"]["AmountDue"] == D("80.00")


def test_a_credit_whose_original_is_on_a_later_day_waits_then_allocates_when_that_day_posts(site):
    instance = DagsterInstance.ephemeral()
    first = run_days(site, CREDIT_DAY, CREDIT_DAY, instance, process=PROCESS)
    assert first.success and first.failed_checks == [], first.failed_checks
    assert credit_note(site, "ARC-A200")["RemainingCredit"] == D("15.00")  # nothing forced: the invoice is not in Xero
    credits = check_metadata(instance, first.run_id, "every_credit_accounted_for")
    assert [(r.data["number"], r.data["allocation_outcome"]) for r in credits["left_unallocated"].records] == [("ARC-A200", "waiting")]

    later = run_days(site, INVOICE_DAY, INVOICE_DAY, instance, process=PROCESS)
    assert later.success and later.failed_checks == [], later.failed_checks
    assert held(site)["AR-A300"]["AmountDue"] == D("60.00")
    # the allocation sensor sees the original in Xero now and asks for the credit's day again
    due = credits_due_again(site)
    assert [day for day, _key, _why in due] == [CREDIT_DAY.isoformat()]
    again = run_days(site, CREDIT_DAY, CREDIT_DAY, instance, process=PROCESS)
    assert again.success and again.failed_checks == [], again.failed_checks
    assert set(again.results["outcome"]) == {"already_posted"}
    assert held(site)["AR-A300"]["AmountDue"] == D("45.00")
    assert credits_due_again(site) == []  # allocated: nothing waits any more
    note = credit_note(site, "ARC-A200")
    assert note["RemainingCredit"] == D("0.00") and [a["Amount"] for a in note["Allocations"]] == [D("15.00")]


def test_ci_voids_a_posted_invoice_and_it_is_taken_back(site, tmp_path):
    instance = DagsterInstance.ephemeral()
    assert run_days(site, DAY, DAY, instance, process=PROCESS).success
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}")
    with engine.begin() as connection:
        # an invoice on account, and the till sale whose EFTPOS we paid (our payment is taken off first)
        connection.execute(sa.text("UPDATE ci_sales_invoices SET status = 'VOID', updated_at = :t WHERE invoice_no IN ('A102', 'P100')"),
                           {"t": datetime.combine(DAY, datetime.min.time()) + timedelta(hours=16)})
    engine.dispose()
    changed = run_days(site, DAY, DAY, instance, process=PROCESS)
    assert changed.success and changed.failed_checks == [], changed.failed_checks
    outcomes = dict(zip(changed.results["number"], changed.results["outcome"]))
    assert {n: o for n, o in outcomes.items() if o != "already_posted"} == {"AR-A102": "withdrawn", "AR-P100": "withdrawn"}
    xero = held(site)
    assert xero["AR-A102"]["Status"] == xero["AR-P100"]["Status"] == "VOIDED"
    assert "AR-P100/EFTPOS" not in payments(site) and "AR-A104/CASH" in payments(site)


QUARANTINE_DAY = date(2026, 3, 5)


def test_documents_that_cannot_post_are_quarantined_by_name_and_the_rest_of_the_day_posts(sandbox, make_site, tmp_path):
    url = f"sqlite:///{tmp_path / 'ci.sqlite'}"
    fill(url)
    engine = sa.create_engine(url)
    rows = [document("A400", QUARANTINE_DAY, [("APPAREL", "1", "10.00", "0")], [("ACCOUNT", "10.00")], "C100", "Jane Smith"),
            document("A401", QUARANTINE_DAY, [("APPAREL", "1", "25.00", "0")], [("ACCOUNT", "5.00"), ("BITCOIN", "20.00")],
                     "C100", "Jane Smith"),
            document("A402", QUARANTINE_DAY, [("APPAREL", "1", "12.00", "0")], [("ACCOUNT", "12.00")], "C100", "Jane Smith")]
    rows[2]["invoice"]["customer_code"] = None  # no customer code: never matched by name
    insert_documents(engine, [d["invoice"] for d in rows], [line for d in rows for line in d["lines"]],
                     tenders=[tender for d in rows for tender in d["tenders"]])
    engine.dispose()
    site = make_site(sandbox, url, {"receivables": {"enabled": True, "invoice_prefix": "AR-", "credit_note_prefix": "ARC-"}})
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, QUARANTINE_DAY, QUARANTINE_DAY, instance, process=PROCESS)
    # the quarantine fails its own (non-blocking) checks; every dollar is still accounted for
    assert sorted(outcome.failed_checks) == [f"validated_{PROCESS}:every_code_mapped", f"validated_{PROCESS}:no_quarantined_rows"]
    assert list(outcome.results["number"]) == ["AR-A400"]
    assert "AR-A401" not in held(site) and "AR-A402" not in held(site)
    reasons = " ".join(str(r.data) for r in latest(instance, f"validated_{PROCESS}", QUARANTINE_DAY)["quarantined_rows"].value.records)
    assert "A401: tender BITCOIN (20.00) has no Xero account (tender_accounts.BITCOIN)" in reasons
    assert "A402: an account customer's invoice without customer_code" in reasons
    dollars = check_metadata(instance, outcome.run_id, "every_dollar_accounted_for")
    assert dollars["passed"] and dollars["quarantined"] == "37.00" and dollars["in_xero"] == "10.00"


def test_the_demo_databases_account_customers_post_with_cis_figures_and_their_scenarios(sandbox, make_site, ci_copy):
    from ci_xero_pipeline.ci.demo import RECEIVABLES_SCENARIOS

    from .conftest import DEMO_DAYS, DEMO_END_DAY

    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    site = make_site(sandbox, ci_copy, {"receivables": {"enabled": True}})
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    outcome = run_days(site, first, DEMO_END_DAY, instance, process=PROCESS)
    assert outcome.success and outcome.failed_checks == [], outcome.failed_checks
    from ci_xero_pipeline.ci.extract import engine_for, extract_receivables

    invoices = extract_receivables(engine_for(ci_copy), first, DEMO_END_DAY).documents.invoices
    final = invoices[invoices["status"] == "FINAL"]
    xero = held(site)
    figures = {number: (-1 if "CreditNoteID" in doc else 1) * decimal_to_cents(doc["Total"]) for number, doc in xero.items()
               if doc["Status"] not in ("VOIDED", "DELETED")}
    assert figures == dict(zip(final["invoice_no"], final["total_incl_cents"].astype(int)))

    invoice, credit = RECEIVABLES_SCENARIOS["credit_exceeds_amount_due"].numbers
    note = credit_note(site, credit)
    assert [a["Invoice"]["InvoiceNumber"] for a in note["Allocations"]] == [invoice] and xero[invoice]["AmountDue"] == D("0.00")
    assert note["RemainingCredit"] > 0 and note["Total"] == note["Allocations"][0]["Amount"] + note["RemainingCredit"] + sum(
        (D(str(p["Amount"])) for p in note.get("Payments") or []), D("0"))
    invoice, credit = RECEIVABLES_SCENARIOS["original_on_later_day"].numbers
    assert [a["Invoice"]["InvoiceNumber"] for a in credit_note(site, credit)["Allocations"]] == [invoice]  # one run: both in Xero
    first_doc, second_doc = RECEIVABLES_SCENARIOS["look_alike_customers"].numbers
    assert xero[first_doc]["Contact"]["ContactID"] != xero[second_doc]["Contact"]["ContactID"]
    (long,) = RECEIVABLES_SCENARIOS["long_description"].numbers
    assert max(len(line["Description"]) for line in xero[long]["LineItems"]) == 4000
    notices = str(latest(instance, f"xero_{PROCESS}_documents", date.fromisoformat(xero[long]["DateString"][:10]))["notices"].value.records)
    assert "cut to Xero's 4,000" in notices
    (fabric,) = RECEIVABLES_SCENARIOS["three_decimal_quantities"].numbers
    assert any(line["Quantity"] != line["Quantity"].quantize(D("0.01")) for line in xero[fabric]["LineItems"])
    till = [number for number, doc in xero.items() if any(p.get("Reference", "").startswith(f"{number}/EFTPOS") for p in doc.get("Payments") or [])]
    assert len(till) == 1 and xero[till[0]]["AmountDue"] > 0  # the till sale: EFTPOS paid, the rest on account


def test_the_credit_check_fails_a_credit_note_whose_figures_do_not_add_up_and_lists_what_stays_as_credit():
    import pandas as pd

    from ci_xero_pipeline.assets.process import Posting
    from ci_xero_pipeline.assets.receivables import credits_check

    results = pd.DataFrame([
        {"document_key": "receivables/C1", "business_date": "2026-03-02", "endpoint": "CreditNotes", "number": "C1",
         "outcome": "posted", "ci_invoice_nos": ("C1",)},
        {"document_key": "receivables/C2", "business_date": "2026-03-02", "endpoint": "CreditNotes", "number": "C2",
         "outcome": "posted", "ci_invoice_nos": ("C2",)},
    ])
    held = {("CreditNotes", "C1"): {"CreditNoteNumber": "C1", "Status": "AUTHORISED", "Total": D("50.00"), "RemainingCredit": D("30.00"),
                                    "Allocations": [{"Amount": D("20.00")}], "Payments": []},
            ("CreditNotes", "C2"): {"CreditNoteNumber": "C2", "Status": "AUTHORISED", "Total": D("15.00"), "RemainingCredit": D("14.00"),
                                    "Allocations": [], "Payments": []}}
    allocations = pd.DataFrame([{"credit_document_key": "receivables/C1", "outcome": "allocated",
                                 "message": "allocated 20.00 (the invoice's amount due); 30.00 stays as credit"}])
    posting = Posting(None, None, pd.DataFrame(), pd.DataFrame(), results, pd.DataFrame(), held, ["2026-03-02"],
                      allocation_results=allocations)
    check = credits_check(posting)
    assert not check.passed  # C2: 1.00 is neither allocated, refunded nor remaining
    wrong = [r.data for r in check.metadata["not_adding_up"].value.records]
    assert [r["credit_number"] for r in wrong] == ["C2"]
    left = {r.data["number"]: r.data for r in check.metadata["left_unallocated"].value.records}
    assert "30.00 stays as credit" in left["C1"]["why_unallocated"] and left["C2"]["allocation_outcome"] == "not_wanted"


def test_the_credit_check_fails_when_xero_no_longer_holds_an_allocation_the_run_made():
    """Xero keeps a credit's allocations + refunds + remaining = total by itself; an allocation deleted (or
    made to another invoice) in Xero is told by comparing the credit note with what the run allocated."""
    import pandas as pd

    from ci_xero_pipeline.assets.process import Posting
    from ci_xero_pipeline.assets.receivables import credits_check

    results = pd.DataFrame([{"document_key": "receivables/C1", "business_date": "2026-03-02", "endpoint": "CreditNotes",
                             "number": "C1", "outcome": "posted", "ci_invoice_nos": ("C1",)}])
    allocations = pd.DataFrame([{"credit_document_key": "receivables/C1", "credit_id": "cn-1", "credit_number": "C1",
                                 "invoice_id": "inv-1", "invoice_number": "I1", "outcome": "allocated", "amount_cents": 2000,
                                 "message": "allocated 20.00"}])

    def held(allocated: list) -> dict:
        return {("CreditNotes", "C1"): {"CreditNoteID": "cn-1", "CreditNoteNumber": "C1", "Status": "AUTHORISED",
                                        "Total": D("50.00"), "RemainingCredit": D("50.00") - sum(a["Amount"] for a in allocated),
                                        "Allocations": allocated, "Payments": []}}

    as_made = [{"Amount": D("20.00"), "Invoice": {"InvoiceID": "inv-1", "InvoiceNumber": "I1"}}]
    assert credits_check(Posting(None, None, pd.DataFrame(), pd.DataFrame(), results, pd.DataFrame(), held(as_made),
                                 ["2026-03-02"], allocation_results=allocations)).passed
    elsewhere = [{"Amount": D("20.00"), "Invoice": {"InvoiceID": "inv-9", "InvoiceNumber": "I9"}}]
    for now in ([], elsewhere):
        check = credits_check(Posting(None, None, pd.DataFrame(), pd.DataFrame(), results, pd.DataFrame(), held(now),
                                      ["2026-03-02"], allocation_results=allocations))
        assert not check.passed
        assert "no allocation to it" in check.metadata["allocations_not_as_recorded"].value.records[0].data["message"]


def test_a_customer_archived_in_xero_holds_back_a_changed_invoice_once_named_and_touches_nothing(site, tmp_path):
    """After posting, the accountant archives the customer's contact in Xero and CI changes one of its invoices:
    the run never creates a second contact, sends nothing for the invoice, and reports it once, as failed with
    the contact's reason (not also `kept`), so the day is red until the contact is restored."""
    instance = DagsterInstance.ephemeral()
    assert run_days(site, DAY, DAY, instance, process=PROCESS).success
    client = xero_client(site)
    kauri = next(c for c in contacts(site) if c["ContactNumber"] == "C300")
    client.request("POST", f"Contacts/{kauri['ContactID']}", body={"Contacts": [{"ContactID": kauri["ContactID"], "ContactStatus": "ARCHIVED"}]})
    before = held(site)["AR-A104"]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ci.sqlite'}")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE ci_sales_invoice_lines SET unit_price_incl = 55.00, line_total_incl = 55.00, "
                                   "line_gst = 7.17 WHERE invoice_no = 'A104'"))
        connection.execute(sa.text("UPDATE ci_sales_invoices SET total_incl = 55.00, total_gst = 7.17, updated_at = :t "
                                   "WHERE invoice_no = 'A104'"), {"t": datetime.combine(DAY, datetime.min.time()) + timedelta(hours=17)})
        connection.execute(sa.text("UPDATE ci_sales_tenders SET amount = 25.00 WHERE invoice_no = 'A104' AND tender_type = 'ACCOUNT'"))
    engine.dispose()
    again = run_days(site, DAY, DAY, instance, process=PROCESS)
    assert not again.success
    from dagster import DagsterEventType

    failures = [e.dagster_event.step_failure_data.user_failure_data
                for e in instance.all_logs(again.run_id, of_type=DagsterEventType.STEP_FAILURE)]
    failure = next(f for f in failures if f is not None)
    assert "AR-A104" in failure.description and "C300" in failure.description and "archived" in failure.description
    failed = [record.data for record in failure.metadata["failed_documents"].value.records]
    assert [row["number"] for row in failed] == ["AR-A104"]  # once: failed for its contact, not also `kept`
    everyone = xero_client(site).get_all("Contacts", "Contacts", {"page": 1, "includeArchived": "true"})
    assert [c["ContactStatus"] for c in everyone if c.get("ContactNumber") == "C300"] == ["ARCHIVED"]  # never a second one
    after = held(site)["AR-A104"]
    assert (after["Total"], after["Status"]) == (before["Total"], before["Status"])  # nothing sent for it

"""Contacts in Xero exactly once (issue 12), against the sandbox over HTTP: found by ContactNumber and never
by name, created in batches when missing, look-alike names kept apart, archived and renumbered contacts
never duplicated, lost answers looked up, and the documents' payloads pointed at their contacts' ids."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from ci_xero_pipeline.books.eretailer import DOCUMENT_COLUMNS
from ci_xero_pipeline.sandbox.faults import FaultPlan
from ci_xero_pipeline.xero.client import XeroClient
from ci_xero_pipeline.xero.contacts import (
    CONTACT_RESULT_COLUMNS, contact_ids, contact_ledger, contact_ledger_key, contact_messages, ensure_contacts,
    name_with_number, with_contact_ids,
)
from ci_xero_pipeline.xero.ledger import FAILED, INTENDED, POSTED, Intent, PostingLedger, content_hash

from .test_client_conformance import conformance_of, contract, exchanges  # noqa: F401  (fixtures)
from .test_sandbox_accounting import (  # noqa: F401  (fixtures)
    Api, FixedToken, _loopback_http, accounting_spec, error_validator, make_api,
)

DAY = "2026-10-01"
D = Decimal


@dataclass
class Contacts:
    """One organisation in the sandbox, the project's client and the receivables process's contact ledger."""

    api: Api
    client: XeroClient
    ledger: PostingLedger

    def ensure(self, *rows: dict[str, Any], **kwargs: Any) -> pd.DataFrame:
        return ensure_contacts(self.client, self.ledger, wanted(*rows), **kwargs).set_index("contact_number", drop=False)

    def calls(self, method: str) -> int:
        return self.client.calls.by_kind[(method, "Contacts")]

    def in_xero(self, number: str) -> list[dict[str, Any]]:
        """Every contact the organisation holds under a number, archived ones too."""
        found = self.api.get("Contacts", where=f'ContactNumber=="{number}"', includeArchived="true")["Contacts"]
        return [c for c in found if c["ContactNumber"].casefold() == number.casefold()]

    def named(self, name: str) -> list[dict[str, Any]]:
        return self.api.get("Contacts", where=f'Name=="{name}"', includeArchived="true")["Contacts"]

    def states(self) -> dict[str, str]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT document_key, state FROM xero_posting_ledger WHERE endpoint = 'Contacts'"))
            return dict(rows.all())


@pytest.fixture
def contacts(make_api, tmp_path: Path) -> Contacts:
    return _contacts(make_api(), tmp_path)


def _contacts(api: Api, tmp_path: Path) -> Contacts:
    client = XeroClient(FixedToken(api.token), api.tenant_id, f"{api.server.base_url}/api.xro/2.0")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    documents = PostingLedger(engine, api.tenant_id, "test-run", process="receivables")
    return Contacts(api, client, contact_ledger(documents, "receivables"))


def customer(number: str, name: str, *sources: str, email: str | None = None, day: str = DAY) -> dict[str, Any]:
    return {"contact_number": number, "name": name, "email": email, "role": "customer",
            "source_keys": list(sources or (f"INV-{number}",)), "business_date": day}


def wanted(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["contact_number", "name", "email", "role", "source_keys", "business_date"])


def outcomes(frame: pd.DataFrame) -> dict[str, str]:
    return dict(zip(frame["contact_number"], frame["outcome"]))


# -- finding and creating ----------------------------------------------------------------------------

def test_missing_contacts_are_created_in_one_batch_and_a_rerun_writes_nothing(contacts):
    results = contacts.ensure(customer("C100", "Aroha Ngata", email="aroha@example.nz"), customer("C200", "Ben Carter"),
                              customer("C100", "Aroha Ngata", "INV-7"))  # a second document of C100: one contact

    assert list(results.columns) == CONTACT_RESULT_COLUMNS and len(results) == 2
    assert outcomes(results) == {"C100": "created", "C200": "created"}
    assert contacts.calls("PUT") == 1 and contacts.calls("GET") == 1  # one lookup, one batch
    aroha = contacts.in_xero("C100")
    assert [(c["Name"], c["EmailAddress"], c["ContactStatus"]) for c in aroha] == [("Aroha Ngata", "aroha@example.nz", "ACTIVE")]
    assert results.loc["C100", "contact_id"] == aroha[0]["ContactID"] and results.loc["C100", "name_sent"] == "Aroha Ngata"
    assert set(contacts.states().values()) == {POSTED}
    entry = contacts.ledger.entries([contact_ledger_key("receivables", "C100")])[contact_ledger_key("receivables", "C100")]
    assert (entry.xero_id, entry.source_keys, entry.partition_key) == (aroha[0]["ContactID"], ("INV-C100", "INV-7"), DAY)

    again = contacts.ensure(customer("C100", "Aroha Ngata"), customer("C200", "Ben Carter"))

    assert outcomes(again) == {"C100": "found", "C200": "found"}
    assert contacts.calls("PUT") == 1  # nothing written again
    assert dict(zip(again["contact_number"], again["contact_id"])) == dict(zip(results["contact_number"], results["contact_id"]))


def test_a_contact_is_found_by_its_number_whatever_its_name_and_never_by_name(contacts):
    renamed = contacts.api.create("Contacts", {"Name": "Aroha Ngata Ltd (renamed in Xero)", "ContactNumber": "C100"})[0]
    namesake = contacts.api.create("Contacts", {"Name": "Ben Carter"})[0]  # someone's contact without a number

    results = contacts.ensure(customer("C100", "Aroha Ngata"), customer("C200", "Ben Carter"))

    assert results.loc["C100", "outcome"] == "found" and results.loc["C100", "contact_id"] == renamed["ContactID"]
    assert "Aroha Ngata Ltd (renamed in Xero)" in results.loc["C100", "message"]
    assert contacts.in_xero("C100")[0]["Name"] == "Aroha Ngata Ltd (renamed in Xero)"  # left as it is
    # the namesake is not C200: C200 is created beside it, under a name Xero accepts
    assert results.loc["C200", "outcome"] == "created" and results.loc["C200", "contact_id"] != namesake["ContactID"]
    assert results.loc["C200", "name_sent"] == "Ben Carter [C200]"
    assert [c["ContactID"] for c in contacts.named("Ben Carter")] == [namesake["ContactID"]]


def test_look_alike_names_with_two_numbers_are_two_contacts(contacts):
    results = contacts.ensure(customer("C1", "Kiri Smith"), customer("C2", "Kiri Smith"), customer("C3", "Kiri Smith"))

    assert outcomes(results) == {"C1": "created", "C2": "created", "C3": "created"}
    assert list(results["name_sent"]) == ["Kiri Smith", "Kiri Smith [C2]", "Kiri Smith [C3]"]
    assert results["contact_id"].nunique() == 3
    assert "another contact named 'Kiri Smith'" in results.loc["C2", "message"]
    for number in ("C1", "C2", "C3"):
        assert len(contacts.in_xero(number)) == 1
    assert contacts.calls("PUT") == 2  # the batch, then the two refused names again

    again = contacts.ensure(customer("C1", "Kiri Smith"), customer("C2", "Kiri Smith"), customer("C3", "Kiri Smith"))
    assert outcomes(again) == {"C1": "found", "C2": "found", "C3": "found"} and contacts.calls("PUT") == 2


def test_a_long_look_alike_name_keeps_its_number_within_xeros_limit(contacts):
    long = "Kaitaia " * 40  # 320 characters: cut to 255, then cut again to fit the number
    assert len(name_with_number(long.strip()[:255], "C-77")) <= 255
    results = contacts.ensure(customer("C-76", long), customer("C-77", long))

    assert outcomes(results) == {"C-76": "created", "C-77": "created"}
    sent = results.loc["C-77", "name_sent"]
    assert len(sent) <= 255 and sent.endswith(" [C-77]") and "cut to Xero's 255" in results.loc["C-77", "message"]
    assert contacts.in_xero("C-77")[0]["Name"] == sent


def test_an_archived_contact_fails_and_no_second_one_is_made(contacts):
    archived = contacts.api.create("Contacts", {"Name": "Old Customer", "ContactNumber": "C900"})[0]
    assert contacts.api.post(f"Contacts/{archived['ContactID']}", {"ContactStatus": "ARCHIVED"}).status_code == 200

    results = contacts.ensure(customer("C900", "Old Customer"), customer("C901", "New Customer"))

    assert outcomes(results) == {"C900": "failed", "C901": "created"}
    assert "archived in Xero: restore it" in results.loc["C900", "message"]
    assert pd.isna(results.loc["C900", "contact_id"])  # its documents must not go to the archived contact
    assert [c["ContactID"] for c in contacts.in_xero("C900")] == [archived["ContactID"]]
    assert contact_ledger_key("receivables", "C900") not in contacts.states()  # nothing was intended for it
    assert contact_ids(results) == {"C901": results.loc["C901", "contact_id"]}
    assert "archived" in contact_messages(results)["C900"]


def test_a_contact_we_created_and_someone_renumbered_is_not_made_again(contacts):
    first = contacts.ensure(customer("C500", "Tane Parata"))
    contact_id = first.loc["C500", "contact_id"]
    assert contacts.api.post(f"Contacts/{contact_id}", {"ContactNumber": "C500-OLD"}).status_code == 200

    results = contacts.ensure(customer("C500", "Tane Parata"))

    assert results.loc["C500", "outcome"] == "failed" and "now has ContactNumber 'C500-OLD'" in results.loc["C500", "message"]
    assert pd.isna(results.loc["C500", "contact_id"]) and contact_id in results.loc["C500", "message"]
    assert contacts.in_xero("C500") == [] and contacts.calls("PUT") == 1  # nothing created the second time


def test_numbers_xero_cannot_tell_apart_and_rows_without_a_number_are_refused_before_any_call(contacts):
    results = contacts.ensure(customer("c42", "Mere Tau"), customer("C42", "Mere Tau Ltd"), customer("", "Nameless number"),
                              customer("C43", "  "))

    assert outcomes(results) == {"c42": "created", "C42": "failed", "": "failed", "C43": "failed"}
    assert "one number to Xero" in results.loc["C42", "message"]
    assert "never by name" in results.loc["", "message"] and "no name" in results.loc["C43", "message"]
    assert len(contacts.in_xero("C42")) == 1


def test_a_name_taken_even_with_its_number_fails_in_xeros_words_and_the_rest_are_created(contacts):
    contacts.api.create("Contacts", {"Name": "Kiri Smith"}, {"Name": "Kiri Smith [C2]"})  # someone's, without numbers

    results = contacts.ensure(customer("C1", "Good Customer"), customer("C2", "Kiri Smith"), customer("C3", "Another One"))

    assert outcomes(results) == {"C1": "created", "C2": "failed", "C3": "created"}
    assert results.loc["C2", "message"].startswith("C2: The contact name Kiri Smith [C2] is already assigned to another contact")
    assert contacts.states()[contact_ledger_key("receivables", "C2")] == FAILED
    assert contacts.in_xero("C2") == [] and contacts.calls("PUT") == 2  # once as named, once with the number

    # a person renames the other contact: the next run creates C2, looking it up first
    other = contacts.named("Kiri Smith")[0]
    contacts.api.post(f"Contacts/{other['ContactID']}", {"Name": "Kiri Smith (Tauranga)"})
    again = contacts.ensure(customer("C2", "Kiri Smith"))
    assert again.loc["C2", "outcome"] == "created" and contacts.in_xero("C2")[0]["Name"] == "Kiri Smith"


# -- lost answers, earlier attempts, the daily limit ------------------------------------------------------

@pytest.mark.parametrize("fault, puts", [("drop", 1), ("500", 1), ("503", 2)])
def test_a_lost_answer_on_contact_creation_is_looked_up_and_one_contact_is_made(contacts, fault, puts):
    # drop and 500: Xero saved the batch and the answer never came; 503: refused before acting
    contacts.api.server.faults.set(FaultPlan(script=(fault,), methods=("PUT",), collections=("Contacts",)))

    results = contacts.ensure(customer("C100", "Aroha Ngata"), customer("C200", "Ben Carter"))

    assert outcomes(results) == {"C100": "created", "C200": "created"}, results
    if puts == 1:
        assert results["message"].str.contains("confirmed by lookup").all()
    assert contacts.calls("PUT") == puts  # only what Xero did not hold was sent again
    assert contacts.calls("GET") == 2  # the first lookup, and one for the lost batch
    for number in ("C100", "C200"):
        assert [c["ContactID"] for c in contacts.in_xero(number)] == [results.loc[number, "contact_id"]]
    assert set(contacts.states().values()) == {POSTED}


def test_answers_lost_every_time_end_unknown_and_the_next_run_finds_what_was_made(contacts):
    contacts.api.server.faults.set(FaultPlan(script=("503",) * 3, methods=("PUT",), collections=("Contacts",)))

    results = contacts.ensure(customer("C100", "Aroha Ngata"), rounds=3)

    assert results.loc["C100", "outcome"] == "unknown" and "after 3 attempts" in results.loc["C100", "message"]
    assert contacts.in_xero("C100") == [] and contacts.states() == {contact_ledger_key("receivables", "C100"): INTENDED}

    again = contacts.ensure(customer("C100", "Aroha Ngata"))
    assert again.loc["C100", "outcome"] == "created" and len(contacts.in_xero("C100")) == 1


def test_an_earlier_attempt_whose_answer_was_lost_is_found_and_confirmed(contacts):
    key = contact_ledger_key("receivables", "C100")
    # an earlier run recorded its intent, sent, and died before the answer; Xero had saved the contact
    contacts.ledger.intend([Intent(key, "Contacts", "C100", 0, "c1:x", 0, 0, DAY, ("INV-C100",))])
    made = contacts.api.create("Contacts", {"Name": "Aroha Ngata", "ContactNumber": "C100"})[0]

    results = contacts.ensure(customer("C100", "Aroha Ngata"))

    assert results.loc["C100", "outcome"] == "found" and results.loc["C100", "contact_id"] == made["ContactID"]
    assert "earlier attempt" in results.loc["C100", "message"]
    assert contacts.calls("PUT") == 0 and contacts.states() == {key: POSTED}
    assert contacts.ledger.entries([key])[key].xero_id == made["ContactID"]


def test_the_daily_limit_defers_what_was_not_sent(make_api, tmp_path):
    contacts = _contacts(make_api(day_limit=1), tmp_path)  # the lookup is the day's last call

    results = contacts.ensure(customer("C100", "Aroha Ngata"), customer("C200", "Ben Carter"))

    assert outcomes(results) == {"C100": "deferred", "C200": "deferred"}
    assert results["message"].str.contains("the next run resumes here").all()
    assert contacts.api.server.store.all_contacts(contacts.api.tenant_id) == []  # (the API is closed for the day)
    assert set(contacts.states().values()) == {INTENDED}  # the next run looks them up before creating


# -- the documents' payloads ------------------------------------------------------------------------------

def receivable(number: str, contact_number: str, name: str) -> dict[str, Any]:
    payload = {
        "Type": "ACCREC", "InvoiceNumber": number, "Contact": {"ContactNumber": contact_number, "Name": name},
        "Date": DAY, "DueDate": "2026-10-20", "Status": "AUTHORISED", "LineAmountTypes": "Inclusive", "CurrencyCode": "NZD",
        "LineItems": [{"Description": "Goods", "Quantity": D(1), "UnitAmount": D("23.00"), "LineAmount": D("23.00"),
                       "TaxAmount": D("3.00"), "AccountCode": "200", "TaxType": "OUTPUT2"}],
    }
    return {"document_key": f"receivables/{DAY}/{number}", "business_date": DAY, "branch_code": "AKL", "endpoint": "Invoices",
            "document_type": "ACCREC", "number": number, "reference": "", "contact_name": name, "status": "AUTHORISED",
            "total_cents": 2300, "tax_cents": 300, "line_count": 1, "ci_invoice_nos": (number,), "payload": payload}


def test_documents_name_their_contact_by_id_and_those_whose_contact_failed_come_back_apart(contacts):
    archived = contacts.api.create("Contacts", {"Name": "Old Customer", "ContactNumber": "C900"})[0]
    contacts.api.post(f"Contacts/{archived['ContactID']}", {"ContactStatus": "ARCHIVED"})
    results = contacts.ensure(customer("C100", "Aroha Ngata"), customer("C200", "Aroha Ngata"), customer("C900", "Old Customer"))
    documents = pd.DataFrame([receivable("A-1", "C100", "Aroha Ngata"), receivable("A-2", "C200", "Aroha Ngata"),
                              receivable("A-3", "C900", "Old Customer"), receivable("A-4", "C100", "Aroha Ngata")],
                             columns=DOCUMENT_COLUMNS)
    hashes = [content_hash(p) for p in documents["payload"]]

    ready, missing = with_contact_ids(documents, contact_ids(results), contact_messages(results))

    assert list(ready["number"]) == ["A-1", "A-2", "A-4"] and list(ready.columns) == DOCUMENT_COLUMNS
    assert [p["Contact"] for p in ready["payload"]] == [
        {"ContactID": results.loc["C100", "contact_id"], "ContactNumber": "C100"},
        {"ContactID": results.loc["C200", "contact_id"], "ContactNumber": "C200"},
        {"ContactID": results.loc["C100", "contact_id"], "ContactNumber": "C100"},
    ]
    assert [content_hash(p) for p in ready["payload"]] == [hashes[0], hashes[1], hashes[3]]  # the ledger sees no change
    assert documents["payload"][0]["Contact"] == {"ContactNumber": "C100", "Name": "Aroha Ngata"}  # the input is untouched
    assert list(missing["number"]) == ["A-3"] and "archived in Xero" in missing["contact_message"].iloc[0]

    # Xero takes the payloads as they are and puts each document on its own contact, look-alikes apart
    saved = contacts.client.put_batch("Invoices", list(zip(ready["document_key"], ready["payload"])))
    assert all(outcome.ok for outcome in saved), [outcome.messages for outcome in saved]
    assert [o.document["Contact"]["ContactID"] for o in saved] == [p["Contact"]["ContactID"] for p in ready["payload"]]
    assert [o.document["Contact"]["Name"] for o in saved] == ["Aroha Ngata", "Aroha Ngata [C200]", "Aroha Ngata"]


def test_every_request_of_a_contacts_run_conforms_to_the_spec(contacts, contract, exchanges):
    first = contacts.ensure(customer("C500", "Tane Parata"))
    contacts.api.post(f"Contacts/{first.loc['C500', 'contact_id']}", {"Contacts": [{"ContactNumber": "C500-OLD"}]})
    contacts.api.server.faults.set(FaultPlan(script=("drop",), methods=("PUT",), collections=("Contacts",)))
    contacts.ensure(customer("C1", "Kiri Smith", email="kiri@example.nz"), customer("C2", "Kiri Smith"),
                    customer("C500", "Tane Parata"))

    problems, called = conformance_of(contract, exchanges, contacts.api.server)

    assert problems == []
    # PUTs: C500's first; then C1 and C2 (dropped, so not recorded), C2 again, C2 with its number
    assert called[("PUT", "/Contacts")] == 3 and called[("GET", "/Contacts")] == 1 + 1 + 1 + 1  # incl. the read by IDs

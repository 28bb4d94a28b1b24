"""The sandbox's Accounting API over real HTTP: Xero's validation rules and messages, totals, batches,
idempotency, rate limits, tracking, contacts, filters, lock dates. Every response body is checked
against Xero's published OpenAPI spec, and the official xero-python SDK reads back what was written."""

from __future__ import annotations

import copy
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from ci_xero_pipeline.money import dumps_exact, loads_exact
from ci_xero_pipeline.sandbox.ratelimit import RateLimiter
from ci_xero_pipeline.sandbox.server import SandboxOrganisation, SandboxServer
from ci_xero_pipeline.xero.oauth import consent_like_a_browser

from .conftest import CLIENT_ID, REDIRECT_URI

SPECS = Path(__file__).resolve().parents[2] / "shared" / "xero-openapi"
XERO_API = "https://api.xero.com/api.xro/2.0"
STORES = ["Queen Street", "Online", "Riccarton"]
D = Decimal


@pytest.fixture(autouse=True)
def _loopback_http(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.fixture(scope="module")
def accounting_spec():
    if not (SPECS / "xero_accounting.yaml").is_file():
        pytest.skip(f"Xero's OpenAPI specs are not at {SPECS}: nothing to validate against")
    from openapi_core import Config, OpenAPI

    # the published file has a few schema defaults of the wrong type: validate responses, not the file
    return OpenAPI.from_file_path(str(SPECS / "xero_accounting.yaml"), config=Config(spec_validator_cls=None))


@pytest.fixture(scope="module")
def error_validator(accounting_spec):
    """Xero's Error schema, for 400 bodies (the spec leaves most 400 answers without a schema)."""
    from openapi_schema_validator import OAS30Validator

    with accounting_spec.spec.open() as document:
        root = {"$ref": "#/components/schemas/Error", "components": document["components"]}
    return OAS30Validator(root)


class Api:
    """Accounting API calls for one organisation; every answer is validated against Xero's spec."""

    def __init__(self, server: SandboxServer, token: dict, tenant_id: str, spec, error_validator):
        self.server = server
        self.token = token
        self.tenant_id = tenant_id
        self.spec = spec
        self.error_validator = error_validator
        self.base = f"{server.base_url}/api.xro/2.0"

    def call(self, method: str, path: str, body: Any = None, params: dict | None = None, headers: dict | None = None,
             validate: bool = True) -> requests.Response:
        sent = {"Authorization": f"Bearer {self.token['access_token']}", "xero-tenant-id": self.tenant_id, "Accept": "application/json"}
        data = None
        if body is not None:
            sent["Content-Type"] = "application/json"
            data = dumps_exact(body).encode()
        answer = requests.request(method, f"{self.base}/{path}", params=params, data=data, headers={**sent, **(headers or {})}, timeout=30)
        if validate:
            self.validate(answer)
        return answer

    def validate(self, answer: requests.Response) -> None:
        from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

        if answer.status_code in (200, 400):
            request = answer.request.copy()
            parts = urlsplit(request.url)
            request.url = urlunsplit(urlsplit(XERO_API + parts.path[len(urlsplit(self.base).path):])._replace(query=parts.query))
            self.spec.validate_response(RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(answer))
        if answer.status_code == 400:
            self.error_validator.validate(answer.json())

    def json(self, answer: requests.Response) -> Any:
        return loads_exact(answer.content)

    def get(self, path: str, **params: Any) -> Any:
        answer = self.call("GET", path, params=params)
        assert answer.status_code == 200, answer.text
        return self.json(answer)

    def put(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.call("PUT", path, body, params=params)

    def post(self, path: str, body: Any, **params: Any) -> requests.Response:
        return self.call("POST", path, body, params=params)

    def create(self, collection: str, *documents: dict, **params: Any) -> list[dict]:
        answer = self.put(collection, {collection: list(documents)}, summarizeErrors="false", **params)
        assert answer.status_code == 200, answer.text
        elements = self.json(answer)[collection]
        assert [e["StatusAttributeString"] for e in elements] == ["OK"] * len(documents), elements
        return elements

    def refused(self, collection: str, document: dict, **params: Any) -> list[str]:
        """Xero's messages for a document refused as a whole (summarizeErrors default)."""
        answer = self.put(collection, {collection: [document]}, **params)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["Type"] == "ValidationException" and body["ErrorNumber"] == 10
        return [error["Message"] for element in body["Elements"] for error in element["ValidationErrors"]]


def connect(server: SandboxServer) -> dict:
    from requests_oauthlib import OAuth2Session

    session = OAuth2Session(CLIENT_ID, redirect_uri=REDIRECT_URI, scope=["offline_access", "accounting.invoices",
                            "accounting.contacts", "accounting.settings"], pkce="S256")
    url, _ = session.authorization_url(f"{server.base_url}/identity/connect/authorize")
    return session.fetch_token(f"{server.base_url}/identity/connect/token", authorization_response=consent_like_a_browser(url),
                               include_client_id=True)


def tenant_named(server: SandboxServer, token: dict, name: str) -> str:
    found = requests.get(f"{server.base_url}/connections", headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).json()
    return next(c["tenantId"] for c in found if c["tenantName"] == name)


@pytest.fixture
def make_api(sandbox_factory, accounting_spec, error_validator):
    def make(*organisations: SandboxOrganisation, name: str | None = None, **config: Any) -> Api:
        organisations = organisations or (
            SandboxOrganisation("Test Retail Ltd", "TEST1", tracking_categories={"Stores": STORES}),
        )
        server = sandbox_factory(*organisations, **config)
        token = connect(server)
        return Api(server, token, tenant_named(server, token, name or organisations[0].name), accounting_spec, error_validator)

    return make


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


def invoice(number: str = "ER-20261001", **changes: Any) -> dict:
    document = {
        "Type": "ACCREC",
        "InvoiceNumber": number,
        "Contact": {"Name": "E-Retailer Sales"},
        "Date": "2026-10-01",
        "DueDate": "2026-10-20",
        "Status": "AUTHORISED",
        "LineAmountTypes": "Inclusive",
        "CurrencyCode": "NZD",
        "Reference": "CI E-Retailer 2026-10-01",
        "LineItems": [
            {
                "Description": "Apparel",
                "Quantity": D("1"),
                "UnitAmount": D("115.00"),
                "LineAmount": D("115.00"),
                "TaxAmount": D("15.00"),
                "AccountCode": "201",
                "TaxType": "OUTPUT2",
                "Tracking": [{"Name": "Stores", "Option": "Online"}],
            }
        ],
    }
    document.update(changes)
    return document


def credit_note(number: str = "ER-20261002", **changes: Any) -> dict:
    document = invoice(number, Type="ACCRECCREDIT", Date="2026-10-02")
    document["CreditNoteNumber"] = document.pop("InvoiceNumber")
    document.pop("DueDate")
    document.update(changes)
    return document


def with_line(document: dict, **changes: Any) -> dict:
    changed = copy.deepcopy(document)
    changed["LineItems"][0].update(changes)
    for key, value in changes.items():
        if value is None:
            changed["LineItems"][0].pop(key)
    return changed


def without(document: dict, *keys: str) -> dict:
    return {k: v for k, v in document.items() if k not in keys}


# -- reference data -------------------------------------------------------------------------------

def test_organisation_accounts_and_tax_rates(api):
    organisation = api.get("Organisation")["Organisations"][0]
    assert organisation["Name"] == "Test Retail Ltd" and organisation["BaseCurrency"] == "NZD"
    assert organisation["OrganisationID"] == api.tenant_id
    accounts = {a["Code"]: a for a in api.get("Accounts")["Accounts"]}
    for code, name in [("201", "Apparel sales"), ("202", "Footwear sales"), ("203", "Accessories sales"),
                       ("204", "Gift sales"), ("205", "Freight income"), ("835", "Gift voucher liability")]:
        assert accounts[code]["Name"] == name and accounts[code]["Status"] == "ACTIVE"
    assert accounts["090"]["Type"] == "BANK" and accounts["200"]["TaxType"] == "OUTPUT2"
    only = api.get("Accounts", where='Code=="202"')["Accounts"]
    assert [a["Name"] for a in only] == ["Footwear sales"]
    assert {a["Code"] for a in api.get("Accounts", where='Type=="BANK"')["Accounts"]} == {"090", "091"}
    rates = {r["TaxType"]: r for r in api.get("TaxRates")["TaxRates"]}
    assert rates["OUTPUT2"]["EffectiveRate"] == D("15.0000") and rates["OUTPUT2"]["CanApplyToRevenue"] is True
    assert rates["INPUT2"]["CanApplyToRevenue"] is False and rates["INPUT2"]["Name"] == "15% GST on Expenses"
    assert {"ZERORATED", "NONE", "GSTONIMPORTS"} <= set(rates)


def test_unauthenticated_and_unconnected_calls(api):
    bad_token = api.call("GET", "Invoices", headers={"Authorization": "Bearer nonsense"}, validate=False)
    assert bad_token.status_code == 401
    assert bad_token.json()["Detail"] == "AuthenticationUnsuccessful" and bad_token.json()["Status"] == 401
    wrong_tenant = api.call("GET", "Invoices", headers={"xero-tenant-id": "00000000-0000-0000-0000-000000000001"}, validate=False)
    assert wrong_tenant.status_code == 403 and wrong_tenant.json()["Detail"] == "AuthorizationUnsuccessful"
    counts = api.server.store.call_counts(api.tenant_id)
    assert counts[("GET", "Invoices")] == 1  # the 401 is counted under the same tenant; the 403 under its own
    assert api.call("GET", "Invoices/6f0e4b4e-0000-4000-8000-000000000000", validate=False).status_code == 404
    assert api.call("PUT", "Invoices", headers={"Content-Type": "application/json"}, validate=False).status_code == 400


# -- validation, one rule at a time -------------------------------------------------------------------

REFUSALS = [
    ("type required", without(invoice(), "Type"), "Invoice Type must be specified."),
    ("contact required", without(invoice(), "Contact"), "A Contact must be specified for this type of transaction"),
    ("date required", without(invoice(), "Date"), "Date is required."),
    ("bad date", invoice(Date="01/10/2026"), "'01/10/2026' is not a valid date."),
    ("due date on authorised", without(invoice(), "DueDate"), "Due Date is required."),
    ("status on create", invoice(Status="PAID"), "Invoices can only be created with a status of DRAFT, SUBMITTED or AUTHORISED, not PAID."),
    ("currency", invoice(CurrencyCode="AUD"), "Organisation is not subscribed to currency AUD"),
    ("description", with_line(invoice(), Description=None), "The description field is mandatory for each line item."),
    ("line total", with_line(invoice(), LineAmount=D("114.99")),
     "The line total 114.99 does not match the expected line total 115.00 (Quantity × UnitAmount − discount) on line item 1."),
    ("unknown account", with_line(invoice(), AccountCode="999"), "Account code '999' is not a valid code for this document."),
    ("bank account", with_line(invoice(), AccountCode="090"), "Account code '090' is not a valid code for this document."),
    ("archived account", with_line(invoice(), AccountCode="209"), "Account code '209' has been archived, or is not a valid code for this document."),
    ("unknown tax type", with_line(invoice(), TaxType="BOGUS"),
     "The TaxType code 'BOGUS' does not exist or cannot be used with this type of transaction."),
    ("purchase tax on a sale", with_line(invoice(), TaxType="INPUT2"),
     "The TaxType code 'INPUT2' does not exist or cannot be used with this type of transaction."),
    ("archived tax type", with_line(invoice(), TaxType="OUTPUT"),
     "The TaxType code 'OUTPUT' does not exist or cannot be used with this type of transaction."),
    ("tax amount tolerance", with_line(invoice(), TaxAmount=D("15.02")),
     "The TaxAmount 15.02 on line item 1 differs from the calculated tax 15.00 by more than 0.01."),
    ("zero rated carries no tax", with_line(invoice(), TaxType="ZERORATED", TaxAmount=D("0.01")),
     "The TaxAmount 0.01 on line item 1 differs from the calculated tax 0.00 by more than 0.00."),
    ("negative total", with_line(invoice(), UnitAmount=D("-115.00"), LineAmount=D("-115.00"), TaxAmount=D("-15.00")),
     "Invoice total cannot be negative."),
    ("unknown tracking category", with_line(invoice(), Tracking=[{"Name": "Shops", "Option": "Online"}]),
     "The tracking category 'Shops' does not exist or has been archived."),
    ("unknown tracking option", with_line(invoice(), Tracking=[{"Name": "Stores", "Option": "Mars"}]),
     "The tracking option 'Mars' does not exist or has been archived in the tracking category 'Stores'."),
    ("three tracking entries", with_line(invoice(), Tracking=[{"Name": "Stores", "Option": "Online"}] * 3),
     "A line item can have a maximum of 2 tracking categories."),
    ("two discounts", with_line(invoice(), DiscountRate=D("10"), DiscountAmount=D("1.00")),
     "Only one of DiscountRate or DiscountAmount can be given on a line item."),
]


@pytest.mark.parametrize("document, message", [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_invoice_refused_with_xeros_message(api, document, message):
    assert message in api.refused("Invoices", document)
    assert api.get("Invoices")["Invoices"] == []  # nothing saved
    assert api.get("Contacts")["Contacts"] == []


def test_invoice_number_must_be_unique_even_after_a_void(api):
    first = api.create("Invoices", invoice("ER-1"))[0]
    assert api.refused("Invoices", invoice("ER-1")) == ["Invoice # must be unique."]
    assert api.refused("Invoices", invoice("er-1")) == ["Invoice # must be unique."]
    voided = api.post("Invoices", {"Invoices": [{"InvoiceID": first["InvoiceID"], "Status": "VOIDED"}]})
    assert voided.status_code == 200 and api.json(voided)["Invoices"][0]["Status"] == "VOIDED"
    # a voided (or deleted) document keeps its number: Xero does not promise reuse (the stricter reading)
    assert api.refused("Invoices", invoice("ER-1")) == ["Invoice # must be unique."]
    # bills (ACCPAY) may share numbers
    bill = with_line(invoice("B-1", Type="ACCPAY", Status="DRAFT"), AccountCode="429", TaxType="INPUT2", TaxAmount=None)
    api.create("Invoices", bill, bill)


def test_two_documents_in_one_batch_with_one_number(api):
    answer = api.put("Invoices", {"Invoices": [invoice("ER-9"), invoice("ER-9")]}, summarizeErrors="false")
    elements = api.json(answer)["Invoices"]
    assert [e["StatusAttributeString"] for e in elements] == ["OK", "ERROR"]
    assert elements[1]["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]


def test_credit_note_rules(api):
    api.create("CreditNotes", credit_note("CN-1"))
    assert api.refused("CreditNotes", credit_note("CN-1")) == ["Credit Note # must be unique."]
    assert "Discounts are not supported on credit note line items." in api.refused(
        "CreditNotes", with_line(credit_note("CN-2"), DiscountAmount=D("5.00"), LineAmount=D("110.00"), TaxAmount=None)
    )
    assert "Credit note total cannot be negative." in api.refused(
        "CreditNotes", with_line(credit_note("CN-3"), UnitAmount=D("-1.00"), LineAmount=D("-1.00"), TaxAmount=None)
    )
    assert "'ACCREC' is not a valid credit note Type; use ACCRECCREDIT or ACCPAYCREDIT." in api.refused(
        "CreditNotes", credit_note("CN-4", Type="ACCREC")
    )


# -- totals ---------------------------------------------------------------------------------------

def test_inclusive_totals_are_exact_with_tax_overrides(api):
    document = invoice("ER-T1")
    document["LineItems"] = [
        {"Description": "Shirt", "Quantity": D("3"), "UnitAmount": D("33.3333"), "LineAmount": D("100.00"),
         "TaxAmount": D("13.05"), "AccountCode": "201", "TaxType": "OUTPUT2"},  # computed 13.04: override within tolerance
        {"Description": "Shoes", "Quantity": D("1.5"), "UnitAmount": D("19.99"), "DiscountAmount": D("0.99"),
         "LineAmount": D("29.00"), "AccountCode": "202", "TaxType": "OUTPUT2"},  # 29.985 − 0.99 = 28.995 → 29.00; tax 3.78
        {"Description": "Voucher", "Quantity": D("1"), "UnitAmount": D("50.00"), "AccountCode": "835", "TaxType": "NONE"},
        {"Description": "Export", "Quantity": D("1"), "UnitAmount": D("10.01"), "AccountCode": "205", "TaxType": "ZERORATED",
         "TaxAmount": D("0.00")},
    ]
    saved = api.create("Invoices", document, unitdp=4)[0]
    lines = saved["LineItems"]
    assert [line["TaxAmount"] for line in lines] == [D("13.05"), D("3.78"), D("0.00"), D("0.00")]
    assert [line["LineAmount"] for line in lines] == [D("100.00"), D("29.00"), D("50.00"), D("10.01")]
    assert lines[0]["UnitAmount"] == D("33.3333") and str(lines[1]["DiscountAmount"]) == "0.99"
    assert (str(saved["Total"]), str(saved["TotalTax"]), str(saved["SubTotal"])) == ("189.01", "16.83", "172.18")
    assert saved["AmountDue"] == saved["Total"] and saved["AmountPaid"] == D("0.00")
    assert saved["Date"] == "/Date(1790812800000+0000)/" and saved["DateString"] == "2026-10-01T00:00:00"
    assert lines[0]["Tracking"] == [] and lines[0]["AccountID"]

    fetched = api.get(f"Invoices/{saved['InvoiceID']}")["Invoices"][0]
    assert fetched["LineItems"][0]["UnitAmount"] == D("33.33")  # unitdp 2 by default
    assert api.get(f"Invoices/{saved['InvoiceID']}", unitdp=4)["Invoices"][0]["LineItems"][0]["UnitAmount"] == D("33.3333")
    assert fetched["Total"] == D("189.01")


def test_exclusive_totals_and_defaults(api):
    document = invoice("ER-T2", LineAmountTypes="Exclusive", Status="DRAFT")
    document["LineItems"] = [
        {"Description": "Jacket", "Quantity": D("2"), "UnitAmount": D("99.95"), "DiscountRate": D("10"), "AccountCode": "201"},
        {"Description": "Freight", "UnitAmount": D("8.70"), "AccountCode": "205"},
    ]
    saved = api.create("Invoices", document)[0]
    # 199.90 − 10 % = 179.91 → tax 26.99 (26.9865); 8.70 → tax 1.31 (1.305 half up)
    assert [line["LineAmount"] for line in saved["LineItems"]] == [D("179.91"), D("8.70")]
    assert [line["TaxType"] for line in saved["LineItems"]] == ["OUTPUT2", "OUTPUT2"]  # from the accounts
    assert [line["TaxAmount"] for line in saved["LineItems"]] == [D("26.99"), D("1.31")]
    assert (saved["SubTotal"], saved["TotalTax"], saved["Total"]) == (D("188.61"), D("28.30"), D("216.91"))
    assert saved["Status"] == "DRAFT" and saved["CurrencyCode"] == "NZD"


def test_number_is_assigned_when_missing(api):
    saved = api.create("Invoices", without(invoice(), "InvoiceNumber"))[0]
    assert saved["InvoiceNumber"] == "INV-0001"


# -- batches ---------------------------------------------------------------------------------------

def test_summarize_errors_false_saves_the_good_ones(api):
    bad = with_line(invoice("ER-B2"), AccountCode="999")
    answer = api.put("Invoices", {"Invoices": [invoice("ER-B1"), bad, invoice("ER-B3")]}, summarizeErrors="false")
    assert answer.status_code == 200
    elements = api.json(answer)["Invoices"]
    assert [e["StatusAttributeString"] for e in elements] == ["OK", "ERROR", "OK"]
    assert [e["HasErrors"] for e in elements] == [False, True, False]
    assert elements[1]["ValidationErrors"] == [{"Message": "Account code '999' is not a valid code for this document."}]
    assert elements[1]["InvoiceNumber"] == "ER-B2"
    assert sorted(i["InvoiceNumber"] for i in api.get("Invoices")["Invoices"]) == ["ER-B1", "ER-B3"]


def test_summarized_errors_save_nothing(api):
    answer = api.put("Invoices", {"Invoices": [invoice("ER-S1"), with_line(invoice("ER-S2"), AccountCode="999")]})
    assert answer.status_code == 400
    assert [e["InvoiceNumber"] for e in answer.json()["Elements"]] == ["ER-S2"]
    assert api.get("Invoices")["Invoices"] == []


def test_idempotency_key_replays_without_creating_again(api):
    body = {"Invoices": [invoice("ER-I1")]}
    headers = {"Idempotency-Key": "batch-1"}
    first = api.call("PUT", "Invoices", body, params={"summarizeErrors": "false"}, headers=headers)
    second = api.call("PUT", "Invoices", body, params={"summarizeErrors": "false"}, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert len(api.get("Invoices", InvoiceNumbers="ER-I1")["Invoices"]) == 1
    third = api.call("PUT", "Invoices", body, params={"summarizeErrors": "false"}, headers={"Idempotency-Key": "batch-2"})
    assert api.json(third)["Invoices"][0]["ValidationErrors"] == [{"Message": "Invoice # must be unique."}]
    assert api.server.store.call_counts(api.tenant_id)[("PUT", "Invoices")] == 3


def test_idempotency_keys_expire(make_api):
    api = make_api(idempotency_seconds=0)
    body = {"Invoices": [invoice("ER-I2")]}
    api.call("PUT", "Invoices", body, params={"summarizeErrors": "false"}, headers={"Idempotency-Key": "k"})
    time.sleep(0.01)
    again = api.call("PUT", "Invoices", body, params={"summarizeErrors": "false"}, headers={"Idempotency-Key": "k"})
    assert api.json(again)["Invoices"][0]["StatusAttributeString"] == "ERROR"


def test_fifty_documents_of_a_hundred_lines_each_in_one_call(api):
    """Xero's largest batch at a realistic width is taken whole and listed back whole (its speed is
    measured by bench/bench_posting.py, not asserted here)."""
    lines = [
        {"Description": f"Item {n}", "Quantity": D("1.000"), "UnitAmount": D("11.5000"), "LineAmount": D("11.50"),
         "TaxAmount": D("1.50"), "AccountCode": "201", "TaxType": "OUTPUT2", "Tracking": [{"Name": "Stores", "Option": "Online"}]}
        for n in range(100)
    ]
    documents = [invoice(f"ER-P{n:03d}", LineItems=lines) for n in range(50)]
    answer = api.call("PUT", "Invoices", {"Invoices": documents}, params={"summarizeErrors": "false", "unitdp": 4}, validate=False)
    assert answer.status_code == 200
    assert {e["StatusAttributeString"] for e in answer.json()["Invoices"]} == {"OK"}
    listed = api.call("GET", "Invoices", params={"page": 1, "pageSize": 1000}, validate=False)
    found = api.json(listed)["Invoices"]
    assert len(found) == 50 and {len(i["LineItems"]) for i in found} == {100}
    assert sum(i["Total"] for i in found) == D("57500.00")


# -- updates ---------------------------------------------------------------------------------------

def test_updates_and_status_changes(api):
    draft = api.create("Invoices", invoice("ER-U1", Status="DRAFT"))[0]
    line_id = draft["LineItems"][0]["LineItemID"]
    answer = api.post("Invoices", {"Invoices": [{"InvoiceNumber": "ER-U1", "Status": "AUTHORISED", "Reference": "changed"}]})
    assert answer.status_code == 200, answer.text
    updated = api.json(answer)["Invoices"][0]
    assert (updated["InvoiceID"], updated["Status"], updated["Reference"]) == (draft["InvoiceID"], "AUTHORISED", "changed")
    assert updated["LineItems"][0]["LineItemID"] == line_id and updated["Total"] == D("115.00")

    messages = api.json(api.post(f"Invoices/{draft['InvoiceID']}", {"Status": "DRAFT"}, summarizeErrors="false"))
    assert messages["Invoices"][0]["ValidationErrors"] == [{"Message": "An AUTHORISED invoice cannot be returned to DRAFT."}]
    deleted = api.json(api.post("Invoices", {"InvoiceID": draft["InvoiceID"], "Status": "DELETED"}, summarizeErrors="false"))
    assert deleted["Invoices"][0]["ValidationErrors"] == [{"Message": "An AUTHORISED document cannot be deleted; void it instead."}]
    assert api.json(api.post("Invoices", {"InvoiceID": draft["InvoiceID"], "Status": "VOIDED"}))["Invoices"][0]["Status"] == "VOIDED"
    frozen = api.json(api.post("Invoices", {"InvoiceID": draft["InvoiceID"], "Reference": "x"}, summarizeErrors="false"))
    assert frozen["Invoices"][0]["ValidationErrors"] == [{"Message": "Invoice not of valid status for modification"}]

    other = api.create("Invoices", invoice("ER-U2", Status="DRAFT"))[0]
    assert api.json(api.post("Invoices", {"InvoiceID": other["InvoiceID"], "Status": "DELETED"}))["Invoices"][0]["Status"] == "DELETED"
    assert {i["Status"] for i in api.get("Invoices", Statuses="VOIDED,DELETED")["Invoices"]} == {"VOIDED", "DELETED"}


# -- lock date --------------------------------------------------------------------------------------

def test_period_lock_date(make_api):
    api = make_api(SandboxOrganisation("Locked Ltd", "LOCK1", period_lock_date=date(2026, 9, 30)))
    message = ("The document date cannot be on or before the period lock date (30 Sep 2026); "
               "an adviser must change the lock date first.")
    assert api.refused("Invoices", invoice("L-1", Date="2026-09-30", LineItems=[with_line(invoice(), Tracking=[])["LineItems"][0]])) == [message]
    plain = with_line(invoice(), Tracking=[])
    api.create("Invoices", {**plain, "InvoiceNumber": "L-2", "Date": "2026-09-15", "Status": "DRAFT"})
    api.create("Invoices", {**plain, "InvoiceNumber": "L-3", "Date": "2026-10-01"})
    organisation = api.get("Organisation")["Organisations"][0]
    assert organisation["PeriodLockDate"] == "/Date(1790726400000+0000)/"


# -- tracking ---------------------------------------------------------------------------------------

def test_tracking_categories_and_options(api):
    categories = api.get("TrackingCategories")["TrackingCategories"]
    assert [(c["Name"], sorted(o["Name"] for o in c["Options"])) for c in categories] == [("Stores", sorted(STORES))]

    created = api.put("TrackingCategories", {"Name": "CI Branches"})
    assert created.status_code == 200
    branch = api.json(created)["TrackingCategories"][0]
    assert branch["Status"] == "ACTIVE" and branch["Options"] == []

    duplicate = api.put("TrackingCategories", {"Name": "ci branches"})
    assert duplicate.status_code == 400
    assert duplicate.json()["Elements"][0]["ValidationErrors"][0]["Message"] == "For each specified tracking category the name must be unique."
    third = api.put("TrackingCategories", {"Name": "Channels"})
    assert third.json()["Elements"][0]["ValidationErrors"][0]["Message"] == "You cannot have more than 2 active tracking categories."

    # one TrackingOption object a call (the spec's createTrackingOptions requestBody)
    for name in ("Online Store", "Hamilton", "Riccarton"):
        single = api.put(f"TrackingCategories/{branch['TrackingCategoryID']}/Options", {"Name": name})
        assert single.status_code == 200
        assert [o["Name"] for o in api.json(single)["Options"]] == [name]
    clash = api.put(f"TrackingCategories/{branch['TrackingCategoryID']}/Options", {"Name": "hamilton"})
    assert clash.status_code == 400
    assert clash.json()["Elements"][0]["ValidationErrors"][0]["Message"] == "For each specified tracking option the name must be unique."
    long_name = api.put(f"TrackingCategories/{branch['TrackingCategoryID']}/Options", {"Name": "x" * 51})
    assert long_name.json()["Elements"][0]["ValidationErrors"][0]["Message"] == "The tracking option name must be 50 characters or fewer."

    one = api.get(f"TrackingCategories/{branch['TrackingCategoryID']}")["TrackingCategories"][0]
    assert sorted(o["Name"] for o in one["Options"]) == ["Hamilton", "Online Store", "Riccarton"]
    two_categories = with_line(invoice("ER-TR"), Tracking=[{"Name": "Stores", "Option": "Online"},
                                                          {"TrackingCategoryID": branch["TrackingCategoryID"], "Option": "hamilton"}])
    saved = api.create("Invoices", two_categories)[0]
    assert [(t["Name"], t["Option"]) for t in saved["LineItems"][0]["Tracking"]] == [("Stores", "Online"), ("CI Branches", "Hamilton")]


def test_archived_tracking_is_hidden_and_refused(api):
    stores = api.get("TrackingCategories")["TrackingCategories"][0]
    online = next(o for o in stores["Options"] if o["Name"] == "Online")
    archived = api.post(f"TrackingCategories/{stores['TrackingCategoryID']}/Options/{online['TrackingOptionID']}", {"Status": "ARCHIVED"})
    assert archived.status_code == 200
    assert "Online" not in {o["Name"] for o in api.get("TrackingCategories")["TrackingCategories"][0]["Options"]}
    assert "The tracking option 'Online' does not exist or has been archived in the tracking category 'Stores'." in api.refused("Invoices", invoice())

    assert api.post(f"TrackingCategories/{stores['TrackingCategoryID']}", {"Status": "ARCHIVED"}).status_code == 200
    assert api.get("TrackingCategories")["TrackingCategories"] == []
    everything = api.get("TrackingCategories", includeArchived="true")["TrackingCategories"]
    assert [(c["Name"], c["Status"]) for c in everything] == [("Stores", "ARCHIVED")]
    assert "The tracking category 'Stores' does not exist or has been archived." in api.refused(
        "Invoices", with_line(invoice(), Tracking=[{"Name": "Stores", "Option": "Riccarton"}])
    )


# -- contacts ---------------------------------------------------------------------------------------

def test_contacts_are_found_or_created(api):
    first = dict(invoice("ER-C1"), Contact={"Name": "Aroha Ngata [C100]", "ContactNumber": "C100", "EmailAddress": "aroha@example.nz"})
    second = dict(invoice("ER-C2"), Contact={"Name": "Aroha Ngata (renamed)", "ContactNumber": "C100"})
    third = dict(invoice("ER-C3"), Contact={"Name": "aroha ngata [c100]"})
    saved = api.create("Invoices", first, second, third)
    assert len({s["Contact"]["ContactID"] for s in saved}) == 1
    contacts = api.get("Contacts")["Contacts"]
    assert [(c["Name"], c["ContactNumber"], c["EmailAddress"], c["IsCustomer"]) for c in contacts] == [
        ("Aroha Ngata [C100]", "C100", "aroha@example.nz", True)
    ]
    by_number = api.get("Contacts", where='ContactNumber=="C100"')["Contacts"]
    assert [c["ContactID"] for c in by_number] == [saved[0]["Contact"]["ContactID"]]
    assert api.get("Contacts", where='Name=="Nobody"')["Contacts"] == []
    assert api.get("Contacts", IDs=saved[0]["Contact"]["ContactID"])["Contacts"][0]["Name"] == "Aroha Ngata [C100]"
    by_id = dict(invoice("ER-C4"), Contact={"ContactID": saved[0]["Contact"]["ContactID"]})
    assert api.create("Invoices", by_id)[0]["Contact"]["Name"] == "Aroha Ngata [C100]"


def test_contact_names_are_unique(api):
    created = api.put("Contacts", {"Contacts": [{"Name": "Walk-in Customer"}]})
    assert created.status_code == 200
    duplicate = api.put("Contacts", {"Contacts": [{"Name": "WALK-IN CUSTOMER"}]})
    assert duplicate.status_code == 400
    assert duplicate.json()["Elements"][0]["ValidationErrors"][0]["Message"] == (
        "The contact name WALK-IN CUSTOMER is already assigned to another contact. "
        "The contact name must be unique across all active contacts."
    )
    contact_id = api.json(created)["Contacts"][0]["ContactID"]
    renamed = api.post(f"Contacts/{contact_id}", {"Name": "Walk-in"})
    assert api.json(renamed)["Contacts"][0]["Name"] == "Walk-in"


# -- reading: filters, paging ----------------------------------------------------------------------------

def test_filters_and_paging(api):
    days = [f"2026-10-{day:02d}" for day in range(1, 8)]
    api.create("Invoices", *[invoice(f"ER-{d.replace('-', '')}", Date=d, DueDate=d) for d in days])
    api.create("CreditNotes", *[credit_note(f"ER-{d.replace('-', '')}", Date=d) for d in days[:3]])

    found = api.get("Invoices", InvoiceNumbers="ER-20261002,ER-20261005,ER-99999999")["Invoices"]
    assert sorted(i["InvoiceNumber"] for i in found) == ["ER-20261002", "ER-20261005"]
    where = 'CreditNoteNumber=="ER-20261001" OR CreditNoteNumber=="ER-20261003"'
    assert sorted(c["CreditNoteNumber"] for c in api.get("CreditNotes", where=where)["CreditNotes"]) == ["ER-20261001", "ER-20261003"]
    since = api.get("Invoices", where="Date>=DateTime(2026,10,05)")["Invoices"]
    assert sorted(i["InvoiceNumber"] for i in since) == ["ER-20261005", "ER-20261006", "ER-20261007"]
    window = api.get("Invoices", where='Date>=DateTime(2026,10,02) AND Date<DateTime(2026,10,04) AND Status!="DRAFT"')["Invoices"]
    assert len(window) == 2
    assert len(api.get("Invoices", where='Contact.Name=="E-Retailer Sales" AND Type=="ACCREC"')["Invoices"]) == 7
    assert api.get("Invoices", Statuses="DRAFT")["Invoices"] == []
    ids = [i["InvoiceID"] for i in found]
    assert {i["InvoiceID"] for i in api.get("Invoices", IDs=",".join(ids))["Invoices"]} == set(ids)

    page_one = api.get("Invoices", page=1, pageSize=3)
    page_three = api.get("Invoices", page=3, pageSize=3)
    assert len(page_one["Invoices"]) == 3 and len(page_three["Invoices"]) == 1
    assert page_one["pagination"] == {"page": 1, "pageSize": 3, "pageCount": 3, "itemCount": 7}
    assert len(api.get("Invoices")["Invoices"]) == 7  # without page: everything
    newest_first = api.get("Invoices", order="Date DESC")["Invoices"]
    assert newest_first[0]["InvoiceNumber"] == "ER-20261007"
    bad = api.call("GET", "Invoices", params={"where": 'InvoiceNumber=="x" ORR'}, validate=False)  # GET lists no 400
    assert bad.status_code == 400 and bad.json()["Type"] == "QueryParseException"
    api.error_validator.validate(bad.json())


# -- rate limits ------------------------------------------------------------------------------------

def test_minute_limit_answers_429_with_retry_after(make_api):
    api = make_api(minute_limit=3, time_scale=60)  # a 60 s window lasts 1 s
    remaining = [api.call("GET", "Organisation").headers["X-MinLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = api.call("GET", "Invoices", validate=False)
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    wait = float(refused.headers["Retry-After"])
    assert 0 < wait <= 1
    assert refused.headers["X-DayLimit-Remaining"] == "4997" and "X-AppMinLimit-Remaining" in refused.headers
    time.sleep(wait + 0.05)
    assert api.call("GET", "Invoices").status_code == 200
    counts = api.server.store.call_counts(api.tenant_id)
    assert counts == {("GET", "Organisation"): 3, ("GET", "Invoices"): 2}


def test_concurrent_calls_over_the_limit_answer_429(make_api, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from ci_xero_pipeline.sandbox.accounting import Accounting

    api = make_api(concurrent_limit=1)
    slow = Accounting.organisation

    def slow_organisation(self, tenant_id):
        time.sleep(0.5)
        return slow(self, tenant_id)

    monkeypatch.setattr(Accounting, "organisation", slow_organisation)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(api.call, "GET", "Organisation", validate=False)
        time.sleep(0.15)
        second = pool.submit(api.call, "GET", "Organisation", validate=False).result()
        assert first.result().status_code == 200
    assert second.status_code == 429
    assert second.headers["X-Rate-Limit-Problem"] == "concurrent" and "Retry-After" not in second.headers


def test_day_and_concurrency_limits():
    clock = [0.0]
    limiter = RateLimiter(minute_limit=60, day_limit=2, concurrent_limit=1, app_minute_limit=100, time_scale=1, clock=lambda: clock[0])
    assert limiter.admit("app", "t1").admitted
    busy = limiter.admit("app", "t1")
    assert (busy.admitted, busy.problem, "Retry-After" in busy.headers()) == (False, "concurrent", False)
    limiter.release("app", "t1")
    assert limiter.admit("app", "t1").admitted
    limiter.release("app", "t1")
    clock[0] = 100.0
    day = limiter.admit("app", "t1")
    assert (day.admitted, day.problem, day.headers()["Retry-After"]) == (False, "day", "86300")
    assert limiter.admit("app", "t2").admitted  # another organisation has its own limits


# -- the official SDK reads back what was written ----------------------------------------------------------

def test_xero_python_sdk_reads_back_documents_and_tracking(api):
    from xero_python.accounting import AccountingApi
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token

    api.create("Invoices", invoice("ER-SDK1"), invoice("ER-SDK2", Status="DRAFT"))
    api.create("CreditNotes", credit_note("ER-SDK3"))
    client = ApiClient(Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret="")), pool_threads=1)
    stored: dict = {}
    client.oauth2_token_getter(lambda: stored)
    client.oauth2_token_saver(stored.update)
    token = dict(api.token)
    token["expires_at"] = time.time() + 1500
    client.set_oauth2_token(token)
    accounting = AccountingApi(client, base_url=f"{api.server.base_url}/api.xro/2.0")

    invoices = accounting.get_invoices(api.tenant_id, invoice_numbers=["ER-SDK1", "ER-SDK2"], page=1, unitdp=4).invoices
    by_number = {i.invoice_number: i for i in invoices}
    assert set(by_number) == {"ER-SDK1", "ER-SDK2"}
    first = by_number["ER-SDK1"]
    assert (first.status, first.type, first.line_amount_types.value) == ("AUTHORISED", "ACCREC", "Inclusive")
    # the SDK reads money as Decimal: exact, digits as written
    assert (str(first.total), str(first.total_tax), str(first.sub_total)) == ("115.00", "15.00", "100.00")
    assert first.date == date(2026, 10, 1) and first.due_date == date(2026, 10, 20)
    assert first.contact.name == "E-Retailer Sales"
    line = first.line_items[0]
    assert (line.account_code, line.tax_type, line.tracking[0].name, line.tracking[0].option) == ("201", "OUTPUT2", "Stores", "Online")
    assert by_number["ER-SDK2"].status == "DRAFT"

    notes = accounting.get_credit_notes(api.tenant_id, where='CreditNoteNumber=="ER-SDK3"').credit_notes
    assert [(n.credit_note_number, n.type, n.status, str(n.total)) for n in notes] == [("ER-SDK3", "ACCRECCREDIT", "AUTHORISED", "115.00")]

    categories = accounting.get_tracking_categories(api.tenant_id).tracking_categories
    assert [(c.name, sorted(o.name for o in c.options)) for c in categories] == [("Stores", sorted(STORES))]
    organisation = accounting.get_organisations(api.tenant_id).organisations[0]
    assert organisation.name == "Test Retail Ltd" and organisation.base_currency.value == "NZD"


# -- the project's own client against the sandbox -------------------------------------------------------

class FixedToken:
    """A token that is valid for the whole test: the client's keeper without a store."""

    def __init__(self, token: dict):
        self._token = token

    def token(self) -> dict:
        return self._token


def test_project_client_creates_tracking_and_documents(api):
    from ci_xero_pipeline.xero.client import XeroClient
    from ci_xero_pipeline.xero.tracking import ensure_tracking_options

    base = api.server.base_url
    client = XeroClient(FixedToken(api.token), api.tenant_id, f"{base}/api.xro/2.0")
    setup = ensure_tracking_options(client, "CI Branches", ["Online Store", "Hamilton"], "create")
    assert setup.created_category and set(setup.created_options) == {"Online Store", "Hamilton"}
    again = ensure_tracking_options(client, "CI Branches", ["Online Store", "Hamilton"], "create")
    assert not again.created_category and again.created_options == ()

    documents = [(f"k{n}", with_line(invoice(f"ER-PC{n}"), Tracking=[{"Name": "CI Branches", "Option": "Hamilton"}])) for n in range(3)]
    documents.append(("bad", with_line(invoice("ER-PCX"), AccountCode="999")))
    outcomes = client.create_documents("Invoices", documents)
    assert [o.ok for o in outcomes] == [True, True, True, False]
    assert outcomes[3].messages == ("Account code '999' is not a valid code for this document.",)
    found = client.find_by_number("Invoices", ["ER-PC0", "ER-PC2", "ER-PCX"])
    assert set(found) == {"ER-PC0", "ER-PC2"}
    # a retried batch carries the same Idempotency-Key and creates nothing new
    client.create_documents("Invoices", documents)
    assert len(client.find_by_number("Invoices", [f"ER-PC{n}" for n in range(3)])) == 3
    assert len(api.get("Invoices")["Invoices"]) == 3


def test_restart_keeps_documents_and_does_not_duplicate(sandbox_factory, tmp_path):
    from ci_xero_pipeline.sandbox.server import SandboxClient, SandboxConfig

    config = SandboxConfig(
        db_path=str(tmp_path / "restart.sqlite"),
        organisations=[SandboxOrganisation("Restart Ltd", "RST1", tracking_categories={"Stores": STORES})],
        clients=[SandboxClient(CLIENT_ID, None, [REDIRECT_URI])],
    )
    with SandboxServer(config) as first:
        token = connect(first)
        tenant = tenant_named(first, token, "Restart Ltd")
        headers = {"Authorization": f"Bearer {token['access_token']}", "xero-tenant-id": tenant, "Content-Type": "application/json"}
        answer = requests.put(f"{first.base_url}/api.xro/2.0/Invoices", data=dumps_exact({"Invoices": [invoice("ER-R1")]}), headers=headers, timeout=10)
        assert answer.status_code == 200
    with SandboxServer(config) as second:
        refreshed = requests.post(f"{second.base_url}/identity/connect/token", data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": CLIENT_ID}, timeout=10).json()
        headers["Authorization"] = f"Bearer {refreshed['access_token']}"
        found = requests.get(f"{second.base_url}/api.xro/2.0/Invoices", headers=headers, timeout=10).json()["Invoices"]
        assert [i["InvoiceNumber"] for i in found] == ["ER-R1"]
        categories = requests.get(f"{second.base_url}/api.xro/2.0/TrackingCategories", headers=headers, timeout=10).json()
        assert [len(c["Options"]) for c in categories["TrackingCategories"]] == [3]
        assert second.store.query("SELECT COUNT(*) AS n FROM organisations")[0]["n"] == 1
        assert second.store.call_counts(tenant)[("PUT", "Invoices")] == 1

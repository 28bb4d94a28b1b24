"""Every request the client sends during real runs conforms to Xero's published OpenAPI spec, and every
answer the sandbox gives it has the spec's shape.

The spec is the committed subset in data/xero-openapi-subset.schema.json (derived from Xero's full spec
by scripts/derive-xero-schema; MIT, see data/XERO-OPENAPI-LICENSE), so these checks run on any clone.
Request bodies are checked strictly: a property the spec does not define, at any depth, is an error
(Xero ignores unknown properties silently, so a misspelt or misplaced field would be lost unseen)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from dagster import DagsterInstance
from jsonschema import Draft202012Validator

from ci_xero_pipeline.runner import run_days
from ci_xero_pipeline.xero.chart_check import AccountNeed, account_to_create, create_missing, read_and_check

from .conftest import DEMO_DAYS, DEMO_END_DAY, PROJECT_ROOT
from .pipeline_helpers import connect_site, run, xero_client

DATA = Path(__file__).resolve().parent / "data"
SCHEMA_FILE = DATA / "xero-openapi-subset.schema.json"
LICENSE_FILE = DATA / "XERO-OPENAPI-LICENSE"
FULL_SPEC = PROJECT_ROOT.parent / "shared" / "xero-openapi" / "xero_accounting.yaml"


def strict(node: Any) -> Any:
    """The schema with `additionalProperties: false` on every object schema that lists properties."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: strict(value) for key, value in node.items()}
    if "properties" in result and "additionalProperties" not in result:
        result["additionalProperties"] = False
    return result


@dataclass(frozen=True)
class Operation:
    key: str
    spec: dict[str, Any]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        parts = re.split(r"(\{[^}]+\})", self.spec["path"])
        regex = "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part) for part in parts)
        return re.compile(f"^{regex}$", re.IGNORECASE)  # Xero's paths are case-insensitive (/connections)

    @property
    def literal_segments(self) -> int:
        return sum(1 for segment in self.spec["path"].split("/") if segment and not segment.startswith("{"))

    def parameters(self, where: str) -> dict[str, dict[str, Any]]:
        return {p["name"]: p for p in self.spec["parameters"] if p["in"] == where}


class XeroContract:
    """The committed subset of Xero's spec, as checks of requests and responses."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.operations = [Operation(key, spec) for key, spec in document["operations"].items()]
        self._defs = document["$defs"]
        self._strict_defs = strict(document["$defs"])

    def _validator(self, schema: dict[str, Any], strict_bodies: bool) -> Draft202012Validator:
        root = {"$defs": self._strict_defs if strict_bodies else self._defs, **(strict(schema) if strict_bodies else schema)}
        return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def _problems(self, schema: dict[str, Any], instance: Any, what: str, strict_bodies: bool) -> list[str]:
        return [
            f"{what} at {'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in self._validator(schema, strict_bodies).iter_errors(instance)
        ]

    def operation(self, api: str, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        found = [
            (operation, match.groupdict())
            for operation in self.operations
            if operation.spec["api"] == api and operation.spec["method"] == method
            for match in [operation.pattern.match(path)]
            if match
        ]
        if not found:
            return None
        return max(found, key=lambda pair: pair[0].literal_segments)  # /Invoices/{id} over /{anything}

    def request_problems(self, api: str, path: str, request: requests.PreparedRequest) -> list[str]:
        method = request.method or "GET"
        matched = self.operation(api, method, path)
        if matched is None:
            return [f"{method} {path}: no such operation in the committed spec subset (add it to OPERATIONS in "
                    "scripts/derive-xero-schema if Xero's spec has it, and run the script)"]
        operation, path_values = matched
        where = f"{method} {operation.spec['path']}"
        problems: list[str] = []
        for name, value in path_values.items():
            problems += self._problems(operation.parameters("path")[name]["schema"], value, f"{where} path {name}", False)

        declared = operation.parameters("query")
        given: dict[str, list[str]] = {}
        for name, value in parse_qsl(urlsplit(request.url).query, keep_blank_values=True):
            given.setdefault(name, []).append(value)
        for name, values in given.items():
            parameter = declared.get(name)
            if parameter is None:
                problems.append(f"{where}: query parameter {name!r} is not in the spec (it has: {sorted(declared)})")
                continue
            problems += self._query_value_problems(parameter, values, f"{where} query {name}")
        headers = {key.lower() for key in request.headers}
        for parameter in operation.spec["parameters"]:
            if not parameter["required"]:
                continue
            if parameter["in"] == "query" and parameter["name"] not in given:
                problems.append(f"{where}: required query parameter {parameter['name']!r} missing")
            if parameter["in"] == "header" and parameter["name"].lower() not in headers:
                problems.append(f"{where}: required header {parameter['name']!r} missing")
        for name, parameter in operation.parameters("header").items():
            if name.lower() in headers:
                problems += self._problems(parameter["schema"], request.headers[name], f"{where} header {name}", False)

        body = request.body
        described = operation.spec.get("requestBody")
        if described is None:
            if body:
                problems.append(f"{where}: the spec defines no request body, but one was sent")
        elif not body:
            if described["required"]:
                problems.append(f"{where}: the spec requires a request body")
        else:
            try:
                payload = json.loads(body)
            except ValueError:
                return problems + [f"{where}: the request body is not JSON"]
            problems += self._problems(described["schema"], payload, f"{where} body", strict_bodies=True)
        return problems

    def _query_value_problems(self, parameter: dict[str, Any], values: list[str], what: str) -> list[str]:
        schema = parameter["schema"]
        kind = schema.get("type")
        if kind == "array":
            if parameter.get("explode", True):
                items: Any = values
            elif len(values) > 1:
                return [f"{what}: sent {len(values)} times; the spec wants one comma-separated value"]
            else:
                items = values[0].split(",")
            return self._problems(schema, items, what, False)
        if len(values) > 1:
            return [f"{what}: sent {len(values)} times"]
        value: Any = values[0]
        if kind == "boolean":
            if value not in ("true", "false"):
                return [f"{what}: {value!r} is not true or false"]
            value = value == "true"
        elif kind == "integer":
            if not re.fullmatch(r"-?\d+", value):
                return [f"{what}: {value!r} is not an integer"]
            value = int(value)
        elif kind == "number":
            try:
                value = float(value)  # a query parameter, not money
            except ValueError:
                return [f"{what}: {value!r} is not a number"]
        return self._problems(schema, value, what, False)

    def response_problems(self, api: str, path: str, request: requests.PreparedRequest, answer: requests.Response) -> list[str]:
        matched = self.operation(api, request.method or "GET", path)
        if matched is None:
            return []  # reported by request_problems
        operation, _ = matched
        where = f"{request.method} {operation.spec['path']} → {answer.status_code}"
        described = operation.spec["responses"].get(str(answer.status_code))
        if described is None:
            if answer.status_code < 300:
                return [f"{where}: the spec defines no such answer (it has: {sorted(operation.spec['responses'])})"]
            return []
        if described["schema"] is None:
            return [f"{where}: the spec defines no body, but one came"] if answer.content.strip() else []
        try:
            payload = answer.json()
        except ValueError:
            return [f"{where}: the answer is not JSON"]
        return self._problems(described["schema"], payload, f"{where} body", strict_bodies=False)


@pytest.fixture(scope="session")
def contract() -> XeroContract:
    return XeroContract(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@pytest.fixture
def exchanges(monkeypatch) -> list[tuple[requests.PreparedRequest, requests.Response]]:
    """Each request as it leaves through requests, with the answer that came back (both unchanged)."""
    recorded: list[tuple[requests.PreparedRequest, requests.Response]] = []
    original_send = requests.Session.send

    def recording_send(self, request, **kwargs):
        sent = request.copy()
        answer = original_send(self, request, **kwargs)
        recorded.append((sent, answer))
        return answer

    monkeypatch.setattr(requests.Session, "send", recording_send)
    return recorded


def api_and_path(url: str, api_url: str, connections_url: str) -> tuple[str, str] | None:
    """Which of Xero's APIs a URL calls, and the path the spec names it by."""
    path = urlsplit(url).path
    accounting, connections = urlsplit(api_url).path.rstrip("/"), urlsplit(connections_url).path.rstrip("/")
    if url.startswith(api_url.rstrip("/") + "/"):
        return "accounting", path[len(accounting):]
    if url.startswith(connections_url.rstrip("/")):
        return "identity", "/Connections" + path[len(connections):]
    return None  # the token, authorize and revocation endpoints are OAuth's, not in these specs


# -- the client's real traffic -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_every_request_the_client_sends_conforms_to_the_spec(mode, contract, exchanges, sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": mode}})
    connect_site(site)
    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    assert run(site, first, DEMO_END_DAY).success
    problems, called = conformance_of(contract, exchanges, sandbox)
    checked = set(called)
    assert not problems, "\n".join(sorted(set(problems)))
    assert {
        ("PUT", "/Invoices"), ("GET", "/Invoices"), ("GET", "/TrackingCategories"), ("PUT", "/TrackingCategories"),
        ("PUT", "/TrackingCategories/{TrackingCategoryID}/Options"), ("GET", "/Connections"),
    } <= checked, checked


def test_the_clients_tracking_option_call_sends_the_specs_body(contract, exchanges, sandbox, demo_ci_url, make_site):
    """XeroClient.add_tracking_options: Xero's createTrackingOptions takes one TrackingOption a call."""
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    client = xero_client(site)
    category = client.create_tracking_category("Regions")
    exchanges.clear()
    created = client.add_tracking_options(category["TrackingCategoryID"], ["North", "South"])
    assert sorted(option["Name"] for option in created) == ["North", "South"]
    api_url = f"{sandbox.base_url.rstrip('/')}/api.xro/2.0"
    sent = [(request, answer) for request, answer in exchanges if request.url.startswith(api_url)]
    assert [json.loads(request.body) for request, _ in sent] == [{"Name": "North"}, {"Name": "South"}]
    for request, answer in sent:
        _, path = api_and_path(request.url, api_url, f"{sandbox.base_url}/connections")
        assert contract.request_problems("accounting", path, request) == []
        assert contract.response_problems("accounting", path, request, answer) == []
    names = {option["Name"] for c in client.tracking_categories() if c["Name"] == "Regions" for option in c["Options"]}
    assert names == {"North", "South"}


# -- the takings process's traffic: invoices, credit notes, accounts --------------------------------

# accounts the seeded chart lacks, one per role create_missing types (chart_check.ROLES)
MISSING_ACCOUNTS = {"618": ("CURRENT", True), "836": ("CURRLIAB", True), "483": ("EXPENSE", False), "484": ("EXPENSE", False)}
CREATES_ACCOUNTS = {
    "mapping": {"create_missing_accounts": True, "tender_accounts": {"CASH": "618"}, "voucher_liability_account": "836"},
    "takings": {"over_short_account": "483", "rounding_account": "484"},
}
DRAFT_ZERO_BALANCE = {"takings": {"status": "DRAFT", "zero_balance": True}}


def conformance_of(contract: XeroContract, exchanges: list, sandbox) -> tuple[list[str], Counter]:
    """The spec's problems with the recorded requests and answers, and how often each operation was called."""
    base = sandbox.base_url.rstrip("/")
    api_url, connections_url = f"{base}/api.xro/2.0", f"{base}/connections"
    problems: list[str] = []
    called: Counter = Counter()
    for request, answer in exchanges:
        located = api_and_path(request.url, api_url, connections_url)
        if located is None:
            continue
        api, path = located
        matched = contract.operation(api, request.method, path)
        called[(request.method, matched[0].spec["path"] if matched else path)] += 1
        problems += contract.request_problems(api, path, request)
        problems += contract.response_problems(api, path, request, answer)
    return problems, called


def sent_bodies(exchanges: list, method: str, collection: str) -> list[dict[str, Any]]:
    """The bodies sent to one collection, amounts as Decimal (exactly as written)."""
    return [json.loads(request.body, parse_float=Decimal) for request, _ in exchanges
            if request.method == method and urlsplit(request.url).path.endswith(f"/api.xro/2.0/{collection}")]


@pytest.mark.parametrize("layout", ["authorised, accounts created", "draft, zero balance"])
def test_every_takings_request_the_client_sends_conforms_to_the_spec(layout, contract, exchanges, sandbox, demo_ci_url, make_site):
    """The takings of the demo through a real Dagster run: the mapping check (creating the accounts
    the site names and Xero lacks), the takings invoices and the net-negative day's credit note, their
    payments, the read-back. Every request as it left and every answer the sandbox gave, against the spec."""
    authorised = layout.startswith("authorised")
    site = make_site(sandbox, demo_ci_url, CREATES_ACCOUNTS if authorised else DRAFT_ZERO_BALANCE)
    connect_site(site)
    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    outcome = run_days(site, first, DEMO_END_DAY, DagsterInstance.ephemeral(), process="takings")
    assert outcome.success, outcome.failed_checks

    problems, called = conformance_of(contract, exchanges, sandbox)
    assert not problems, "\n".join(sorted(set(problems)))
    assert {("GET", "/Organisation"), ("GET", "/Accounts"), ("GET", "/TaxRates"), ("PUT", "/Invoices"),
            ("GET", "/Invoices"), ("GET", "/CreditNotes")} <= set(called), called
    invoices = [i for body in sent_bodies(exchanges, "PUT", "Invoices") for i in body["Invoices"]]
    credit_notes = [c for body in sent_bodies(exchanges, "PUT", "CreditNotes") for c in body["CreditNotes"]]
    assert invoices and all(i["Type"] == "ACCREC" and i["LineAmountTypes"] == "Inclusive" for i in invoices)
    if authorised:
        # the net-negative day is a credit note; each missing account one PUT /Accounts, then a re-check
        assert credit_notes and all(c["Type"] == "ACCRECCREDIT" for c in credit_notes)
        assert called[("PUT", "/Accounts")] == len(MISSING_ACCOUNTS) and called[("GET", "/Accounts")] >= 2
        made = {body["Code"]: body for body in sent_bodies(exchanges, "PUT", "Accounts")}
        assert {code: (body["Type"], body.get("EnablePaymentsToAccount", False)) for code, body in made.items()} == MISSING_ACCOUNTS
        held = {a["Code"]: a for a in xero_client(site).accounts()}
        assert {code: (held[code]["Type"], held[code]["EnablePaymentsToAccount"], held[code]["Status"])
                for code in MISSING_ACCOUNTS} == {code: (kind, pays, "ACTIVE") for code, (kind, pays) in MISSING_ACCOUNTS.items()}
        assert ("PUT", "/Payments") in called
    else:
        # a DRAFT site's takings are 0.00 invoices, their tenders as lines: nothing is paid, nothing created
        assert not credit_notes and ("PUT", "/Payments") not in called and ("PUT", "/Accounts") not in called
        assert {i["Status"] for i in invoices} == {"DRAFT"}
        assert all(sum(line["LineAmount"] for line in i["LineItems"]) == 0 for i in invoices)


def test_a_refused_account_creation_and_its_answer_conform_to_the_spec(contract, exchanges, sandbox, demo_ci_url, make_site):
    """create_missing's PUT /Accounts bodies, the sandbox's answer to each, and its refusal of a name
    Xero already has (Xero wants account names unique) as the spec's 400 Error; the other account is made."""
    site = make_site(sandbox, demo_ci_url)
    connect_site(site)
    client = xero_client(site)
    # someone made an account under the name create_missing gives the over/short account 483
    taken = account_to_create("483", "over_short", ["by hand"]) | {"Code": "499"}
    client.request("PUT", "Accounts", body=taken)
    needs = [AccountNeed("takings.over_short_account", "483", "over_short"),
             AccountNeed("mapping.tender_accounts.CASH", "618", "clearing")]
    exchanges.clear()
    result = create_missing(client, read_and_check(client, needs), needs)

    assert [account.code for account in result.created] == ["618"] and result.created[0].enable_payments
    assert [refused.code for refused in result.refused] == ["483"]
    problems, called = conformance_of(contract, exchanges, sandbox)
    assert not problems, "\n".join(sorted(set(problems)))
    assert called[("PUT", "/Accounts")] == 2
    answers = {json.loads(request.body)["Code"]: answer for request, answer in exchanges if request.method == "PUT"}
    assert answers["618"].status_code == 200 and answers["483"].status_code == 400
    refusal = answers["483"].json()
    assert refusal["Type"] == "ValidationException" and refusal["Elements"][0]["ValidationErrors"], refusal
    assert [a["Code"] for a in client.accounts() if a["Code"] in ("483", "618")] == ["618"]


# -- the check itself ------------------------------------------------------------------------------

TENANT = {"xero-tenant-id": "0b9e6c0e-6f3b-4a8e-9d56-2b1c1c0f8f11", "Content-Type": "application/json"}
CATEGORY_ID = "297c2dc5-cc47-4afd-8ec8-74990b8761e9"


def prepared(method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> requests.PreparedRequest:
    return requests.Request(
        method, f"https://api.xero.com/api.xro/2.0{path}", params=params,
        data=json.dumps(body) if body is not None else None, headers=headers if headers is not None else TENANT,
    ).prepare()


def invoice(**line_changes: Any) -> dict[str, Any]:
    line = {"Description": "Sales", "Quantity": 1, "UnitAmount": 11.5, "AccountCode": "200", "TaxType": "OUTPUT2",
            "Tracking": [{"Name": "CI Branches", "Option": "Queen Street"}], **line_changes}
    return {"Invoices": [{"Type": "ACCREC", "Contact": {"Name": "Cash Sales"}, "Date": "2026-10-31",
                          "InvoiceNumber": "CI-1", "LineAmountTypes": "Inclusive", "Status": "AUTHORISED", "LineItems": [line]}]}


def test_the_check_accepts_what_the_spec_defines(contract):
    assert contract.request_problems("accounting", "/Invoices", prepared(
        "PUT", "/Invoices", invoice(), {"summarizeErrors": "false", "unitdp": "4"})) == []
    assert contract.request_problems("accounting", f"/TrackingCategories/{CATEGORY_ID}/Options", prepared(
        "PUT", f"/TrackingCategories/{CATEGORY_ID}/Options", {"Name": "Queen Street"})) == []
    assert contract.request_problems("accounting", "/Invoices", prepared(
        "GET", "/Invoices", params={"InvoiceNumbers": "CI-1,CI-2", "page": "1", "pageSize": "1000"})) == []


def test_the_check_rejects_properties_the_spec_does_not_define_at_any_depth(contract):
    options = f"/TrackingCategories/{CATEGORY_ID}/Options"
    # the body the client used to send: Xero's createTrackingOptions takes one TrackingOption
    problems = contract.request_problems("accounting", options, prepared("PUT", options, {"Options": [{"Name": "Queen Street"}]}))
    assert problems and "'Options' was unexpected" in problems[0]
    deep = contract.request_problems("accounting", "/Invoices", prepared(
        "PUT", "/Invoices", invoice(Tracking=[{"Name": "CI Branches", "Option": "Queen Street", "Colour": "red"}])))
    assert len(deep) == 1 and "Invoices/0/LineItems/0/Tracking/0" in deep[0] and "'Colour' was unexpected" in deep[0]
    typed = contract.request_problems("accounting", "/Invoices", prepared("PUT", "/Invoices", invoice(Quantity="one")))
    assert typed and "Quantity" in typed[0]


def test_the_check_rejects_parameters_and_operations_the_spec_does_not_define(contract):
    assert "query parameter 'summariseErrors' is not in the spec" in " ".join(contract.request_problems(
        "accounting", "/Invoices", prepared("PUT", "/Invoices", invoice(), {"summariseErrors": "false"})))
    assert "'maybe' is not true or false" in " ".join(contract.request_problems(
        "accounting", "/Invoices", prepared("PUT", "/Invoices", invoice(), {"summarizeErrors": "maybe"})))
    assert "required header 'xero-tenant-id' missing" in " ".join(contract.request_problems(
        "accounting", "/Invoices", prepared("GET", "/Invoices", headers={})))
    assert "no such operation" in " ".join(contract.request_problems(
        "accounting", "/Quotes", prepared("PUT", "/Quotes", {"Quotes": []})))
    assert "not a 'uuid'" in " ".join(contract.request_problems(
        "accounting", "/TrackingCategories/branch-1/Options", prepared("PUT", "/TrackingCategories/branch-1/Options", {"Name": "A"})))


# -- the committed schema ------------------------------------------------------------------------------

def test_the_committed_schema_is_complete_and_carries_the_specs_licence(contract):
    document = contract.document
    Draft202012Validator.check_schema({k: v for k, v in document.items() if k != "operations"})
    refs: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert {ref.removeprefix("#/$defs/") for ref in refs} == set(document["$defs"])  # closed, and nothing unused
    used = {"Invoices", "CreditNotes", "Contacts", "Accounts", "TaxRates", "TrackingCategories", "Organisation",
            "Payments", "ManualJournals", "Allocations", "Options", "Connections"}
    named = {segment for key in document["operations"] for segment in key.split(" ")[1].split("/") if segment and "{" not in segment}
    assert used <= named
    licence = LICENSE_FILE.read_text(encoding="utf-8")
    assert "MIT License" in licence and "Copyright (c) 2017 Xero Developer API" in licence and SCHEMA_FILE.name in licence


def test_the_committed_schema_is_what_the_script_derives_from_xeros_spec():
    """Only where Xero's full spec is at hand (../shared); the checks above never need it."""
    if not FULL_SPEC.is_file():
        pytest.skip(f"Xero's full spec is not at {FULL_SPEC}: cannot re-derive (the committed subset is used as is)")
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "derive-xero-schema"), str(FULL_SPEC), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

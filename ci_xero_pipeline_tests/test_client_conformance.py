"""Every request the client sends during real runs validates against Xero's published OpenAPI spec."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from .conftest import DEMO_DAYS, DEMO_END_DAY
from .pipeline_helpers import connect_site, run

SPECS = Path(__file__).resolve().parents[2] / "shared" / "xero-openapi"
XERO_API = "https://api.xero.com/api.xro/2.0"


@pytest.fixture(scope="session")
def accounting_spec():
    if not (SPECS / "xero_accounting.yaml").is_file():
        pytest.skip(f"Xero's OpenAPI specs are not at {SPECS}: nothing to validate against")
    from openapi_core import Config, OpenAPI

    # Xero's published spec fails strict spec validation on harmless details (string defaults for
    # booleans); requests are still validated against its schemas in full.
    return OpenAPI.from_file_path(str(SPECS / "xero_accounting.yaml"), config=Config(spec_validator_cls=None))


@pytest.fixture
def sent_requests(monkeypatch) -> list[requests.PreparedRequest]:
    """Records each request as it leaves through requests (the request still goes out unchanged)."""
    captured: list[requests.PreparedRequest] = []
    original_send = requests.Session.send

    def recording_send(self, request, **kwargs):
        captured.append(request.copy())
        return original_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording_send)
    return captured


def as_if_sent_to_xero(request: requests.PreparedRequest, api_url: str) -> requests.PreparedRequest:
    """The same request addressed to Xero's server, so the spec's server URL matches."""
    moved = request.copy()
    path = urlsplit(request.url).path[len(urlsplit(api_url).path):]
    target = urlsplit(XERO_API + path)
    moved.url = urlunsplit(target._replace(query=urlsplit(request.url).query))
    return moved


@pytest.mark.parametrize("mode", ["summary", "detail"])
def test_every_accounting_request_conforms_to_the_spec(mode, accounting_spec, sent_requests, sandbox, demo_ci_url, make_site):
    from openapi_core.contrib.requests import RequestsOpenAPIRequest

    site = make_site(sandbox, demo_ci_url, {"eretailer": {"mode": mode}})
    connect_site(site)
    first = DEMO_END_DAY - timedelta(days=DEMO_DAYS - 1)
    assert run(site, first, DEMO_END_DAY).success
    api_url = f"{sandbox.base_url.rstrip('/')}/api.xro/2.0"
    accounting = [r for r in sent_requests if r.url.startswith(api_url)]
    kinds = {(r.method, urlsplit(r.url).path.rsplit("/", 1)[-1]) for r in accounting}
    assert ("PUT", "Invoices") in kinds and ("GET", "Invoices") in kinds and ("GET", "TrackingCategories") in kinds
    for request in accounting:
        accounting_spec.validate_request(RequestsOpenAPIRequest(as_if_sent_to_xero(request, api_url)))

"""Shared fixtures: a real sandbox Xero over HTTP, a small demo CI database, site settings for both."""

from __future__ import annotations

import copy
import shutil
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from ci_xero_pipeline.ci.demo import create_demo_database
from ci_xero_pipeline.sandbox.server import SandboxClient, SandboxConfig, SandboxOrganisation, SandboxServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_END_DAY = date(2026, 10, 31)
DEMO_DAYS = 6
CLIENT_ID = "ci-xero-tests"
REDIRECT_URI = "http://localhost:8765/callback"


def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="session")
def demo_ci_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small demo CI database (a few days), built once and never changed by tests."""
    path = tmp_path_factory.mktemp("ci") / "ci_demo.sqlite"
    url = f"sqlite:///{path}"
    create_demo_database(url, days=DEMO_DAYS, end_day=DEMO_END_DAY, branches=5, invoices_per_day=(40, 80))
    return url


@pytest.fixture
def ci_copy(demo_ci_url: str, tmp_path: Path) -> str:
    """A copy of the demo CI database that a test may change."""
    copy = tmp_path / "ci_copy.sqlite"
    shutil.copy(demo_ci_url.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


@pytest.fixture
def sandbox_factory(tmp_path: Path):
    """Start sandboxes with the organisations a test needs; stopped at the end of the test."""
    servers: list[SandboxServer] = []

    def start(*organisations: SandboxOrganisation, **config: Any) -> SandboxServer:
        organisations = organisations or (SandboxOrganisation(name="Test Retail Ltd", short_code="TEST1"),)
        config.setdefault("clients", [SandboxClient(client_id=CLIENT_ID, client_secret=None, redirect_uris=[REDIRECT_URI])])
        server = SandboxServer(
            SandboxConfig(db_path=str(tmp_path / f"sandbox{len(servers)}.sqlite"), organisations=list(organisations), **config)
        )
        server.__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def sandbox(sandbox_factory) -> SandboxServer:
    return sandbox_factory()


def site_values(sandbox: SandboxServer, ci_url: str, data_dir: Path, tenant: str = "Test Retail Ltd") -> dict:
    base = yaml.safe_load((PROJECT_ROOT / "site.yaml").read_text())
    api = sandbox.base_url.rstrip("/")
    return deep_merge(
        base,
        {
            "site_name": "Test site",
            "data_dir": str(data_dir),
            "ci_database_url": ci_url,
            "first_trading_day": "2026-01-01",
            # the E-Retailer tests written before tender payments test the documents alone: a test of
            # the payments turns this on (takings stay as site.yaml has them)
            "eretailer": {"pay_tenders": False},
            "xero": {
                "client_id": CLIENT_ID,
                "authorize_url": f"{api}/identity/connect/authorize",
                "token_url": f"{api}/identity/connect/token",
                "revoke_url": f"{api}/identity/connect/revocation",
                "connections_url": f"{api}/connections",
                "api_url": f"{api}/api.xro/2.0",
                "redirect_uri": REDIRECT_URI,
                "tenant_name": tenant,
                "token_file": str(data_dir / "xero_token.json"),
            },
        },
    )


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., Path]:
    """Write a site settings file for a sandbox and a CI database, with changes; return its path."""
    count = 0

    def make(sandbox: SandboxServer, ci_url: str, changes: dict | None = None, tenant: str = "Test Retail Ltd") -> Path:
        nonlocal count
        count += 1
        folder = tmp_path / f"site{count}"
        folder.mkdir()
        values = deep_merge(site_values(sandbox, ci_url, folder / "data", tenant), changes or {})
        path = folder / "site.yaml"
        path.write_text(yaml.safe_dump(values))
        return path

    return make

"""What the benchmarks share: a site settings file for a sandbox organisation and a CI database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ci_xero_pipeline.sandbox.server import SandboxClient, SandboxConfig, SandboxOrganisation, SandboxServer

PROJECT = Path(__file__).resolve().parents[1]
TENANT_NAME = "Bench Retail Ltd"


def write_bench_site(folder: Path, server: SandboxServer, ci_url: str, mode: str, **xero: Any) -> Path:
    """The project's site.yaml pointed at the sandbox and the CI database, with these xero settings."""
    values = yaml.safe_load((PROJECT / "site.yaml").read_text())
    api = server.base_url.rstrip("/")
    values.update(data_dir=str(folder / "data"), ci_database_url=ci_url, first_trading_day="2025-01-01")
    values["eretailer"]["mode"] = mode
    values["xero"].update(
        client_id="bench", tenant_name=TENANT_NAME, token_file=str(folder / "data" / "token.json"),
        authorize_url=f"{api}/identity/connect/authorize", token_url=f"{api}/identity/connect/token",
        revoke_url=f"{api}/identity/connect/revocation", connections_url=f"{api}/connections",
        api_url=f"{api}/api.xro/2.0", **xero,
    )
    path = folder / "site.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def bench_sandbox_config(folder: Path, **config: Any) -> SandboxConfig:
    """The benches' sandbox: one organisation (TENANT_NAME) and the bench app as a PKCE public client."""
    return SandboxConfig(
        db_path=str(folder / "sandbox.sqlite"),
        organisations=[SandboxOrganisation(name=TENANT_NAME, short_code="BENCH")],
        clients=[SandboxClient(client_id="bench", client_secret=None, redirect_uris=["http://localhost:8765/callback"])],
        **config,
    )


def connected_bench_site(folder: Path, server: SandboxServer, ci_url: str, mode: str, **xero: Any):
    """A bench site on the server, connected through the real OAuth flow: (site path, settings, tenant id)."""
    from ci_xero_pipeline.resources import XeroResource
    from ci_xero_pipeline.settings import load_settings
    from ci_xero_pipeline.xero.oauth import connect

    site = write_bench_site(folder, server, ci_url, mode, **xero)
    settings = load_settings(site)
    resource = XeroResource.from_settings(settings)
    return site, settings, connect(resource.oauth_app(), resource.token_store(), settings.xero.tenant_name).tenant_id

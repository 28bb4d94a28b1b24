"""The demo: the demo CI database and the local Xero sandbox, the last days posted in Summary mode and
in Detail mode (each into its own sandbox organisation), and a report of what Xero now holds."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import requests
import yaml
from sqlalchemy import func, select

from .ci.demo import create_demo_database
from .ci.extract import engine_for, extract_sales_documents
from .ci.tables import build_ci_tables
from .money import cents_to_decimal
from .resources import XeroResource
from .runner import dagster_home, dagster_instance, nz_yesterday, run_days
from .settings import SiteSettings, load_settings
from .xero.oauth import ReconnectRequired, connect
from .xero.tokens import NotConnectedError, TokenStoreError

DETAIL_ORGANISATION_SUFFIX = " (Detail)"


def demo_sandbox_config(db_path: Path, settings: SiteSettings):
    """The sandbox the demo posts into: the site's organisation and its Detail-mode twin, and the
    demo app as a PKCE public client (no secret to keep)."""
    from .sandbox.server import SandboxClient, SandboxConfig, SandboxOrganisation

    name = settings.xero.tenant_name or settings.site_name
    return SandboxConfig(
        db_path=str(db_path),
        organisations=[
            SandboxOrganisation(name=name, short_code="DEMO1"),
            SandboxOrganisation(name=f"{name}{DETAIL_ORGANISATION_SUFFIX}", short_code="DEMO2"),
        ],
        clients=[SandboxClient(client_id=settings.xero.client_id, client_secret=None, redirect_uris=[settings.xero.redirect_uri])],
    )


def detail_mode_settings(settings: SiteSettings) -> Path:
    """The same site in Detail mode, posting to its own sandbox organisation, as a settings file."""
    folder = settings.data_path / "demo-detail"
    folder.mkdir(parents=True, exist_ok=True)
    values = settings.model_dump(mode="json", exclude={"base_dir"})
    values["data_dir"] = str(folder)
    values["ci_database_url"] = settings.resolved_ci_database_url
    values["eretailer"]["mode"] = "detail"
    values["xero"]["token_file"] = str(folder / "xero_token.json")
    values["xero"]["tenant_name"] = f"{settings.xero.tenant_name}{DETAIL_ORGANISATION_SUFFIX}"
    path = folder / "site.yaml"
    path.write_text("# Written by `ci-xero demo`: site.yaml in Detail mode.\n" + yaml.safe_dump(values, sort_keys=False))
    return path


def _sandbox_is_running(settings: SiteSettings) -> bool:
    try:
        requests.get(settings.xero.connections_url, timeout=2)
        return True
    except requests.ConnectionError:
        return False


def _ensure_connected(settings: SiteSettings) -> None:
    """Connect once; reconnect when the stored connection no longer works (e.g. a new sandbox)."""
    xero = XeroResource.from_settings(settings)
    try:
        xero.client().organisation()
        return
    except (NotConnectedError, ReconnectRequired, TokenStoreError):
        pass
    connection = connect(xero.oauth_app(), xero.token_store(), settings.xero.tenant_name)
    print(f"  connected to Xero organisation {connection.tenant_name!r}")


def last_ci_day(settings: SiteSettings) -> date | None:
    tables = build_ci_tables()
    with engine_for(settings.resolved_ci_database_url).connect() as connection:
        newest = connection.execute(select(func.max(tables.sales_invoices.c.business_date))).scalar()
    return date.fromisoformat(str(newest)[:10]) if newest else None


def _report(settings: SiteSettings, mode: str, results: pd.DataFrame, first: date, last: date) -> bool:
    documents = extract_sales_documents(engine_for(settings.resolved_ci_database_url), first, last, names=settings.ci_names.names())
    final = documents.invoices[documents.invoices["status"] == "FINAL"]
    good = results[results["outcome"].isin(["posted", "already_posted"])]
    signed = good["total_cents"].where(good["endpoint"] == "Invoices", -good["total_cents"])
    signed_tax = good["tax_cents"].where(good["endpoint"] == "Invoices", -good["tax_cents"])
    outcomes = results["outcome"].value_counts().to_dict()
    ci_total, ci_gst = int(final["total_incl_cents"].sum()), int(final["total_gst_cents"].sum())
    print(
        f"  {mode}: {len(results)} Xero documents for {first} … {last}: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items()))
    )
    print(
        f"    CI FINAL total {cents_to_decimal(ci_total)} (GST {cents_to_decimal(ci_gst)}); "
        f"in Xero {cents_to_decimal(int(signed.sum()))} (GST {cents_to_decimal(int(signed_tax.sum()))})"
    )
    return int(signed.sum()) == ci_total and int(signed_tax.sum()) == ci_gst


def run_demo(settings_path: Path, days: int = 30) -> int:
    from .sandbox.server import SandboxServer

    settings = load_settings(settings_path)
    database = urlparse(settings.resolved_ci_database_url)
    if database.scheme.startswith("sqlite") and not Path(database.path).exists():
        print("Creating the demo CI database (60 trading days, 5 branches) …")
        print(f"  {create_demo_database(settings.resolved_ci_database_url, days=60, end_day=nz_yesterday())}")
    last = last_ci_day(settings)
    if last is None:
        print("The CI database has no documents.")
        return 1
    first = last - timedelta(days=days - 1)

    all_good = True
    with ExitStack() as stack:
        if not _sandbox_is_running(settings):
            port = urlparse(settings.xero.api_url).port
            config = demo_sandbox_config(settings.data_path / "sandbox.sqlite", settings)
            stack.enter_context(SandboxServer(config, port=port))
            print(f"Started the Xero sandbox on port {port} (state: {config.db_path})")
        for mode, path in (("summary", settings_path), ("detail", detail_mode_settings(settings))):
            mode_settings = load_settings(path)
            _ensure_connected(mode_settings)
            # the UI shows the site as configured (its instance: DAGSTER_HOME, else .dagster_home beside
            # site.yaml, as for `ci-xero run`); the Detail copy posts to another organisation, so it keeps
            # its own instance (data/demo-detail/.dagster_home) and never mixes into the site's asset history
            instance = dagster_instance(mode_settings, prefer_dagster_home=(mode == "summary"))
            try:
                run = run_days(path, first, last, instance)
            finally:
                instance.dispose()
            if not run.success:
                print(f"  {mode}: the Dagster run {run.run_id} FAILED; open the UI to see why.")
                all_good = False
                continue
            all_good &= _report(mode_settings, mode, run.results, first, last)
            for check in run.failed_checks:
                print(f"    check failed: {check}")
    print("CI = Xero to the cent in both modes." if all_good else "Something did not reconcile: see above.")
    home = dagster_home(settings)
    site = "" if Path(settings_path).resolve() == (Path.cwd() / "site.yaml").resolve() else f"CI_XERO_SITE={settings_path} "
    print(f"The runs are in the Dagster instance {home}; to see them in the UI (from the repository's folder):")
    print(f"  DAGSTER_HOME={home} {site}.venv/bin/dagster dev   # then open http://localhost:3000")
    return 0 if all_good else 1

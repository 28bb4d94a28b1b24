"""Dagster resources: the site settings, the CI database and the Xero connection."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from dagster import ConfigurableResource, EnvVar
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from .books.rules import EretailerRules
from .books.takings_validation import TakingsRules
from .books.tenders import TenderMapping
from .ci.extract import engine_for
from .ci.tables import CINames
from .settings import PROCESS_SECTIONS, SiteSettings, load_settings
from .xero.client import XeroClient
from .xero.ledger import PostingLedger
from .xero.oauth import OAuthApp, TokenKeeper
from .xero.pacing import PacingLimits, pacer_for
from .xero.posting import PostingPolicy
from .xero.tokens import FileTokenStore, SqlTokenStore, TokenCipher, TokenStore
from .xero.tracking import TrackingSetup, ensure_tracking_options


def sales_mapping(settings: SiteSettings) -> dict:
    """The mapping every process's sales lines share: accounts, tax types, rates, tolerance, tracking."""
    mapping = settings.mapping
    return dict(
        sales_accounts=dict(mapping.sales_accounts),
        tax_types=dict(mapping.tax_types),
        gst_rates=dict(mapping.gst_rates),
        gst_tolerance_cents=mapping.gst_tolerance_cents,
        tracking_category=settings.tracking.category_name,
        tracking_options=dict(settings.tracking.branch_options),
    )


def eretailer_rules(settings: SiteSettings) -> EretailerRules:
    """The books' view of the site settings for the E-Retailer process."""
    er = settings.eretailer
    return EretailerRules(
        **sales_mapping(settings),
        mode=er.mode,
        summary_grouping=er.summary_grouping,
        status=er.status,
        number_prefix=er.number_prefix,
        summary_contact_name=er.summary_contact_name,
        contact_strategy=er.contact_strategy,
        default_contact_name=er.default_contact_name,
        contact_name_format=er.contact_name_format,
        due_days=er.due_days,
    )


def tender_mapping(settings: SiteSettings) -> TenderMapping:
    """The tender mapping every process shares (settings `mapping.tender_accounts`,
    `mapping.voucher_liability_account`)."""
    mapping = settings.mapping
    return TenderMapping(accounts=dict(mapping.tender_accounts), voucher_liability_account=mapping.voucher_liability_account)


def takings_rules(settings: SiteSettings) -> TakingsRules:
    """The books' view of the site settings for end-of-day takings: the sales mapping, tax types, rates,
    tolerance, tracking and tender mapping are the shared sections', the rest is `takings:`."""
    mapping, takings = settings.mapping, settings.takings
    return TakingsRules(
        **sales_mapping(settings),
        tender_accounts=dict(mapping.tender_accounts),
        over_short_account=takings.over_short_account,
        over_short_accounts=dict(takings.over_short_accounts),
        rounding_account=takings.rounding_account,
        rounding_analysis_codes=tuple(takings.rounding_analysis_codes),
        voucher_analysis_codes=tuple(mapping.voucher_analysis_codes),
        voucher_liability_account=mapping.voucher_liability_account,
        voucher_gst=takings.voucher_gst,
        takings_contacts={branch: contact.model_dump(exclude_none=True) for branch, contact in takings.contacts.items()},
        contact_number_format=takings.contact_number_format,
        contact_name_format=takings.contact_name_format,
        status=takings.status,
        zero_balance=takings.zero_balance,
        missing_cash_up=takings.missing_cash_up,
        number_prefix=takings.number_prefix,
        credit_note_prefix=takings.credit_note_prefix,
    )



class SiteResource(ConfigurableResource):
    """The site settings file, read and validated once per process."""

    settings_file: str
    _settings: SiteSettings | None = PrivateAttr(default=None)

    @property
    def settings(self) -> SiteSettings:
        if self._settings is None:
            self._settings = load_settings(self.settings_file)
        return self._settings

    def _process(self, process: str):
        if process not in PROCESS_SECTIONS:
            raise ValueError(f"unknown process {process!r}; the site's processes are {list(PROCESS_SECTIONS)}")
        return getattr(self.settings, process)

    def posting_policy(self, process: str = "eretailer") -> PostingPolicy:
        """How that process's documents CI changed after posting are handled (its own settings section)."""
        section = self._process(process)
        # (payables and cost of goods sold have no choice here: a bill is reported, a journal updated in place)
        return PostingPolicy(authorised_changes=getattr(section, "changes_after_posting", "void_and_repost"),
                             missing_source=section.missing_ci_documents)

    def quarantine_severity(self, process: str = "eretailer") -> str:
        return self._process(process).quarantine_check_severity

    def eretailer_rules(self) -> EretailerRules:
        return eretailer_rules(self.settings)

    def takings_rules(self) -> TakingsRules:
        return takings_rules(self.settings)

    def tender_mapping(self) -> TenderMapping:
        return tender_mapping(self.settings)

    # the books' rules of the processes beyond E-Retailer and takings: each books module reads its section
    def receivables_rules(self):
        from .books.receivables import receivables_rules

        return receivables_rules(self.settings)

    def payables_rules(self):
        from .books.payables import payables_rules

        return payables_rules(self.settings)

    def cogs_rules(self):
        from .books.cogs import cogs_rules

        return cogs_rules(self.settings)


_STATE_ENGINES: dict[str, Engine] = {}


def state_engine(url: str) -> Engine:
    """One engine per state database in a process (its pool is shared by every run step)."""
    if url not in _STATE_ENGINES:
        from sqlalchemy import create_engine

        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        _STATE_ENGINES[url] = create_engine(url, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    return _STATE_ENGINES[url]


class CISourceResource(ConfigurableResource):
    """The CI database (any SQLAlchemy URL). The URL is kept as written, with its password as a
    ${VARIABLE} reference: the UI's resource page shows the reference, and it is expanded only here."""

    database_url: str
    # the site's names for the contract's views and columns (settings `ci_names`); none: the contract's
    view_names: Optional[dict[str, str]] = None
    column_names: Optional[dict[str, dict[str, str]]] = None
    _engine: Engine | None = PrivateAttr(default=None)

    def names(self) -> CINames:
        return CINames(views=dict(self.view_names or {}), columns={v: dict(c) for v, c in (self.column_names or {}).items()})

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = engine_for(os.path.expandvars(self.database_url))
        return self._engine


class XeroResource(ConfigurableResource):
    """The Xero organisation this site posts to: OAuth 2.0 app, stored connection, tracking settings."""

    client_id: str
    client_secret: str | None = None
    authorize_url: str
    token_url: str
    revoke_url: str
    connections_url: str
    api_url: str
    redirect_uri: str
    scopes: list[str]
    token_file: str
    token_store_kind: str = "file"
    token_database_url: str | None = None
    token_key_env_var: str = "CI_XERO_TOKEN_KEY"
    token_key_file: str | None = None
    site_key: str = "default"
    batch_size: int = 50
    timeout_seconds: float = 30
    calls_per_minute: int = 60
    max_in_flight: int = 5
    day_call_reserve: int = 20
    rate_window_seconds: float = 60
    state_database_url: str = "sqlite:///data/state.sqlite"
    tracking_category: str = "CI Branches"
    tracking_strategy: str = "create"

    @classmethod
    def from_settings(cls, settings: SiteSettings) -> "XeroResource":
        xero = settings.xero
        # the secret is named, never stored: Dagster resolves the environment variable at run time
        secret = EnvVar(xero.client_secret_env_var) if os.environ.get(xero.client_secret_env_var) else None
        return cls(
            client_id=xero.client_id,
            client_secret=secret,
            authorize_url=xero.authorize_url,
            token_url=xero.token_url,
            revoke_url=xero.revoke_url,
            connections_url=xero.connections_url,
            api_url=xero.api_url,
            redirect_uri=xero.redirect_uri,
            scopes=list(xero.scopes),
            token_file=str(settings.token_path),
            token_store_kind=xero.token_store,
            token_database_url=xero.token_database_url,  # expanded on use: the UI shows ${VAR}, not the password
            token_key_env_var=xero.token_key_env_var,
            token_key_file=str(settings.token_key_path),
            site_key=settings.site_name,
            batch_size=xero.batch_size,
            timeout_seconds=xero.timeout_seconds,
            calls_per_minute=xero.calls_per_minute,
            max_in_flight=xero.max_in_flight,
            day_call_reserve=xero.day_call_reserve,
            rate_window_seconds=xero.rate_window_seconds,
            state_database_url=settings.state_database_url_template,
            tracking_category=settings.tracking.category_name,
            tracking_strategy=settings.tracking.strategy,
        )

    def oauth_app(self) -> OAuthApp:
        return OAuthApp(
            client_id=self.client_id,
            # inside a run Dagster has resolved the EnvVar; outside one (CLI, tests) resolve it here
            client_secret=(
                self.client_secret.get_value() if isinstance(self.client_secret, EnvVar) else self.client_secret
            ) or None,
            authorize_url=self.authorize_url,
            token_url=self.token_url,
            connections_url=self.connections_url,
            redirect_uri=self.redirect_uri,
            scopes=tuple(self.scopes),
            revoke_url=self.revoke_url,
        )

    def token_store(self) -> TokenStore:
        cipher = TokenCipher.from_environment(
            self.token_key_env_var, Path(self.token_key_file) if self.token_key_file else None
        )
        if self.token_store_kind == "sql" and self.token_database_url:
            return SqlTokenStore(os.path.expandvars(self.token_database_url), self.site_key, cipher)
        return FileTokenStore(self.token_file, cipher)

    def keeper(self) -> TokenKeeper:
        return TokenKeeper(self.oauth_app(), self.token_store())

    def client(self) -> XeroClient:
        keeper = self.keeper()
        limits = PacingLimits(self.calls_per_minute, self.max_in_flight, self.rate_window_seconds, self.day_call_reserve)
        return XeroClient(
            keeper, keeper.connection.tenant_id, self.api_url,
            batch_size=self.batch_size, timeout=self.timeout_seconds,
            pacer=pacer_for(self.api_url, keeper.connection.tenant_id, limits),
        )

    def ledger(self, tenant_id: str, run_id: str | None = None, process: str | None = None) -> PostingLedger:
        """The posting ledger of this site and organisation; `process` names whose documents it holds
        (none: the ledger's own default)."""
        engine = state_engine(os.path.expandvars(self.state_database_url))
        return PostingLedger(engine, tenant_id, run_id, site=self.site_key, process=process)

    def ensure_tracking(self, client: XeroClient, option_names: list[str]) -> TrackingSetup:
        return ensure_tracking_options(
            client, self.tracking_category, option_names, strategy=self.tracking_strategy  # type: ignore[arg-type]
        )

"""The site itself in the Dagster UI: what is configured, how the Xero connection is, which run failed.

Three external assets in the group `site`, next to the data path in the asset graph (one click away):
- `site_settings`: the settings in force, in the definition's metadata: the organisation, Summary or
  Detail, DRAFT or AUTHORISED, the schedule times, and the mapping as tables (CI analysis code → Xero
  account, CI GST code → Xero tax type and rate), each row naming the setting that changes it;
- `xero_connection`: observed by the sensor `xero_connection_expiry` at each tick: the organisation, when
  the refresh token dies and how many days are left, the last refresh, Xero's last refusal;
- `failed_runs`: observed by the sensor `report_failed_posting` for each failed run: its headline (Xero's
  reason, the CI code, the setting), the fix, the days, the documents left out and where the report is.

When site.yaml does not load, the code location still loads with one asset, `fix_site_yaml` (its group has
the same name), whose description is the error, and a sensor whose every tick says it: the error is where
a person looks first, not only under Deployment.

Nothing secret is shown: the settings file never holds one (passwords and tokens come from environment
variables, a literal password in a URL is refused), tokens never leave the token store, and an error that
quotes a line of site.yaml is shown without that line.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dagster import (
    AssetKey,
    AssetObservation,
    AssetSpec,
    DefaultSensorStatus,
    Definitions,
    MetadataValue,
    SensorEvaluationContext,
    SkipReason,
    TableColumn,
    TableRecord,
    TableSchema,
    sensor,
)

from ..alerts import alerter_for
from ..settings import NZ_TIMEZONE, SettingsError, SiteSettings, load_settings

SITE_GROUP = "site"
SITE_SETTINGS = AssetKey("site_settings")
XERO_CONNECTION = AssetKey("xero_connection")
FAILED_RUNS = AssetKey("failed_runs")
FIX_SITE_YAML = "fix_site_yaml"  # the asset, its group and (with a suffix) its sensor when site.yaml is broken
NZ = ZoneInfo(NZ_TIMEZONE)
MODES = {
    "summary": {"day": "Summary: one Xero invoice per NZ trading day",
                "branch_day": "Summary: one Xero invoice per branch per NZ trading day"},
    "detail": "Detail: one Xero invoice (or credit note) per CI document",
}


def _table(rows: list[dict[str, Any]], columns: list[str]) -> MetadataValue:
    return MetadataValue.table(
        records=[TableRecord({name: (None if row.get(name) is None else str(row[name])) for name in columns}) for row in rows],
        schema=TableSchema(columns=[TableColumn(name, "string") for name in columns]),
    )


def mode_words(settings: SiteSettings) -> str:
    er = settings.eretailer
    return MODES["summary"][er.summary_grouping] if er.mode == "summary" else MODES["detail"]


def organisation(settings: SiteSettings) -> str:
    xero = settings.xero
    if xero.tenant_name and xero.tenant_id:
        return f"{xero.tenant_name} ({xero.tenant_id})"
    return xero.tenant_name or xero.tenant_id or "the only organisation connected"


def schedule_words(settings: SiteSettings) -> str:
    return (f"{settings.eretailer.schedule_time} NZ time: eretailer_daily posts the previous NZ trading day "
            "(when the schedule is turned on)")


def one_line_summary(settings: SiteSettings) -> str:
    """The site in one sentence: who posts where, how, when."""
    takings = settings.takings
    return (f"{settings.site_name} posts E-Retailer sales to the Xero organisation {organisation(settings)} in "
            f"{mode_words(settings)}, as {settings.eretailer.status}, daily at {settings.eretailer.schedule_time} NZ time"
            + (f"; end-of-day takings as {takings.status}, daily at {takings.schedule_time} NZ time." if takings.enabled else "."))


def tender_rows(settings: SiteSettings) -> list[dict[str, Any]]:
    """Each CI tender type's Xero account (the clearing account its payments go into), shared by every process."""
    mapping = settings.mapping
    rows = [{"ci_tender_type": tender, "xero_account": account, "setting": f"mapping.tender_accounts.{tender}"}
            for tender, account in sorted(mapping.tender_accounts.items())]
    if mapping.voucher_liability_account and "GIFT_VOUCHER" not in mapping.tender_accounts:
        rows.append({"ci_tender_type": "GIFT_VOUCHER", "xero_account": mapping.voucher_liability_account,
                     "setting": "mapping.voucher_liability_account"})
    return rows


def sales_account_rows(settings: SiteSettings) -> list[dict[str, Any]]:
    return [{"ci_analysis_code": code, "xero_account": account, "setting": f"mapping.sales_accounts.{code}"}
            for code, account in sorted(settings.mapping.sales_accounts.items())]


def tax_type_rows(settings: SiteSettings) -> list[dict[str, Any]]:
    mapping = settings.mapping
    return [{"ci_gst_code": code, "xero_tax_type": tax_type, "gst_rate_percent": mapping.gst_rates.get(code),
             "setting": f"mapping.tax_types.{code}, mapping.gst_rates.{code}"}
            for code, tax_type in sorted(mapping.tax_types.items())]


def settings_rows(settings: SiteSettings, path: Path) -> list[dict[str, Any]]:
    """The settings that decide what reaches Xero, one row each, named as in site.yaml."""
    er, xero, tracking = settings.eretailer, settings.xero, settings.tracking
    alerter = alerter_for(settings)  # the alerts' own words for their channels
    rows = [
        ("settings file", str(path)),
        ("site_name", settings.site_name),
        ("first_trading_day", settings.first_trading_day.isoformat()),
        ("xero.tenant_name / xero.tenant_id", organisation(settings)),
        ("xero.api_url", xero.api_url),
        ("eretailer.mode", er.mode + (f" ({er.summary_grouping})" if er.mode == "summary" else "")),
        ("eretailer.status", er.status),
        ("eretailer.schedule_time", schedule_words(settings)),
        ("xero.keep_alive_time", f"{xero.keep_alive_time} NZ time: xero_keep_alive_daily refreshes the connection"
         if xero.keep_alive_time else "off (a posting run refreshes the connection)"),
        ("eretailer.number_prefix", er.number_prefix),
        ("eretailer.changes_after_posting", er.changes_after_posting),
        ("eretailer.missing_ci_documents", er.missing_ci_documents),
        ("eretailer.all_or_nothing_days", str(er.all_or_nothing_days).lower()),
        ("eretailer.quarantine_check_severity", er.quarantine_check_severity),
        ("eretailer.pay_tenders", "on: web orders' tenders become payments" if er.pay_tenders else "off"),
        ("takings.enabled", str(settings.takings.enabled).lower()),
        *([("takings.status", settings.takings.status + (" (zero-balance invoices)" if settings.takings.zero_balance else "")),
           ("takings.schedule_time", f"{settings.takings.schedule_time} NZ time: takings_daily posts the previous NZ trading day"),
           ("takings.over_short_account", str(settings.takings.over_short_account)),
           ("takings.rounding_account", str(settings.takings.rounding_account)),
           ("takings.missing_cash_up", settings.takings.missing_cash_up)] if settings.takings.enabled else []),
        ("mapping.voucher_liability_account", str(settings.mapping.voucher_liability_account)),
        ("mapping.create_missing_accounts", str(settings.mapping.create_missing_accounts).lower()),
        ("mapping.gst_tolerance_cents", str(settings.mapping.gst_tolerance_cents)),
        ("tracking.category_name", f"{tracking.category_name} ({tracking.strategy})"),
        ("xero.refresh_warning_days", str(xero.refresh_warning_days)),
        ("alerts", alerter.describe() if alerter else "off"),
    ]
    return [{"setting": name, "value": value} for name, value in rows]


def site_settings_spec(settings: SiteSettings, path: Path) -> AssetSpec:
    return AssetSpec(
        SITE_SETTINGS,
        group_name=SITE_GROUP,
        description=f"{one_line_summary(settings)} The settings in force, from {path}; change them there and "
        "reload the code location (Deployment → Reload).",
        metadata={
            "organisation": organisation(settings),
            "mode": mode_words(settings),
            "status": settings.eretailer.status,
            "schedule": schedule_words(settings),
            "settings_file": MetadataValue.path(str(path)),
            "sales_accounts": _table(sales_account_rows(settings), ["ci_analysis_code", "xero_account", "setting"]),
            "tax_types": _table(tax_type_rows(settings), ["ci_gst_code", "xero_tax_type", "gst_rate_percent", "setting"]),
            "tender_accounts": _table(tender_rows(settings), ["ci_tender_type", "xero_account", "setting"]),
            "branch_options": _table(
                [{"ci_branch_code": code, "xero_tracking_option": name, "setting": f"tracking.branch_options.{code}"}
                 for code, name in sorted(settings.tracking.branch_options.items())],
                ["ci_branch_code", "xero_tracking_option", "setting"],
            ),
            "settings": _table(settings_rows(settings, path), ["setting", "value"]),
        },
    )


def site_asset_specs(settings: SiteSettings, path: Path, warn_days: int) -> list[AssetSpec]:
    return [
        site_settings_spec(settings, path),
        AssetSpec(
            XERO_CONNECTION,
            group_name=SITE_GROUP,
            description=f"The Xero connection to {organisation(settings)}: the sensor xero_connection_expiry "
            "records its health at each tick (every 6 hours): the refresh token's expiry and days left, the last "
            f"refresh, Xero's last refusal. It warns {warn_days} days before the expiry; `ci-xero status` says the same.",
        ),
        AssetSpec(
            FAILED_RUNS,
            group_name=SITE_GROUP,
            description="Each failed run, recorded by the sensor report_failed_posting however the run was started "
            "(the UI, a backfill, the schedule, a sensor, `ci-xero run`): Xero's reason, the CI code and the setting "
            "behind it, the fix, the days and documents left out of Xero, and the full report. The failed run "
            "carries the same summary in its tags (ci-xero/failure, ci-xero/fix).",
        ),
    ]


# ------------------------------------------------------------------------------- the connection's health


def _nz(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(float(epoch), NZ).strftime("%Y-%m-%d %H:%M %Z") if epoch else None


def connection_observation(healthy: bool, headline: str, details: dict[str, Any]) -> AssetObservation:
    """What `xero_connection` shows from a health judgement (xero/health.py): never a token."""
    refusal = details.get("last_refusal") or None
    days_left = details.get("refresh_token_days_left")
    expires = details.get("refresh_token_expires_at_nz")
    metadata: dict[str, Any] = {
        "state": details.get("state") or "unknown",
        "healthy": bool(healthy),
        "headline": headline,
        "organisation": details.get("tenant_name") or "(not connected)",
        "tenant_id": details.get("tenant_id") or "",
        "refresh_token_expires": expires or ("never (a custom connection)" if details.get("grant_type") == "client_credentials"
                                             else "unknown"),
        "refresh_token_days_left": MetadataValue.float(float(days_left)) if days_left is not None else MetadataValue.null(),
        "last_refresh": _nz(details.get("refreshed_at")) or "never",
        "connected": _nz(details.get("connected_at")) or "never",
        "last_refusal": (f"{refusal.get('at_nz')}: {refusal.get('error')}"
                         + (f" ({refusal.get('description')})" if refusal.get("description") else "")) if refusal else "none",
        "action": details.get("action") or "none",
    }
    return AssetObservation(asset_key=XERO_CONNECTION, description=headline, metadata=metadata)


# --------------------------------------------------------------------------------- a failed run's report


def failed_run_observation(report: dict[str, Any]) -> AssetObservation:
    """What `failed_runs` shows of a failure report (sensors.failure_report)."""
    documents = [d for step in report.get("steps") or [] for d in step.get("documents") or []]
    columns = [c for c in ("business_date", "number", "outcome", "amount", "reason", "fix")
               if any(c in document for document in documents)]
    metadata: dict[str, Any] = {
        "run": MetadataValue.dagster_run(report["run_id"]),
        "job": report.get("job") or "",
        "started_by": report.get("started_by") or "",
        "days": ", ".join(report.get("days") or []) or "(none named)",
        "headline": report.get("headline") or "",
        "fix": report.get("fix") or "(see the run's step failure)",
        "settings_to_check": ", ".join(report.get("settings_to_check") or []) or "(none named)",
        "documents_not_in_xero": len([d for d in documents if not _is_more_row(d)]),
    }
    if columns:
        metadata["failed_documents"] = _table(documents[:50], columns)
    if report.get("report_file"):
        metadata["report_file"] = MetadataValue.path(report["report_file"])
    return AssetObservation(asset_key=FAILED_RUNS, description=report.get("headline") or None, metadata=metadata)


def _is_more_row(document: dict) -> bool:
    """A metadata table's last row "… and N more rows" is not a document."""
    return any(str(value).startswith("…") for value in document.values() if value is not None)


# ---------------------------------------------------------------------------------- site.yaml is broken

_YAML_QUOTE = re.compile(r"(line \d+, column \d+):\n(?:[ \t]{4}.*\n?){1,2}")
_URL_CREDENTIALS = re.compile(r"(\w[\w+.-]*://[^:@/\s]*):[^@/\s]+@")


def safe_settings_error(message: str) -> str:
    """The error without what it may quote of site.yaml: YAML's parser shows the offending line (which
    may hold a pasted password); a URL's password is blanked too."""
    message = _YAML_QUOTE.sub(lambda match: match.group(1) + " (the line is not shown here)\n", message)
    return _URL_CREDENTIALS.sub(r"\1:***@", message).rstrip()


def broken_site_definitions(path: Path, error: SettingsError) -> Definitions:
    """The code location when site.yaml does not load: the error on an asset and on a sensor's every
    tick; nothing that could run."""
    message = safe_settings_error(str(error))
    problems = [line.strip()[2:] for line in message.splitlines() if line.strip().startswith("- ")]
    headline = f"**site.yaml needs fixing: nothing runs until it loads.**\n\n{message}"
    fix = asset_fix_text(path)
    metadata: dict[str, Any] = {
        "settings_file": MetadataValue.path(str(path)),
        "error": MetadataValue.md(f"```\n{message}\n```"),
        "fix": fix,
    }
    if problems:
        metadata["settings_to_fix"] = _table(
            [{"setting": p.split(": ", 1)[0], "problem": p.split(": ", 1)[1] if ": " in p else ""} for p in problems],
            ["setting", "problem"],
        )

    @sensor(
        name=f"{FIX_SITE_YAML}_sensor",
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"site.yaml ({path}) does not load: every tick says why, until it is fixed and the code "
        "location reloaded.",
    )
    def fix_site_yaml_sensor(context: SensorEvaluationContext):
        try:
            load_settings(path)
        except SettingsError as still:
            now = safe_settings_error(str(still))
            context.log.error(f"site.yaml needs fixing: {now}")
            return SkipReason(f"SITE.YAML NEEDS FIXING: {now} {fix}")
        return SkipReason(f"{path} loads now: reload the code location (Deployment → Reload, or restart "
                          "`dagster dev`) and the pipeline's assets, jobs, schedules and sensors come back.")

    return Definitions(
        assets=[AssetSpec(FIX_SITE_YAML, group_name=FIX_SITE_YAML, description=f"{headline}\n\n{fix}", metadata=metadata)],
        sensors=[fix_site_yaml_sensor],
    )


def asset_fix_text(path: Path) -> str:
    return (f"Fix: correct the setting(s) named above in {path} (its comments describe each one), then reload "
            "the code location (Deployment → Reload) or restart `dagster dev`; `ci-xero status` checks the file too.")

"""Someone is told: a failed run, money left in quarantine, Xero's daily call limit reached and a Xero
connection about to expire (or to be reconnected) are sent to the site through Dagster's own alerting.

Channels (`alerts:` in site.yaml, off by default):
- e-mail over SMTP. A failed run is e-mailed by the sensor Dagster makes for it
  (`make_email_on_run_failure_sensor`, built when the message is sent so the password is read from its
  environment variable then); the other notices go through the same Dagster helpers
  (`send_email_via_starttls` / `send_email_via_ssl`, Dagster's message template). `plain` (a relay without
  TLS, which Dagster's helpers do not offer) is the one path written here.
- a webhook: a JSON POST (`{"text": ...}` as Slack and most chat tools take it, with the details beside).

Secrets never leave the environment: the SMTP password and the webhook URL (it usually carries a token)
are read from environment variables named in the settings, at send time, and are scrubbed from any error
text before it is logged or raised. Nothing secret is in a sensor's definition, so the repository snapshot
the UI shows holds only the variables' names.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import smtplib
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.header import Header
from typing import Any, Callable

from dagster import DagsterEventType, DagsterInstance
from dagster._utils.alert import (
    EMAIL_MESSAGE,
    make_email_on_run_failure_sensor,
    send_email_via_ssl,
    send_email_via_starttls,
)

from .checks import NO_QUARANTINE
from .settings import AlertSettings

DOCUMENTS_SHOWN = 200  # failed documents listed in a notice; the rest are counted (the report has them all)
DAILY_LIMIT_WORDS = "daily call limit"


class AlertNotSent(RuntimeError):
    """No channel took the notice (the message says why, secrets removed)."""


@dataclass(frozen=True)
class Notice:
    kind: str  # run_failure | daily_limit | quarantine | connection
    subject: str
    headline: str
    lines: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    link: str | None = None  # the run in the Dagster UI

    def text(self) -> str:
        return "\n".join([self.headline, *self.lines, *([f"In the Dagster UI: {self.link}"] if self.link else [])])

    def html_body(self) -> str:
        """The body as Dagster's e-mail template takes it (HTML), ASCII only (smtplib sends ASCII)."""
        parts = [f"<p><b>{_html(self.headline)}</b></p>"]
        if self.lines:
            parts.append("<br>".join(_html(line) for line in self.lines))
        if self.link:
            parts.append(f'<p><a href="{html.escape(self.link)}">View the run in the Dagster UI</a></p>')
        return "\n".join(parts)

    def email_subject(self) -> str:
        return _ascii_header(self.subject)


def _html(text: str) -> str:
    return html.escape(text, quote=False).encode("ascii", "xmlcharrefreplace").decode("ascii")


def _ascii_header(text: str) -> str:
    text = " ".join(text.split())  # a header is one line
    try:
        text.encode("ascii")
        return text
    except UnicodeEncodeError:
        return Header(text, "utf-8").encode()


# ---------------------------------------------------------------------------------------------- notices


def _money(value: Any) -> Decimal:
    try:
        return Decimal(str(value or "0"))
    except InvalidOperation:
        return Decimal(0)


def _document_line(document: dict) -> str:
    values = [str(value) for value in document.values() if value not in (None, "")]
    if len(values) == 1 and values[0].startswith("…"):  # a metadata table's "… and N more rows" row
        return values[0]
    number = document.get("number") or document.get("ci_invoice_nos") or "?"
    where = ", ".join(str(document[key]) for key in ("business_date", "branch_code") if document.get(key))
    amount = f", ${document['amount']}" if document.get("amount") not in (None, "") else ""
    reason = str(document.get("reason") or document.get("message") or "").strip()
    return f"- {number} ({where}{amount}): {reason}" if where or amount else f"- {number}: {reason}"


def _count(steps: list[dict], listed: list[dict]) -> int:
    """How many documents the failure says are not in Xero ("90 document(s) of 6 day(s) ..."), or those listed."""
    told = 0
    for step in steps:
        first = str(step.get("reason") or "").split(" document(s)", 1)[0]
        told += int(first) if first.isdigit() else 0
    return max(told, len(listed))


def failure_notice(report: dict, site_name: str, quarantine: "QuarantineLeft | None" = None,
                   link: str | None = None) -> Notice:
    """The notice of a failed run from its failure report (sensors.failure_report): the headline names the
    run, each failed step and why; then every document left out of Xero with Xero's reason."""
    steps = report.get("steps") or []
    documents = [document for step in steps for document in step.get("documents") or []]
    listed = [d for d in documents if not any(str(v).startswith("…") for v in d.values() if v is not None)]
    texts = [str(step.get("reason") or "") for step in steps] + [str(d.get("reason") or "") for d in documents]
    texts.append(str(report.get("message") or ""))
    daily_limit = any(DAILY_LIMIT_WORDS in text.lower() for text in texts)
    start, end = (report.get("partition_range") or [None, None])[:2]
    days = f" for {start}" + (f" to {end}" if end and end != start else "") if start else ""
    if daily_limit:
        subject = f"[ci-xero {site_name}] Xero's daily call limit reached: run of {report['job']}{days} stopped"
    else:
        left = f", {_count(steps, listed)} document(s) not in Xero" if documents else ""
        subject = f"[ci-xero {site_name}] Run failed: {report['job']}{days}{left}"
    headline = (f"Run {report['run_id']} of {report['job']}{days} failed"
                + (" because Xero's daily call limit was reached: the next run resumes where it stopped" if daily_limit else "")
                + (f": {report['headline']}" if report.get("headline") and not daily_limit else "")
                + ("" if str(report.get("headline") or "").endswith(".") and not daily_limit else "."))
    lines = []
    if report.get("fix") and report["fix"] not in str(report.get("headline") or ""):
        fix = str(report["fix"]).strip()
        lines.append((fix if fix.lower().startswith("fix") else f"Fix: {fix}") + ("" if fix.endswith(".") else "."))
    if report.get("started_by"):
        lines.append(f"Started by {report['started_by']}.")
    lines += [f"Step {step['step']}: {step['reason']}" for step in steps]
    if not steps and report.get("message"):
        lines.append(str(report["message"]))
    if documents:
        lines.append(f"{_count(steps, listed)} document(s) are not in Xero:")
        lines += [_document_line(document) for document in documents[:DOCUMENTS_SHOWN]]
        if len(documents) > DOCUMENTS_SHOWN:
            lines.append(f"... and {len(documents) - DOCUMENTS_SHOWN} more (all are in the run's step failure "
                         "metadata and the failure report)")
    if quarantine:
        lines.append(quarantine.sentence())
    if report.get("report_file"):
        lines.append(f"Report on the Dagster daemon's machine: {report['report_file']}")
    return Notice("daily_limit" if daily_limit else "run_failure", subject, headline, lines,
                  {"report": report, "daily_limit_reached": daily_limit}, link)


@dataclass(frozen=True)
class QuarantineLeft:
    """What a run's failed no_quarantined_rows checks say is held back from Xero."""

    documents: int
    amount: Decimal
    days: list[str]
    reasons: list[dict]
    other_failed_checks: list[str]

    def __bool__(self) -> bool:
        return self.documents > 0

    def sentence(self) -> str:
        return (f"{self.documents} document(s) worth ${self.amount} are left in quarantine "
                f"(not in Xero){' on ' + ', '.join(self.days) if self.days else ''}.")

    def clause(self) -> str:
        """The sentence without its capital and full stop, to sit inside another."""
        return self.sentence().rstrip(".")


def quarantine_left(instance: DagsterInstance, run_id: str) -> QuarantineLeft:
    """Sum the failed no_quarantined_rows evaluations of a run (one per day or one for the run)."""
    documents, amount, days, reasons, others = 0, Decimal(0), set(), [], []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.passed:
            continue
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.check_name != NO_QUARANTINE:
            others.append(name)
            continue
        metadata = {key: getattr(value, "value", value) for key, value in (evaluation.metadata or {}).items()}
        documents += int(metadata.get("quarantined_documents") or 0)
        amount += _money(metadata.get("quarantined_amount"))
        table = (evaluation.metadata or {}).get("reasons")
        for record in getattr(getattr(table, "value", None), "records", None) or []:
            row = dict(record.data)
            if row.get("business_date"):
                days.add(str(row["business_date"]))
            reasons.append(row)
        partition = getattr(evaluation, "partition", None)
        if partition:
            days.add(str(partition))
    return QuarantineLeft(documents, amount, sorted(days), reasons, others)


def quarantine_notice(run, held: QuarantineLeft, site_name: str, link: str | None = None) -> Notice:
    days = held.days
    subject = (f"[ci-xero {site_name}] Money left in quarantine: {held.documents} document(s), ${held.amount}"
               + (f" ({days[0]}{' to ' + days[-1] if len(days) > 1 else ''})" if days else ""))
    headline = (f"Run {run.run_id} of {run.job_name} succeeded, but {held.clause()}. "
                "Fix them in CI (or the mapping in site.yaml) and run the day(s) again: only what is missing is sent.")
    lines = []
    seen = set()
    for row in held.reasons:
        number = row.get("invoice_no")
        if number in seen or str(number).startswith("…"):
            continue
        seen.add(number)
        if len(seen) > DOCUMENTS_SHOWN:
            lines.append("... and more (the run's no_quarantined_rows checks list them all)")
            break
        lines.append(f"- {number} ({row.get('business_date')}): {row.get('reason')}")
    if held.other_failed_checks:
        lines.append("Other failed checks: " + ", ".join(held.other_failed_checks))
    return Notice("quarantine", subject, headline, lines,
                  {"run_id": run.run_id, "job": run.job_name, "quarantined_documents": held.documents,
                   "quarantined_amount": str(held.amount), "days": days,
                   "other_failed_checks": held.other_failed_checks}, link)


def connection_notice(state: str, headline: str, healthy: bool, site_name: str, details: dict | None = None) -> Notice:
    if healthy:
        subject = f"[ci-xero {site_name}] Xero connection healthy again"
    elif "RECONNECT" in headline or state in ("expired", "refused", "not_connected", "unreadable"):
        subject = f"[ci-xero {site_name}] Xero connection: reconnect needed ({state.replace('_', ' ')})"
    else:
        subject = f"[ci-xero {site_name}] Xero connection expires soon"
    safe = {key: value for key, value in (details or {}).items()
            if key in ("state", "tenant_name", "refresh_token_expires_at_nz", "refresh_token_days_left",
                       "reconnect_required", "action", "last_refusal")}
    return Notice("connection", subject, headline, [], {"state": state, **safe})


# ---------------------------------------------------------------------------------------------- sending


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


class Alerter:
    """Sends notices through the site's channels. Holds the names of the secrets' variables, never them."""

    def __init__(self, settings: AlertSettings, site_name: str):
        self.settings = settings
        self.site_name = site_name

    @property
    def channels(self) -> list[str]:
        return [name for name, channel in (("e-mail", self.settings.email), ("webhook", self.settings.webhook)) if channel]

    def describe(self) -> str:
        parts = []
        if self.settings.email:
            parts.append(f"e-mail to {', '.join(self.settings.email.to)}")
        if self.settings.webhook:
            parts.append(f"a webhook (its URL in ${self.settings.webhook.url_env_var})")
        return " and ".join(parts)

    def run_link(self, run_id: str) -> str | None:
        base = self.settings.webserver_base_url
        return f"{base.rstrip('/')}/runs/{run_id}" if base else None

    # secrets, read when needed
    def _password(self) -> str | None:
        email = self.settings.email
        return os.environ.get(email.password_env_var) if email and email.password_env_var else None

    def _webhook_url(self) -> str:
        webhook = self.settings.webhook
        url = os.environ.get(webhook.url_env_var, "").strip()
        if not url:
            raise AlertNotSent(f"the environment variable {webhook.url_env_var} (the webhook's URL) is not set")
        return url

    def _secrets(self) -> list[str]:
        found = [self._password() or ""]
        if self.settings.webhook:
            url = os.environ.get(self.settings.webhook.url_env_var, "").strip()
            found += [url, url.split("://", 1)[-1]]
            found += [part for part in url.split("://", 1)[-1].split("/")[1:] if len(part) >= 8]
        return found

    def send(self, notice: Notice, log, failure_context=None) -> list[str]:
        """Send through every channel; the summary goes into `log` too. Returns the channels that took it.
        One channel failing is logged (without secrets) and the others still go; none taking it raises
        AlertNotSent (so the sensor's tick is red and says why)."""
        (log.error if notice.kind != "connection" or "healthy again" not in notice.subject else log.info)(
            f"{notice.subject}\n{notice.text()}")
        sent, problems = [], []
        senders: list[tuple[str, Callable[[], None]]] = []
        if self.settings.email:
            senders.append(("e-mail", lambda: self._email(notice, failure_context)))
        if self.settings.webhook:
            senders.append(("webhook", lambda: self._post(notice)))
        for name, send in senders:
            try:
                send()
                sent.append(name)
            except Exception as error:  # noqa: BLE001 - each channel on its own; the reason is logged
                problems.append(f"{name}: {_scrub(f'{type(error).__name__}: {error}', self._secrets())}")
        for problem in problems:
            log.error(f"The notice {notice.subject!r} was not sent by {problem}")
        if sent:
            log.info(f"Notice sent by {', '.join(sent)}.")
        elif problems:
            raise AlertNotSent("No channel sent the notice: " + "; ".join(problems))
        return sent

    def _email(self, notice: Notice, failure_context=None) -> None:
        email = self.settings.email
        password = self._password()
        if email.security != "plain" and not password:
            raise AlertNotSent(f"the environment variable {email.password_env_var} (the SMTP password) is not set")
        if failure_context is not None and email.security in ("starttls", "ssl"):
            # Dagster's own run-failure e-mail sensor, made now so the password is read at send time
            sensor = make_email_on_run_failure_sensor(
                email_from=email.from_address,
                email_password=password,
                email_to=list(email.to),
                email_body_fn=lambda _context: notice.html_body(),
                email_subject_fn=lambda _context: notice.email_subject(),
                smtp_host=email.smtp_host,
                smtp_type=email.security.upper(),
                smtp_port=email.port,
                smtp_user=email.smtp_user or email.from_address,
                name="ci_xero_email_on_run_failure",
            )
            sensor(failure_context)
            return
        message = EMAIL_MESSAGE.format(
            email_to=",".join(email.to), email_from=email.from_address, email_subject=notice.email_subject(),
            email_body=notice.html_body(), randomness=datetime.datetime.now(),
        )
        user = email.smtp_user or email.from_address
        if email.security == "ssl":
            send_email_via_ssl(email.from_address, password, list(email.to), message, email.smtp_host, email.port, user)
        elif email.security == "starttls":
            send_email_via_starttls(email.from_address, password, list(email.to), message, email.smtp_host, email.port, user)
        else:  # a relay without TLS (Dagster's helpers always use TLS); log in only when a password is set
            with smtplib.SMTP(email.smtp_host, email.port, timeout=30) as server:
                if password:
                    server.login(user, password)
                server.sendmail(email.from_address, list(email.to), message)

    def _post(self, notice: Notice) -> None:
        url = self._webhook_url()
        body = json.dumps({
            "text": f"{notice.subject}\n{notice.text()}",
            "subject": notice.subject,
            "kind": notice.kind,
            "site": self.site_name,
            "headline": notice.headline,
            "lines": notice.lines,
            "link": notice.link,
            "details": notice.details,
        }, default=str).encode("utf-8")
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "ci-xero-pipeline"})
        with urllib.request.urlopen(request, timeout=self.settings.webhook.timeout_seconds) as answer:
            if answer.status >= 300:
                raise AlertNotSent(f"the webhook answered HTTP {answer.status}")


def alerter_for(settings) -> Alerter | None:
    """The site's Alerter, or None when alerts are off."""
    return Alerter(settings.alerts, settings.site_name) if settings.alerts.enabled else None


__all__ = [
    "AlertNotSent", "Alerter", "Notice", "QuarantineLeft", "alerter_for", "connection_notice", "failure_notice",
    "quarantine_left", "quarantine_notice",
]

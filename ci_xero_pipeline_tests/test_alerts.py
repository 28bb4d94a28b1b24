"""Someone is told: a failed run (with Xero's reasons; the daily call limit named in the subject), money
left in quarantine after a run, and a connection that must be reconnected (once, not on every tick) reach
the site by e-mail (a real SMTP server on 127.0.0.1, STARTTLS, SSL and plain) and by webhook (a real local
HTTP server); no secret (SMTP password, webhook token) is in the repository snapshot, a message or a log."""

from __future__ import annotations

import base64
import html
import datetime as dt
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import warnings
from email import message_from_string
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context, build_sensor_context
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from ci_xero_pipeline.alerts import failure_notice
from ci_xero_pipeline.code_location import build_definitions
from ci_xero_pipeline.sandbox.faults import INJECTED_ACCOUNT_CODE, FaultPlan
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.settings import SettingsError, load_settings

from .conftest import CLIENT_ID, DEMO_DAYS, DEMO_END_DAY
from .pipeline_helpers import connect_site, run, xero_documents

FIRST_DAY = DEMO_END_DAY - dt.timedelta(days=DEMO_DAYS - 1)
PASSWORD = "smtp-Pw-7c1e9f3b"
TOKEN = "hook-Tok-4b8d2a6e19"
SMTP_USER = "alerts@retail.example"


# ------------------------------------------------------------------------------------- a tiny SMTP server


class _SMTPHandler(socketserver.BaseRequestHandler):
    """Just enough ESMTP to take messages: EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT."""

    def _say(self, line: str) -> None:
        self.request.sendall(line.encode() + b"\r\n")

    def _wrap(self) -> None:
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        self.reader = self.request.makefile("rb")

    def _line(self) -> str:
        return self.reader.readline().decode("utf-8", "replace").rstrip("\r\n")

    def handle(self) -> None:
        server = self.server
        self.reader = self.request.makefile("rb")
        secure = False
        if server.mode == "ssl":
            self._wrap()
            secure = True
        self._say("220 127.0.0.1 test SMTP")
        envelope: dict = {"from": None, "to": []}
        while True:
            command = self._line()
            if not command and self.reader.closed:
                return
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                capabilities = ["127.0.0.1", "AUTH PLAIN LOGIN", "8BITMIME"]
                if server.mode == "starttls" and not secure:
                    capabilities.append("STARTTLS")
                for n, capability in enumerate(capabilities):
                    self._say(("250 " if n == len(capabilities) - 1 else "250-") + capability)
            elif verb == "STARTTLS":
                self._say("220 2.0.0 go ahead")
                self._wrap()
                secure = True
            elif verb == "AUTH":
                parts = command.split()
                if parts[1].upper() == "PLAIN":
                    payload = parts[2] if len(parts) > 2 else (self._say("334 ") or self._line())
                    _zid, user, password = base64.b64decode(payload).decode().split("\0")
                else:
                    self._say("334 VXNlcm5hbWU6")
                    user = base64.b64decode(self._line()).decode()
                    self._say("334 UGFzc3dvcmQ6")
                    password = base64.b64decode(self._line()).decode()
                server.logins.append({"user": user, "password": password, "secure": secure})
                self._say("235 2.7.0 accepted")
            elif verb == "MAIL":
                envelope = {"from": command.split(":", 1)[1].strip(" <>"), "to": []}
                self._say("250 ok")
            elif verb == "RCPT":
                envelope["to"].append(command.split(":", 1)[1].strip(" <>"))
                self._say("250 ok")
            elif verb == "DATA":
                self._say("354 end with .")
                lines = []
                while (line := self._line()) != ".":
                    lines.append(line[1:] if line.startswith("..") else line)
                server.messages.append({**envelope, "data": "\n".join(lines), "secure": secure})
                self._say("250 queued")
            elif verb in ("RSET", "NOOP"):
                self._say("250 ok")
            elif verb == "QUIT" or not command:
                self._say("221 bye")
                return
            else:
                self._say("502 not here")


class SMTPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, mode: str, tls: ssl.SSLContext | None):
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.mode, self.tls = mode, tls
        self.messages: list[dict] = []
        self.logins: list[dict] = []
        self.port = self.server_address[1]


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it through SSL_CERT_FILE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_file


@pytest.fixture
def smtp_factory(tmp_path: Path, monkeypatch):
    servers: list[SMTPServer] = []
    cert, key = _certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)

    def start(mode: str) -> SMTPServer:
        server = SMTPServer(mode, tls)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------- a webhook receiver


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append({"path": self.path, "type": self.headers.get("Content-Type"), "json": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:  # the URL holds the token: not on the console
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.posts = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------------------------------------ helpers


def alerting_site(make_site, sandbox, ci_url, smtp: SMTPServer, hook, monkeypatch, changes: dict | None = None) -> Path:
    monkeypatch.setenv("CI_TEST_SMTP_PASSWORD", PASSWORD)
    channels: dict = {"email": {
        "smtp_host": "127.0.0.1", "smtp_port": smtp.port, "security": smtp.mode, "smtp_user": SMTP_USER,
        "password_env_var": "CI_TEST_SMTP_PASSWORD", "from_address": "ci-xero@retail.example",
        "to": ["accounts@retail.example", "ops@retail.example"],
    }}
    if hook is not None:
        monkeypatch.setenv("CI_TEST_WEBHOOK_URL", f"http://127.0.0.1:{hook.server_address[1]}/hooks/{TOKEN}")
        channels["webhook"] = {"url_env_var": "CI_TEST_WEBHOOK_URL"}
    alerts = {"alerts": {"enabled": True, "webserver_base_url": "http://dagster.retail.example:3000", **channels}}
    return make_site(sandbox, ci_url, {**alerts, **(changes or {})})


def set_mapping(site: Path, code: str, account: str | None) -> None:
    values = yaml.safe_load(site.read_text())
    if account is None:
        values["mapping"]["sales_accounts"].pop(code)
    else:
        values["mapping"]["sales_accounts"][code] = account
    site.write_text(yaml.safe_dump(values))


def run_status_context(sensor, instance: DagsterInstance, run_id: str):
    return build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=instance.get_run_by_id(run_id),
        dagster_event=instance.get_records_for_run(run_id).records[-1].event_log_entry.dagster_event,
    )


def parsed(message: dict):
    email = message_from_string(message["data"])
    return str(make_header(decode_header(email["Subject"]))), email.get_payload()


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert TOKEN not in text


def snapshot(site: Path) -> str:
    with warnings.catch_warnings():  # Dagster's own snapshot code reads a deprecated schedule property
        warnings.filterwarnings("ignore", message="Property `ScheduleDefinition.environment_vars`", category=DeprecationWarning)
        return serialize_value(RepositorySnap.from_def(build_definitions(site).get_repository_def()))


# -------------------------------------------------------------------------------------------------- tests


def test_a_failed_run_sends_one_email_naming_the_failure_and_xeros_reason_and_a_webhook_post(
    sandbox, ci_copy, make_site, smtp_factory, webhook, monkeypatch, caplog, capfd
):
    smtp = smtp_factory("starttls")
    site = alerting_site(make_site, sandbox, ci_copy, smtp, webhook, monkeypatch, {"eretailer": {"mode": "detail"}})
    connect_site(site)
    # the mapping fits (it is checked before posting); Xero refuses one document of each of the first two
    # invoice batches, alone, in its own words
    sandbox.faults.set(FaultPlan(script=("validation",) * 2, methods=("PUT",), collections=("Invoices",)))
    instance = DagsterInstance.ephemeral()
    failed = run(site, FIRST_DAY, DEMO_END_DAY, instance)
    assert not failed.success and sandbox.faults.stats()["injected"] == {"validation": 2}

    definitions = build_definitions(site)
    sensor = definitions.resolve_sensor_def("report_failed_posting")
    caplog.set_level("INFO")
    sensor(run_status_context(sensor, instance, failed.run_id).for_run_failure())

    # one e-mail, through STARTTLS, logged in with the password from the environment
    (message,) = smtp.messages
    assert message["secure"] and smtp.logins == [{"user": SMTP_USER, "password": PASSWORD, "secure": True}]
    assert message["to"] == ["accounts@retail.example", "ops@retail.example"]
    subject, body = parsed(message)
    assert subject.startswith("[ci-xero Test site] Run failed: eretailer_to_xero") and "2 document(s) not in Xero" in subject
    assert f"Run {failed.run_id} of eretailer_to_xero" in body and "posted_eretailer" in body
    failure = [e for e in instance.all_logs(failed.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    documents = [r.data for r in failure[0].dagster_event.step_failure_data.user_failure_data.metadata["failed_documents"].value.records]
    assert len(documents) == 2
    for document in documents:
        assert document["number"] in body
    xeros_words = f"Account code '{INJECTED_ACCOUNT_CODE}' is not a valid code for this document."
    assert body.count(xeros_words) >= 2  # Xero's own reason, for each document
    headline = body.split("</b>", 1)[0]  # the failure's headline: what Xero refused, then the fix
    assert "2 document(s)" in headline and INJECTED_ACCOUNT_CODE in headline and "Fix: " in body
    assert f"http://dagster.retail.example:3000/runs/{failed.run_id}" in body

    # the same summary to the webhook, and into the sensor's log; the report file is still written
    (post,) = webhook.posts
    assert post["path"] == f"/hooks/{TOKEN}" and post["type"] == "application/json"
    assert post["json"]["kind"] == "run_failure" and xeros_words in post["json"]["text"]
    assert post["json"]["details"]["report"]["run_id"] == failed.run_id
    out, err = capfd.readouterr()
    console = out + err + caplog.text  # the sensor's log (Dagster prints it on the console)
    assert f"Run {failed.run_id} of eretailer_to_xero" in console and INJECTED_ACCOUNT_CODE in console
    report = (load_settings(site).data_path / "reports" / f"failed-run-{failed.run_id}.json").read_text()
    assert all(document["number"] in report for document in documents)

    # no secret in the snapshot the UI shows, the messages, the logs, the console or the files under data/
    files = "".join(p.read_text(errors="replace") for p in load_settings(site).data_path.rglob("*.json"))
    assert_no_secret(snapshot(site), message["data"], json.dumps(post["json"]), console, files)


def test_a_run_the_mapping_stops_sends_one_email_naming_the_setting_the_account_and_the_fix(
    sandbox, ci_copy, make_site, smtp_factory, webhook, monkeypatch
):
    smtp = smtp_factory("ssl")
    site = alerting_site(make_site, sandbox, ci_copy, smtp, webhook, monkeypatch, {"eretailer": {"mode": "detail"}})
    set_mapping(site, "GIFTS", "299")  # a sales account the organisation does not have
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    failed = run(site, FIRST_DAY, DEMO_END_DAY, instance)
    assert not failed.success

    sensor = build_definitions(site).resolve_sensor_def("report_failed_posting")
    sensor(run_status_context(sensor, instance, failed.run_id).for_run_failure())

    # the mapping is checked before anything is sent: the e-mail says so, names the setting and the account, and the fix
    (message,) = smtp.messages
    subject, body = parsed(message)
    assert subject == f"[ci-xero Test site] Run failed: eretailer_to_xero for {FIRST_DAY} to {DEMO_END_DAY}"
    headline = html.unescape(body.split("</b>", 1)[0])
    assert headline.endswith(": E-Retailer invoices: nothing was posted, the mapping does not fit the Xero organisation: "
                             "mapping.sales_accounts.GIFTS → account 299: the Xero organisation has no account with code 299.")
    fix = html.unescape(body.split("</b></p>", 1)[1]).split("<br>", 1)[0].strip()
    assert fix.startswith("Fix: create account 299 in Xero") and "point mapping.sales_accounts.GIFTS" in fix
    (post,) = webhook.posts
    assert post["json"]["kind"] == "run_failure" and "mapping.sales_accounts.GIFTS → account 299" in post["json"]["text"]
    assert xero_documents(site) == ([], [])  # nothing of the days was sent


def test_the_daily_call_limit_is_named_plainly_in_the_subject():
    report = {
        "run_id": "r1", "job": "eretailer_to_xero", "partition_range": ["2026-10-30", "2026-10-31"],
        "steps": [{"step": "posted_eretailer", "documents": [{"number": "ER-20261031", "reason": "deferred"}],
                   "reason": "1 document(s) of 1 day(s) are not in Xero as CI has them (Xero's daily call limit "
                             "stopped the run; the next run resumes). Everything else is posted and recorded."}],
    }
    notice = failure_notice(report, "Test site")
    assert notice.subject == ("[ci-xero Test site] Xero's daily call limit reached: run of eretailer_to_xero "
                              "for 2026-10-30 to 2026-10-31 stopped")
    assert notice.kind == "daily_limit" and "daily call limit was reached" in notice.headline
    ordinary = failure_notice({**report, "steps": [{**report["steps"][0], "reason": "Account code '299' is not valid"}]},
                              "Test site")
    assert ordinary.subject.startswith("[ci-xero Test site] Run failed") and "daily" not in ordinary.subject


def test_money_left_in_quarantine_after_a_successful_run_is_told(sandbox, ci_copy, make_site, smtp_factory, webhook, monkeypatch):
    smtp = smtp_factory("plain")
    site = alerting_site(make_site, sandbox, ci_copy, smtp, webhook, monkeypatch)
    set_mapping(site, "GIFTS", None)  # an unmapped code quarantines its documents
    connect_site(site)
    instance = DagsterInstance.ephemeral()
    done = run(site, FIRST_DAY, DEMO_END_DAY, instance)
    assert done.success and any(name.endswith(":no_quarantined_rows") for name in done.failed_checks)

    evaluations = [e.dagster_event.event_specific_data
                   for e in instance.all_logs(done.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)]
    held = [e for e in evaluations if e.check_name == "no_quarantined_rows" and not e.passed]
    documents = sum(int(e.metadata["quarantined_documents"].value) for e in held)
    from decimal import Decimal
    amount = sum((Decimal(e.metadata["quarantined_amount"].value) for e in held), Decimal(0))
    assert documents > 0 and amount > 0

    sensor = build_definitions(site).resolve_sensor_def("tell_money_left_in_quarantine")
    sensor(run_status_context(sensor, instance, done.run_id))

    (message,) = smtp.messages
    subject, body = parsed(message)
    assert subject.startswith(f"[ci-xero Test site] Money left in quarantine: {documents} document(s), ${amount}")
    assert f"{documents} document(s) worth ${amount} are left in quarantine" in body and "GIFTS" in body
    (post,) = webhook.posts
    assert post["json"]["kind"] == "quarantine" and post["json"]["details"]["quarantined_documents"] == documents
    assert post["json"]["details"]["quarantined_amount"] == str(amount)
    assert smtp.logins == [{"user": SMTP_USER, "password": PASSWORD, "secure": False}]  # plain: a local relay
    assert_no_secret(message["data"], json.dumps(post["json"]))

    # a clean run tells nothing
    set_mapping(site, "GIFTS", "204")
    clean = run(site, FIRST_DAY, DEMO_END_DAY, instance)
    assert clean.success and clean.failed_checks == []
    build_definitions(site).resolve_sensor_def("tell_money_left_in_quarantine")(run_status_context(sensor, instance, clean.run_id))
    assert len(smtp.messages) == 1 and len(webhook.posts) == 1


def revoke_and_refuse(sandbox, site: Path) -> None:
    """Someone revokes the app's access in Xero; the next refresh is refused (invalid_grant)."""
    from ci_xero_pipeline.xero.oauth import ReconnectRequired
    from .pipeline_helpers import xero_client

    store = XeroResource.from_settings(load_settings(site)).token_store()
    answer = requests.post(sandbox.base_url.rstrip("/") + "/identity/connect/revocation",
                           data={"token": store.require().token["refresh_token"], "client_id": CLIENT_ID}, timeout=30)
    assert answer.status_code == 200
    with store.locked():
        connection = store.require()
        connection.token["expires_at"] = 0
        store.save(connection)
    with pytest.raises(ReconnectRequired):
        xero_client(site)


def test_a_refused_connection_is_told_once_not_on_every_tick(sandbox, ci_copy, make_site, smtp_factory, webhook, monkeypatch, capfd):
    smtp = smtp_factory("ssl")
    site = alerting_site(make_site, sandbox, ci_copy, smtp, webhook, monkeypatch)
    connect_site(site)
    sensor = build_definitions(site).resolve_sensor_def("xero_connection_expiry")
    xero = XeroResource.from_settings(load_settings(site))
    cursor = None

    def tick() -> str:
        nonlocal cursor
        context = build_sensor_context(resources={"xero": xero}, cursor=cursor)
        result = sensor(context)
        cursor = context.cursor
        return result.skip_message

    assert "healthy" in tick() and smtp.messages == [] and webhook.posts == []
    revoke_and_refuse(sandbox, site)
    refused = tick()
    assert refused.startswith("RECONNECT NEEDED")
    (message,) = smtp.messages
    subject, body = parsed(message)
    assert subject == "[ci-xero Test site] Xero connection: reconnect needed (refused)"
    assert "invalid_grant" in body and "ci-xero connect" in body
    assert smtp.logins and smtp.logins[0]["secure"] and smtp.logins[0]["password"] == PASSWORD  # SSL from the start
    (post,) = webhook.posts
    assert post["json"]["kind"] == "connection" and post["json"]["details"]["state"] == "refused"

    assert tick().startswith("RECONNECT NEEDED")  # the next tick: the same state, nothing sent again
    assert tick().startswith("RECONNECT NEEDED")
    assert len(smtp.messages) == 1 and len(webhook.posts) == 1

    connect_site(site)  # someone reconnects: told once that it is healthy again
    assert "healthy" in tick() and "healthy" in tick()
    assert len(smtp.messages) == 2 and parsed(smtp.messages[1])[0] == "[ci-xero Test site] Xero connection healthy again"
    assert_no_secret(*(m["data"] for m in smtp.messages), *(json.dumps(p["json"]) for p in webhook.posts),
                     *capfd.readouterr())


def test_a_channel_that_fails_is_logged_without_its_secret_and_the_other_still_goes(
    sandbox, ci_copy, make_site, smtp_factory, webhook, monkeypatch, capfd
):
    smtp = smtp_factory("plain")
    site = alerting_site(make_site, sandbox, ci_copy, smtp, webhook, monkeypatch)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("CI_TEST_WEBHOOK_URL", f"http://127.0.0.1:{dead_port}/hooks/{TOKEN}")  # nobody listens
    sensor = build_definitions(site).resolve_sensor_def("xero_connection_expiry")
    context = build_sensor_context(resources={"xero": XeroResource.from_settings(load_settings(site))})
    assert sensor(context).skip_message.startswith("NOT CONNECTED")
    console = "".join(capfd.readouterr())
    assert len(smtp.messages) == 1 and "was not sent by webhook" in console
    assert_no_secret(console, smtp.messages[0]["data"])


def test_alert_settings_take_only_variable_names_and_need_a_channel(sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {"alerts": {"enabled": True}})
    with pytest.raises(SettingsError, match="no channel"):
        load_settings(site)
    pasted = f"https://hooks.example/services/{TOKEN}"
    site = make_site(sandbox, demo_ci_url, {"alerts": {"enabled": True, "webhook": {"url_env_var": pasted}}})
    with pytest.raises(SettingsError) as refused:
        load_settings(site)
    assert "alerts.webhook.url_env_var" in str(refused.value) and TOKEN not in str(refused.value)
    site = make_site(sandbox, demo_ci_url, {"alerts": {"enabled": True, "webhook": {"url": pasted}}})
    with pytest.raises(SettingsError, match="not a known setting"):
        load_settings(site)
    assert "tell_money_left_in_quarantine" not in {s.name for s in build_definitions(make_site(sandbox, demo_ci_url)).sensors}

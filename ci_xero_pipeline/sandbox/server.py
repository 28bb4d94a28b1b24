"""The sandbox over HTTP: Xero's identity routes, /connections and the Accounting API, served by
uvicorn on loopback. `SandboxServer` runs it in a background thread (tests, the demo); `serve`
runs it in the foreground (`ci-xero sandbox`).

Requests are handled in worker threads so that several can be in flight at once (Xero's
concurrency limit is observable); the store serialises access to SQLite.

Beside Xero's routes: `/sandbox/faults` (fault injection, a test tool) and `/sandbox/documents/{id}`,
a person's read-only page per invoice or credit note standing in for go.xero.com, also reached by
Xero's deep-link addresses (`/organisationlogin/default.aspx?shortcode=…&redirecturl=…`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import socket
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .accounting import Accounting
from .config import SandboxClient, SandboxConfig, SandboxOrganisation
from .faults import BEFORE_ACTING, ConnectionDropped, FaultInjector, FaultPlan, FaultPlanError, quiet_dropped_connections
from .identity import Identity, OAuthError, unknown_scopes
from .pages import deep_link_target, document_page, not_found_page
from .ratelimit import RateLimiter, format_retry_after
from .store import SandboxStore
from .xerojson import encode, now_ms, problem

__all__ = [
    "FaultPlan", "SandboxClient", "SandboxConfig", "SandboxOrganisation", "SandboxServer", "SandboxStore", "build_app", "serve",
]

API_PREFIX = "/api.xro/2.0"
JSON = "application/json; charset=utf-8"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
MAX_IDEMPOTENCY_KEY = 128


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status_code=status, media_type=JSON, headers=headers)


def _error_page(status: int, message: str) -> HTMLResponse:
    page = f"<!doctype html><title>Xero sandbox: error</title><h1>Sorry, something went wrong</h1><p>{html.escape(message)}</p>"
    return HTMLResponse(page, status_code=status)


def _with_query(url: str, values: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode({k: v for k, v in values.items() if v is not None})


def _bearer(request_headers: Any) -> str:
    value = request_headers.get("authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else ""


def _basic(request_headers: Any) -> tuple[str, str] | None:
    value = request_headers.get("authorization", "")
    if value[:6].lower() != "basic ":
        return None
    try:
        client_id, _, secret = base64.b64decode(value[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote(client_id), unquote(secret)


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


class _DroppedAnswer(Response):
    """Headers go out, then the connection is cut before the body: what a client sees when a network
    drops after the server has done the work."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", JSON.encode()), (b"content-length", b"4096")]})
        raise ConnectionDropped("fault injected: connection dropped after the request was carried out")


class _Sandbox:
    """The routes, bound to one store, identity service, accounting API, rate limiter and faults."""

    def __init__(self, config: SandboxConfig, store: SandboxStore, faults: FaultInjector):
        self.config = config
        self.store = store
        self.faults = faults
        self.identity = Identity(store, config)
        self.accounting = Accounting(store, config)
        self.limiter = RateLimiter(
            config.minute_limit, config.day_limit, config.concurrent_limit, config.app_minute_limit, config.time_scale
        )

    # -- identity -------------------------------------------------------------------------------
    def _authorization_problem(self, values: dict[str, str]) -> tuple[Any, Response | None]:
        """(client, None) when the request may proceed; else an error page or redirect."""
        client = self.identity.registered_client(values.get("client_id"), values.get("redirect_uri"))
        if client is None:
            return None, _error_page(400, "Unknown client_id, or the redirect_uri is not registered for this app.")
        redirect_uri, state = values["redirect_uri"], values.get("state")

        def refuse(error: str, description: str) -> tuple[Any, Response]:
            location = _with_query(redirect_uri, {"error": error, "error_description": description, "state": state})
            return None, RedirectResponse(location, status_code=302)

        if values.get("response_type") != "code":
            return refuse("unsupported_response_type", "response_type must be code")
        scope = values.get("scope", "")
        if not scope.split() or unknown_scopes(scope):
            return refuse("invalid_scope", f"unknown scopes: {' '.join(unknown_scopes(scope))}".strip())
        challenge = values.get("code_challenge")
        if not challenge and not client["secret_sha256"]:
            return refuse("invalid_request", "code_challenge is required for a public client")
        if challenge and values.get("code_challenge_method", "") != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        return client, None

    async def authorize(self, request: Request) -> Response:
        values = dict(request.query_params)
        client, refusal = await run_in_threadpool(self._authorization_problem, values)
        if refusal is not None:
            return refusal
        organisations = await run_in_threadpool(self.store.organisations)
        fields = {
            "client_id": values["client_id"],
            "redirect_uri": values["redirect_uri"],
            "response_type": "code",
            "scope": values.get("scope", ""),
            "state": values.get("state", ""),
            "code_challenge": values.get("code_challenge", ""),
            "code_challenge_method": values.get("code_challenge_method", ""),
            "tenant_ids": ",".join(o.tenant_id for o in organisations),
        }
        hidden = "\n".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items()
        )
        names = "".join(f"<li>{html.escape(o.name)}</li>" for o in organisations)
        page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Xero sandbox: allow access</title></head>
<body>
<h1>{html.escape(values['client_id'])} wants access to your Xero organisations</h1>
<p>Scopes: {html.escape(fields['scope'])}</p>
<p>Organisations to connect:</p><ul>{names}</ul>
<form method="post" action="/identity/connect/authorize/consent">
{hidden}
<button type="submit">Allow access</button>
</form>
</body></html>"""
        return HTMLResponse(page)

    async def consent(self, request: Request) -> Response:
        values = await _form(request)
        client, refusal = await run_in_threadpool(self._authorization_problem, values)
        if refusal is not None:
            return refusal
        known = {o.tenant_id for o in await run_in_threadpool(self.store.organisations)}
        tenant_ids = [t for t in values.get("tenant_ids", "").split(",") if t in known]
        code = await run_in_threadpool(
            self.identity.issue_code,
            values["client_id"],
            values["redirect_uri"],
            values.get("scope", ""),
            values.get("code_challenge") or None,
            tenant_ids,
        )
        location = _with_query(values["redirect_uri"], {"code": code, "scope": values.get("scope", ""), "state": values.get("state") or None})
        return RedirectResponse(location, status_code=302)

    def _token(self, basic: tuple[str, str] | None, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            client = self.identity.authenticate_client(basic, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                return 200, self.identity.exchange_code(client, form)
            if grant_type == "refresh_token":
                return 200, self.identity.refresh(client, form)
            if grant_type == "client_credentials":
                return 200, self.identity.client_credentials(client, form)
            raise OAuthError("unsupported_grant_type")
        except OAuthError as error:
            return error.status, error.body()

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        status, body = await run_in_threadpool(self._token, _basic(request.headers), form)
        return _json(status, body, NO_STORE)

    def _revoke(self, basic: tuple[str, str] | None, form: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        try:
            client = self.identity.authenticate_client(basic, form)
        except OAuthError as error:
            return error.status, error.body()
        self.identity.revoke(client, form)
        return 200, None

    async def revocation(self, request: Request) -> Response:
        form = await _form(request)
        status, body = await run_in_threadpool(self._revoke, _basic(request.headers), form)
        return _json(status, body) if body is not None else Response(status_code=status)

    # -- connections ------------------------------------------------------------------------------
    async def connections(self, request: Request) -> Response:
        grant = await run_in_threadpool(self.identity.grant_for_access_token, _bearer(request.headers))
        if grant is None:
            return _json(401, problem(401, "Unauthorized", "AuthenticationUnsuccessful"))
        found = await run_in_threadpool(self.identity.connections, grant)
        event = request.query_params.get("authEventId")
        if event:
            found = [c for c in found if c["authEventId"] == event]
        return _json(200, found)

    async def delete_connection(self, request: Request) -> Response:
        grant = await run_in_threadpool(self.identity.grant_for_access_token, _bearer(request.headers))
        if grant is None:
            return _json(401, problem(401, "Unauthorized", "AuthenticationUnsuccessful"))
        removed = await run_in_threadpool(self.identity.disconnect, grant, request.path_params["id"].lower())
        return Response(status_code=204) if removed else _json(404, problem(404, "Not Found", "The connection was not found"))

    # -- accounting -------------------------------------------------------------------------------
    def _accounting_call(
        self, method: str, parts: list[str], headers: dict[str, str], query: dict[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str], str | None]:
        """(status, body, headers, the fault still to strike once the answer is ready)."""
        collection = parts[0] if parts else ""
        tenant_id = headers.get("xero-tenant-id", "").strip().lower()
        grant = self.identity.grant_for_access_token(_bearer(headers))
        client_id = grant.client_id if grant else ""
        extra: dict[str, str] = {}
        connected = grant is not None and bool(tenant_id) and self.identity.is_connected(grant, tenant_id)
        fault = self.faults.draw(method, collection, body) if connected else None
        if grant is None:
            status, content = 401, encode(problem(401, "Unauthorized", "AuthenticationUnsuccessful"))
            extra["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        elif not connected:
            status, content = 403, encode(problem(403, "Forbidden", "AuthorizationUnsuccessful"))
        elif fault in BEFORE_ACTING:
            status, content, extra = self._refused_by_fault(fault)
        else:
            if fault == "validation":
                body = self.faults.spoil_one_document(collection, body)
            admission = self.limiter.admit(client_id, tenant_id)
            extra = admission.headers()
            if not admission.admitted:
                status, content = 429, encode(problem(429, "Too Many Requests", f"Rate limit exceeded: {admission.problem}"))
            else:
                try:
                    status, content = self._answer(tenant_id, method, parts, headers, query, body)
                finally:
                    self.limiter.release(client_id, tenant_id)
                if fault == "500":  # carried out and saved; the client only hears of an error
                    status, content = 500, encode(problem(
                        500, "Internal Server Error", "An error occurred in Xero (fault injected after the request was carried out)"))
        self.store.record_call(tenant_id, client_id, method, collection, status)
        return status, content, extra, fault if fault in ("slow", "drop") else None

    def _refused_by_fault(self, fault: str) -> tuple[int, bytes, dict[str, str]]:
        if fault == "429":
            headers = {
                "X-Rate-Limit-Problem": "minute",
                "Retry-After": format_retry_after(self.faults.plan.retry_after_seconds),
                "X-MinLimit-Remaining": "0",
            }
            return 429, encode(problem(429, "Too Many Requests", "Rate limit exceeded: minute (fault injected)")), headers
        return 503, encode(problem(503, "Service Unavailable", "The Xero API is temporarily unavailable (fault injected)")), {}

    def _answer(
        self, tenant_id: str, method: str, parts: list[str], headers: dict[str, str], query: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        key = headers.get("idempotency-key", "").strip() if method in ("PUT", "POST", "DELETE") else ""
        if len(key) > MAX_IDEMPOTENCY_KEY:
            return 400, encode({"ErrorNumber": 10, "Type": "ValidationException", "Message": "Idempotency-Key must be 128 characters or fewer.", "Elements": []})
        if not key:
            answer = self.accounting.handle(tenant_id, method, parts, query, body)
            return answer.status, encode(answer.body)
        # check, act and remember under one lock: a concurrent retry waits and then replays
        with self.store.transaction():
            since = now_ms() - self.config.idempotency_seconds * 1000
            remembered = self.store.remembered_answer(tenant_id, key, since)
            if remembered is not None:
                return remembered
            answer = self.accounting.handle(tenant_id, method, parts, query, body)
            content = encode(answer.body)
            self.store.remember_answer(tenant_id, key, method, "/".join(parts), answer.status, content)
            return answer.status, content

    async def api(self, request: Request) -> Response:
        parts = [p for p in request.path_params["path"].split("/") if p]
        headers = {k.lower(): v for k, v in request.headers.items()}
        query = {k.lower(): v for k, v in request.query_params.items()}
        body = await request.body()
        status, content, extra, fault = await run_in_threadpool(self._accounting_call, request.method, parts, headers, query, body)
        if fault == "drop":
            return _DroppedAnswer()
        if fault == "slow":
            self.faults.hold(1)
            try:
                await asyncio.sleep(self.faults.plan.slow_seconds)
            finally:
                self.faults.hold(-1)
        return Response(content, status_code=status, media_type=JSON, headers=extra)

    # -- fault injection (a test tool: loopback only, no auth) ------------------------------------
    async def fault_plan(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                self.faults.set(FaultPlan.from_json(await request.json()))
            except (FaultPlanError, ValueError, TypeError) as error:
                return _json(400, {"Message": str(error)})
        elif request.method == "DELETE":
            self.faults.clear()
        return _json(200, self.faults.stats())

    # -- a person's page per document (a stand-in for go.xero.com: no auth, read only) -------------------
    def _document_page(self, document_id: str, short_code: str | None = None) -> tuple[int, str]:
        found = self.store.document_in_any_organisation(document_id.strip().lower())
        organisation = self.store.organisation(found[1]) if found else None
        if found is None or organisation is None or (short_code and short_code.casefold() != organisation.short_code.casefold()):
            return 404, not_found_page(document_id)
        collection, tenant_id, document = found
        contact = self.store.contact_by_id(tenant_id, document.get("ContactID") or "")
        names: dict[str, str] = {}
        for account in self.store.stored_accounts(tenant_id):
            names[account.account_id] = names[account.code] = account.name
        return 200, document_page(collection, document, organisation.name, contact, names, organisation.base_currency)

    async def document(self, request: Request) -> Response:
        status, page = await run_in_threadpool(self._document_page, request.path_params["id"])
        return HTMLResponse(page, status_code=status)

    async def deep_link(self, request: Request) -> Response:
        """Xero's deep links (the organisation login form, or a document's own page) lead to the
        document's sandbox page; one for another organisation's short code finds nothing."""
        document_id, short_code = deep_link_target(request.url.path, dict(request.query_params))
        if not document_id:
            return HTMLResponse(not_found_page(""), status_code=404)
        status, page = await run_in_threadpool(self._document_page, document_id, short_code)
        if status != 200:
            return HTMLResponse(page, status_code=status)
        return RedirectResponse(f"/sandbox/documents/{document_id}", status_code=302)

    async def home(self, request: Request) -> Response:
        organisations = await run_in_threadpool(self.store.organisations)
        return _json(200, {
            "sandbox": "Xero sandbox",
            "organisations": [{"name": o.name, "tenantId": o.tenant_id, "shortCode": o.short_code} for o in organisations],
            "accounting_api": API_PREFIX,
            "document_pages": "/sandbox/documents/{InvoiceID or CreditNoteID}",
        })


def build_app(config: SandboxConfig, store: SandboxStore, faults: FaultInjector | None = None) -> Starlette:
    quiet_dropped_connections()
    sandbox = _Sandbox(config, store, faults or FaultInjector())
    methods = ["GET", "PUT", "POST", "DELETE"]
    return Starlette(
        routes=[
            Route("/", sandbox.home),
            Route("/identity/connect/authorize", sandbox.authorize, methods=["GET"]),
            Route("/identity/connect/authorize/consent", sandbox.consent, methods=["POST"]),
            Route("/identity/connect/token", sandbox.token, methods=["POST"]),
            Route("/identity/connect/revocation", sandbox.revocation, methods=["POST"]),
            Route("/connections", sandbox.connections, methods=["GET"]),
            Route("/Connections", sandbox.connections, methods=["GET"]),
            Route("/connections/{id}", sandbox.delete_connection, methods=["DELETE"]),
            Route("/Connections/{id}", sandbox.delete_connection, methods=["DELETE"]),
            Route(API_PREFIX + "/{path:path}", sandbox.api, methods=methods),
            Route("/sandbox/faults", sandbox.fault_plan, methods=["GET", "PUT", "DELETE"]),
            Route("/sandbox/documents/{id}", sandbox.document, methods=["GET"]),
            Route("/organisationlogin/default.aspx", sandbox.deep_link, methods=["GET"]),
            Route("/AccountsReceivable/{page}", sandbox.deep_link, methods=["GET"]),
            Route("/AccountsPayable/{page}", sandbox.deep_link, methods=["GET"]),
        ]
    )


def open_store(config: SandboxConfig) -> SandboxStore:
    """The store at config.db_path with the configured clients and organisations (idempotent)."""
    store = SandboxStore(config.db_path)
    for client in config.clients:
        store.ensure_client(client)
    for organisation in config.organisations:
        store.ensure_organisation(organisation)
    return store


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SandboxServer:
    """The sandbox in a background thread on 127.0.0.1; a context manager."""

    def __init__(self, config: SandboxConfig, port: int | None = None):
        self.config = config
        self.port = port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.store = open_store(config)
        self.faults = FaultInjector()  # set a FaultPlan per run: `server.faults.set(FaultPlan(...))`
        self.app = build_app(config, self.store, self.faults)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"SandboxServer(base_url={self.base_url!r}, db_path={self.config.db_path!r})"

    def __enter__(self) -> "SandboxServer":
        settings = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False, lifespan="off",
            # an answer held back by a `slow` fault must not keep a stopping sandbox waiting
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(settings)
        self._thread = threading.Thread(target=self._server.run, name=f"xero-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The Xero sandbox could not start on port {self.port} (is it in use?)")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._server = self._thread = None


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8077, faults: FaultPlan | None = None) -> None:
    """Run the sandbox in the foreground until interrupted (no access log: URLs can carry codes)."""
    store = open_store(config)
    injector = FaultInjector()
    if faults is not None:
        injector.set(faults)
    try:
        uvicorn.run(build_app(config, store, injector), host=host, port=port, log_level="info", access_log=False, lifespan="off")
    finally:
        store.close()

"""The Xero Accounting API over a refreshing OAuth 2.0 session: requests, errors, batching.

Knows nothing of CI: it sends Xero payloads and reports what Xero answered, document by document.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

import requests
from requests_oauthlib import OAuth2Session

from ..money import dumps_exact, loads_exact
from .oauth import ReconnectRequired, TokenKeeper, allow_http_for_loopback
from .pacing import DailyLimitReached, TenantPacer, pacer_for
# Xero's own advice for a batch; a request of 50 documents stays far below its size limit.
DEFAULT_BATCH_SIZE = 50
_NUMBERS_PER_LOOKUP = 100  # one page of results; keeps lookup URLs near 1.5 kB
_REFERENCES_PER_LOOKUP = 50  # `Reference=="…" OR …` clauses per payments lookup (about 2 kB of URL)


class XeroApiError(RuntimeError):
    """Xero refused a request. `messages` holds Xero's own validation messages."""

    def __init__(self, status: int, summary: str, messages: Sequence[str] = ()):
        self.status = status
        self.messages = list(messages)
        detail = "; ".join(self.messages)
        super().__init__(f"Xero answered HTTP {status}: {summary}" + (f" ({detail})" if detail else ""))


class XeroConnectionLost(XeroApiError, ReconnectRequired):
    """Xero refuses the connection's fresh tokens (revoked, or the organisation was disconnected)."""

    def __init__(self, reason: str, tenant_name: str = ""):
        ReconnectRequired.__init__(self, reason, tenant_name)
        self.status, self.messages = 401, []


@dataclass(frozen=True)
class DocumentOutcome:
    """What Xero said about one document of a batch."""

    key: str
    ok: bool
    document: dict[str, Any]
    messages: tuple[str, ...] = ()


@dataclass
class CallLog:
    """Counts of the calls a client made, for metadata and benchmarks."""

    by_kind: Counter = field(default_factory=Counter)
    rate_limited: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: tuple[str, str]) -> None:
        with self._lock:
            self.by_kind[kind] += 1

    def count_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    @property
    def writes(self) -> int:
        return sum(n for (method, _), n in self.by_kind.items() if method in ("PUT", "POST", "DELETE"))


def _validation_messages(element: dict[str, Any]) -> list[str]:
    messages = [str(error.get("Message", "")) for error in element.get("ValidationErrors") or []]
    for line in element.get("LineItems") or []:
        messages += [str(error.get("Message", "")) for error in line.get("ValidationErrors") or []]
    return [message for message in messages if message]


def _error_summary(answer: requests.Response) -> tuple[str, list[str]]:
    try:
        body = loads_exact(answer.content)
    except ValueError:
        return (answer.reason or "error", [])
    if not isinstance(body, dict):
        return (answer.reason or "error", [])
    messages: list[str] = []
    for element in body.get("Elements") or []:
        messages += _validation_messages(element)
    summary = body.get("Message") or body.get("Detail") or body.get("Title") or answer.reason or "error"
    return (str(summary), messages)


def batch_idempotency_key(endpoint: str, keyed_payloads: Sequence[tuple[str, dict[str, Any]]], scope: str = "") -> str:
    """A key derived from the documents and the client's scope: a batch retried by the same client
    replays instead of duplicating, and a changed document makes a new key. Xero allows at most 128
    characters. A new client (a new run) has a new scope: Xero keeps a key's first answer for minutes, so
    a document it refused would otherwise be refused again from memory after the fix (a restored
    account), and across runs the ledger's lookups, not the key, prevent a second copy."""
    digest = hashlib.sha256(scope.encode() + b"\0" + endpoint.encode())
    for key, payload in keyed_payloads:
        digest.update(key.encode())
        digest.update(dumps_exact(payload).encode())
    return f"ci-xero-{digest.hexdigest()}"


class XeroOutcomeUnknown(XeroApiError):
    """A write was sent but its answer was lost (timeout, dropped connection, 5xx): Xero may or may not
    have saved it. Never retried blindly: the caller looks the documents up first."""

    def __init__(self, reason: str):
        super().__init__(0, f"the outcome of a write is unknown ({reason})")


WRITE_METHODS = ("PUT", "POST", "DELETE")


class XeroClient:
    """One organisation's Accounting API, paced under its limits; safe to use from several threads."""

    def __init__(
        self,
        keeper: TokenKeeper,
        tenant_id: str,
        api_url: str,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float = 30,
        max_attempts: int = 6,
        pacer: TenantPacer | None = None,
    ):
        self._keeper = keeper
        allow_http_for_loopback(api_url)
        keeper.token()  # fail early, before any work, when the connection is dead
        self._local = threading.local()  # one HTTP session per thread (connection reuse, no sharing)
        self.tenant_id = tenant_id
        self.api_url = api_url.rstrip("/")
        self.batch_size = batch_size
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.pacer = pacer or pacer_for(api_url, tenant_id)
        self.calls = CallLog()
        self.idempotency_scope = uuid.uuid4().hex  # see batch_idempotency_key

    def __repr__(self) -> str:
        return f"XeroClient(tenant_id={self.tenant_id!r}, api_url={self.api_url!r})"

    @property
    def max_in_flight(self) -> int:
        return self.pacer.limits.max_in_flight

    # -- one request --------------------------------------------------------------------------
    def _session(self) -> OAuth2Session:
        if not hasattr(self._local, "session"):
            # requests-oauthlib adds the bearer header; only the keeper refreshes (under the store's lock).
            # No token yet: _send sets it for each call, after the pacer's wait.
            self._local.session = OAuth2Session()
        return self._local.session

    def _send(self, method: str, url: str, **kwargs: Any) -> tuple[requests.Response, str]:
        session = self._session()
        with self.pacer.call():
            # the token is taken after the pacer's wait, not before: a wait for a slot or a Retry-After
            # can outlast the token, and a token that expired while waiting must be refreshed, not sent
            token = self._keeper.token()
            session.token = token
            answer = session.request(method, url, timeout=self.timeout, **kwargs)
        self.pacer.observe(answer.status_code, answer.headers)
        return answer, token.get("access_token", "")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One call. Reads are retried through transient trouble; a write whose outcome is unknown
        raises XeroOutcomeUnknown instead, for the caller to look up before anything is sent again."""
        url = f"{self.api_url}/{path.lstrip('/')}"
        headers = {"xero-tenant-id": self.tenant_id, "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = dumps_exact(body).encode()
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        kind = (method, path.split("/")[0])
        writing = method in WRITE_METHODS
        refreshed = False
        for attempt in range(1, self.max_attempts + 1):
            self.calls.count(kind)
            try:
                answer, used_token = self._send(method, url, params=params, data=data, headers=headers)
            except requests.RequestException as error:
                # timeouts, refused or dropped connections, a body cut short
                if writing:
                    raise XeroOutcomeUnknown(type(error).__name__) from None
                if attempt == self.max_attempts:
                    raise
                time.sleep(min(2**attempt, 30) / 4)
                continue
            if answer.status_code == 401 and not refreshed:
                # the access token died before its time (clocks disagree, or it was revoked): one
                # refresh, then retry; a dead grant raises ReconnectRequired from the keeper
                refreshed = True
                self._keeper.refresh(rejected_access_token=used_token)
                continue
            if answer.status_code == 429:
                self.calls.count_rate_limited()
                if answer.headers.get("X-Rate-Limit-Problem", "") == "day":
                    raise DailyLimitReached("Xero's daily call limit for this organisation is used up")
                if attempt < self.max_attempts:
                    continue  # the pacer holds every caller until Retry-After has passed
            if answer.status_code >= 500:
                if writing:
                    raise XeroOutcomeUnknown(f"HTTP {answer.status_code}")
                if attempt < self.max_attempts:
                    time.sleep(min(2**attempt, 30) / 4)
                    continue
            if answer.status_code == 401:
                raise XeroConnectionLost(
                    "Xero rejects even a freshly refreshed token (the organisation was disconnected)",
                    self._keeper.connection.tenant_name,
                )
            if answer.status_code >= 400:
                summary, messages = _error_summary(answer)
                raise XeroApiError(answer.status_code, summary, messages)
            return loads_exact(answer.content) if answer.content else {}
        raise XeroApiError(429, f"still refused after {self.max_attempts} attempts")

    # -- reading ------------------------------------------------------------------------------
    def get_all(self, path: str, collection: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every element of a collection, following Xero's pages where the endpoint pages.

        Xero's own count decides: an answer with a `pagination` block ({page, pageSize, pageCount,
        itemCount}: Invoices, CreditNotes, Contacts, Payments …) is followed up to its pageCount,
        whatever page size Xero chose to give (it may give fewer than were asked for). Only an answer
        without one is followed until a page comes back short of the page size asked for."""
        params = dict(params or {})
        paged = "page" in params
        elements: list[dict[str, Any]] = []
        page = int(params.get("page", 1))
        while True:
            if paged:
                params["page"] = page
            answer = self.request("GET", path, params=params)
            found = answer.get(collection) or []
            elements += found
            if not paged:
                return elements
            page_count = _page_count(answer.get("pagination"))
            if page_count is not None:
                if page >= page_count or not found:
                    return elements
            elif len(found) < int(params.get("pageSize", 100)):
                return elements
            page += 1

    def organisation(self) -> dict[str, Any]:
        return self.get_all("Organisation", "Organisations")[0]

    def accounts(self) -> list[dict[str, Any]]:
        return self.get_all("Accounts", "Accounts")

    def tax_rates(self) -> list[dict[str, Any]]:
        return self.get_all("TaxRates", "TaxRates")

    def tracking_categories(self) -> list[dict[str, Any]]:
        return self.get_all("TrackingCategories", "TrackingCategories", {"includeArchived": "true"})

    def find_by_number(self, endpoint: str, numbers: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The documents already in Xero with these numbers, by number (deleted ones ignored)."""
        wanted = sorted(set(numbers))
        found: dict[str, dict[str, Any]] = {}
        number_field = "InvoiceNumber" if endpoint == "Invoices" else "CreditNoteNumber"
        for start in range(0, len(wanted), _NUMBERS_PER_LOOKUP):
            chunk = wanted[start : start + _NUMBERS_PER_LOOKUP]
            params: dict[str, Any] = {"page": 1, "pageSize": 1000, "unitdp": 4}
            if endpoint == "Invoices":
                params["InvoiceNumbers"] = ",".join(chunk)
            else:
                params["where"] = " OR ".join(f'{number_field}=="{number}"' for number in chunk)
            for document in self.get_all(endpoint, endpoint, params):
                if document.get("Status") != "DELETED" and document.get(number_field) in chunk:
                    found[document[number_field]] = document
        return found

    def find_payments_by_reference(self, references: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Every payment Xero holds under each Reference (any status: a DELETED one says a removal
        went through), by the reference asked for; [] for one Xero does not hold. One call per 50
        references (`where=Reference=="…" OR …`); Xero compares references without regard to case."""
        wanted = sorted(set(references))
        found: dict[str, list[dict[str, Any]]] = {reference: [] for reference in wanted}
        by_folded = {reference.casefold(): reference for reference in wanted}
        for start in range(0, len(wanted), _REFERENCES_PER_LOOKUP):
            chunk = wanted[start : start + _REFERENCES_PER_LOOKUP]
            where = " OR ".join(f'Reference=="{where_text(reference)}"' for reference in chunk)
            for payment in self.get_all("Payments", "Payments", {"where": where, "page": 1, "pageSize": 100}):
                reference = by_folded.get(str(payment.get("Reference") or "").casefold())
                if reference is not None:
                    found[reference].append(payment)
        return found

    def payment(self, payment_id: str) -> dict[str, Any] | None:
        """One payment by its PaymentID (DELETED ones too); None when Xero has no such payment."""
        try:
            answer = self.request("GET", f"Payments/{payment_id}")
        except XeroApiError as error:
            if error.status == 404:
                return None
            raise
        payments = answer.get("Payments") or []
        return payments[0] if payments else None

    # -- writing ------------------------------------------------------------------------------
    def put_payments(self, keyed_payloads: Sequence[tuple[str, dict[str, Any]]]) -> list[DocumentOutcome]:
        """One PUT /Payments of up to batch_size payments (the spec's createPayments), each payment's own
        result, with the batch's Idempotency-Key as put_batch gives it. Unlike put_batch it sends only
        summarizeErrors: createPayments takes no unitdp (payments are amounts of 2 decimals)."""
        return self._write_batch("PUT", "Payments", keyed_payloads, {"summarizeErrors": "false"}, "payments", "HasValidationErrors")

    def delete_payment(self, payment_id: str) -> dict[str, Any]:
        """Remove a payment (the spec's deletePayment: POST /Payments/{id} {"Status": "DELETED"}; Xero
        deletes payments one a call). Xero's answer: the payment, now DELETED. A refusal raises
        XeroApiError with Xero's words; a lost answer XeroOutcomeUnknown (look it up: DELETED = done)."""
        body = {"Status": "DELETED"}
        key = batch_idempotency_key(f"Payments/{payment_id}", [(payment_id, body)], self.idempotency_scope)
        answer = self.request("POST", f"Payments/{payment_id}", body=body, idempotency_key=key)
        payments = answer.get("Payments") or []
        if not payments:
            raise XeroApiError(200, f"Xero answered no payment for the removal of {payment_id}")
        return payments[0]

    def create_tracking_category(self, name: str) -> dict[str, Any]:
        answer = self.request("PUT", "TrackingCategories", body={"Name": name})
        return answer["TrackingCategories"][0]

    def add_tracking_options(self, category_id: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """Create options, one request each: Xero's createTrackingOptions takes one TrackingOption
        ({"Name": …}) as its body. A lost answer raises XeroOutcomeUnknown for that option; the caller
        reads the category back (names are unique, so nothing is created twice)."""
        created: list[dict[str, Any]] = []
        for name in names:
            answer = self.request("PUT", f"TrackingCategories/{category_id}/Options", body={"Name": name})
            created += answer.get("Options") or []
        return created

    def _batches(self, items: Sequence[Any]) -> Iterator[Sequence[Any]]:
        for start in range(0, len(items), self.batch_size):
            yield items[start : start + self.batch_size]

    def put_contacts(self, keyed_payloads: Sequence[tuple[str, dict[str, Any]]]) -> list[DocumentOutcome]:
        """One PUT /Contacts of up to batch_size contacts with its Idempotency-Key; each contact's own result
        (the spec's createContacts takes summarizeErrors and no unitdp)."""
        return self._write_batch("PUT", "Contacts", keyed_payloads, {"summarizeErrors": "false"}, "contacts", "HasValidationErrors")

    def put_batch(self, endpoint: str, keyed_payloads: Sequence[tuple[str, dict[str, Any]]], method: str = "PUT") -> list[DocumentOutcome]:
        """One request of up to batch_size documents; each document's own result (good ones are saved
        even when others fail). PUT creates; POST creates or updates (by id)."""
        return self._write_batch(method, endpoint, keyed_payloads, {"summarizeErrors": "false", "unitdp": 4}, "documents", "HasErrors")

    def _write_batch(self, method: str, endpoint: str, keyed_payloads: Sequence[tuple[str, dict[str, Any]]],
                     params: dict[str, Any], what: str, error_flag: str) -> list[DocumentOutcome]:
        """Send one batch with its Idempotency-Key; each element's outcome, by the flag Xero sets on a refused one."""
        answer = self.request(
            method, endpoint, params=params,
            body={endpoint: [payload for _, payload in keyed_payloads]},
            idempotency_key=batch_idempotency_key(endpoint, keyed_payloads, self.idempotency_scope),
        )
        elements = answer.get(endpoint) or []
        if len(elements) != len(keyed_payloads):
            raise XeroApiError(200, f"Xero answered {len(elements)} elements for {len(keyed_payloads)} {what}")
        outcomes = []
        for (key, _), element in zip(keyed_payloads, elements):
            messages = _validation_messages(element)
            ok = element.get("StatusAttributeString", "OK") != "ERROR" and not element.get(error_flag)
            outcomes.append(DocumentOutcome(key=key, ok=ok and not messages, document=element, messages=tuple(messages)))
        return outcomes

    def create_documents(
        self, endpoint: str, keyed_payloads: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[DocumentOutcome]:
        """PUT documents in batches, one after another (see posting.py for the paced, parallel path)."""
        outcomes: list[DocumentOutcome] = []
        for batch in self._batches(keyed_payloads):
            outcomes += self.put_batch(endpoint, batch)
        return outcomes


def _page_count(pagination: Any) -> int | None:
    """Xero's pageCount from an answer's pagination block; None when the answer has none."""
    if not isinstance(pagination, dict):
        return None
    try:
        return int(pagination["pageCount"])
    except (KeyError, TypeError, ValueError):
        return None


def where_text(value: str) -> str:
    """A value inside a where clause's double quotes (a quote or backslash escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_xero_date(value: str | None) -> date | None:
    """Xero writes dates as '/Date(1759276800000+0000)/' in JSON; some fields as 'YYYY-MM-DD'."""
    if not value:
        return None
    match = re.match(r"/Date\((-?\d+)([+-]\d{4})?\)/", value)
    if match:
        # the millisecond count marks midnight of the calendar date, so read it in UTC
        return datetime.fromtimestamp(int(match.group(1)) / 1000, tz=timezone.utc).date()
    return date.fromisoformat(value[:10])

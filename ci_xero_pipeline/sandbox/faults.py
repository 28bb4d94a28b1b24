"""Fault injection for the sandbox: the trouble a real network and a real Xero cause, on demand.

A plan is set per run (in-process through `SandboxServer.faults`, or over HTTP at `/sandbox/faults`):
a probability that an Accounting API call is hit, the kinds to draw from, and/or a scripted sequence
that the next matching calls take one entry each ("ok" for a call left alone).

Kinds, and when they strike (some before Xero acts, the treacherous ones after it has saved):
- `429`      refused before acting: minute limit, with `Retry-After` and Xero's headers
- `503`      refused before acting: service unavailable
- `500`      the request is carried out and saved, then answered with a 500
- `slow`     the request is carried out and saved, then the answer is held `slow_seconds` (longer than
             the client waits)
- `drop`     the request is carried out and saved, then the connection is dropped mid-answer
- `validation` one document (or payment) of a write batch is made invalid (an account code Xero does not
             have), so Xero refuses that one and saves the rest, as with `summarizeErrors=false`
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from .xerojson import encode

FAULT_KINDS = ("429", "503", "500", "slow", "drop", "validation")
BEFORE_ACTING = {"429", "503"}  # the others strike after the request was carried out
INJECTED_ACCOUNT_CODE = "FAULT-INJECTED"  # what a `validation` fault writes into one line


class FaultPlanError(ValueError):
    pass


@dataclass(frozen=True)
class FaultPlan:
    probability: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    script: tuple[str, ...] = ()  # consumed before the probability applies
    methods: tuple[str, ...] = ("GET", "PUT", "POST", "DELETE")
    collections: tuple[str, ...] = ()  # e.g. ("Invoices",); empty: every collection
    slow_seconds: float = 5.0
    retry_after_seconds: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = sorted({*self.kinds, *self.script} - {*FAULT_KINDS, "ok"})
        if unknown:
            raise FaultPlanError(f"unknown fault kinds {unknown}; choose from {list(FAULT_KINDS)} (or 'ok' in a script)")
        if not 0 <= self.probability <= 1:
            raise FaultPlanError("probability must be between 0 and 1")

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> "FaultPlan":
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(values) - known)
        if extra:
            raise FaultPlanError(f"unknown fault plan fields {extra}; known: {sorted(known)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)


@dataclass
class FaultInjector:
    """Draws the fault for each call under the current plan, and counts what it injected."""

    plan: FaultPlan = field(default_factory=FaultPlan)
    injected: Counter = field(default_factory=Counter)
    holding: int = 0  # answers being held back by `slow` right now
    _script: list[str] = field(default_factory=list)
    _random: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan
            self._script = list(plan.script)
            self._random = random.Random(plan.seed)

    def clear(self) -> None:
        self.set(FaultPlan())

    def draw(self, method: str, collection: str, body: bytes) -> str | None:
        """The fault for this call, or None. A kind that cannot apply to the call (validation on a read)
        leaves it alone and is not counted."""
        with self._lock:
            plan = self.plan
            if method not in plan.methods or (plan.collections and collection not in plan.collections):
                return None
            if self._script:
                kind = self._script.pop(0)
            elif plan.probability and self._random.random() < plan.probability:
                kind = self._random.choice(plan.kinds)
            else:
                return None
            if kind == "ok" or (kind == "validation" and not _invalid_able(method, collection, body)):
                return None
            self.injected[kind] += 1
            return kind

    def spoil_one_document(self, collection: str, body: bytes) -> bytes:
        """A `validation` fault: one document of the batch gets a line with an account code Xero lacks
        (one payment of a Payments batch: an Account code Xero lacks)."""
        payload = json.loads(body, parse_float=Decimal)  # money stays exact on the way through
        elements = [e for e in payload.get(collection) or [] if _spoilable(collection, e)]
        with self._lock:
            victim = self._random.choice(elements)
        if collection == "Payments":
            victim["Account"] = {"Code": INJECTED_ACCOUNT_CODE}
        else:
            victim["LineItems"][0]["AccountCode"] = INJECTED_ACCOUNT_CODE
        return encode(payload)

    def hold(self, delta: int) -> None:
        with self._lock:
            self.holding += delta

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "plan": asdict(self.plan),
                "injected": dict(self.injected),
                "injected_total": sum(self.injected.values()),
                "script_left": len(self._script),
                "holding": self.holding,
            }


def _spoilable(collection: str, element: Any) -> bool:
    if not isinstance(element, dict):
        return False
    return bool(element.get("Account")) if collection == "Payments" else bool(element.get("LineItems"))


def _invalid_able(method: str, collection: str, body: bytes) -> bool:
    if method not in ("PUT", "POST") or collection not in ("Invoices", "CreditNotes", "Payments") or not body:
        return False
    try:
        payload = json.loads(body, parse_float=Decimal)
    except ValueError:
        return False
    return isinstance(payload, dict) and isinstance(payload.get(collection), list) and any(
        _spoilable(collection, e) for e in payload[collection]
    )


class ConnectionDropped(Exception):
    """Raised inside a response after its headers went out: the server closes the connection."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def quiet_dropped_connections() -> None:
    """uvicorn logs any exception in an app as an error; a deliberate drop is not one."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())

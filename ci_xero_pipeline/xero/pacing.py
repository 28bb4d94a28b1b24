"""Pacing under Xero's limits, per organisation: calls a minute, calls in flight, 429 Retry-After and
the daily budget. Pacing ahead of time is cheaper than a 429: each refused call still costs a slot.

A call occupies the minute window from the moment it starts until one window after its answer came
back. Counting from the answer (not the start) keeps us safe however long the request travelled: by
then Xero has certainly counted it, and forgets it no earlier than one window later.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping


class DailyLimitReached(RuntimeError):
    """Xero's daily call budget for the organisation is (nearly) used up: stop cleanly, resume tomorrow."""


@dataclass(frozen=True)
class PacingLimits:
    calls_per_minute: int = 60
    max_in_flight: int = 5
    window_seconds: float = 60.0  # Xero's minute; shorter only against a time-compressed sandbox
    day_reserve: int = 20  # calls kept back for reads and reconciliation when the day runs low


class TenantPacer:
    def __init__(self, limits: PacingLimits = PacingLimits(), clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._condition = threading.Condition()
        self._finished: list[float] = []  # answer times of calls still inside the window
        self._running = 0
        self._paused_until = 0.0
        self.day_remaining: int | None = None
        self._day_stop_until = 0.0  # no calls before this: the day's budget is (nearly) spent
        self.waited_seconds = 0.0

    def __repr__(self) -> str:
        return f"TenantPacer({self.limits})"

    def _occupied(self, now: float) -> int:
        horizon = now - self.limits.window_seconds
        self._finished = [t for t in self._finished if t > horizon]
        return len(self._finished) + self._running

    def _wait_needed(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        if self._running >= self.limits.max_in_flight:
            return 0.05  # woken by notify when a call ends
        if self._occupied(now) >= self.limits.calls_per_minute:
            if self._finished:
                return min(self._finished) + self.limits.window_seconds - now
            return 0.05
        return 0.0

    @contextmanager
    def call(self) -> Iterator[None]:
        """Wait for a slot, then hold it for one call."""
        with self._condition:
            while True:
                if self._clock() < self._day_stop_until:  # checked on every wake: another call may have learnt it
                    raise DailyLimitReached(
                        f"Xero's daily call limit for this organisation is nearly used ({self.day_remaining} calls "
                        f"left, {self.limits.day_reserve} kept in reserve)"
                    )
                wait = self._wait_needed(self._clock())
                if wait <= 0:
                    break
                started = self._clock()
                self._condition.wait(timeout=wait)
                self.waited_seconds += self._clock() - started
            self._running += 1
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self._finished.append(self._clock())
                self._condition.notify_all()

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from an answer: the day's remaining budget, and a pause after a 429."""
        with self._condition:
            remaining = headers.get("X-DayLimit-Remaining")
            if remaining is not None and remaining.strip().lstrip("-").isdigit():
                self.day_remaining = int(remaining)
                if self.day_remaining <= self.limits.day_reserve:
                    # stop for a window; a later call (a later run in this process) learns the budget again
                    self._day_stop_until = max(self._day_stop_until, self._clock() + self.limits.window_seconds)
            if status == 429:
                retry_after = headers.get("Retry-After")
                seconds = float(retry_after) if retry_after and _is_number(retry_after) else 1.0
                if headers.get("X-Rate-Limit-Problem", "") == "day":
                    # waiting out a day inside a run helps nobody: stop, and let tomorrow's run resume
                    self._day_stop_until = max(self._day_stop_until, self._clock() + seconds)
                else:
                    self._paused_until = max(self._paused_until, self._clock() + seconds)


def _is_number(text: str) -> bool:
    try:
        float(text)  # Retry-After is in seconds, a count of time, not money
        return True
    except ValueError:
        return False


_PACERS: dict[tuple[str, str, PacingLimits], TenantPacer] = {}
_PACERS_LOCK = threading.Lock()


def pacer_for(api_url: str, tenant_id: str, limits: PacingLimits = PacingLimits()) -> TenantPacer:
    """The one pacer of an organisation at a Xero (real, or a sandbox) in this process: every client
    of the tenant shares it."""
    with _PACERS_LOCK:
        key = (api_url.rstrip("/"), tenant_id, limits)
        if key not in _PACERS:
            _PACERS[key] = TenantPacer(limits)
        return _PACERS[key]

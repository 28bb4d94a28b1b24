"""Xero's rate limits: calls in flight per organisation, calls a minute and a day per app and
organisation, calls a minute per app. A refused call (429) consumes nothing.

Windows slide; `time_scale` > 1 shortens them (and Retry-After) so tests need not wait a minute.
Counts live in memory: a restarted sandbox starts with fresh windows.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable

MINUTE = 60.0
DAY = 86_400.0


@dataclass(frozen=True)
class Admission:
    admitted: bool
    minute_remaining: int
    day_remaining: int
    app_minute_remaining: int
    problem: str | None = None  # minute, day, concurrent, appminute
    retry_after: float | None = None  # seconds, already scaled

    def headers(self) -> dict[str, str]:
        headers = {
            "X-MinLimit-Remaining": str(self.minute_remaining),
            "X-DayLimit-Remaining": str(self.day_remaining),
            "X-AppMinLimit-Remaining": str(self.app_minute_remaining),
        }
        if self.problem:
            headers["X-Rate-Limit-Problem"] = self.problem
        if self.retry_after is not None:
            headers["Retry-After"] = format_retry_after(self.retry_after)
        return headers


def format_retry_after(seconds: float) -> str:
    """Whole seconds when they are (real time), else a short decimal ('0.5') for compressed time."""
    if seconds >= 1 and abs(seconds - round(seconds)) < 1e-9:
        return str(int(round(seconds)))
    if seconds >= 10:
        return str(math.ceil(seconds))
    return f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")


class RateLimiter:
    def __init__(
        self,
        minute_limit: int,
        day_limit: int,
        concurrent_limit: int,
        app_minute_limit: int,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.minute_limit = minute_limit
        self.day_limit = day_limit
        self.concurrent_limit = concurrent_limit
        self.app_minute_limit = app_minute_limit
        self.minute_window = MINUTE / time_scale
        self.day_window = DAY / time_scale
        self._clock = clock
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._day: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._app_minute: dict[str, deque[float]] = defaultdict(deque)
        self._in_flight: dict[tuple[str, str], int] = defaultdict(int)

    @staticmethod
    def _expire(calls: deque[float], now: float, window: float) -> None:
        while calls and calls[0] <= now - window:
            calls.popleft()

    def _retry_after(self, calls: deque[float], limit: int, now: float, window: float) -> float:
        # the call that must leave the window before one more fits
        oldest_needed = calls[len(calls) - limit]
        return max(oldest_needed + window - now, 0.001)

    def admit(self, app: str, tenant: str) -> Admission:
        """Take a slot for one call, or say which limit refuses it. Call `release` when it ends."""
        key = (app, tenant)
        with self._lock:
            now = self._clock()
            minute, day, app_minute = self._minute[key], self._day[key], self._app_minute[app]
            self._expire(minute, now, self.minute_window)
            self._expire(day, now, self.day_window)
            self._expire(app_minute, now, self.minute_window)

            def refused(problem: str, retry_after: float | None) -> Admission:
                return Admission(
                    False,
                    max(self.minute_limit - len(minute), 0),
                    max(self.day_limit - len(day), 0),
                    max(self.app_minute_limit - len(app_minute), 0),
                    problem,
                    retry_after,
                )

            if self._in_flight[key] >= self.concurrent_limit:
                return refused("concurrent", None)
            if len(day) >= self.day_limit:
                return refused("day", self._retry_after(day, self.day_limit, now, self.day_window))
            if len(minute) >= self.minute_limit:
                return refused("minute", self._retry_after(minute, self.minute_limit, now, self.minute_window))
            if len(app_minute) >= self.app_minute_limit:
                return refused("appminute", self._retry_after(app_minute, self.app_minute_limit, now, self.minute_window))
            minute.append(now)
            day.append(now)
            app_minute.append(now)
            self._in_flight[key] += 1
            return Admission(
                True,
                self.minute_limit - len(minute),
                self.day_limit - len(day),
                self.app_minute_limit - len(app_minute),
            )

    def release(self, app: str, tenant: str) -> None:
        with self._lock:
            self._in_flight[(app, tenant)] = max(self._in_flight[(app, tenant)] - 1, 0)

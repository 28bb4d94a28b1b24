"""Runs in a separate process: one pipeline-style Xero call that must refresh the connection first.
Kept apart from the tests so that a forkserver child imports only this and the package."""

from __future__ import annotations

from typing import Any


def refresh_and_call(settings_path: str, environment: dict[str, str], barrier: Any, outcomes: Any, slot: int) -> None:
    import os

    from ci_xero_pipeline.resources import XeroResource

    os.environ.update(environment)  # the forkserver kept the environment of the test that started it
    from ci_xero_pipeline.settings import load_settings

    xero = XeroResource.from_settings(load_settings(settings_path))
    barrier.wait(timeout=30)  # both processes find the same expired token at the same moment
    try:
        client = xero.client()
        name = client.organisation().get("Name", "")
        outcomes[slot] = f"ok:{name}"
    except Exception as error:  # reported to the parent, which fails the test with it
        outcomes[slot] = f"error:{type(error).__name__}: {error}"

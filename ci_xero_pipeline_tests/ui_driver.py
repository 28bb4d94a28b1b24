"""What the browser test needs around the UI: `dagster dev` on a site as a subprocess (always stopped,
its whole process group), its GraphQL endpoint for waiting, Debian's Chromium through Playwright, and
the Xero call that archives or restores an account."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .pipeline_helpers import xero_client

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SYSTEM_CHROMIUM = "/usr/bin/chromium"
# headless without a GPU or /dev/shm, as root in a container: Debian's Chromium as CI runs it
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1440, "height": 900}


def system_chromium() -> str | None:
    """Debian's Chromium; Playwright must never download a browser of its own."""
    if os.access(SYSTEM_CHROMIUM, os.X_OK):
        return SYSTEM_CHROMIUM
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DagsterDev:
    """`dagster dev` (webserver, daemon and code server) on the repository's workspace.yaml for one site."""

    def __init__(self, site_path: Path, dagster_home: Path, log_path: Path, port: int | None = None):
        self.site_path = site_path
        self.dagster_home = dagster_home
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "CI_XERO_SITE": str(self.site_path),
            "DAGSTER_HOME": str(self.dagster_home),
            "PYTHONUNBUFFERED": "1",
        }
        dagster = Path(sys.executable).with_name("dagster")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(dagster), "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-h", "127.0.0.1",
                 "-p", str(self.port), "--live-data-poll-rate", "500"],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends webserver, daemon, code server and runs
            )

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        answer = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=10)
        answer.raise_for_status()
        body = answer.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.exists() else ""

    def wait_until_loaded(self, timeout: float = 90) -> None:
        """Until the webserver answers and the code location is loaded (a broken one fails at once)."""
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
            name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"dagster dev stopped:\n{self.log_tail()}")
            try:
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
            except (requests.RequestException, RuntimeError, KeyError, TypeError):
                entries = []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [entry["locationOrLoadError"] for entry in entries
                          if entry["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"the code location did not load: {errors}")
                return
            time.sleep(0.25)
        raise TimeoutError(f"dagster dev did not load within {timeout} s:\n{self.log_tail()}")

    def run_tags(self, run_id: str) -> dict[str, str]:
        query = "query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }"
        run = self.graphql(query, {"id": run_id})["runOrError"]
        return {tag["key"]: tag["value"] for tag in run.get("tags") or []}

    def wait_for_run_tag(self, run_id: str, key: str, timeout: float = 120) -> str:
        """Until a sensor has written `key` on the run (the daemon ticks every 30 s or so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.run_tags(run_id).get(key)
            if value is not None:
                return value
            time.sleep(1)
        raise TimeoutError(f"run {run_id} has no tag {key} after {timeout} s:\n{self.log_tail()}")

    def skip_welcome_prompt(self) -> None:
        """The webserver's one-time "join the Dagster community" dialog would cover the first page."""
        self.graphql("mutation { setNuxSeen }")

    def stop(self) -> None:
        """Ctrl-C for the whole group (webserver, daemon, code servers, runs), then SIGKILL what is left."""
        if self.process is None:
            return
        group = self.process.pid  # start_new_session: the group is the dagster dev process's own id
        for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and group_alive(group):
                self.process.poll()  # reap the leader, so that a finished group reads as gone
                time.sleep(0.1)
            if not group_alive(group):
                break
        self.process.wait(timeout=5)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def set_account_status(site_path: Path, code: str, status: str) -> dict:
    """Archive ("ARCHIVED") or restore ("ACTIVE") an account in the site's Xero organisation, with Xero's
    own call: POST Accounts/{AccountID}."""
    client = xero_client(site_path)
    account = next(a for a in client.accounts() if a["Code"] == code)
    answer = client.request(
        "POST", f"Accounts/{account['AccountID']}", body={"Accounts": [{"AccountID": account["AccountID"], "Status": status}]}
    )
    return answer["Accounts"][0]

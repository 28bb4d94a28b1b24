"""`ci-xero`: the commands around the pipeline (the pipeline itself runs in Dagster)."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from .settings import PROCESS_SECTIONS, SettingsError, load_settings, settings_file


def _settings_path(args: argparse.Namespace) -> Path:
    return Path(args.settings).resolve() if args.settings else settings_file()


def command_demo_db(args: argparse.Namespace) -> int:
    from .ci.demo import create_demo_database

    settings = load_settings(_settings_path(args))
    end_day = date.fromisoformat(args.end_day) if args.end_day else None
    summary = create_demo_database(
        settings.resolved_ci_database_url,
        days=args.days,
        end_day=end_day,
        branches=args.branches,
        invoices_per_day=(args.min_invoices, args.max_invoices),
        lines_per_invoice=(1, args.max_lines),
        seed=args.seed,
    )
    print(f"Demo CI database at {settings.resolved_ci_database_url}: {summary}")
    return 0


def command_sandbox(args: argparse.Namespace) -> int:
    import json

    from .demo import demo_sandbox_config
    from .sandbox.server import FaultPlan, serve

    settings = load_settings(_settings_path(args))
    config = demo_sandbox_config(settings.data_path / "sandbox.sqlite", settings)
    faults = FaultPlan.from_json(json.loads(args.faults)) if args.faults else None
    print(f"Xero sandbox on http://{args.host}:{args.port} (state: {config.db_path}); Ctrl-C stops it.")
    if faults:
        print(f"Injecting faults: {faults} (change or clear them at /sandbox/faults: PUT a plan, DELETE)")
    serve(config, host=args.host, port=args.port, faults=faults)
    return 0


def _xero(args: argparse.Namespace):
    from .resources import XeroResource

    settings = load_settings(_settings_path(args))
    return settings, XeroResource.from_settings(settings)


def command_connect(args: argparse.Namespace) -> int:
    """Connect in a browser (authorization code + PKCE, local callback server), or as a custom connection."""
    import webbrowser

    from .xero.oauth import CallbackServer, connect, connect_custom

    settings, xero = _xero(args)
    tenant = args.tenant or settings.xero.tenant_id or settings.xero.tenant_name
    if args.custom or settings.xero.connection == "custom":
        connection = connect_custom(xero.oauth_app(), xero.token_store(), tenant)
    else:
        def open_consent(url: str) -> str:
            with CallbackServer(xero.redirect_uri) as callback:
                print("Open this address in a browser to connect to Xero (waiting for the answer):", flush=True)
                print(url, flush=True)
                if not args.no_browser:
                    webbrowser.open(url)  # a machine without a screen just leaves the address above
                return callback.wait(args.timeout)

        connection = connect(xero.oauth_app(), xero.token_store(), tenant, open_consent=open_consent)
    print(f"Connected to the Xero organisation {connection.tenant_name!r} ({connection.tenant_id}).")
    return 0


def command_disconnect(args: argparse.Namespace) -> int:
    from .xero.oauth import disconnect

    _settings, xero = _xero(args)
    connection = disconnect(xero.oauth_app(), xero.token_store())
    if connection is None:
        print("No Xero connection is stored; nothing to disconnect.")
    else:
        print(f"Disconnected from {connection.tenant_name!r}: the refresh token is revoked and the stored connection removed.")
    return 0


# `ci-xero status` exit codes: 0 healthy; 1 works but needs attention soon (the refresh token dies within
# xero.refresh_warning_days); 3 does not work: connect or reconnect (`ci-xero connect`)
STATUS_HEALTHY, STATUS_WARNING, STATUS_RECONNECT = 0, 1, 3


def command_status(args: argparse.Namespace) -> int:
    from .xero.health import connection_health, status_lines

    settings, xero = _xero(args)
    warn_days = settings.xero.refresh_warning_days
    connection = xero.token_store().load()
    healthy, headline, details = connection_health(connection, warn_days)
    print("\n".join(status_lines(connection, warn_days)) if connection is not None else headline)
    if healthy:
        return STATUS_HEALTHY
    return STATUS_RECONNECT if details["reconnect_required"] else STATUS_WARNING


def command_new_token_key(args: argparse.Namespace) -> int:
    from .xero.tokens import new_key

    print(new_key())
    return 0


def command_run(args: argparse.Namespace) -> int:
    from .runner import dagster_instance, nz_yesterday, run_days

    path = _settings_path(args)
    settings = load_settings(path)
    last = date.fromisoformat(args.last) if args.last else nz_yesterday()
    first = date.fromisoformat(args.first) if args.first else last
    instance = dagster_instance(settings)
    run = run_days(path, first, last, instance, log_level=args.log_level, process=args.process)
    print(f"Run {run.run_id} ({args.process}): {'succeeded' if run.success else 'FAILED'} for {first} … {last}")
    if not run.success:
        from .sensors import fix_sentence, step_failures

        for step in step_failures(instance, run.run_id):
            print(f"  {step['step']}: {step['headline']}")
            for fix in step["fixes"][:3]:
                print(f"    {fix_sentence(fix)}")
    for check in run.failed_checks:
        print(f"  check failed: {check}")
    return 0 if run.success else 1


def command_plan(args: argparse.Namespace) -> int:
    from .code_location import build_definitions
    from .planning import format_plan, plan_days
    from .runner import nz_yesterday

    path = _settings_path(args)
    load_settings(path)  # a broken site.yaml refuses here (the code location would load and show the error)
    last = date.fromisoformat(args.last) if args.last else nz_yesterday()
    first = date.fromisoformat(args.first) if args.first else last
    resources = build_definitions(path).resources
    rows = plan_days(resources["site"], resources["ci"], resources["xero"], first, last, process=args.process)
    print(format_plan(rows, first, last))
    return 0


def command_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(_settings_path(args), days=args.days)


def command_mapping_check(args: argparse.Namespace) -> int:
    """The mapping against the Xero organisation: reads only, unless --create-missing."""
    from .xero.chart_check import create_missing, needs_for_site, read_and_check

    settings, xero = _xero(args)
    client = xero.client()
    needs = needs_for_site(settings)
    verdict = read_and_check(client, needs)
    if args.create_missing and verdict.missing_account_codes:
        print(verdict.table())
        print()
        result = create_missing(client, verdict, needs)
        print("\n".join(result.lines()))
        print()
        verdict = result.verdict
    print(verdict.table())
    return 0 if verdict.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ci-xero", description=__doc__)
    parser.add_argument("--settings", help="site settings file (default: ./site.yaml or $CI_XERO_SITE)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="demo CI database + sandbox + post the last days in both modes")
    demo.add_argument("--days", type=int, default=30, help="trading days to post (default 30)")
    demo.set_defaults(handler=command_demo)

    demo_db = commands.add_parser("demo-db", help="create the demo CI database (replaces its tables)")
    demo_db.add_argument("--days", type=int, default=60)
    demo_db.add_argument("--end-day", help="last trading day, YYYY-MM-DD (default: yesterday, NZ time)")
    demo_db.add_argument("--branches", type=int, default=5)
    demo_db.add_argument("--min-invoices", type=int, default=50)
    demo_db.add_argument("--max-invoices", type=int, default=300)
    demo_db.add_argument("--max-lines", type=int, default=6)
    demo_db.add_argument("--seed", type=int, default=20261124)
    demo_db.set_defaults(handler=command_demo_db)

    sandbox = commands.add_parser("sandbox", help="run the local Xero sandbox until stopped")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8077)
    sandbox.add_argument(
        "--faults", metavar="JSON",
        help='inject faults, e.g. \'{"probability": 0.1, "kinds": ["429", "500", "drop"]}\' (see sandbox/faults.py)',
    )
    sandbox.set_defaults(handler=command_sandbox)

    connect = commands.add_parser("connect", help="connect the site to a Xero organisation (OAuth 2.0)")
    connect.add_argument("--tenant", help="organisation name or id (default: xero.tenant_id / tenant_name)")
    connect.add_argument("--no-browser", action="store_true", help="only print the address to open")
    connect.add_argument("--custom", action="store_true", help="Xero custom connection (client credentials)")
    connect.add_argument("--timeout", type=float, default=600, help="seconds to wait for the browser")
    connect.set_defaults(handler=command_connect)

    disconnect = commands.add_parser("disconnect", help="revoke the Xero connection and forget its tokens")
    disconnect.set_defaults(handler=command_disconnect)

    status = commands.add_parser(
        "status", help="the connected organisation, when its tokens expire and whether Xero refused them",
        description="Exit status: 0 healthy; 1 the refresh token expires soon; 3 reconnect (`ci-xero connect`).",
    )
    status.set_defaults(handler=command_status)

    key = commands.add_parser("new-token-key", help="print a new key for CI_XERO_TOKEN_KEY")
    key.set_defaults(handler=command_new_token_key)

    run = commands.add_parser("run", help="post a range of trading days as one Dagster run")
    run.add_argument("--first", help="first trading day, YYYY-MM-DD (default: --last)")
    run.add_argument("--last", help="last trading day, YYYY-MM-DD (default: yesterday, NZ time)")
    run.add_argument("--log-level", default="INFO", help="what the console prints (the UI keeps every event)")
    run.add_argument("--process", default="eretailer", choices=list(PROCESS_SECTIONS),
                     help="which process to post: eretailer (default) or takings (enabled in site.yaml)")
    run.set_defaults(handler=command_run)

    plan = commands.add_parser("plan", help="print what a run of a range of days would do in Xero, writing nothing")
    plan.add_argument("--first", help="first NZ trading day (YYYY-MM-DD); default: --last")
    plan.add_argument("--last", help="last NZ trading day (YYYY-MM-DD); default: yesterday in NZ")
    plan.add_argument("--process", default="eretailer", choices=list(PROCESS_SECTIONS),
                      help="which process's run to plan: eretailer (default) or takings")
    plan.set_defaults(handler=command_plan)

    mapping = commands.add_parser("mapping", help="the site's mapping against the Xero organisation")
    mapping_commands = mapping.add_subparsers(dest="mapping_command", required=True)
    check = mapping_commands.add_parser(
        "check", help="check each mapped account and tax type in Xero (reads only; posts nothing)",
        description="Exit status: 0 every mapped account and tax type fits; 1 a problem (each named with its "
                    "setting and fix); 3 reconnect (`ci-xero connect`).",
    )
    check.add_argument("--create-missing", action="store_true",
                       help="create the accounts Xero does not have (one each, typed for their role); "
                            "existing accounts are never changed")
    check.set_defaults(handler=command_mapping_check)
    return parser


def quiet_dagster_api_warnings() -> None:
    """Beta/superseded-API notices are for us, not for the person running a command."""
    import warnings

    from dagster import BetaWarning, SupersessionWarning

    warnings.filterwarnings("ignore", category=BetaWarning)
    warnings.filterwarnings("ignore", category=SupersessionWarning)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_dagster_api_warnings()
    try:
        return args.handler(args)
    except SettingsError as error:
        from .assets.site import safe_settings_error  # never echo a line of the file (it may hold a secret)

        print(safe_settings_error(str(error)), file=sys.stderr)
        return 2
    except Exception as error:  # one clear line for a person; our errors never carry secrets
        from .xero.oauth import DisconnectIncomplete, ReconnectRequired, RefreshRefused, TokenServiceUnavailable
        from .xero.tokens import NotConnectedError, TokenStoreError

        if isinstance(error, (ReconnectRequired, NotConnectedError, TokenStoreError, TimeoutError,
                              TokenServiceUnavailable, RefreshRefused, DisconnectIncomplete)):
            print(error, file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())

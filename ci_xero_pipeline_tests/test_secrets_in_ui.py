"""Secrets never reach the Dagster UI: the repository snapshot (what the UI's resource pages show) holds a
database password's ${VARIABLE} reference, never its value; a password written into the file is refused;
the site's assets (settings, connection, failed runs), a failed run's tags and report and the asset that
shows a broken site.yaml hold no token, key or password."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, build_run_status_sensor_context, build_sensor_context
from dagster._core.instance_for_test import instance_for_test
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from ci_xero_pipeline.code_location import build_definitions
from ci_xero_pipeline.resources import XeroResource
from ci_xero_pipeline.settings import SettingsError, load_settings

from .pipeline_helpers import connect_site, run

PASSWORD = "db-Secret-5f2c9a"


def test_database_passwords_stay_environment_references_in_the_repository_snapshot(sandbox, demo_ci_url, make_site, monkeypatch):
    monkeypatch.setenv("CI_TEST_DB_PASSWORD", PASSWORD)
    site = make_site(sandbox, demo_ci_url, {
        "ci_database_url": "postgresql+psycopg2://ci_reader:${CI_TEST_DB_PASSWORD}@127.0.0.1:5432/ci",
        "state_database_url": "postgresql+psycopg2://pipeline:${CI_TEST_DB_PASSWORD}@127.0.0.1:5432/state",
        "xero": {"token_store": "sql", "token_database_url": "postgresql+psycopg2://tokens:${CI_TEST_DB_PASSWORD}@127.0.0.1:5432/state"},
    })
    repository = build_definitions(site).get_repository_def()

    snapshot = serialize_value(RepositorySnap.from_def(repository))

    assert PASSWORD not in snapshot
    assert "${CI_TEST_DB_PASSWORD}" in snapshot  # what the resource page shows instead
    assert PASSWORD in load_settings(site).resolved_ci_database_url  # expanded only where it is used


@pytest.mark.parametrize("setting", ["ci_database_url", "state_database_url"])
def test_a_password_written_into_the_settings_file_is_refused(setting, sandbox, demo_ci_url, make_site):
    site = make_site(sandbox, demo_ci_url, {setting: f"postgresql://reader:{PASSWORD}@db.example/ci"})
    with pytest.raises(SettingsError) as refused:
        load_settings(site)
    assert setting in str(refused.value) and "${CI_DB_PASSWORD}" in str(refused.value)
    assert PASSWORD not in str(refused.value)


def test_no_token_or_password_reaches_the_site_assets_a_failed_runs_tags_or_a_broken_site_yaml(
    sandbox, demo_ci_url, make_site, tmp_path
):
    """The places issue 10 added to the UI: the settings and connection assets, the failure report on a
    run's tags and on failed_runs, the asset and sensor that show a broken site.yaml."""
    site = make_site(sandbox, demo_ci_url, {"mapping": {"sales_accounts": {"GIFTS": "299"}}})  # Xero has no 299: the run fails
    values = yaml.safe_load(site.read_text())
    connect_site(site)
    xero = XeroResource.from_settings(load_settings(site))
    tokens = [xero.token_store().require().token]
    definitions = build_definitions(site)
    (tmp_path / "home").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        failed = run(site, date(2026, 10, 31), date(2026, 10, 31), instance)
        assert not failed.success
        sensor = definitions.resolve_sensor_def("report_failed_posting")
        sensor(build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_instance=instance, dagster_run=instance.get_run_by_id(failed.run_id),
            dagster_event=instance.get_records_for_run(failed.run_id).records[-1].event_log_entry.dagster_event,
        ).for_run_failure())
        definitions.resolve_sensor_def("xero_connection_expiry")(
            build_sensor_context(instance=instance, resources={"xero": definitions.resources["xero"]}))
        tags = instance.get_run_by_id(failed.run_id).tags
        assert "ci-xero/failure" in tags and "ci-xero/fix" in tags
        shown = [serialize_value(tags)]
        for key in ("failed_runs", "xero_connection"):
            records = instance.fetch_observations(AssetKey(key), limit=10).records
            assert records
            shown.append(serialize_value([r.event_log_entry for r in records]))
    shown.append(serialize_value(RepositorySnap.from_def(definitions.get_repository_def())))
    shown.append(Path(tags["ci-xero/failure-report"]).read_text())
    tokens.append(xero.token_store().require().token)  # a run may refresh them: both generations
    secrets = [token[name] for token in tokens for name in ("access_token", "refresh_token")]
    secrets.append(os.environ.get(xero.token_key_env_var) or Path(xero.token_key_file).read_text().strip())
    assert all(secrets)
    for text in shown:
        for secret in secrets:
            assert secret not in text

    # a broken site.yaml with a password written into a URL: refused, shown without it
    values["ci_database_url"] = f"postgresql://reader:{PASSWORD}@db.example/ci"
    site.write_text(yaml.safe_dump(values))
    broken = build_definitions(site)
    repository = broken.get_repository_def()
    [asset] = repository.assets_defs_by_key.values()
    [spec] = asset.specs_by_key.values()
    tick = repository.sensor_defs[0](build_sensor_context()).skip_message
    assert "ci_database_url holds a password" in spec.description and "ci_database_url" in tick
    for text in (spec.description, tick, serialize_value(RepositorySnap.from_def(repository))):
        assert PASSWORD not in text

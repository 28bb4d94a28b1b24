"""Database passwords never reach the Dagster UI: the repository snapshot (what the UI's resource pages
show) holds the ${VARIABLE} reference, never its value; a password written into the file is refused."""

from __future__ import annotations

import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from ci_xero_pipeline.code_location import build_definitions
from ci_xero_pipeline.settings import SettingsError, load_settings

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

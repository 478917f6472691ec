"""The production profile (deploy/): Dagster's records in PostgreSQL, compute logs in S3, nothing
the next node would need left on this machine's disk."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import dagster as dg
import pytest
import yaml
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_postgres.run_storage import PostgresRunStorage

from ingest_assets import definitions
from ingest_assets.components.assets import dataset_asset
from ingest_assets.paths import PROJECT_ROOT
from ingest_assets.spec import DatasetSpec
from ingest_assets_tests.conftest import DEST_DAYS, DEST_PER_DAY, drop_days, orders_spec
from ingest_assets_tests.postgres import Postgres

DEPLOY = PROJECT_ROOT / "deploy"


@pytest.fixture
def production(
    postgres: Postgres, bucket: str, s3_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    """A Dagster home holding the production dagster.yaml, its variables pointing at the suite's
    PostgreSQL (a fresh database) and S3 server."""
    storage = postgres.fresh_database("dagster_production")
    warehouse = postgres.fresh_database("warehouse_production")
    variables = {
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": storage.database,
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": postgres.password,
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "compute-logs",
        "DAGSTER_S3_ENDPOINT_URL": s3_env,
        "WAREHOUSE_URL": warehouse.url(),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    return home


def _into_postgres() -> DatasetSpec:
    destination = {"kind": "postgres", "url_env": "WAREHOUSE_URL", "table": "raw.orders"}
    return orders_spec("orders", destination=destination)


def test_runs_recorded_in_the_production_profile_outlive_the_machines_dagster_home(
    production: Path, data_dir: Path
) -> None:
    drop_days(data_dir)
    instance = dg.DagsterInstance.from_config(str(production))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
        result = dg.materialize(
            [dataset_asset(_into_postgres(), origin="test")],
            instance=instance,
            partition_key=DEST_DAYS[0],
        )
        assert result.success
    finally:
        instance.dispose()
    shutil.rmtree(production)  # the node is gone; a new one reads the same file
    production.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", production / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(production))
    try:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.run_id == result.run_id
        (event,) = instance.fetch_materializations(dg.AssetKey("orders"), limit=10).records
        materialization = event.asset_materialization
        assert materialization is not None and materialization.partition == DEST_DAYS[0]
        assert materialization.metadata["dagster/row_count"].value == DEST_PER_DAY
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("orders"), "schema")]
        )
        assert checks[dg.AssetCheckKey(dg.AssetKey("orders"), "schema")].status.value == "SUCCEEDED"
    finally:
        instance.dispose()


def test_the_production_profile_names_no_local_path_and_no_secret() -> None:
    for name in ("dagster.yaml", "workspace.yaml"):
        text = (DEPLOY / name).read_text()
        settings = "\n".join(
            line for line in text.splitlines() if not line.lstrip().startswith("#")
        )
        assert "base_dir" not in settings and "sqlite" not in settings, name
        assert "data/" not in settings and ".dagster" not in settings, name
        assert "password: {env: DAGSTER_PG_PASSWORD}" in settings or name != "dagster.yaml"


def test_s3_compute_logs_reach_the_bucket(production: Path, bucket: str, s3_env: str) -> None:
    instance = dg.DagsterInstance.from_config(str(production))
    try:
        manager = instance.compute_log_manager
        assert isinstance(manager, S3ComputeLogManager)
        with manager.capture_logs(["run-1", "orders"]):
            pass
        keys = boto3.client("s3", endpoint_url=s3_env).list_objects_v2(Bucket=bucket)
        assert any(item["Key"].startswith("compute-logs/") for item in keys.get("Contents", []))
    finally:
        instance.dispose()


def test_loading_the_code_location_writes_nothing_to_local_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node's working directory may be read-only: the definitions load without making the
    data folder or the DuckDB file's folder (a DuckDB load makes them when it opens the file)."""
    data = tmp_path / "nowhere" / "data"
    monkeypatch.setenv("INGEST_ASSETS_DATA_DIR", str(data))
    monkeypatch.setenv("DEMO_APP_DB_URL", "sqlite:///:memory:")
    monkeypatch.chdir(tmp_path)
    defs = definitions.defs()
    dg.Definitions.validate_loadable(defs)
    assert not (tmp_path / "nowhere").exists() and list(tmp_path.iterdir()) == []


def _tool(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def test_the_image_and_the_compose_file_pass_their_linters_and_agree() -> None:
    """No container engine runs here: the Dockerfile is linted (hadolint), the compose file is
    validated against the Compose specification's schema, and the paths they share agree."""
    for command in (
        [_tool("hadolint"), "Dockerfile"],
        [_tool("check-jsonschema"), "--builtin-schema=vendor.compose-spec", "docker-compose.yaml"],
    ):
        checked = subprocess.run(command, cwd=DEPLOY, capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    assert "COPY deploy/workspace.yaml /opt/dagster/workspace.yaml" in dockerfile
    assert "COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml" in dockerfile
    for service in ("webserver", "daemon"):
        assert "/opt/dagster/workspace.yaml" in compose["services"][service]["command"]
    code = compose["services"]["code"]["environment"]
    assert code["INGEST_CODE_SERVER_PORT"] == "4000" and '-p", "4000"]' in dockerfile


def test_the_helm_values_give_the_production_profiles_instance() -> None:
    """No cluster runs here: the values for Dagster's chart are checked against the profile they
    mirror, so that the two cannot drift apart."""
    values = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
    profile = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    daemon = values["dagsterDaemon"]
    runs = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert runs["maxConcurrentRuns"] == profile["concurrency"]["runs"]["max_concurrent_runs"]
    assert (
        values["additionalInstanceConfig"]["concurrency"]["pools"]
        == (profile["concurrency"]["pools"])
    )
    retries, helm_retries = profile["run_retries"], daemon["runRetries"]
    assert helm_retries["maxRetries"] == retries["max_retries"]
    assert helm_retries["retryOnAssetOrOpFailure"] == retries["retry_on_asset_or_op_failure"]
    assert daemon["runMonitoring"]["enabled"] and profile["run_monitoring"]["enabled"]
    assert (
        values["postgresql"]["postgresqlScheme"]
        == (profile["storage"]["postgres"]["postgres_db"]["scheme"])
    )
    assert "postgresqlPassword" not in values["postgresql"]  # from the chart's secret
    assert values["computeLogManager"]["type"] == profile["compute_logs"]["class"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    command = json.loads(dockerfile.split("\nCMD ", 1)[1].replace("\\\n", ""))
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[3 : 3 + len(deployment["codeServerArgs"])] == deployment["codeServerArgs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"

"""A source kind and a destination kind added from the tests folder alone, used end to end.

Nothing of the package is edited for them: they register, a ``defs.yaml`` declares a dataset
of them, ``ingest-assets list`` and ``check`` see it, and ``dg.materialize`` loads it with its
checks, idempotently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from ingest_assets.audit import AuditRecord
from ingest_assets.components.assets import dataset_asset
from ingest_assets.components.datasets import IngestDatasets
from ingest_assets.components.translator import DatasetTranslator
from ingest_assets.core import DESTINATION_KINDS, SOURCE_KINDS, DestinationKind, SourceKind
from ingest_assets.declarations import COMPONENT_TYPE, describe, load_declared
from ingest_assets.destinations.base import WindowWrite
from ingest_assets.errors import SpecError
from ingest_assets.onboarding import probe
from ingest_assets.paths import PROJECT_ROOT
from ingest_assets.sources.base import Chunk, ReadPlan
from ingest_assets.spec import DatasetSpec, DestinationSpec, LoadSpec
from ingest_assets.windows import Window

ROWS_PER_DAY = 24


class CounterSource(BaseModel):
    """A toy source: ``rows_per_day`` rows per day, one an hour, made up on the spot."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["counter"]
    rows_per_day: int = ROWS_PER_DAY


class CounterReader:
    """Reads the toy source."""

    def __init__(self, source: CounterSource) -> None:
        self.source = source

    def plan(self, window: Window) -> ReadPlan:
        return ReadPlan([f"counter://{window.start:%Y-%m-%d}"], 0)

    def read(self, window: Window, arrow_types: dict[str, pa.DataType]) -> Iterator[Chunk]:
        start = int(window.start.timestamp())
        step = 86_400 // self.source.rows_per_day
        stamps = [datetime.fromtimestamp(start + i * step, window.start.tzinfo) for i in
                  range(self.source.rows_per_day)]  # fmt: skip
        batch = pa.RecordBatch.from_pydict(
            {"id": [start + i for i in range(len(stamps))], "at": stamps}
        )
        yield Chunk(batch, self.plan(window).origins[0], 1, window.start)


class CounterKind(SourceKind[CounterSource]):
    name = "counter"
    model = CounterSource
    template = '        kind: counter\n        rows_per_day: "<rows a day>"\n'

    def open(self, dataset: DatasetSpec, source: CounterSource, resources: Any) -> CounterReader:
        return CounterReader(source)

    def label(self, source: CounterSource) -> str:
        return f"counter {source.rows_per_day}/day"

    def probe(
        self, dataset: DatasetSpec, source: CounterSource, resources: Any, window: Window
    ) -> str:
        return f"counter answers with {source.rows_per_day} rows for {window}"


class ShelfDestination(DestinationSpec):
    """A toy destination: tables kept in a Python dict (the 'shelf' resource)."""

    kind: Literal["shelf"]


class Shelf:
    """The toy warehouse: window rows by table and window start, and an audit list."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[datetime, pa.Table]] = {}
        self.audits: list[AuditRecord] = []

    def describe(self, table: DestinationSpec) -> str:
        return f"shelf.{table.table}"

    def write_windows(self, table: DestinationSpec, writes: list[WindowWrite], *, load: LoadSpec,
                      run_id: str, dataset: str,
                      before_audit: Callable[[], None] | None = None) -> list[int]:  # fmt: skip
        rows = self.tables.setdefault(table.table, {})
        written = []
        for write in writes:
            data = pa.concat_tables([pq.read_table(path) for path in write.staged])
            rows[write.window.start] = data  # replace the window
            written.append(data.num_rows)
        if before_audit is not None:
            before_audit()
        for write, count in zip(writes, written, strict=True):
            if write.audit is not None:
                write.audit.rows_written = count
                self.audits.append(write.audit)
        return written

    def record_load(self, audit: AuditRecord) -> None:
        self.audits.append(audit)

    def load_history(self, dataset: str, before: datetime, limit: int) -> list[int]:
        done = [a for a in self.audits if a.status == "success" and a.window_start < before]
        return [a.rows_read for a in sorted(done, key=lambda a: a.window_start, reverse=True)][
            :limit
        ]

    def rows_set_aside(self, dataset: str, windows: list[Window]) -> dict[datetime, int]:
        return {}

    def loaded_windows(self, table: DestinationSpec) -> list[datetime]:
        return sorted(self.tables.get(table.table, {}))

    def count_window(
        self, table: DestinationSpec, window: Window, *, column: str | None = None
    ) -> int:
        found = self.tables.get(table.table, {}).get(window.start)
        return 0 if found is None else found.num_rows


class ShelfKind(DestinationKind[ShelfDestination]):
    name = "shelf"
    model = ShelfDestination
    tag = "shelf"

    def resource_key(self, destination: ShelfDestination) -> str | None:
        return None  # the process's one shelf

    def default_resource(self, destination: ShelfDestination) -> Shelf:
        return SHELF

    def open(self, destination: ShelfDestination, resource: Any) -> Shelf:
        return resource


SHELF = Shelf()


DEFS = """type: ingest_assets.components.IngestDatasets
attributes:
  datasets:
    - name: ticks
      source: {kind: counter, rows_per_day: 24}
      partitioning: {cadence: daily, start: "2026-11-01"}
      schema:
        columns:
          id: {dtype: int64, nullable: false, unique: true}
          at: {dtype: timestamp, nullable: false}
      destination: {kind: shelf, table: toy.ticks}
"""


@pytest.fixture
def toy_kinds() -> Iterator[None]:
    SOURCE_KINDS.register(CounterKind())
    DESTINATION_KINDS.register(ShelfKind())
    SHELF.tables.clear()
    SHELF.audits.clear()
    yield
    SOURCE_KINDS.unregister("counter")
    DESTINATION_KINDS.unregister("shelf")


def test_a_kind_registered_by_a_test_lists_probes_loads_and_checks_end_to_end(
    toy_kinds: None, tmp_path: Path
) -> None:
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "defs.yaml").write_text(DEFS)
    (declared,) = load_declared(tmp_path)  # what `ingest-assets list` and `check` read
    spec = declared.spec
    assert describe(declared)["source"] == "counter 24/day"
    answer = probe(spec, now=datetime.fromisoformat("2026-11-03T12:00:00+00:00"))
    assert answer.ok, answer.detail
    assert answer.detail.startswith("counter answers with 24 rows for [2026-11-02")
    assert answer.detail.endswith("; shelf shelf.toy.ticks opens")

    asset = dataset_asset(spec, origin="toy/defs.yaml")
    assert asset.specs_by_key[dg.AssetKey("ticks")].kinds == {"counter", "shelf"}
    shelf = SHELF
    for _ in range(2):  # a rerun replaces the window's rows
        result = dg.materialize([asset], partition_key="2026-11-02")
        assert result.success
    (window,) = shelf.tables["toy.ticks"]
    assert shelf.tables["toy.ticks"][window].num_rows == ROWS_PER_DAY
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert {"schema", "drift"} <= checks.keys() and all(checks.values()), checks
    (materialization,) = result.asset_materializations_for_node("ticks")
    assert materialization.metadata["dagster/row_count"].value == ROWS_PER_DAY
    assert materialization.metadata["dagster/table_name"].value == "shelf.toy.ticks"
    assert [a.status for a in shelf.audits] == ["success", "success"]


def test_a_dataset_of_an_unregistered_kind_fails_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "defs.yaml").write_text(DEFS)
    with pytest.raises(SpecError) as raised:
        load_declared(tmp_path)
    assert "attributes.datasets.0.source at " in str(raised.value)
    assert "toy/defs.yaml:5\n  'kind' names no registered source kind; the kinds are: " in str(
        raised.value
    )


class Prefixed(DatasetTranslator):
    """A team's translator: assets under raw/, grouped and tagged by team."""

    def asset_key(self, spec: DatasetSpec) -> dg.AssetKey:
        return dg.AssetKey(["raw", spec.name])

    def group(self, spec: DatasetSpec) -> str:
        return "commerce"

    def tags(self, spec: DatasetSpec) -> dict[str, str]:
        return {**super().tags(spec), "team": "commerce"}


def test_a_translator_moves_the_asset_its_checks_schedule_and_sla_together(
    toy_kinds: None, data_dir: Path
) -> None:
    entry = yaml.safe_load(DEFS)["attributes"]["datasets"][0]
    entry["trigger"] = {"delay": "01:00"}
    entry["sla"] = {"deadline": "06:00"}
    spec = DatasetSpec.model_validate(entry)

    class TeamDatasets(IngestDatasets):
        translator = Prefixed()

    tree = dg.ComponentTree.for_test()
    component = TeamDatasets(datasets=[spec])
    defs = component.build_defs(tree.load_context.for_path(PROJECT_ROOT / "ingest_assets" / "defs"))
    dg.Definitions.validate_loadable(defs)  # the schedule's job and the SLA check find the asset
    key = dg.AssetKey(["raw", "ticks"])
    (asset_spec,) = [s for s in defs.resolve_all_asset_specs() if s.key == key]
    assert asset_spec.group_name == "commerce" and asset_spec.tags["team"] == "commerce"
    graph = defs.resolve_asset_graph()
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == key}
    assert {"schema", "drift", "timeliness"} <= checks
    job = defs.resolve_job_def("ticks_job")
    result = job.execute_in_process(partition_key="2026-11-02")
    assert result.success
    assert result.asset_materializations_for_node("ticks")[0].asset_key == key


class ToyDatasets(IngestDatasets):
    """A project's own component type (it could register its kinds at import)."""


def test_files_of_a_subclass_of_the_component_are_listed_and_checked(
    toy_kinds: None, tmp_path: Path
) -> None:
    (tmp_path / "toy").mkdir()
    own_type = f"type: {__name__}.ToyDatasets"
    (tmp_path / "toy" / "defs.yaml").write_text(DEFS.replace(f"type: {COMPONENT_TYPE}", own_type))
    (declared,) = load_declared(tmp_path)
    assert declared.spec.name == "ticks"

"""The object-store source kind: files in S3 (or an S3-compatible store) or a local folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ingest_assets.errors import SourceError
from ingest_assets.paths import data_dir
from ingest_assets.push.target import PushTarget
from ingest_assets.redaction import register_secret
from ingest_assets.sources.object_store.formats import read_object
from ingest_assets.sources.object_store.landing import LandingFeed
from ingest_assets.sources.object_store.reader import (
    KeyPeriods,
    LocalStore,
    ObjectStore,
    ObjectStoreReader,
    S3Store,
    literal_prefix,
    split_s3_location,
    store_errors,
)
from ingest_assets.sources.object_store.spec import (
    GRANULARITY_RANK,
    ObjectStoreSource,
    check_readable_template,
    key_template_granularity,
)
from ingest_assets.sources.registry import SOURCE_KINDS, SourceKind, resource
from ingest_assets.spec.quality import load_model
from ingest_assets.spec.triggers import LandingTrigger
from ingest_assets.windows import Window

if TYPE_CHECKING:
    from ingest_assets.spec.dataset import DatasetSpec

#: Keys listed at most when probing a store.
MAX_KEYS = 10_000


@runtime_checkable
class _ClientFactory(Protocol):
    """An S3 resource that makes clients (Dagster's ``S3Resource`` outside a run)."""

    def get_client(self) -> Any:
        """A boto3 S3 client."""
        ...


class ObjectStoreKind(SourceKind[ObjectStoreSource]):
    """Objects under a location, mapped to partitions by a key template (the default kind)."""

    name = "object_store"
    model = ObjectStoreSource
    template = """        location: "<s3://bucket/prefix, or a folder under INGEST_ASSETS_DATA_DIR>"
        key_template: "<keys of one period, e.g. dt={date}/*.csv>"
"""

    def open(
        self, dataset: DatasetSpec, source: ObjectStoreSource, resources: Any
    ) -> ObjectStoreReader:
        """A reader over the source's store."""
        return ObjectStoreReader(self.store(source, resources), source, dataset=dataset.name)

    def store(self, source: ObjectStoreSource, resources: Any) -> LocalStore | S3Store:
        """The store: S3 through the source's S3 resource, or a local folder."""
        if not source.is_s3:
            root = Path(source.location)
            return LocalStore(root if root.is_absolute() else data_dir() / root)
        # botocore logs request headers at DEBUG (a session token among them): keep them out.
        for variable in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            register_secret(os.environ.get(variable))
        bucket, prefix = split_s3_location(source.location)
        # Through Dagster's ``context.resources`` an S3Resource is already its boto3 client.
        client = resource(resources, source.resource)
        if isinstance(client, _ClientFactory):
            client = client.get_client()
        return S3Store(client, bucket, prefix)

    def label(self, source: ObjectStoreSource) -> str:
        """'s3 s3://bucket/orders/dt={date}/*.csv' or 'files landing/orders/...'."""
        where = "s3" if source.is_s3 else "files"
        return f"{where} {source.location.rstrip('/')}/{source.key_template}"

    def tag(self, source: ObjectStoreSource) -> str:
        """'s3' or 'file'."""
        return "s3" if source.is_s3 else "file"

    def metadata(self, source: ObjectStoreSource) -> dict[str, Any]:
        """The location and the key template."""
        return {"source": source.location, "key_template": source.key_template}

    def pool_key(self, source: ObjectStoreSource) -> str:
        """One pool per bucket; one per folder of local files (a disk has no quota to share)."""
        if source.is_s3:
            return "s3_" + split_s3_location(source.location)[0]
        return "files_" + source.location.strip("/")

    def resource_keys(self, source: ObjectStoreSource) -> set[str]:
        """The S3 resource of an s3:// location."""
        return {source.resource} if source.is_s3 else set()

    def check(self, dataset: DatasetSpec, source: ObjectStoreSource) -> None:
        """The key template pins down the cadence's periods (and can be read back by a sensor)."""
        if dataset.load.mode == "snapshot":
            raise ValueError("load.mode 'snapshot' applies to SQL sources only")
        if isinstance(dataset.trigger, LandingTrigger):
            check_readable_template(source.key_template)
        granularity = key_template_granularity(source.key_template)
        cadence = dataset.partitioning.cadence
        if GRANULARITY_RANK[granularity] > GRANULARITY_RANK[cadence]:
            raise ValueError(
                f"source.key_template {source.key_template!r} only pins down {granularity} "
                f"periods, so it cannot select the objects of one {cadence} partition; add a finer "
                "placeholder (e.g. {day} or {hour}) or use a coarser cadence"
            )

    def probe(
        self, dataset: DatasetSpec, source: ObjectStoreSource, resources: Any, window: Window
    ) -> str:
        """The store lists objects under the template's prefix that match it."""
        store = self.store(source, resources)
        prefix = literal_prefix(source.key_template)
        periods = KeyPeriods(source.key_template, dataset.partitioning.timezone)
        matched, latest, scanned = 0, "", 0
        with store_errors(dataset.name, source.location):
            for info in store.list(prefix):
                scanned += 1
                if periods.period_of(info.key) is not None:
                    matched += 1
                    latest = max(latest, info.key)
                if scanned >= MAX_KEYS:
                    break
        if not matched:
            raise SourceError(
                f"Dataset '{dataset.name}': the store answers, but no object under "
                f"{store.uri(prefix)!r} matches key_template {source.key_template!r}.",
                fix="Check source.location and source.key_template against the object keys "
                "(e.g. dt={date}/*.csv for dt=2026-11-01/orders.csv).",
            )
        more = "+" if scanned >= MAX_KEYS else ""
        noun = "object matches" if matched == 1 else "objects match"
        found = self._columns(dataset, source, store, latest)
        return f"{matched}{more} {noun}; latest {store.uri(latest)}{found}"

    def _columns(
        self, dataset: DatasetSpec, source: ObjectStoreSource, store: ObjectStore, key: str
    ) -> str:
        """Compare the latest object's columns (header, fields or schema) with the declared ones.

        A declared column it lacks fails unless nullable; columns beyond them are named.
        """
        declared = declared_columns(dataset)
        uri = store.uri(key)
        try:
            fmt = source.format_for(key)
        except ValueError as exc:
            raise SourceError(
                f"Dataset '{dataset.name}': {exc}", fix="Set source.format."
            ) from None
        with store_errors(dataset.name, source.location):
            batches = read_object(
                lambda seekable: store.open(key, seekable=seekable),
                fmt,
                compressed=key.lower().endswith(".gz"),
                arrow_types={},
                csv=source.csv,
                where=f"Dataset '{dataset.name}', object {uri}",
            )
            first = next(iter(batches), None)
        if first is None:
            return "; its first object holds no rows"
        names = first[1].schema.names
        missing = [column for column in declared if column not in names]
        required = [column for column in missing if not declared[column]]
        if required:
            raise SourceError(
                f"Dataset '{dataset.name}': {uri} has no column "
                f"{', '.join(map(repr, required))}, which the schema declares not nullable "
                f"(its columns: {', '.join(names)}).",
                fix="Correct the column names under schema.columns to the file's (the header, "
                "the JSON fields or the Parquet schema), or declare the column nullable.",
            )
        notes = [f"missing, loaded as null: {', '.join(missing)}"] if missing else []
        extra = [name for name in names if name not in declared]
        notes += [f"not declared, not loaded: {', '.join(extra)}"] if extra else []
        return f"; its columns: {'; '.join(notes)}" if notes else "; its columns match"

    def landing(self, dataset: DatasetSpec, source: ObjectStoreSource) -> LandingFeed:
        """What a landing sensor watches: the store's keys under the template's prefix."""
        return LandingFeed(
            location=source.location,
            key_template=source.key_template,
            resource_keys=self.resource_keys(source),
            open_store=lambda resources: self.store(source, resources),
        )

    def push_target(self, dataset: DatasetSpec, source: ObjectStoreSource) -> PushTarget:
        """Pushed records land as files of the key template's periods; its ``*`` names them.

        Raises:
            ValueError: the template's file name has no single ``*`` (or other wildcards), or
                the format is CSV.
        """
        template = source.key_template
        folders, _, name = template.rpartition("/")
        if name.count("*") != 1 or any(ch in template for ch in "?[]") or "*" in folders:
            raise ValueError(
                f"ingest_api: source.key_template {template!r} must name files with exactly one "
                "'*' in the last segment (and no other wildcards), which becomes each written "
                "file's name; e.g. 'dt={date}/*.ndjson'"
            )
        fmt = source.format_for(name.replace("*", "x"))
        if fmt == "csv":
            raise ValueError(
                "ingest_api: pushed records are written as NDJSON or Parquet; set "
                "source.format (or the key template's extension) to ndjson or parquet"
            )
        api = dataset.ingest_api
        location = source.location.rstrip("/")
        dead = (
            api.dead_letters if api and api.dead_letters else None
        ) or f"{location}/_dead_letters"
        dead_source = source.model_copy(update={"location": dead})
        return PushTarget(
            location=source.location,
            key_template=template,
            format=fmt,
            granularity=key_template_granularity(template),
            timezone=dataset.partitioning.timezone,
            dead_letters=dead,
            open_store=lambda resources: self.store(source, resources),
            open_dead_letters=lambda resources: self.store(dead_source, resources),
        )


def declared_columns(dataset: DatasetSpec) -> dict[str, bool]:
    """The declared columns, each with whether it may be null (inline, or the model's)."""
    columns = dataset.table_schema.columns
    if columns is not None:
        return {name: column.nullable for name, column in columns.items()}
    model = load_model(dataset.table_schema.model or "")
    return {str(name): bool(column.nullable) for name, column in model.to_schema().columns.items()}


SOURCE_KINDS.register(ObjectStoreKind())

"""The dataset contract: what a YAML declaration under ``ingest_assets/defs/`` may say.

The models live by concern: ``dataset`` (the whole declaration), ``partitioning``, ``quality``
(columns and gates), ``load`` (modes, destination, retries), ``triggers`` (schedules, sensors,
SLAs) and ``refs`` (user code named in YAML); each source kind's own model lives in its kind's
folder. They import nothing from Dagster. This package gives every name at one address,
imported when first asked for (a kind's model module can import ``spec.base`` without loading
the whole contract).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest_assets.sources.object_store.spec import (
        KEY_FIELDS as KEY_FIELDS,
    )
    from ingest_assets.sources.object_store.spec import (
        READABLE_STRFTIME as READABLE_STRFTIME,
    )
    from ingest_assets.sources.object_store.spec import (
        CsvOptions as CsvOptions,
    )
    from ingest_assets.sources.object_store.spec import (
        FileFormat as FileFormat,
    )
    from ingest_assets.sources.object_store.spec import (
        ObjectStoreSource as ObjectStoreSource,
    )
    from ingest_assets.sources.object_store.spec import (
        key_template_granularity as key_template_granularity,
    )
    from ingest_assets.sources.rest.spec import (
        PARAM_PLACEHOLDER as PARAM_PLACEHOLDER,
    )
    from ingest_assets.sources.rest.spec import (
        WINDOW_BOUNDS as WINDOW_BOUNDS,
    )
    from ingest_assets.sources.rest.spec import (
        RestRetry as RestRetry,
    )
    from ingest_assets.sources.rest.spec import (
        RestSource as RestSource,
    )
    from ingest_assets.sources.sql.spec import (
        SqlRetry as SqlRetry,
    )
    from ingest_assets.sources.sql.spec import (
        SqlSource as SqlSource,
    )
    from ingest_assets.spec.base import (
        RESERVED_PREFIX as RESERVED_PREFIX,
    )
    from ingest_assets.spec.base import (
        Cadence as Cadence,
    )
    from ingest_assets.spec.base import (
        DType as DType,
    )
    from ingest_assets.spec.base import (
        Strict as Strict,
    )
    from ingest_assets.spec.base import (
        check_identifier as check_identifier,
    )
    from ingest_assets.spec.base import (
        check_table_name as check_table_name,
    )
    from ingest_assets.spec.dataset import (
        NAME_PATTERN as NAME_PATTERN,
    )
    from ingest_assets.spec.dataset import (
        DatasetSpec as DatasetSpec,
    )
    from ingest_assets.spec.dataset import (
        Destination as Destination,
    )
    from ingest_assets.spec.dataset import (
        Source as Source,
    )
    from ingest_assets.spec.load import (
        DestinationSpec as DestinationSpec,
    )
    from ingest_assets.spec.load import (
        LoadSpec as LoadSpec,
    )
    from ingest_assets.spec.load import (
        RetrySpec as RetrySpec,
    )
    from ingest_assets.spec.partitioning import (
        Partitioning as Partitioning,
    )
    from ingest_assets.spec.quality import (
        Classification as Classification,
    )
    from ingest_assets.spec.quality import (
        ColumnChecks as ColumnChecks,
    )
    from ingest_assets.spec.quality import (
        ColumnSpec as ColumnSpec,
    )
    from ingest_assets.spec.quality import (
        DedupSpec as DedupSpec,
    )
    from ingest_assets.spec.quality import (
        Mask as Mask,
    )
    from ingest_assets.spec.quality import (
        QualitySpec as QualitySpec,
    )
    from ingest_assets.spec.quality import (
        RowCountRule as RowCountRule,
    )
    from ingest_assets.spec.quality import (
        SchemaSpec as SchemaSpec,
    )
    from ingest_assets.spec.quality import (
        Severity as Severity,
    )
    from ingest_assets.spec.quality import (
        StrLength as StrLength,
    )
    from ingest_assets.spec.quality import (
        VolumeRule as VolumeRule,
    )
    from ingest_assets.spec.quality import (
        load_model as load_model,
    )
    from ingest_assets.spec.refs import (
        import_reference as import_reference,
    )
    from ingest_assets.spec.refs import (
        load_check as load_check,
    )
    from ingest_assets.spec.triggers import (
        ArrivalTrigger as ArrivalTrigger,
    )
    from ingest_assets.spec.triggers import (
        LandingTrigger as LandingTrigger,
    )
    from ingest_assets.spec.triggers import (
        ScheduleTrigger as ScheduleTrigger,
    )
    from ingest_assets.spec.triggers import (
        SlaSpec as SlaSpec,
    )
    from ingest_assets.spec.triggers import (
        Trigger as Trigger,
    )

_WHERE: dict[str, str] = {
    "RESERVED_PREFIX": "ingest_assets.spec.base",
    "DType": "ingest_assets.spec.base",
    "Cadence": "ingest_assets.spec.base",
    "Strict": "ingest_assets.spec.base",
    "check_identifier": "ingest_assets.spec.base",
    "check_table_name": "ingest_assets.spec.base",
    "import_reference": "ingest_assets.spec.refs",
    "load_check": "ingest_assets.spec.refs",
    "Partitioning": "ingest_assets.spec.partitioning",
    "StrLength": "ingest_assets.spec.quality",
    "Severity": "ingest_assets.spec.quality",
    "Classification": "ingest_assets.spec.quality",
    "Mask": "ingest_assets.spec.quality",
    "ColumnChecks": "ingest_assets.spec.quality",
    "ColumnSpec": "ingest_assets.spec.quality",
    "SchemaSpec": "ingest_assets.spec.quality",
    "load_model": "ingest_assets.spec.quality",
    "RowCountRule": "ingest_assets.spec.quality",
    "VolumeRule": "ingest_assets.spec.quality",
    "DedupSpec": "ingest_assets.spec.quality",
    "QualitySpec": "ingest_assets.spec.quality",
    "LoadSpec": "ingest_assets.spec.load",
    "DestinationSpec": "ingest_assets.spec.load",
    "RetrySpec": "ingest_assets.spec.load",
    "ScheduleTrigger": "ingest_assets.spec.triggers",
    "LandingTrigger": "ingest_assets.spec.triggers",
    "ArrivalTrigger": "ingest_assets.spec.triggers",
    "Trigger": "ingest_assets.spec.triggers",
    "SlaSpec": "ingest_assets.spec.triggers",
    "NAME_PATTERN": "ingest_assets.spec.dataset",
    "DatasetSpec": "ingest_assets.spec.dataset",
    "Source": "ingest_assets.spec.dataset",
    "Destination": "ingest_assets.spec.dataset",
    "FileFormat": "ingest_assets.sources.object_store.spec",
    "KEY_FIELDS": "ingest_assets.sources.object_store.spec",
    "CsvOptions": "ingest_assets.sources.object_store.spec",
    "ObjectStoreSource": "ingest_assets.sources.object_store.spec",
    "key_template_granularity": "ingest_assets.sources.object_store.spec",
    "READABLE_STRFTIME": "ingest_assets.sources.object_store.spec",
    "SqlRetry": "ingest_assets.sources.sql.spec",
    "SqlSource": "ingest_assets.sources.sql.spec",
    "RestRetry": "ingest_assets.sources.rest.spec",
    "RestSource": "ingest_assets.sources.rest.spec",
    "PARAM_PLACEHOLDER": "ingest_assets.sources.rest.spec",
    "WINDOW_BOUNDS": "ingest_assets.sources.rest.spec",
}

__all__ = [
    "KEY_FIELDS",
    "NAME_PATTERN",
    "PARAM_PLACEHOLDER",
    "READABLE_STRFTIME",
    "RESERVED_PREFIX",
    "WINDOW_BOUNDS",
    "ArrivalTrigger",
    "Cadence",
    "Classification",
    "ColumnChecks",
    "ColumnSpec",
    "CsvOptions",
    "DType",
    "DatasetSpec",
    "DedupSpec",
    "Destination",
    "DestinationSpec",
    "FileFormat",
    "LandingTrigger",
    "LoadSpec",
    "Mask",
    "ObjectStoreSource",
    "Partitioning",
    "QualitySpec",
    "RestRetry",
    "RestSource",
    "RetrySpec",
    "RowCountRule",
    "ScheduleTrigger",
    "SchemaSpec",
    "Severity",
    "SlaSpec",
    "Source",
    "SqlRetry",
    "SqlSource",
    "StrLength",
    "Strict",
    "Trigger",
    "VolumeRule",
    "check_identifier",
    "check_table_name",
    "import_reference",
    "key_template_granularity",
    "load_check",
    "load_model",
]


def __getattr__(name: str) -> Any:
    """Import a name of the contract from the module that defines it."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)

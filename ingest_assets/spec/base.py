"""What every part of a dataset's declaration shares: strict models, names and identifiers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonDict

#: The prefix of the columns a load adds to each row: no declared or loaded column may use it.
RESERVED_PREFIX = "_ingest_"
#: The column types a schema may declare.
DType = Literal["string", "int32", "int64", "float32", "float64", "boolean", "date", "timestamp"]
#: How often a dataset is cut into partitions.
Cadence = Literal["hourly", "daily", "weekly", "monthly"]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: The JSON-schema pattern of a key or variable name (so that `dg check yaml` flags it too).
NAME_KEY: JsonDict = {"pattern": _IDENTIFIER.pattern}


class Strict(BaseModel):
    """A frozen model that refuses unknown keys (a typo is an error, not a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_identifier(value: str, what: str) -> str:
    """``value`` if it is a plain SQL identifier (ValueError naming ``what`` if not)."""
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not a plain identifier: use letters, digits and underscores, "
            "starting with a letter or underscore"
        )
    return value


def check_table_name(value: str) -> str:
    """``value`` if it is 'schema.table' or 'table' of plain identifiers (else ValueError)."""
    parts = value.split(".")
    if len(parts) > 2:
        raise ValueError(f"{value!r}: give 'schema.table' or 'table'")
    for part in parts:
        check_identifier(part, "table name part")
    return value


def discriminator(key: str, default: str) -> Callable[[Any], str]:
    """A pydantic discriminator: the ``key`` of a mapping (``default`` if absent) or a model."""

    def tag(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get(key, default))
        return str(getattr(value, key, default))

    return tag

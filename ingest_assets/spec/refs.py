"""References to user code in YAML: 'package.module:name', imported when definitions load."""

from __future__ import annotations

import importlib
from typing import Any


def import_reference(reference: str, what: str) -> Any:
    """Import the object a 'package.module:<what>' reference names (ValueError if it cannot)."""
    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{reference!r} is not of the form 'package.module:{what}'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {reference!r}: {exc}") from None


def load_check(reference: str) -> Any:
    """Import a custom rule given as 'package.module:name' (a pandera Check or a function).

    Raises:
        ValueError: the reference does not name a pandera Check or a callable.
    """
    obj = import_reference(reference, "name")
    if not callable(obj):
        raise ValueError(f"{reference!r} is neither a pandera Check nor a function")
    return obj

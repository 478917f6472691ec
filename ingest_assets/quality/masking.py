"""Masking of classified columns on load: a keyed hash, or redaction.

``hash`` replaces a value by HMAC-SHA256(salt, value) in hex: equal values stay equal (so masked
keys still join and count) while the raw value cannot be read back without the salt. ``redact``
replaces every non-null value by :data:`REDACTED`. Nulls stay null either way.
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

from ingest_assets.spec import Mask

#: What a redacted value reads in the warehouse.
REDACTED = "[redacted]"
#: A hashed value: 64 lowercase hex digits.
HASH_PATTERN = r"^[0-9a-f]{64}$"


def mask_values(values: pd.Series, method: Mask, salt: str | None) -> pd.Series:
    """Mask text values.

    Args:
        values: The values, as text (nulls allowed).
        method: ``hash`` or ``redact``.
        salt: The key of the hash (required for ``hash``).

    Returns:
        The masked values as a string Series with the same index.

    Raises:
        ValueError: ``hash`` without a salt.
    """
    values = values.astype(pd.StringDtype())
    if method == "redact":
        return values.where(values.isna(), REDACTED)
    if not salt:
        raise ValueError("hash masking needs a salt")
    key = salt.encode()
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    digests = [hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest() for v in uniques]
    masked = pd.Series(
        [digests[code] if code >= 0 else None for code in codes],
        index=values.index,
        dtype=pd.StringDtype(),
    )
    return masked


#: Characters of a value's shape shown at most.
SHAPE_LENGTH = 40


def value_shape(value: str) -> str:
    """What a masked value that broke a rule looked like, without the value itself.

    Letters become ``a`` (``A`` uppercase), digits ``9``; punctuation, spaces and ``@`` stay, so
    ``jane.doe@example`` reads ``aaaa.aaa@aaaaaaa`` and a value without ``@`` shows it has none.
    """
    shape = "".join(
        ("A" if char.isupper() else "a") if char.isalpha() else "9" if char.isdigit() else char
        for char in value[:SHAPE_LENGTH]
    )
    return f"shape {shape}" + (
        f"... ({len(value)} characters)" if len(value) > SHAPE_LENGTH else ""
    )

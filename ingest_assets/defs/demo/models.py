"""pandera models referenced by demo datasets (``schema: {model: ...}``)."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series


class FxRate(pa.DataFrameModel):
    """One currency's EUR rate on one day."""

    rate_date: Series[pa.Date] = pa.Field(nullable=False)  # type: ignore[type-var]
    currency: Series[str] = pa.Field(str_length={"min_value": 3, "max_value": 3})
    eur_rate: Series[float] = pa.Field(gt=0)

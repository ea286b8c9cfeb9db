"""The pandera schema of the example's reference points (reference/points.csv), for ci-checks data-check."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series


class Points(pa.DataFrameModel):
    """Hand-checked points of the three spirals: an id, two coordinates in the unit disc, a class."""

    id: Series[int] = pa.Field(unique=True, ge=0)
    x0: Series[float] = pa.Field(ge=-1.5, le=1.5)
    x1: Series[float] = pa.Field(ge=-1.5, le=1.5)
    label: Series[int] = pa.Field(isin=[0, 1, 2])

    @pa.dataframe_check
    def inside_the_disc(cls, df):  # noqa: N805 - pandera passes the class
        """The spirals end at radius 1; noise keeps points within 1.5 of the centre."""
        return (df["x0"] ** 2 + df["x1"] ** 2) <= 1.5**2

    class Config:
        strict = True

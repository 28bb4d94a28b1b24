"""Stores each asset's value one NZ trading day per file, so any range of days can be read back.

A backfill runs many days in one run (single-run backfill policy) and writes them in one output;
Dagster's file IO managers write a multi-partition output to one place. This one splits the output by
its `business_date` column (the partition key) and reads any set of days back as one value.
Values are DataFrames or dataclasses whose fields are DataFrames (or such dataclasses); a frame with no
`business_date` (a dimension such as the branches) is kept whole with every day. Pickle keeps integers
and Decimals exactly as they are.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext

DAY_COLUMN = "business_date"


def _split_frame(frame: pd.DataFrame, days: list[str]) -> dict[str, pd.DataFrame]:
    if DAY_COLUMN not in frame.columns:  # not by day: every day keeps it whole
        return {day: frame for day in days}
    by_day = {day: part for day, part in frame.groupby(DAY_COLUMN, sort=False)} if len(frame) else {}
    unexpected = set(by_day) - set(days)
    if unexpected:
        raise ValueError(f"rows dated {sorted(unexpected)} are outside the partitions {days[0]}..{days[-1]}")
    return {day: by_day.get(day, frame.iloc[0:0]).reset_index(drop=True) for day in days}


def split_by_day(value: Any, days: list[str]) -> dict[str, Any]:
    """One value per day: a DataFrame's rows of that day, or a dataclass with each frame so split."""
    if isinstance(value, pd.DataFrame):
        return _split_frame(value, days)
    if dataclasses.is_dataclass(value):
        frames = {
            f.name: split_by_day(getattr(value, f.name), days)
            for f in dataclasses.fields(value)
            if isinstance(getattr(value, f.name), pd.DataFrame) or dataclasses.is_dataclass(getattr(value, f.name))
        }
        return {day: dataclasses.replace(value, **{name: parts[day] for name, parts in frames.items()}) for day in days}
    raise TypeError(f"cannot store a {type(value).__name__} by day; return a DataFrame or a dataclass of them")


def combine_days(values: list[Any]) -> Any:
    first = values[0]
    if isinstance(first, pd.DataFrame):
        if not any(DAY_COLUMN in value.columns for value in values):  # kept whole with every day: one copy
            return values[-1]
        return pd.concat(values, ignore_index=True) if len(values) > 1 else first
    frames = {
        f.name: combine_days([getattr(v, f.name) for v in values])
        for f in dataclasses.fields(first)
        if isinstance(getattr(first, f.name), pd.DataFrame) or dataclasses.is_dataclass(getattr(first, f.name))
    }
    return dataclasses.replace(first, **frames)


class DailyFrameIOManager(ConfigurableIOManager):
    """Pickles per asset and day under `base_dir/<asset key>/<YYYY-MM-DD>.pkl`."""

    base_dir: str

    def _path(self, asset_path: list[str], day: str) -> Path:
        return Path(self.base_dir).joinpath(*asset_path) / f"{day}.pkl"

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        days = sorted(context.asset_partition_keys)
        for day, part in split_by_day(obj, days).items():
            path = self._path(context.asset_key.path, day)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
            temporary.replace(path)

    def read_days(self, asset_path: list[str], days: list[str]) -> Any:
        values = []
        for day in sorted(days):
            path = self._path(asset_path, day)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{'/'.join(asset_path)} has not been materialised for {day}; materialise that partition first."
                )
            values.append(pickle.loads(path.read_bytes()))
        return combine_days(values)

    def load_input(self, context: InputContext) -> Any:
        return self.read_days(context.asset_key.path, list(context.asset_partition_keys))

"""Metric sources. compare asks each one in SOURCES, in order, for the metrics and curves of both sides.

A new source is one module here with a class that has a `name` and `read(head, base, ctx) -> Readings`
(see source.py), and one line in SOURCES. A file is read by the first source that claims it, so the files
listed under [tool.ci-checks.compare] win over the same paths in dvc.yaml.
"""

from __future__ import annotations

from ci_checks.compare.sources.configured import ConfiguredFiles
from ci_checks.compare.sources.dvc_yaml import DvcMetrics
from ci_checks.compare.sources.source import Context, CurvePair, Readings, Source
from ci_checks.compare.sources.train_check import TrainCheckResults

SOURCES: list[Source] = [ConfiguredFiles(), DvcMetrics(), TrainCheckResults()]

__all__ = ["SOURCES", "Context", "CurvePair", "Readings", "Source"]

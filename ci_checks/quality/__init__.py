"""Model quality suites: per-slice metrics, behavioural tests, calibration and hard examples, maybe against the base.

Public: ``QualitySpec`` (``load_model()``, ``dataset``, ``slices``, ``behaviour``, ``metrics``) and
``load_quality_spec(ref)``, which the rollback drill reuses to score an old release's model on the suites. Nothing
here imports torch until a model or a dataset is used.
"""

from __future__ import annotations

from ci_checks.quality.spec import METRICS, Behaviour, QualitySpec, Slice, load_quality_spec

__all__ = ["METRICS", "Behaviour", "QualitySpec", "Slice", "load_quality_spec"]

"""The ML Test Score rubric (Breck et al., 2017): 28 tests in four sections, and what in ci-checks covers each.

A test is covered by a command when running that command in CI performs the test, or the part of it a repository
can automate; `needs` says what else the repository must hold (a metric about computing performance, a schedule).
Tests no command of the kit performs have no commands: the scorecard says so and counts them only when the team
declares them as run by hand ([tool.ci-checks.score] manual).
"""

from __future__ import annotations

from dataclasses import dataclass

SECTIONS = ("data", "model", "infrastructure", "monitoring")
SECTION_TITLES = {
    "data": "Tests for features and data",
    "model": "Tests for model development",
    "infrastructure": "Tests for ML infrastructure",
    "monitoring": "Monitoring tests for ML",
}
PAPER = "Breck et al., The ML Test Score: A Rubric for ML Production Readiness and Technical Debt Reduction, 2017"


@dataclass(frozen=True)
class Test:
    id: str  # data-1 ... monitoring-7
    name: str  # the rubric's own wording
    commands: tuple[str, ...] = ()  # ci-checks commands (or capabilities) that perform it when a workflow runs them
    needs: str = ""  # an extra condition, see scan.condition()
    how: str = ""  # how to wire it, or why the kit cannot


def _t(section: str, n: int, name: str, commands: tuple[str, ...] = (), needs: str = "", how: str = "") -> Test:
    return Test(f"{section}-{n}", name, commands, needs, how)


NOT_KIT = "ci-checks does not perform this test; run it by hand and declare it under [tool.ci-checks.score] manual"

TESTS: tuple[Test, ...] = (
    _t("data", 1, "Feature expectations are captured in a schema", ("data-check",), how="run data-check in CI"),
    _t("data", 2, "All features are beneficial", how=NOT_KIT),
    _t("data", 3, "No feature's cost is too much", how=NOT_KIT),
    _t("data", 4, "Features adhere to meta-level requirements", how=NOT_KIT),
    _t("data", 5, "The data pipeline has appropriate privacy controls", how=NOT_KIT),
    _t("data", 6, "New features can be added quickly", how=NOT_KIT),
    _t(
        "data",
        7,
        "All input feature code is tested",
        ("pytest",),
        how="run your test suite in CI (the pytest tier); the kit cannot tell which code the tests cover",
    ),
    _t(
        "model",
        1,
        "Model specs are reviewed and submitted",
        ("compare",),
        needs="params",
        how="keep the hyperparameters in params.yaml (or the params files of [tool.ci-checks.compare]) and run "
        "compare in pull requests: the report lists every params change next to the metrics for review",
    ),
    _t("model", 2, "Offline and online metrics correlate", how=NOT_KIT),
    _t("model", 3, "All hyperparameters have been tuned", how=NOT_KIT),
    _t("model", 4, "The impact of model staleness is known", how=NOT_KIT),
    _t("model", 5, "A simpler model is not better", how=NOT_KIT),
    _t(
        "model",
        6,
        "Model quality is sufficient on important data slices",
        ("quality",),
        how="run quality in CI with slices declared in the quality spec",
    ),
    _t(
        "model",
        7,
        "The model is tested for considerations of inclusion",
        how="declare quality slices over the groups the model must serve fairly and list this test under manual; "
        "the kit cannot tell which slices those are",
    ),
    _t(
        "infrastructure",
        1,
        "Training is reproducible",
        ("train-check", "rerun"),
        needs="reproducibility",
        how="run train-check (its reproducibility check) or rerun in CI",
    ),
    _t("infrastructure", 2, "Model specs are unit tested", ("train-check",), how="run train-check in CI"),
    _t(
        "infrastructure",
        3,
        "The ML pipeline is integration tested",
        ("rerun", "dvc repro"),
        how="replay the pipeline end to end in CI: rerun, or a job that runs dvc repro",
    ),
    _t(
        "infrastructure",
        4,
        "Model quality is validated before serving",
        ("compare", "quality", "golden"),
        how="gate pull requests on compare (metrics against main), quality or golden",
    ),
    _t("infrastructure", 5, "The model is debuggable", how=NOT_KIT),
    _t(
        "infrastructure",
        6,
        "Models are canaried before serving",
        ("export-parity",),
        how="run export-parity in CI: the model loads in the serving runtime (onnxruntime) and predicts as in "
        "training; a real canary on live traffic is outside the kit",
    ),
    _t(
        "infrastructure", 7, "Serving models can be rolled back", ("rollback",), how="run the rollback drill on release"
    ),
    _t(
        "monitoring",
        1,
        "Dependency changes result in notification",
        ("dependency-updates",),
        how="add .github/dependabot.yml or a Renovate config",
    ),
    _t(
        "monitoring",
        2,
        "Data invariants hold for inputs",
        ("data-check",),
        how="run data-check in CI (training inputs; serving inputs need a monitor outside the kit)",
    ),
    _t(
        "monitoring",
        3,
        "Training and serving are not skewed",
        ("export-parity", "golden"),
        how="run export-parity or golden in CI: the served model computes what the trained one does",
    ),
    _t(
        "monitoring",
        4,
        "Models are not too stale",
        ("rerun",),
        needs="schedule",
        how="replay training on a schedule: a workflow with `on: schedule` that runs rerun",
    ),
    _t(
        "monitoring",
        5,
        "Models are numerically stable",
        ("train-check",),
        needs="finite-values",
        how="run train-check in CI with its finite-values check",
    ),
    _t(
        "monitoring",
        6,
        "Computing performance has not regressed",
        ("compare",),
        needs="performance-metric",
        how="compare a latency, throughput or memory metric (a name with ms, latency, throughput, memory, mb) "
        "against main",
    ),
    _t(
        "monitoring",
        7,
        "Prediction quality has not regressed",
        ("compare", "golden", "quality"),
        how="run compare, golden or quality against main in CI (offline data: served traffic is outside the kit)",
    ),
)
BY_ID = {t.id: t for t in TESTS}

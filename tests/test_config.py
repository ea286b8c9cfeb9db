"""[tool.ci-checks] in pyproject.toml: found, validated, unknown keys rejected with the closest valid one."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from ci_checks.config import REGENERATE, SCHEMA_FILE, find_pyproject, json_schema, load_config
from ci_checks.config import main as config_main
from ci_checks.config import parse_value, validate_config, validate_section
from ci_checks._errors import UserError
from ci_checks.checks import default_settings
from ci_checks.main import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS = default_settings()


def validate(table):
    return validate_config(table, defaults=DEFAULTS, where="pyproject.toml [tool.ci-checks]")


def test_find_pyproject_walks_up(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_pyproject(str(nested)) == str(tmp_path / "pyproject.toml")


def test_valid_table():
    table = {
        "spec": "ci/spec.py:spec",
        "format": "github",
        "seed": 3,
        "checks": ["memorization"],
        "skip": [],
        "memorization": {"max-steps": 50, "target-accuracy": 1, "target-loss": 0.1},
        "finite-values": {},
    }
    config = validate(table)
    assert config["memorization"] == {"max-steps": 50, "target-accuracy": 1.0, "target-loss": 0.1}
    assert isinstance(config["memorization"]["target-accuracy"], float)
    assert config["format"] == "github" and config["checks"] == ["memorization"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param({"formta": "json"}, "unknown key 'formta'; did you mean 'format'?", id="typo-top-level"),
        pytest.param({"memorisation": {}}, "unknown key 'memorisation'; did you mean 'memorization'?", id="typo-check"),
        pytest.param({"zzz": 1}, "unknown key 'zzz'; valid keys: batch-independence, checkpoint", id="no-close-key"),
        pytest.param({"seed": "0"}, "'seed' must be an integer, got '0'", id="seed-string"),
        pytest.param({"seed": True}, "'seed' must be an integer, got True", id="seed-bool"),
        pytest.param({"checks": "memorization"}, "'checks' must be a list", id="checks-not-list"),
        pytest.param({"format": "xml"}, "format must be one of text, json, github, got 'xml'", id="bad-format"),
        pytest.param(
            {"skip": ["memorisation"]},
            "skip names unknown check 'memorisation'; did you mean 'memorization'?",
            id="unknown-check-in-skip",
        ),
        pytest.param(
            {"memorization": 5}, "'memorization' must be a table ([tool.ci-checks.memorization])", id="not-table"
        ),
        pytest.param(
            {"memorization": {"max_steps": 5}},
            "unknown setting 'memorization.max_steps'; did you mean 'max-steps'?",
            id="snake-case-setting",
        ),
        pytest.param(
            {"memorization": {"max-steps": 5.5}},
            "'memorization.max-steps' must be an integer, got 5.5",
            id="float-for-int",
        ),
        pytest.param(
            {"memorization": {"max-steps": True}},
            "'memorization.max-steps' must be an integer, got True",
            id="bool-for-int",
        ),
        pytest.param(
            {"memorization": {"target-loss": "low"}}, "'memorization.target-loss' must be a number", id="str-for-none"
        ),
        pytest.param({"train-mode": {"strict": True}}, "'train-mode' takes no settings", id="check-without-settings"),
    ],
)
def test_invalid_table(table, message):
    with pytest.raises(UserError) as exc:
        validate(table)
    assert str(exc.value).startswith("pyproject.toml [tool.ci-checks]: ")
    assert message in str(exc.value)


def test_load_config(tmp_path):
    path = tmp_path / "pyproject.toml"
    assert load_config(None, defaults=DEFAULTS) == {}
    path.write_text("[project]\nname = 'x'\n")
    assert load_config(str(path), defaults=DEFAULTS) == {}
    path.write_text("[tool.ci-checks]\nseed = 1\n[tool.ci-checks.loss-decreases]\nsteps = 4\n")
    assert load_config(str(path), defaults=DEFAULTS) == {"seed": 1, "loss-decreases": {"steps": 4}}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "config file not found", id="missing"),
        pytest.param("[tool.ci-checks\n", "invalid TOML", id="bad-toml"),
    ],
)
def test_load_config_errors(tmp_path, content, message):
    path = tmp_path / "pyproject.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_config(str(path), defaults=DEFAULTS)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("200", 200, id="int"),
        pytest.param("0.5", 0.5, id="float"),
        pytest.param("true", True, id="bool"),
        pytest.param("cuda", "cuda", id="bare-string"),
        pytest.param('"quoted"', "quoted", id="quoted-string"),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


# ------------------------------------------------------------------ through the CLI


@pytest.fixture
def project(write_spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_spec()
    return tmp_path


def test_unknown_key_exits_2_with_closest(project, capsys):
    pyproject = project / "conf" / "pyproject.toml"
    pyproject.parent.mkdir()
    pyproject.write_text('[tool.ci-checks]\nspec = "ci_spec.py:good"\n\n[tool.ci-checks.memorization]\nmax-step = 5\n')
    assert main(["train-check", "--config", str(pyproject)]) == 2
    assert capsys.readouterr().err == (
        f"ci-checks: error: {pyproject} [tool.ci-checks]: unknown setting 'memorization.max-step'; "
        "did you mean 'max-steps'?\n"
    )


def test_missing_config_file_exits_2(project, capsys):
    assert main(["train-check", "--config", "nope.toml"]) == 2
    assert "nope.toml: config file not found" in capsys.readouterr().err


def test_config_supplies_spec_checks_format_and_settings(project, capsys):
    (project / "pyproject.toml").write_text(
        '[tool.ci-checks]\nspec = "ci_spec.py:good"\nchecks = ["memorization", "loss-decreases"]\n'
        'skip = ["loss-decreases"]\nformat = "json"\nseed = 5\n\n'
        "[tool.ci-checks.memorization]\nmax-steps = 40\n"
    )
    assert main(["train-check", "--quiet"]) == 0  # found by walking up from the working directory
    doc = json.loads(capsys.readouterr().out)
    assert [c["check"] for c in doc["checks"]] == ["memorization"]
    assert doc["subject"]["seed"] == 5
    assert doc["subject"]["settings"]["memorization"]["max-steps"] == 40


def test_command_line_wins_over_config(project, capsys):
    (project / "pyproject.toml").write_text(
        '[tool.ci-checks]\nspec = "missing.py:nothing"\nformat = "json"\n\n'
        "[tool.ci-checks.memorization]\nmax-steps = 40\n"
    )
    argv = [
        "train-check",
        "--spec",
        "ci_spec.py:good",
        "--checks",
        "memorization",
        "--format",
        "text",
        "--set",
        "memorization.max-steps=30",
        "--output",
        "r.json",
        "--quiet",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("PASS  memorization")
    assert json.loads((project / "r.json").read_text())["subject"]["settings"]["memorization"]["max-steps"] == 30


def test_no_spec_names_the_config_file(project, capsys):
    (project / "pyproject.toml").write_text("[tool.ci-checks]\nseed = 1\n")
    assert main(["train-check"]) == 2
    err = capsys.readouterr().err
    assert 'set spec = "..." under [tool.ci-checks] in ' in err and err.rstrip().endswith("pyproject.toml")


# ------------------------------------------------------------------ one schema for every table

FULL = """
[tool.ci-checks]
spec = "ci_spec.py:training_spec"
format = "json"
output = "results.json"
device = "cpu"
seed = 3
checks = ["memorization", "loss-decreases"]
skip = ["checkpoint"]

[tool.ci-checks.memorization]
max-steps = 800
target-loss = 0.1

[tool.ci-checks.compare]
files = ["metrics/*.json", { path = "results.csv", columns = ["f1"], rows = "all" }]
curves = ["plots/loss.csv", { path = "plots/acc.csv", x = "epoch", y = "acc" }]
fail-on = "any"
steps-ratio = 3
base = "origin/main"
fetch-depth = 0
dvc = false
params = "params.yaml"

[tool.ci-checks.metrics."*accuracy"]
direction = "higher"
abs-tol = 0.002
rel-tol = 0
required = false
test = "bootstrap"
alpha = 0.1

[tool.ci-checks.golden]
dir = "g"
weights = "models/model.pt"
suites = { night-time = "golden/night.pt" }
atol = 1
rtol = 1e-2

[tool.ci-checks.rerun]
command = "dvc repro train"
workdir = "work"
timeout-minutes = 30.5

[[tool.ci-checks.rerun.runs]]
name = "baseline"
ref = "v1.0"

[[tool.ci-checks.rerun.runs]]
name = "big"
ref = "exp-big"
command = "make train"
stages = ["train"]
timeout-minutes = 240
metrics = { "*accuracy" = { abs-tol = 0.01 } }
"""


def full_table() -> dict[str, Any]:
    return tomllib.loads(FULL)["tool"]["ci-checks"]


def with_key(table: str, key: str, value: Any) -> dict[str, Any]:
    """The full table with one key of one of its tables (dotted: rerun.runs.0) set to value."""
    config = full_table()
    node: Any = config
    for part in table.split(".") if table else []:
        node = node[int(part)] if part.isdigit() else node[part]
    node[key] = value
    return config


def test_full_table_is_valid_and_the_commands_tables_get_their_defaults():
    config = validate(full_table())
    assert config["compare"]["files"] == [
        {"path": "metrics/*.json", "columns": [], "rows": "last"},
        {"path": "results.csv", "columns": ["f1"], "rows": "all"},
    ]
    assert config["compare"]["curves"][1] == {"path": "plots/acc.csv", "x": "epoch", "y": ["acc"]}
    assert config["compare"]["params"] == ["params.yaml"] and config["compare"]["steps-ratio"] == 3.0
    assert config["metrics"] == {
        "*accuracy": {
            "direction": "higher",
            "abs-tol": 0.002,
            "rel-tol": 0.0,
            "required": False,
            "test": "bootstrap",
            "alpha": 0.1,
        }
    }
    assert config["golden"]["atol"] == 1.0 and isinstance(config["golden"]["atol"], float)
    assert config["rerun"]["runs"][1]["metrics"] == {"*accuracy": {"abs-tol": 0.01}}
    # A policy keeps only what is set: policies merge, the most specific last, and a default would override.
    assert "direction" not in config["rerun"]["runs"][1]["metrics"]["*accuracy"]
    assert validate({"golden": {}, "rerun": {}, "compare": {}}) == {
        "golden": validate_section("golden"),
        "rerun": validate_section("rerun"),
        "compare": validate_section("compare"),
    }
    assert validate_section("rerun") == {
        "runs": [],
        "command": None,
        "workdir": ".ci-checks/rerun",
        "timeout-minutes": 120,
    }
    assert validate_section("golden") == {"dir": "golden", "weights": None, "suites": {}, "atol": 1e-4, "rtol": 1e-3}


@pytest.mark.parametrize(
    ("table", "key", "value", "message"),
    [
        pytest.param(
            "rerun",
            "command",
            ["dvc", "repro"],
            "[tool.ci-checks.rerun]: 'command' must be a command line string, e.g. \"dvc repro train\", "
            "got ['dvc', 'repro']",
            id="rerun-command-list",
        ),
        pytest.param(
            "rerun", "workdir", 3, "[tool.ci-checks.rerun]: 'workdir' must be a string path, got 3", id="rerun-workdir"
        ),
        pytest.param("rerun", "workdir", "", "workdir must not be empty", id="rerun-workdir-empty"),
        pytest.param(
            "rerun", "timeout-minutes", 0, "timeout-minutes must be a positive number, got 0", id="rerun-timeout"
        ),
        pytest.param(
            "rerun", "timeout-minutes", True, "'timeout-minutes' must be a number, got True", id="rerun-timeout-bool"
        ),
        pytest.param(
            "rerun", "timeout", 5, "unknown key 'timeout'; did you mean 'timeout-minutes'?", id="rerun-unknown"
        ),
        pytest.param("rerun", "runs", {"name": "a"}, "'runs' must be a list", id="runs-not-list"),
        pytest.param("rerun", "runs", [3], "'runs[0]' must be a table ([tool.ci-checks.rerun.runs[0]])", id="run-3"),
        pytest.param(
            "rerun",
            "runs",
            [{"name": "a"}],
            "[tool.ci-checks.rerun.runs[0]]: missing required key 'ref'",
            id="run-without-ref",
        ),
        pytest.param(
            "rerun",
            "runs",
            [{"name": "a", "ref": "v1"}, {"name": "a", "ref": "v2"}],
            "runs[1] repeats name 'a'",
            id="duplicate-run",
        ),
        pytest.param(
            "rerun.runs.1", "stage", ["x"], "[tool.ci-checks.rerun.runs[1]]: unknown key 'stage'", id="run-unknown"
        ),
        pytest.param(
            "rerun.runs.1", "command", ["make"], "[tool.ci-checks.rerun.runs[1]]: 'command' must be", id="run-command"
        ),
        pytest.param(
            "rerun.runs.1.metrics.*accuracy",
            "abs_tol",
            1,
            "[tool.ci-checks.rerun.runs[1].metrics.\"*accuracy\"]: unknown key 'abs_tol'; did you mean 'abs-tol'?",
            id="run-metric-unknown",
        ),
        pytest.param(
            "compare",
            "fail_on",
            "any",
            "[tool.ci-checks.compare]: unknown key 'fail_on'; did you mean 'fail-on'?",
            id="compare-unknown",
        ),
        pytest.param(
            "compare",
            "fail-on",
            "regresed",
            "fail-on must be one of regressed, missing, any, never, got 'regresed'; did you mean 'regressed'?",
            id="compare-fail-on",
        ),
        pytest.param("compare", "fetch-depth", -1, "fetch-depth must be at least 0, got -1", id="fetch-depth"),
        pytest.param("compare", "steps-ratio", math.inf, "steps-ratio must be a finite number, got inf", id="inf"),
        pytest.param("compare", "fetch-depth", 1.5, "'fetch-depth' must be an integer, got 1.5", id="fetch-float"),
        pytest.param("compare", "steps-ratio", False, "'steps-ratio' must be a number, got False", id="ratio-bool"),
        pytest.param("compare", "dvc", "no", "'dvc' must be true or false, got 'no'", id="dvc-string"),
        pytest.param("compare", "params", [1], "'params[0]' must be a string, got 1", id="params-int"),
        pytest.param("compare", "files", [3], "'files[0]' must be a path or glob, or a table like", id="files-int"),
        pytest.param(
            "compare.files.1",
            "row",
            "last",
            "[tool.ci-checks.compare.files[1]]: unknown key 'row'; did you mean 'rows'?",
            id="files-unknown",
        ),
        pytest.param("compare.files.1", "rows", "first", 'rows must be "last" (the last row)', id="files-rows"),
        pytest.param(
            "metrics.*accuracy",
            "directon",
            "higher",
            "[tool.ci-checks.metrics.\"*accuracy\"]: unknown key 'directon'; did you mean 'direction'?",
            id="metrics-unknown",
        ),
        pytest.param(
            "metrics.*accuracy",
            "direction",
            "down",
            'direction must be "higher" or "lower" (which is better), got \'down\'',
            id="metrics-direction",
        ),
        pytest.param("metrics.*accuracy", "alpha", 0.5, "alpha must be a number between 0 and 0.5", id="alpha"),
        pytest.param("metrics.*accuracy", "abs-tol", -1, "abs-tol must be at least 0, got -1", id="abs-tol"),
        pytest.param("metrics", "loss", 0.1, "'loss' must be a table ([tool.ci-checks.metrics.loss])", id="metric-0.1"),
        pytest.param(
            "golden", "suite", {}, "[tool.ci-checks.golden]: unknown key 'suite'; did you mean 'suites'?", id="golden"
        ),
        pytest.param("golden", "dir", 3, "'dir' must be a string path, got 3", id="golden-dir"),
        pytest.param("golden", "atol", "1e-4", "'atol' must be a number, got '1e-4'", id="golden-atol"),
        pytest.param("golden", "rtol", -0.1, "rtol must be at least 0, got -0.1", id="golden-rtol"),
        pytest.param("golden", "suites", ["a.pt"], "'suites' must be a table of name = \"inputs file\"", id="suites"),
        pytest.param(
            "golden.suites", "night-time", 3, "[tool.ci-checks.golden.suites]: 'night-time' must be", id="suite-3"
        ),
        pytest.param("", "checks", ["memorization", 3], "'checks[1]' must be a string, got 3", id="checks-int"),
    ],
)
def test_every_table_is_validated(table, key, value, message):
    with pytest.raises(UserError) as exc:
        validate(with_key(table, key, value))
    assert str(exc.value).startswith("pyproject.toml [tool.ci-checks")
    assert message in str(exc.value)


def test_config_that_is_not_a_table(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool]\nci-checks = "yes"\n')
    with pytest.raises(UserError, match="'tool.ci-checks' must be a table"):
        load_config(str(path), defaults=DEFAULTS)


def test_bad_rerun_table_exits_2_not_3(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.ci-checks.rerun]\ncommand = ["dvc", "repro"]\n')
    assert main(["rerun", "--list"]) == 2
    assert "[tool.ci-checks.rerun]: 'command' must be a command line string" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text("[tool.ci-checks.rerun]\nworkdir = 3\n")
    assert main(["rerun", "--list"]) == 2
    assert "'workdir' must be a string path, got 3" in capsys.readouterr().err


THROWAWAY = 'NAME = "steps-seen"\nHELP = "a throwaway"\nSETTINGS = {"limit": 5, "ratio": 2.0}\n'


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """A check registered after import: its table must be known to the schema built at call time."""
    from ci_checks import checks

    (tmp_path / "throwaway_schema_check.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(checks.REGISTRY, "steps-seen", "throwaway_schema_check")
    yield "steps-seen"
    sys.modules.pop("throwaway_schema_check", None)


def test_a_check_registered_later_is_in_the_schema(throwaway, tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.ci-checks]\nchecks = ["steps-seen"]\n[tool.ci-checks.steps-seen]\nlimit = 7\n')
    assert load_config(str(path), defaults=default_settings())["steps-seen"] == {"limit": 7}
    with pytest.raises(UserError, match="'steps-seen.ratio' must be at least 1, got 0.5"):
        validate_config({"steps-seen": {"ratio": 0.5}}, defaults=default_settings(), where="x")
    with pytest.raises(UserError, match="unknown setting 'steps-seen.limt'; did you mean 'limit'?"):
        validate_config({"steps-seen": {"limt": 1}}, defaults=default_settings(), where="x")
    table = json_schema()["definitions"]["ci-checks"]["properties"]["steps-seen"]
    assert table["description"] == "The steps-seen check: a throwaway."
    assert table["properties"]["limit"] == {"type": "integer", "default": 5}


# ------------------------------------------------------------------ published as JSON Schema

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "ci_checks" / "schema" / "ci-checks.schema.json"


def test_committed_json_schema_is_generated_from_the_declarations():
    assert SCHEMA_PATH == Path(SCHEMA_FILE)
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), f"stale JSON Schema; regenerate it: {REGENERATE}"


def test_json_schema_command(capsys):
    assert config_main(["--json-schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(SCHEMA_PATH.read_text())


SAMPLES = [
    pytest.param({}, True, id="empty"),
    pytest.param(full_table(), True, id="full"),
    pytest.param({"compare": {"files": "m.json"}}, False, id="files-string"),
    pytest.param({"compare": {"params": "p.yaml", "files": ["m.json"], "base": "main"}}, True, id="shorthands"),
    pytest.param({"compare": {"fetch-depth": True}}, False, id="bool-for-int"),
    pytest.param({"compare": {"steps-ratio": 0}}, False, id="ratio-zero"),
    pytest.param({"compare": {"base": ""}}, False, id="base-empty"),
    pytest.param({"compare": {"files": [{"path": "a.csv", "row": "all"}]}}, False, id="files-typo"),
    pytest.param({"compare": {"curves": [{"x": "step"}]}}, False, id="curve-without-path"),
    pytest.param({"metrics": {"a": {"alpha": 0.5}}}, False, id="alpha"),
    pytest.param({"metrics": {"a": {"direction": "up"}}}, False, id="direction"),
    pytest.param({"metrics": {"a": 1}}, False, id="policy-not-table"),
    pytest.param({"golden": {"suites": {"a": 1}}}, False, id="suite-path"),
    pytest.param({"golden": {"atol": -1}}, False, id="negative-atol"),
    pytest.param({"rerun": {"command": ["dvc", "repro"]}}, False, id="rerun-command"),
    pytest.param({"rerun": {"workdir": 3}}, False, id="rerun-workdir"),
    pytest.param({"rerun": {"timeout-minutes": -5}}, False, id="rerun-timeout"),
    pytest.param({"rerun": {"runs": [{"name": "a", "ref": "v1", "metric": {}}]}}, False, id="run-typo"),
    pytest.param({"rerun": {"runs": [{"ref": "v1"}]}}, False, id="run-without-name"),
    pytest.param({"rerun": {"runs": [{"name": "a", "ref": "v1", "timeout-minutes": 5}]}}, True, id="run"),
    pytest.param({"format": "xml"}, False, id="format"),
    pytest.param({"seed": 1.5}, False, id="seed-float"),
    pytest.param({"skip": ["memorisation"]}, False, id="skip-unknown-check"),
    pytest.param({"memorization": {"max-steps": 0}}, False, id="setting-minimum"),
    pytest.param({"memorization": {"target-loss": 1}}, True, id="setting-number"),
    pytest.param({"train-mode": {"strict": True}}, False, id="no-settings"),
    pytest.param({"compar": {}}, False, id="unknown-table"),
]


@pytest.mark.parametrize(("table", "valid"), SAMPLES)
def test_json_schema_agrees_with_the_validator(table, valid):
    jsonschema = pytest.importorskip("jsonschema")
    checker = jsonschema.Draft7Validator(json.loads(SCHEMA_PATH.read_text()))
    errors = [e.message for e in checker.iter_errors({"tool": {"ci-checks": table}, "project": {"name": "x"}})]
    try:
        validate(table)
        accepted = True
    except UserError:
        accepted = False
    assert (accepted, not errors) == (valid, valid), errors


def test_json_schema_is_a_valid_draft_7_schema():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))

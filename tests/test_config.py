"""[tool.ci-checks] in pyproject.toml: found, validated, unknown keys rejected with the closest valid one."""

from __future__ import annotations

import json

import pytest

from ci_checks.config import find_pyproject, load_config, parse_value, validate_config
from ci_checks._errors import UserError
from ci_checks.checks import default_settings
from ci_checks.main import main

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

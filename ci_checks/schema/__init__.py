"""The one declaration of [tool.ci-checks]: every table, key, type, default and bound, and its JSON Schema rendering.

`schema()` builds the top-level table; a check's table comes from its SETTINGS when it is called, so a check
registered later is configurable too. ci_checks.config validates against it (every command and the validate-config
hook), and ci-checks.schema.json next to this file is `json_schema()` written out for editors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ci-checks.schema.json")
REGENERATE = "python -m ci_checks.config --json-schema > ci_checks/schema/ci-checks.schema.json"
FORMATS = ("text", "json", "github")
FAIL_ON = ("regressed", "missing", "any", "never")
DIRECTIONS = ("higher", "lower")
GATES = ("auto", "declared", "all")
CORRECTIONS = ("holm", "none")
VALUES = ("seeds", "per-class")
TESTS = ("welch", "bootstrap")


@dataclass(frozen=True)
class Field:
    """One value. A tuple type takes any of them; float also takes an integer and stores a float."""

    type: type | tuple[type, ...]
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    nonempty: bool = False
    required: bool = False
    nullable: bool = False  # None passes even with a default: a spec's Python settings (TOML has no null)
    finite: bool = True  # a number must not be inf or nan (TOML has both; JSON Schema cannot say so)
    expected: str = ""  # what a valid value is, where the wording generated from the above would say too little
    noun: str = ""  # the choices are names of these: an unknown one "names unknown <noun>", with the closest


@dataclass(frozen=True)
class ArrayOf:
    """A list of items; single=True also takes one string alone (params = "params.yaml")."""

    item: Node
    default: tuple[Any, ...] = ()
    help: str = ""
    single: bool = False
    unique: str = ""  # the items are tables whose value of this key must differ (JSON Schema cannot say so)
    expected: str = ""


@dataclass(frozen=True)
class Table:
    """Known keys; an unknown one is rejected with the closest valid name."""

    fields: Mapping[str, Node]
    help: str = ""
    fill: bool = False  # fill in the defaults of absent keys for the commands; else keep only what is set
    shorthand: str = ""  # a string alone stands for {shorthand = "..."}
    check: str = ""  # a check's settings: errors name 'check.key' in the parent table, as --set does
    expected: str = ""
    ref: str = ""  # its name among the JSON Schema's definitions, for a table used in several places


@dataclass(frozen=True)
class MapOf:
    """Keys the user names (metrics, suites), each value of one kind."""

    value: Node
    help: str = ""
    expected: str = ""


Node = Union[Field, ArrayOf, Table, MapOf]

# Lower bounds of check settings, by the setting's name or its last word: step counts need a step, tolerances
# can't be negative.
MINIMUM: dict[str, float] = {
    "steps": 1,
    "patience": 1,
    "before": 1,
    "after": 1,
    "seconds": 0.0,
    "rtol": 0.0,
    "atol": 0.0,
    "tolerance": 0.0,
    "accuracy": 0.0,
    "ratio": 1.0,
}


def _strings(help: str, default: tuple[str, ...] = ()) -> ArrayOf:
    return ArrayOf(Field(str), default, help, single=True, expected="a string or a list of strings")


METRIC_POLICY = Table(
    {
        "direction": Field(
            str,
            help="Which is better, higher or lower. Default: guessed from the name's words (loss, error, wer, nll, "
            "fid, mse, time, ms, memory, mb ... are lower; accuracy, f1, auc, bleu, score ... higher); a name with "
            "no known word has no direction: its changes are 'changed', never improved or regressed.",
            choices=DIRECTIONS,
            expected='"higher" or "lower" (which is better)',
        ),
        "abs-tol": Field(float, help="A change within this absolute tolerance is never a regression.", minimum=0),
        "rel-tol": Field(
            float,
            help="A change within this relative tolerance is never a regression (single values: 0.01 when "
            "neither tolerance is set).",
            minimum=0,
        ),
        "required": Field(
            bool,
            help="true declares a gating metric: once any metric is declared, only declared ones fail the job "
            "(Holm across them) and the rest are report-only; false: never fails the job (default: gating while "
            "no metric is declared).",
        ),
        "test": Field(str, "welch", "With 2+ samples per side: welch or bootstrap.", choices=TESTS),
        "alpha": Field(
            float,
            0.05,
            "Significance level, after the correction for many metrics: with the defaults a pull request with no "
            "real change fails at most this often, however many metrics it has.",
            exclusive_minimum=0,
            exclusive_maximum=0.5,
        ),
        "values": Field(
            str,
            help="What a list of numbers holds: seeds (repeated runs) or per-class (one value per class; a list "
            "of lists is one row per seed). Default: per-class when the name says so (per_class, classwise, "
            "confusion), else seeds.",
            choices=VALUES,
        ),
    },
    help="The policy of the metrics this name (file:key), key or glob names; the most specific one wins.",
    ref="metric-policy",
)
METRICS = MapOf(
    METRIC_POLICY,
    help='Per-metric policies: [tool.ci-checks.metrics."NAME-OR-GLOB"].',
    expected='a table of metric policies ([tool.ci-checks.metrics."NAME-OR-GLOB"])',
)
COMPARE = Table(
    {
        "files": ArrayOf(
            Table(
                {
                    "path": Field(str, help="A metrics file or glob.", required=True, nonempty=True),
                    "columns": _strings("The columns to read (default: all numeric ones)."),
                    "rows": Field(
                        str,
                        "last",
                        "Which rows: last (the last row) or all (one sample per row).",
                        choices=("last", "all"),
                        expected='"last" (the last row) or "all" (one sample per row)',
                    ),
                },
                fill=True,
                shorthand="path",
                expected='a path or glob, or a table like {path = "results.csv", columns = ["acc"], rows = "last"}',
            ),
            help="Extra metrics files: paths or globs, or {path, columns, rows}; dvclive folders work.",
            expected="a list of paths, globs or tables",
        ),
        "curves": ArrayOf(
            Table(
                {
                    "path": Field(str, help="A curve file (CSV, TSV, JSON, YAML).", required=True, nonempty=True),
                    "x": Field(str, help="The x column (default: step or the first column)."),
                    "y": _strings("The y columns (default: every other numeric column)."),
                },
                fill=True,
                shorthand="path",
                expected='a path, or a table like {path = "plots/loss.csv", x = "step", y = ["loss"]}',
            ),
            help="Curves to plot, PR vs main: paths or {path, x, y} (the plots of dvc.yaml are read anyway).",
            expected="a list of paths or tables",
        ),
        "fail-on": Field(
            str,
            "regressed",
            "What fails the job: regressed (a required metric), missing (also a required metric gone), any, never.",
            choices=FAIL_ON,
        ),
        "gate": Field(
            str,
            "auto",
            "Which metrics can fail the job: declared (those a metrics policy sets required = true for), all, or "
            "auto (declared ones when there are any, else all).",
            choices=GATES,
        ),
        "correction": Field(
            str,
            "holm",
            "Error control across metrics: holm (Holm across the gating metrics, Benjamini-Hochberg for the rest) "
            "or none (each metric alone at its alpha: more metrics, more false failures).",
            choices=CORRECTIONS,
        ),
        "steps-ratio": Field(
            float, 2.0, "Warn when the PR needs this many times more steps to memorize than main.", exclusive_minimum=0
        ),
        "base": Field(
            str,
            help="The base revision (default: the merge-base with the default branch).",
            nonempty=True,
            expected='a git revision such as "origin/main"',
        ),
        "fetch-depth": Field(
            int, 50, "How deep to fetch a missing base in a shallow clone; 0 never fetches.", minimum=0
        ),
        "dvc": Field(bool, True, "Read dvc.yaml (and start DVC for cache: true metrics)."),
        "params": _strings("Params files to diff (plus those dvc.yaml names).", ("params.yaml",)),
    },
    help="ci-checks compare: the working tree's metrics against the base branch.",
    fill=True,
)
GOLDEN = Table(
    {
        "dir": Field(str, "golden", "Where the recorded outputs live.", nonempty=True, expected="a string path"),
        "weights": Field(
            str, help="Trained weights to load (default: the freshly built seeded model).", expected="a string path"
        ),
        "suites": MapOf(
            Field(str, nonempty=True, expected="a string path (inputs saved with torch.save)"),
            help='Named suites of golden inputs saved with torch.save: {night-time = "golden/night.pt"}.',
            expected='a table of name = "inputs file"',
        ),
        "atol": Field(float, 1e-4, "Absolute tolerance.", minimum=0),
        "rtol": Field(float, 1e-3, "Relative tolerance.", minimum=0),
    },
    help="ci-checks golden: the model's outputs on committed golden inputs, per suite.",
    fill=True,
)
_COMMAND = 'a command line string, e.g. "dvc repro train"'
RERUN = Table(
    {
        "runs": ArrayOf(
            Table(
                {
                    "name": Field(
                        str, help="The run's name (ci-checks rerun --run NAME).", required=True, nonempty=True
                    ),
                    "ref": Field(str, help="The git ref (tag, commit) that recorded it.", required=True, nonempty=True),
                    "command": Field(str, help="The command that runs its pipeline.", nonempty=True, expected=_COMMAND),
                    "stages": ArrayOf(Field(str), help="The dvc.yaml stages to reproduce (default: all)."),
                    "timeout-minutes": Field((int, float), help="Its wall-clock limit.", exclusive_minimum=0),
                    "metrics": MapOf(METRIC_POLICY, help="Its metric policies, over [tool.ci-checks.metrics]."),
                },
                help="A recorded run: a git ref whose params, data and metrics are pinned.",
            ),
            help="The recorded runs to replay.",
            unique="name",
        ),
        "command": Field(
            str,
            help="The command that runs the pipeline (default: dvc repro --force [stages]).",
            nonempty=True,
            expected=_COMMAND,
        ),
        "workdir": Field(
            str, ".ci-checks/rerun", "Where workspaces live (git-ignored).", nonempty=True, expected="a string path"
        ),
        "timeout-minutes": Field((int, float), 120, "Wall-clock limit per run.", exclusive_minimum=0),
    },
    help="ci-checks rerun: replay recorded training runs with the current code.",
    fill=True,
)
# The commands' own tables, by name.
TABLES: dict[str, Table] = {"compare": COMPARE, "golden": GOLDEN, "rerun": RERUN}


def settings_table(
    check: str, known: Mapping[str, Any], *, help: str = "", notes: Mapping[str, str] | None = None
) -> Table:
    """A check's table, from its settings' defaults: the default's type, and MINIMUM's bounds for numbers."""
    fields: dict[str, Node] = {}
    for key, default in known.items():
        kind: type | tuple[type, ...] = (int, float) if default is None else type(default)
        low = MINIMUM.get(key.rpartition("-")[2]) if kind in (int, float, (int, float)) else None
        # inf stays a valid budget (max-seconds = inf), as it always was
        fields[key] = Field(kind, default, (notes or {}).get(key, ""), minimum=low, nullable=True, finite=False)
    return Table(fields, help=help, check=check)


def schema(defaults: Mapping[str, Mapping[str, Any]] | None = None) -> Table:
    """[tool.ci-checks]: its own keys, a table per check (defaults: the registered checks' settings), the commands'."""
    from ci_checks import checks

    if defaults is None:
        defaults = checks.default_settings()
    names = tuple(defaults)

    def described(name: str) -> dict[str, Any]:
        if name not in checks.REGISTRY:
            return {}
        module = checks.module(name)
        what = getattr(module, "HELP", "")
        return {
            "help": f"The {name} check" + (f": {what}." if what else "."),
            "notes": getattr(module, "SETTINGS_HELP", {}),
        }

    def check_list(help: str) -> ArrayOf:
        return ArrayOf(Field(str, choices=names, noun="check"), help=help, expected="a list of check names")

    fields: dict[str, Node] = {
        "spec": Field(str, help="The training spec: FILE.py:FUNCTION (next to this file) or package.module:FUNCTION."),
        "format": Field(str, "text", "Output format.", choices=FORMATS),
        "output": Field(str, help="Also write the JSON results to this file."),
        "device": Field(str, help="The torch device, e.g. cpu or cuda (default: the spec's, else cuda if present)."),
        "seed": Field(int, help="The seed of every run (default: the spec's, else 0)."),
        "checks": check_list("The checks to run (default: all)."),
        "skip": check_list("Checks not to run."),
        **{name: settings_table(name, known, **described(name)) for name, known in defaults.items()},
        "compare": COMPARE,
        "metrics": METRICS,
        "golden": GOLDEN,
        "rerun": RERUN,
    }
    return Table(fields, help="[tool.ci-checks]: the configuration of ci-checks.")


def json_schema(defaults: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The schema as JSON Schema (draft 7, which editors support) of a whole pyproject.toml; other tables pass."""
    definitions: dict[str, Any] = {}
    table = _json(schema(defaults), definitions)
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "ci-checks: [tool.ci-checks] in pyproject.toml",
        "description": f"Generated from ci_checks/schema/__init__.py; regenerate with: {REGENERATE}",
        "type": "object",
        "properties": {"tool": {"type": "object", "properties": {"ci-checks": {"$ref": "#/definitions/ci-checks"}}}},
        "definitions": {"ci-checks": table, **definitions},
    }


_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def _json(node: Node, definitions: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"description": node.help} if node.help else {}
    if isinstance(node, Field):
        types = node.type if isinstance(node.type, tuple) else (node.type,)
        names = ["number"] if set(types) == {int, float} else [_JSON_TYPES[t] for t in types if t in _JSON_TYPES]
        if names:
            out["type"] = names[0] if len(names) == 1 else names
        if node.choices:
            out["enum"] = list(node.choices)
        if node.nonempty:
            out["minLength"] = 1
        for key, bound in (
            ("minimum", node.minimum),
            ("exclusiveMinimum", node.exclusive_minimum),
            ("exclusiveMaximum", node.exclusive_maximum),
        ):
            if bound is not None:
                out[key] = bound
        if node.default is not None:
            out["default"] = node.default
        return out
    if isinstance(node, MapOf):
        return {**out, "type": "object", "additionalProperties": _json(node.value, definitions)}
    if isinstance(node, ArrayOf):
        array: dict[str, Any] = {"type": "array", "items": _json(node.item, definitions)}
        if node.single:
            array = {"anyOf": [_json(node.item, definitions), array]}
        return {**out, **array, **({"default": list(node.default)} if node.default else {})}
    properties = {key: _json(field, definitions) for key, field in node.fields.items()}
    out.update(type="object", properties=properties, additionalProperties=False)
    required = [key for key, field in node.fields.items() if isinstance(field, Field) and field.required]
    if required:
        out["required"] = required
    if node.shorthand:
        out = {"anyOf": [{"type": "string", "minLength": 1}, out]}
    if node.ref:
        definitions[node.ref] = out
        return {"$ref": f"#/definitions/{node.ref}"}
    return out

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
ROLLBACK = Table(
    {
        "artifact": Field(
            str,
            help="The served model artifact, relative to this file: a state_dict or checkpoint (.pt, loaded into "
            "the spec's model and exported to ONNX) or an ONNX model (.onnx). Default: [tool.ci-checks.golden] "
            "weights.",
            nonempty=True,
            expected="a string path",
        ),
        "to": Field(
            str,
            help="The release to roll back to, a git tag or revision (default: the latest tag matching tag-pattern "
            "before HEAD).",
            nonempty=True,
            expected='a git revision such as "v1.2.0"',
        ),
        "tag-pattern": Field(str, "v*", "The release tags, as a git glob.", nonempty=True, expected='a glob like "v*"'),
        "build": Field(
            str,
            help="A command that rebuilds the artifact in a git worktree of the release when it is in neither git "
            "nor DVC's cache or remote, e.g. dvc repro train (default: none, a missing artifact fails).",
            nonempty=True,
            expected=_COMMAND,
        ),
        "atol": Field(
            float,
            help="Absolute tolerance on the golden suites, read at the release's tag (default: the golden table's "
            "there, else 1e-4): a later change cannot loosen how a release is judged.",
            minimum=0,
        ),
        "rtol": Field(
            float,
            help="Relative tolerance on the golden suites, read at the release's tag (default: the golden table's "
            "there, else 1e-3).",
            minimum=0,
        ),
        "exporter": Field(
            str, "torchscript", "The torch.onnx exporter of today's serving path.", choices=("torchscript", "dynamo")
        ),
        "opset": Field(int, help="The ONNX opset (default: the exporter's).", minimum=7),
        "timeout-minutes": Field(
            (int, float), 10, "A safety cap on fetching the artifact from DVC (never a verdict).", exclusive_minimum=0
        ),
    },
    help="ci-checks rollback: the drill that loads a previous release's model in today's serving path.",
    fill=True,
)
SCORE = Table(
    {
        "manual": MapOf(
            Field(str, nonempty=True, expected="a string path (the document that records the test's results)"),
            help="ML Test Score tests the team runs by hand, by test id, with the document that records their "
            'results: {model-3 = "reports/tuning.md"} (ids data-1 ... monitoring-7, see ci-checks score). Each '
            "counts half a point.",
            expected='a table of test-id = "document path"',
        ),
    },
    help="ci-checks score: the ML Test Score scorecard.",
    fill=True,
)
_ON_FAIL = ("error", "warning", "off")
DATA_COLUMN = Table(
    {
        "dtype": Field(str, help="The pandas dtype, e.g. int64, float64, str, bool, category.", nonempty=True),
        "nullable": Field(bool, help="Whether missing values are allowed (default: false)."),
        "min": Field(float, help="The smallest allowed value."),
        "max": Field(float, help="The largest allowed value."),
        "isin": ArrayOf(Field((str, int, float)), help="The allowed values (categories)."),
        "unique": Field(bool, help="Every value differs."),
        "matches": Field(str, help="A regular expression every value matches.", nonempty=True),
        "regex": Field(bool, help="The column name is a regular expression, matching every column it names."),
        "required": Field(bool, help="The column must be there (default: true)."),
    },
    help="Inline expectations of one column, turned into a pandera Column.",
    ref="data-column",
)
DATASET = Table(
    {
        "path": Field(str, help="The data file (CSV, TSV, Parquet, JSON lines), relative to this file.", nonempty=True),
        "format": Field(
            str, help="The file format (default: from the extension).", choices=("csv", "tsv", "parquet", "jsonl")
        ),
        "schema": Field(
            str,
            help="A pandera schema: FILE.py:NAME (relative to this file) of a DataFrameSchema or DataFrameModel.",
            nonempty=True,
        ),
        "columns": MapOf(DATA_COLUMN, help="Inline column expectations: [...datasets.NAME.columns.COLUMN]."),
        "strict": Field(bool, help="Columns the schema does not name are an error (default: false)."),
        "backend": Field(
            str,
            "pandas",
            "pandas (chunked) or polars (pandera's Polars backend, on a lazy scan).",
            choices=("pandas", "polars"),
        ),
        "spec": Field(
            str,
            help="Tensor, image or text data: FILE.py:FUNCTION returning a torch Dataset, an iterable of samples, or "
            "a dict of them by split.",
            nonempty=True,
        ),
        "label": Field(
            str, help="The label column (tabular data): its classes are checked and tracked.", nonempty=True
        ),
        "key": _strings("The key column(s): unique, and the identity of a row across splits (default: its content)."),
        "split": Field(
            str, help="The split it is (train, validation, test): splits are checked for leakage.", nonempty=True
        ),
        "classes": ArrayOf(Field((str, int)), help="Every label allowed, each of which must be present."),
        "min-class-share": Field(
            float, help="Each class holds at least this share of the rows.", minimum=0.0, exclusive_maximum=1.0
        ),
        "max-class-share": Field(float, help="No class holds more than this share of the rows.", minimum=0.0),
        "duplicates": Field(str, "error", "Exact duplicate rows or samples: error, warning or off.", choices=_ON_FAIL),
        "near-duplicates": Field(
            str,
            "warning",
            "Samples alike after coarse quantization (spec data): error, warning or off.",
            choices=_ON_FAIL,
        ),
        "leakage": Field(str, "error", "Rows shared with another split: error, warning or off.", choices=_ON_FAIL),
        "shape": ArrayOf(Field(int, minimum=-1), help="The shape of every sample's input (-1: any size)."),
        "dtype": Field(str, help="The dtype of every sample's input, e.g. float32 or uint8.", nonempty=True),
        "min": Field(float, help="The smallest value a sample's input may hold."),
        "max": Field(float, help="The largest value a sample's input may hold."),
        "finite": Field(bool, True, "Sample inputs hold no NaN or infinity."),
        "max-rows": Field(int, 0, "Read at most this many rows or samples (0: all).", minimum=0),
    },
    help="A dataset: a file with a pandera schema or inline expectations, or a spec for tensor, image or text data.",
    ref="dataset",
)
DATA = Table(
    {
        "datasets": MapOf(DATASET, help="The datasets by name: [tool.ci-checks.data.datasets.NAME]."),
        "chunk-rows": Field(int, 250_000, "Rows read at a time (the memory bound).", minimum=1),
        "sample-size": Field(int, 20_000, "Rows per numeric column kept for quantiles and drift tests.", minimum=100),
        "psi": Field(
            float, 0.2, "A feature drifts when its PSI reaches this and its test is significant.", exclusive_minimum=0
        ),
        "alpha": Field(
            float,
            0.01,
            "Significance of the drift tests (KS, chi-square), Holm-corrected across a dataset's features.",
            exclusive_minimum=0,
            exclusive_maximum=0.5,
        ),
        "null-rate": Field(
            float,
            0.02,
            "A rise of the null rate by this much (and significant) is drift.",
            minimum=0.0,
            exclusive_maximum=1.0,
        ),
        "class-share": Field(
            float,
            0.05,
            "A class share moving by this much (and significant) is drift.",
            minimum=0.0,
            exclusive_maximum=1.0,
        ),
        "size-change": Field(float, 0.5, "Warn when the row count changes by this fraction.", exclusive_minimum=0),
        "fail-on": Field(
            str,
            "drift",
            "What fails data-stats against the base: drift, or never (report only).",
            choices=("drift", "never"),
        ),
    },
    help="ci-checks data-check and data-stats: dataset expectations, statistics and drift against the base branch.",
    fill=True,
)
QUALITY = Table(
    {
        "spec": Field(
            str,
            help="The quality spec: FILE.py:FUNCTION (next to this file) or package.module:FUNCTION.",
            nonempty=True,
        ),
        "min": MapOf(
            Field(float),
            help="Floors of metrics (accuracy, f1, precision, recall; for loss a ceiling) that the whole evaluation "
            "set and every slice of min-slice-size examples must meet: {accuracy = 0.8}.",
            expected="a table of metric = number",
        ),
        "max-failure-rate": Field(
            float, 0.1, "The share of its cases a behavioural test may fail.", minimum=0.0, exclusive_maximum=1.0
        ),
        "failure-rates": MapOf(
            Field(float, minimum=0.0, exclusive_maximum=1.0),
            help='Per behavioural test, over max-failure-rate: {"inv-jitter" = 0.02}.',
            expected="a table of test name = share",
        ),
        "max-ece": Field(float, help="The expected calibration error allowed (default: not gated).", minimum=0.0),
        "target-precision": Field(
            float,
            0.95,
            "The precision the confidence threshold must reach (the threshold is reported).",
            exclusive_minimum=0.0,
        ),
        "min-coverage": Field(
            float,
            help="Fail when the threshold that reaches target-precision accepts fewer than this share of examples.",
            minimum=0.0,
        ),
        "min-slice-size": Field(int, 30, "Slices with fewer examples are shown but not judged.", minimum=1),
        "alpha": Field(
            float,
            0.05,
            "Significance against the base, Holm-corrected across every slice, test and suite.",
            exclusive_minimum=0,
            exclusive_maximum=0.5,
        ),
        "abs-tol": Field(
            float, 0.01, "A change of a slice metric or the ECE within this is never a regression.", minimum=0
        ),
        "rate-tol": Field(
            float,
            0.02,
            "A behavioural test's or named suite's failure rate rising by less than this is never a regression.",
            minimum=0,
        ),
        "fail-on": Field(
            str,
            "regressed",
            "What fails against the base: regressed, or never (report only).",
            choices=("regressed", "never"),
        ),
        "bootstrap": Field(int, 2000, "Bootstrap resamples for confidence intervals and paired tests.", minimum=100),
        "suites-dir": Field(
            str, "golden", "Where the named suites of hard examples live (NAME.quality.json).", nonempty=True
        ),
        "base": Field(
            str,
            help="The revision to compare with when --base is not given (default: none, no comparison).",
            nonempty=True,
        ),
        "fetch-depth": Field(
            int, 50, "How deep to fetch a missing base in a shallow clone; 0 never fetches.", minimum=0
        ),
    },
    help="ci-checks quality: per-slice metrics, behavioural tests, calibration and hard examples, against the base.",
    fill=True,
)
# The commands' own tables, by name.
TABLES: dict[str, Table] = {
    "compare": COMPARE,
    "golden": GOLDEN,
    "rerun": RERUN,
    "rollback": ROLLBACK,
    "score": SCORE,
    "data": DATA,
    "quality": QUALITY,
}


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
        "rollback": ROLLBACK,
        "score": SCORE,
        "data": DATA,
        "quality": QUALITY,
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

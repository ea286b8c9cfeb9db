"""data-check on files written the way projects write them (pandas to_csv, to_parquet, to_json lines), each
expectation on a case it must pass and one it must fail."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ci_checks.main import main


def table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.integers(18, 90, n),
            "income": rng.lognormal(10, 1, n).round(2),
            "country": rng.choice(["DE", "FR", "IT"], n),
            "label": rng.choice([0, 1], n, p=[0.6, 0.4]),
        }
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def configure(root: Path, toml: str) -> None:
    (root / "pyproject.toml").write_text(textwrap.dedent(toml))


def check(*args: str) -> tuple[int, dict[str, Any]]:
    code = main(["data-check", "--quiet", "--format", "json", "--output", "results.json", *args])
    doc = json.loads(Path("results.json").read_text()) if Path("results.json").exists() else {}
    return code, doc


def failures(doc: dict[str, Any], dataset: str) -> dict[str, dict[str, Any]]:
    for c in doc["checks"]:
        if c["figures"].get("dataset") == dataset:
            return {f["expectation"]: f for f in c["figures"]["failures"]}
    raise AssertionError(f"no results for {dataset}")


INLINE = """
    [tool.ci-checks.data.datasets.train]
    path = "train.csv"
    label = "label"
    key = "id"
    classes = [0, 1]
    [tool.ci-checks.data.datasets.train.columns.age]
    dtype = "int64"
    min = 0
    max = 120
    [tool.ci-checks.data.datasets.train.columns.country]
    isin = ["DE", "FR", "IT"]
"""


def test_inline_expectations_pass_on_clean_data(project):
    table().to_csv("train.csv", index=False)
    configure(project, INLINE)
    code, doc = check()
    assert code == 0, doc
    assert failures(doc, "train") == {}


def test_inline_expectations_name_the_expectation_count_and_first_rows(project):
    df = table()
    df.loc[[7, 9, 300], "age"] = [-1, 150, 999]
    df.loc[12, "country"] = "Germany"
    df.to_csv("train.csv", index=False)
    configure(project, INLINE)
    code, doc = check()
    assert code == 1
    found = failures(doc, "train")
    age = found["column 'age': less_than_or_equal_to(120.0)"]
    assert (age["count"], age["rows"]) == (2, [9, 300])
    assert found["column 'age': greater_than_or_equal_to(0.0)"]["rows"] == [7]
    assert found["column 'country': isin(['DE', 'FR', 'IT'])"]["values"] == ["Germany"]


def test_duplicates_and_a_repeated_key_are_found_across_chunks(project):
    df = table(1000)
    df = pd.concat([df, df.iloc[[3]]], ignore_index=True)  # row 1000 repeats row 3, in another chunk
    df.loc[500, "id"] = 10  # a key repeated, the rest of the row differs
    df.to_csv("train.csv", index=False)
    configure(project, "[tool.ci-checks.data]\nchunk-rows = 128\n" + INLINE)
    code, doc = check()
    assert code == 1
    found = failures(doc, "train")
    assert found["no duplicate rows"]["rows"] == [1000] and found["no duplicate rows"]["values"] == ["repeats row 3"]
    assert found["column 'id': unique"]["count"] == 2  # rows 500 and 1000 repeat earlier ids


def test_labels_outside_the_classes_a_dropped_class_and_the_class_share(project):
    df = table(600)
    df.loc[df["label"] == 1, "label"] = 2  # class 1 renamed: an unknown label, and class 1 is gone
    df.to_csv("train.csv", index=False)
    configure(
        project,
        INLINE.replace("classes = [0, 1]\n", "classes = [0, 1]\nmax-class-share = 0.9\nmin-class-share = 0.45\n"),
    )
    code, doc = check()
    assert code == 1
    found = failures(doc, "train")
    assert found["label 'label': in classes ['0', '1']"]["count"] > 100
    assert found["label 'label': every class present"]["values"] == ["class 1 absent"]
    assert "label 'label': class share within [0.45, 0.9]" in found


def test_leakage_between_splits_by_key_and_by_content(project):
    df = table(500)
    df.iloc[:400].to_csv("train.csv", index=False)
    test = pd.concat([df.iloc[400:], df.iloc[[5, 6]]])  # two training rows leaked into the test split
    test.to_csv("test.csv", index=False)
    test.drop(columns="id").to_csv("valid.csv", index=False)
    configure(
        project,
        """
        [tool.ci-checks.data.datasets.train]
        path = "train.csv"
        split = "train"
        key = "id"
        [tool.ci-checks.data.datasets.test]
        path = "test.csv"
        split = "test"
        key = "id"
        [tool.ci-checks.data.datasets.valid]
        path = "valid.csv"
        split = "validation"
        """,
    )
    code, doc = check()
    assert code == 1
    by_key = failures(doc, "test")["no rows shared with split 'train' (train, by key id or content)"]
    assert (by_key["count"], by_key["rows"]) == (2, [100, 101])
    # valid.csv has no id column: its rows are compared by content, without the others' keys.
    by_content = failures(doc, "valid")
    assert by_content["no rows shared with split 'train' (train, by content)"]["rows"] == [100, 101]
    assert by_content["no rows shared with split 'test' (test, by content)"]["count"] == 102
    test.drop(columns="id").to_csv("valid.csv", index=False)
    df.iloc[400:].to_csv("test.csv", index=False)
    configure(project, (project / "pyproject.toml").read_text().replace('split = "validation"', 'split = "test"'))
    assert check()[0] == 1  # valid is a test split too, and still holds two training rows


SCHEMA = """
import pandera.pandas as pa
from pandera.typing import Series


class Train(pa.DataFrameModel):
    id: Series[int] = pa.Field(unique=True)
    age: Series[int] = pa.Field(in_range={"min_value": 0, "max_value": 120})
    income: Series[float] = pa.Field(nullable=False, gt=0)
    country: Series[str] = pa.Field(isin=["DE", "FR", "IT"])
    label: Series[int]

    @pa.dataframe_check
    def adults_earn(cls, df):
        return (df["age"] >= 18) | (df["income"] < 1e5)


schema = pa.DataFrameSchema({"f_.*": pa.Column(float, pa.Check.ge(0), regex=True)})
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_a_pandera_model_checks_each_format(project, fmt):
    (project / "schema.py").write_text(SCHEMA)
    df = table(300)
    writers = {
        "csv": lambda d: d.to_csv("train.csv", index=False),
        "parquet": lambda d: d.to_parquet("train.parquet", index=False),
        "jsonl": lambda d: d.to_json("train.jsonl", orient="records", lines=True),
    }
    configure(project, f'[tool.ci-checks.data.datasets.train]\npath = "train.{fmt}"\nschema = "schema.py:Train"\n')
    writers[fmt](df)
    assert check()[0] == 0
    df.loc[4, "income"] = None
    df.loc[8, ["age", "income"]] = [10, 2e5]
    writers[fmt](df)
    code, doc = check()
    assert code == 1
    found = failures(doc, "train")
    assert found["column 'income': not_nullable"]["rows"] == [4]
    assert found["adults_earn"]["rows"] == [8]


def test_regex_columns_of_a_pandera_schema(project):
    (project / "schema.py").write_text(SCHEMA)
    df = pd.DataFrame({"f_a": [0.5, 1.0], "f_b": [2.0, -3.0], "other": ["x", "y"]})
    df.to_csv("wide.csv", index=False)
    configure(project, '[tool.ci-checks.data.datasets.wide]\npath = "wide.csv"\nschema = "schema.py:schema"\n')
    code, doc = check()
    assert code == 1
    assert failures(doc, "wide")["column 'f_b': greater_than_or_equal_to(0)"]["rows"] == [1]


def test_polars_backend_on_a_lazy_scan(project):
    (project / "schema.py").write_text(
        "import pandera.polars as pa\n"
        "import polars as pl\n"
        "schema = pa.DataFrameSchema({'age': pa.Column(pl.Int64, pa.Check.in_range(0, 120)), "
        "'country': pa.Column(pl.String, pa.Check.isin(['DE', 'FR', 'IT']))})\n"
    )
    df = table(300)
    df.to_parquet("train.parquet", index=False)
    configure(
        project,
        '[tool.ci-checks.data.datasets.train]\npath = "train.parquet"\n'
        'schema = "schema.py:schema"\nbackend = "polars"\n',
    )
    assert check()[0] == 0
    df.loc[[3, 250], "age"] = 200
    df.to_parquet("train.parquet", index=False)
    code, doc = check()
    assert code == 1
    assert failures(doc, "train")["column 'age': in_range(0, 120)"]["count"] == 2


SPEC = """
import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset


def images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 16, 16, generator=g)
    y = torch.randint(0, 4, (64,), generator=g)
    return {"train": TensorDataset(x[:48], y[:48]), "test": TensorDataset(x[48:], y[48:])}


def broken_images():
    splits = images()
    x, y = splits["train"].tensors
    x, y = x.clone(), y.clone()
    x[5], y[5] = x[3], y[3]                # an exact duplicate
    x[7] = (x[6] + 0.001).clamp(0, 1)      # a near duplicate
    x[9, 0, 0, 0] = float("nan")
    x[11] *= 255                           # a unit change
    tx, ty = splits["test"].tensors
    return {"train": TensorDataset(x, y), "test": TensorDataset(torch.cat([tx, x[:2]]), torch.cat([ty, y[:2]]))}


class Texts(Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"text": self.rows[i][0], "label": self.rows[i][1]}


def texts():
    return Texts([("A fine film.", 1), ("Dull and long", 0), ("a FINE film!", 1)])


def arrays(path):
    data = np.load(path)
    return zip(data["x"], data["y"])


def raises():
    raise RuntimeError("the bucket is not mounted")


def stream():
    for i in range(10):
        if i == 4:
            raise OSError("corrupt shard 4")
        yield np.full(3, float(i)), i % 2
"""

IMAGES = """
    [tool.ci-checks.data.datasets.images]
    spec = "data_spec.py:{fn}"
    shape = [3, 16, 16]
    dtype = "float32"
    min = 0
    max = 1
    classes = [0, 1, 2, 3]
"""


def test_image_samples_pass_when_clean(project):
    (project / "data_spec.py").write_text(SPEC)
    configure(project, IMAGES.format(fn="images"))
    code, doc = check()
    assert code == 0, doc
    assert [c["check"] for c in doc["checks"]] == ["data: images/train", "data: images/test"]


def test_image_samples_fail_with_the_sample_indices(project):
    (project / "data_spec.py").write_text(SPEC)
    configure(project, IMAGES.format(fn="broken_images"))
    code, doc = check()
    assert code == 1
    train = failures(doc, "images/train")
    assert train["inputs finite (no NaN or infinity)"]["rows"] == [9]
    assert train["input values <= 1"]["rows"] == [11]
    assert train["no duplicate samples"]["rows"] == [5]
    assert train["no near-duplicate samples"]["rows"] == [7] and train["no near-duplicate samples"]["severity"] == (
        "warning"
    )
    leak = failures(doc, "images/test")["no samples shared with split 'train' (images/train, by content)"]
    assert (leak["count"], leak["rows"]) == (2, [16, 17])


def test_text_near_duplicates_and_a_dataset_given_its_file(project):
    (project / "data_spec.py").write_text(SPEC)
    np.savez("arrays.npz", x=np.eye(3, dtype=np.float32)[[0, 1, 2, 1]], y=np.array([0, 1, 2, 1]))
    configure(
        project,
        """
        [tool.ci-checks.data.datasets.texts]
        spec = "data_spec.py:texts"
        near-duplicates = "error"
        [tool.ci-checks.data.datasets.arrays]
        spec = "data_spec.py:arrays"
        path = "arrays.npz"
        shape = [3]
        classes = [0, 1, 2]
        """,
    )
    code, doc = check()
    assert code == 1
    assert failures(doc, "texts")["no near-duplicate samples"]["values"] == ["is alike sample 0"]
    assert failures(doc, "arrays")["no duplicate samples"]["rows"] == [3]


def test_a_spec_that_raises_while_iterating_is_a_finding(project):
    (project / "data_spec.py").write_text(SPEC)
    configure(project, '[tool.ci-checks.data.datasets.s]\nspec = "data_spec.py:stream"\n')
    code, doc = check()
    assert code == 1
    found = failures(doc, "s")["samples can be read"]
    assert found["rows"] == [4] and "corrupt shard 4" in found["values"][0]


BAD = [
    pytest.param('path = "missing.csv"', "missing.csv: data file not found", id="missing-file"),
    pytest.param('path = "data.csv"\nlabel = "target"', "label column 'target'", id="missing-label-column"),
    pytest.param('path = "data.csv"\nschema = "nope.py:S"', "schema file nope.py not found", id="missing-schema-file"),
    pytest.param('path = "data.csv"\nschema = "schema.py:Nope"', "defines no 'Nope'", id="missing-schema-name"),
    pytest.param('path = "data.csv"\nschema = "schema.py:np"', "not a pandera DataFrameSchema", id="not-a-schema"),
    pytest.param('path = "data.csv"\nschema = "schema.py:S"', "column 'height' that the schema", id="missing-column"),
    pytest.param('path = "data.txt"', "cannot tell the data format", id="unknown-format"),
    pytest.param('path = "bad.parquet"', "cannot read it as parquet", id="corrupt-parquet"),
    pytest.param('spec = "data_spec.py:raises"', "the bucket is not mounted", id="spec-raises"),
    pytest.param('spec = "data_spec.py:arrays"', "needs arguments", id="spec-signature"),
    pytest.param('spec = "data_spec.py:images"\npath = "data.csv"', "takes no argument", id="spec-no-path-arg"),
]


@pytest.mark.parametrize(("dataset", "message"), BAD)
def test_bad_input_is_exit_2_with_one_line(project, capsys, dataset, message):
    (project / "data_spec.py").write_text(SPEC)
    (project / "schema.py").write_text(
        "import numpy as np\nimport pandera.pandas as pa\n" "S = pa.DataFrameSchema({'height': pa.Column(float)})\n"
    )
    table(20).to_csv("data.csv", index=False)
    (project / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    configure(project, f"[tool.ci-checks.data.datasets.d]\n{dataset}\n")
    capsys.readouterr()
    assert main(["data-check", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err


def test_config_errors_are_exit_2(project, capsys):
    configure(project, "[tool.ci-checks.data]\npsi = -1\n")
    assert main(["data-check", "--quiet"]) == 2
    configure(project, '[tool.ci-checks.data.datasets.d]\npath = "a.csv"\nduplicates = "maybe"\n')
    assert main(["data-check", "--quiet"]) == 2
    configure(project, "[tool.ci-checks.data]\n")
    assert main(["data-check", "--quiet"]) == 2
    assert "no datasets" in capsys.readouterr().err
    table(5).to_csv("a.csv", index=False)
    configure(project, '[tool.ci-checks.data.datasets.d]\npath = "a.csv"\n')
    assert main(["data-check", "--quiet", "nope"]) == 2
    assert "no dataset named 'nope'" in capsys.readouterr().err


def test_strict_refuses_a_column_the_schema_does_not_name(project):
    (project / "schema.py").write_text(SCHEMA)
    table(50).assign(extra=1.0).to_csv("train.csv", index=False)
    configure(project, '[tool.ci-checks.data.datasets.train]\npath = "train.csv"\nschema = "schema.py:Train"\n')
    assert check()[0] == 0
    configure(project, (project / "pyproject.toml").read_text() + "strict = true\n")
    code, doc = check()
    assert code == 1 and failures(doc, "train")["column_in_schema"]["values"] == ["extra"]

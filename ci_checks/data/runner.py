"""What data-check and data-stats do, as functions that return a results Report."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ci_checks._errors import UserError
from ci_checks.data.config import DRIFT_KEYS, Dataset, datasets, drift_settings
from ci_checks.data.scan import Scanned, check_leakage, scan
from ci_checks.render import plain
from ci_checks.results import CheckResult, Kind, Report


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    from ci_checks.config import validate_section

    return dict(config.get("data") or validate_section("data"))


def _check_max_rows(max_rows: int | None) -> None:
    if max_rows is not None and max_rows < 0:
        raise UserError(f"--max-rows must be 0 (all) or more, got {max_rows}")


def _limited(found: list[Dataset], max_rows: int | None) -> list[Dataset]:
    if max_rows is None:
        return found
    for ds in found:
        ds.settings["max-rows"] = max_rows
    return found


def check_datasets(
    config: Mapping[str, Any], config_path: str | None, names: Sequence[str], *, max_rows: int | None, quiet: bool
) -> Report:
    """data-check: every dataset's expectations, and leakage between the splits."""
    _check_max_rows(max_rows)
    settings = _settings(config)
    where = config_path or "pyproject.toml"
    found = _limited(datasets(config, config_path, names), max_rows)
    scanned = [s for ds in found for s in scan(ds, settings, where=where, stats=False, quiet=quiet)]
    check_leakage(scanned)
    report = Report(command="data-check", subject={"config": config_path, "datasets": [s.ds.name for s in scanned]})
    report.checks += [expectations_result(s) for s in scanned]
    return report


def expectations_result(s: Scanned) -> CheckResult:
    """The expectations of one dataset as a check: one finding per expectation that failed."""
    failures = list(s.failures)
    result = CheckResult(
        f"data: {s.ds.name}",
        duration_s=s.seconds,
        figures={
            "kind": Kind.DATA.value,
            "role": "expectations",
            "dataset": s.ds.name,
            "rows": s.rows,
            "unit": s.unit,
            "failures": [
                {
                    "expectation": f.expectation,
                    "count": f.count,
                    "unit": f.unit,
                    "rows": f.rows,
                    "values": f.values,
                    "severity": f.severity,
                }
                for f in failures
            ],
        },
    )
    for f in failures:
        if f.severity != "off":
            result.add(f.severity, f.message(s.ds.name), reason="expectation", expectation=f.expectation, count=f.count)
    errors = sum(f.severity == "error" for f in failures)
    result.summary = (
        f"{errors} expectation(s) failed in {s.rows:,} {s.unit}s"
        if errors
        else f"{s.rows:,} {s.unit}s, expectations hold" + (f" ({len(failures)} warning(s))" if failures else "")
    )
    return result


# ---------------------------------------------------------------- data-stats


def stats_datasets(
    config: Mapping[str, Any],
    config_path: str | None,
    names: Sequence[str],
    *,
    max_rows: int | None,
    quiet: bool,
    base: str | None,
    base_stats: str | None,
    policy_from: str,
    history: str | None,
    record: bool,
    stats_dir: str | None,
    log: Callable[[str], None],
) -> Report:
    """data-stats: a snapshot of each dataset; with a base, their drift against it; with history, the trend."""
    _check_max_rows(max_rows)
    settings = _settings(config)
    where = config_path or "pyproject.toml"
    found = _limited(datasets(config, config_path, names), max_rows)
    repo, head_sha = _repo(config_path)
    scanned = [
        s
        for ds in found
        for s in scan(ds, settings, where=where, stats=True, checks=False, quiet=quiet, subject={"sha": head_sha})
    ]
    report = Report(command="data-stats", subject={"config": config_path, "head": {"sha": head_sha}})
    snapshots = {s.ds.name: s.snapshot for s in scanned if s.snapshot is not None}
    for s in scanned:
        report.checks.append(_stats_result(s))
    gate = drift_settings(config)
    if base is not None or base_stats is not None:
        base_snaps, label, gate, note = _base_snapshots(
            config, config_path, found, settings, repo, base, base_stats, policy_from, quiet=quiet, log=log
        )
        report.subject["base"] = {"label": label, "policy": gate, "note": note}
        from ci_checks.data.drift import compare

        for name, snap in snapshots.items():
            if name in base_snaps:
                try:
                    report.checks.append(compare(name, base_snaps[name], snap, gate, base_label=label))
                except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
                    if base_stats is None:
                        raise  # both snapshots are this run's own: a bug of the kit
                    raise UserError(
                        f"{base_stats}: the statistics of {name!r} are malformed ({type(e).__name__}: {e}); "
                        "regenerate them with data-stats --output on main"
                    ) from None
            else:
                missing = CheckResult(
                    f"drift: {name}", figures={"kind": Kind.DATA.value, "role": "drift", "dataset": name}
                )
                missing.summary = f"no base data at {label}"
                missing.add("notice", f"{name}: {base_snaps.get('_why_' + name, 'no base data')}", reason="drift-base")
                report.checks.append(missing)
        if note:
            report.checks[-1].add("notice", note, reason="policy-source")
    if history:
        from ci_checks.data.history import add_trends, load_history, save

        add_trends(report, load_history(history, log=log))
        if record:
            save(history, report, head_sha)
    if stats_dir:
        _write_snapshots(stats_dir, snapshots)
    return report


def _stats_result(s: Scanned) -> CheckResult:
    snap = s.snapshot or {}
    result = CheckResult(
        f"stats: {s.ds.name}",
        duration_s=s.seconds,
        figures={"kind": Kind.DATA.value, "role": "stats", "dataset": s.ds.name, "snapshot": snap},
    )
    columns = snap.get("columns") or {}
    result.summary = f"{s.rows:,} {s.unit}s, {len(columns)} feature(s)"
    return result


def _repo(config_path: str | None) -> tuple[Any, str | None]:
    from ci_checks.compare.base import find_repo

    try:
        repo = find_repo(os.path.dirname(os.path.abspath(config_path or "pyproject.toml")))
    except UserError:
        return None, None
    return repo, (repo.head_sha if repo else None)


def _base_snapshots(
    config: Mapping[str, Any],
    config_path: str | None,
    found: list[Dataset],
    settings: dict[str, Any],
    repo: Any,
    base: str | None,
    base_stats: str | None,
    policy_from: str,
    *,
    quiet: bool,
    log: Callable[[str], None],
) -> tuple[dict[str, Any], str, dict[str, Any], str | None]:
    """The base's snapshots by dataset, how to name the base, the gate that judges, and a note about the gate."""
    head_gate = drift_settings(config)
    if base_stats is not None:
        saved, policy, label = _saved(base_stats)
        if policy_from == "head" or policy is None:
            note = None if policy_from == "head" else f"{base_stats} records no policy: this tree's decides"
            return saved, label, head_gate, note
        from ci_checks.config import validate_section

        recorded = {k: v for k, v in policy.items() if k in DRIFT_KEYS and v is not None}
        try:
            gate = drift_settings({"data": validate_section("data", recorded, where=f"{base_stats} policy")})
        except UserError as e:
            return saved, label, head_gate, f"the saved policy is not valid for this version ({e}): this tree's decides"
        return saved, label, gate, None
    from ci_checks.compare.base import resolve_base, short
    from ci_checks.data.base import base_config, fetch_file

    if repo is None:
        raise UserError("data-stats --base needs a git repository; run it in a checkout, or pass --base-stats FILE")
    resolved = resolve_base(repo, base or None, fetch_depth=50, env=os.environ, log=log)
    if resolved is None:
        return {}, "no base", head_gate, "no base revision yet"
    ref, sha = resolved
    label = f"{short(ref, repo.remote)} ({sha[:7]})"
    base_cfg, note = base_config(repo, sha, config_path, label)
    gate = head_gate if policy_from == "head" else drift_settings(base_cfg or {})
    base_sets = ((base_cfg or {}).get("data") or {}).get("datasets") or {}
    snaps: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ci-checks-data-base-") as folder:
        for ds in found:
            # What to read comes from the base's own declaration of the dataset when it has one.
            declared = base_sets.get(ds.name)
            base_ds = Dataset(
                ds.name,
                ds.root,
                {**ds.settings, **({"path": declared["path"]} if declared and declared.get("path") else {})},
            )
            if base_ds.path is None:
                snaps["_why_" + ds.name] = "a spec without a path: its base data cannot be read (pass --base-stats)"
                continue
            copy, why = fetch_file(repo, sha, base_ds.path, folder, label=label, log=log)
            if copy is None:
                snaps["_why_" + ds.name] = why
                continue
            log(f"{ds.name}: base data from {why} at {label}")
            for s in scan(
                base_ds, settings, where=f"{label}", stats=True, quiet=quiet, path=copy, subject={"sha": sha}
            ):
                if s.snapshot is not None:
                    snaps[s.ds.name] = s.snapshot
    return snaps, label, gate, note


def _saved(path: str) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """Snapshots and policy from a data-stats results file saved on main."""
    from ci_checks.results import load_report

    doc = load_report(path)
    if doc.command != "data-stats":
        raise UserError(
            f"{path}: these are '{doc.command}' results, not data-stats results; write them with data-stats --output"
        )
    snaps = {
        str(c.figures.get("dataset")): c.figures["snapshot"]
        for c in doc.checks
        if c.kind is Kind.DATA and c.figures.get("role") == "stats" and isinstance(c.figures.get("snapshot"), dict)
    }
    policy = doc.subject.get("policy")
    sha = (doc.subject.get("head") or {}).get("sha") if isinstance(doc.subject.get("head"), dict) else None
    label = f"saved stats ({str(sha)[:7]})" if sha else "saved stats"
    return snaps, dict(policy) if isinstance(policy, dict) else None, label


def _write_snapshots(folder: str, snapshots: Mapping[str, Any]) -> None:
    from ci_checks import _io

    try:
        os.makedirs(folder, exist_ok=True)
        for name, snap in snapshots.items():
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            _io.write_text(os.path.join(folder, f"{safe}.json"), json.dumps(snap, indent=1, allow_nan=False) + "\n")
    except OSError as e:
        raise UserError(f"--stats-dir {folder}: cannot write the snapshots there ({e.strerror or e})") from None


def log_to_stderr(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(f"ci-checks data-stats: {plain(message)}", file=sys.stderr)

    return log

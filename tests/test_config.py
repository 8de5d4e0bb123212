"""params.yaml errors: one line naming the file and the key, exit code 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops.cli import app
from mlops.config import load_params
from mlops.errors import ParamsInvalid
from tests.helpers import REPO, runner


def _params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_repo_params_load() -> None:
    p = load_params(REPO / "params.yaml")
    assert p.data.target == "churn"
    assert "tenure" in p.data.features and "churn" not in p.data.features


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsInvalid, match=r"params\.yaml: file not found"):
        load_params(tmp_path / "params.yaml")


def test_not_yaml(tmp_path: Path) -> None:
    p = _write(tmp_path, "data: [unclosed\n  target: churn\n")
    with pytest.raises(ParamsInvalid, match=r"params\.yaml: line \d+: not valid YAML"):
        load_params(p)


def test_top_level_not_mapping(tmp_path: Path) -> None:
    with pytest.raises(ParamsInvalid, match="top level must be a mapping"):
        load_params(_write(tmp_path, "- a\n- b\n"))


def test_unknown_key(tmp_path: Path) -> None:
    d = _params()
    d["train"]["max_dept"] = 3
    with pytest.raises(ParamsInvalid, match=r"params\.yaml: unknown key 'train\.max_dept'"):
        load_params(_write(tmp_path, d))


def test_unknown_section(tmp_path: Path) -> None:
    d = _params()
    d["trian"] = {}
    with pytest.raises(ParamsInvalid, match=r"unknown key 'trian'"):
        load_params(_write(tmp_path, d))


def test_wrong_type(tmp_path: Path) -> None:
    d = _params()
    d["train"]["n_estimators"] = "many"
    with pytest.raises(ParamsInvalid, match=r"params\.yaml: key 'train\.n_estimators': .*integer.*'many'"):
        load_params(_write(tmp_path, d))


def test_out_of_range(tmp_path: Path) -> None:
    d = _params()
    d["split"]["test_size"] = 1.5
    with pytest.raises(ParamsInvalid, match=r"key 'split\.test_size': value out of range: .*less than 1.*1\.5"):
        load_params(_write(tmp_path, d))


def test_missing_required_section(tmp_path: Path) -> None:
    d = _params()
    del d["data"]
    with pytest.raises(ParamsInvalid, match=r"missing key 'data'"):
        load_params(_write(tmp_path, d))


def test_bad_column_type(tmp_path: Path) -> None:
    d = _params()
    d["data"]["columns"]["tenure"]["type"] = "integer"
    with pytest.raises(ParamsInvalid, match=r"key 'data\.columns\.tenure\.type'"):
        load_params(_write(tmp_path, d))


def test_target_not_declared(tmp_path: Path) -> None:
    d = _params()
    d["data"]["target"] = "cancelled"
    with pytest.raises(ParamsInvalid, match="target 'cancelled' is not declared"):
        load_params(_write(tmp_path, d))


def test_cli_reports_params_error_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _params()
    d["train"]["max_depth"] = 0
    _write(tmp_path, d)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["stage", "train"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("error: params.yaml: key 'train.max_depth': value out of range")
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in result.output


def test_cli_missing_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["stage", "prepare"])
    assert result.exit_code == 1
    assert "error: params.yaml: file not found" in result.output


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("train", "n_estimators", True, "valid integer"),
    ("train", "max_depth", "4", "valid integer"),
    ("split", "test_size", "0.2", "valid number"),
    ("split", "seed", False, "valid integer"),
])
def test_no_silent_coercion(tmp_path: Path, section: str, key: str, value: object, expected: str) -> None:
    d = _params()
    d[section][key] = value
    with pytest.raises(ParamsInvalid, match=rf"key '{section}\.{key}': Input should be a {expected}"):
        load_params(_write(tmp_path, d))


def test_yaml_error_without_position_reads_cleanly(tmp_path: Path) -> None:
    p = tmp_path / "params.yaml"
    p.write_bytes(b"\x00\x01binary")
    with pytest.raises(ParamsInvalid) as info:
        load_params(p)
    assert "::" not in str(info.value)
    assert str(info.value).startswith(f"{p}:")


@pytest.mark.parametrize(("text", "message"), [
    ('gates: {test.auc: {min: "a"}}', r"key 'gates\.test\.auc\.min': Input should be a valid number"),
    ("gates: {test.auc: {mni: 0.8}}", r"unknown key 'gates\.test\.auc\.mni'"),
    ("gates: [test.auc]", r"key 'gates' must map metric names to rules"),
    ("registry: {artifact: 5}", r"key 'registry\.artifact': Input should be a valid string"),
    ("report: {headline: [a]}", r"key 'report\.headline'"),
    ("gates: {a: [unclosed", r"line 1: not valid YAML"),
])
def test_sections_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    from mlops.config import load_sections

    with pytest.raises(ParamsInvalid, match=rf"params\.yaml: {message}"):
        load_sections(_write(tmp_path, text))


def test_sections_read_only_their_own_keys(tmp_path: Path) -> None:
    from mlops.config import load_sections

    other = "model: {alpha: 0.5, anything: [1, 2]}\ngates: {quality.accuracy: {min: 0.5}}\n"
    sections = load_sections(_write(tmp_path, other))
    assert sections.gates["quality.accuracy"].min == 0.5
    assert sections.registry.artifact is None  # resolved from dvc.yaml by mlops.project
    assert load_sections(tmp_path / "absent.yaml").gates == {}


def test_exponent_floats_are_numbers_as_in_yaml_1_2(tmp_path: Path) -> None:
    from mlops.config import load_sections

    text = (REPO / "params.yaml").read_text().replace("learning_rate: 0.03", "learning_rate: 3e-2")
    assert load_params(_write(tmp_path, text)).train.learning_rate == 0.03
    assert load_sections(_write(tmp_path, "gates:\n  test.auc: {max_drop: 5e-3}\n")).gates["test.auc"].max_drop == 0.005


def test_empty_keys_mean_their_defaults(tmp_path: Path) -> None:
    from mlops.config import load_sections

    text = (REPO / "params.yaml").read_text()
    text = text.replace("  warn_only: []", "  warn_only:")
    text = text[: text.index("gates:")] + "gates:\n  test.roc_auc:\n" + text[text.index("report:"):]
    p = _write(tmp_path, text)
    params = load_params(p)
    assert params.validate_.warn_only == ()
    assert params.gates["test.roc_auc"].min is None
    assert load_sections(p).gates == dict(params.gates)

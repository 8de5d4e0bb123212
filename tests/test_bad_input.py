"""Bad input to the server and the monitor is a one-line error (exit 1), never a traceback (exit 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.cli import app
from mlops.monitor.sources import MonitorInputError, parse_duration, read_labels
from tests.helpers import runner


@pytest.mark.parametrize("text", ["99999999999d", "1e300w"])
def test_a_huge_since_is_an_input_error(text: str) -> None:
    with pytest.raises(MonitorInputError, match="too large"):
        parse_duration(text)


def test_labels_that_are_not_utf8_are_an_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_bytes(b"request_id,label\n\xff\xfe,1\n")
    with pytest.raises(MonitorInputError, match=r"labels\.csv: not UTF-8 text \(byte \d+\)"):
        read_labels(bad, None, None)


def test_monitor_reports_into_a_folder_that_cannot_exist_is_an_input_error(tmp_path: Path) -> None:
    from mlops.monitor.render import write_reports

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(MonitorInputError, match=r"--out .*a-file/reports: cannot create it"):
        write_reports(None, blocker / "reports", plots=False)  # type: ignore[arg-type]  # fails before reading it


@pytest.mark.parametrize("flag", ["--store", "--log-dir"])
def test_serve_with_a_folder_that_cannot_be_created_exits_1(tmp_path: Path, flag: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    args = ["serve", "--port", "0", "--store", str(tmp_path / "store"), flag, str(blocker / "sub")]
    result = runner.invoke(app, args, env={"MLOPS_ADMIN_TOKEN": "t" * 32})
    assert result.exit_code == 1, result.output
    assert f"error: {flag} {blocker / 'sub'}: cannot create it" in result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize(("shape", "data"), [([2], [["a"], "a"]), ([1, 1], [[["a"]]]), ([2], [["a"], ["a"]]),
                                             ([2, 1], [["a", "a"], ["a"]])])
def test_v2_data_nested_unlike_its_shape_is_refused(shape: list[int], data: list[object]) -> None:
    from mlops.features import FeatureError, encode_v2, parse_model_interface

    iface = parse_model_interface({"features": [{"name": "plan", "type": "category", "categories": ["a", "b"]}],
                             "output": {"name": "probability"}})
    with pytest.raises(FeatureError, match="input 'plan'"):
        encode_v2(iface, [{"name": "plan", "datatype": "BYTES", "shape": shape, "data": data}])
    matrix, _ = encode_v2(iface, [{"name": "plan", "datatype": "BYTES", "shape": [2, 1], "data": [["a"], ["b"]]}])
    assert matrix.tolist() == [[0.0], [1.0]]

"""The model interface and the one encoder shared by the stages and the server (mlops.features)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.errors import MlopsError, ModelInvalid
from mlops.features import (
    FeatureError,
    bind_booster,
    encode_columns,
    encode_frame,
    encode_records,
    encode_v2,
    make_predictor,
    parse_model_interface,
    predict,
    read_model_interface,
    records_from_frame,
)

SCHEMA: dict[str, Any] = {
    "format": "mlops.feature-schema/1",
    "features": [
        {"name": "tenure", "type": "int"},
        {"name": "charges", "type": "float"},
        {"name": "senior", "type": "bool"},
        {"name": "contract", "type": "category", "categories": ["Month-to-month", "One year", "Two year"]},
    ],
    "output": {"name": "probability", "type": "float"},
}
IFACE = parse_model_interface(SCHEMA)
GOOD = {"tenure": 12, "charges": 70.25, "senior": False, "contract": "One year"}


def rec(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not Ellipsis}


# --- the interface -----------------------------------------------------------------------------------------------


def test_interface_round_trip_and_v2_metadata() -> None:
    assert IFACE.names == ["tenure", "charges", "senior", "contract"]
    assert IFACE.output_name == "probability"
    assert IFACE.to_json() == SCHEMA
    meta = IFACE.v2_inputs()
    assert [(m["name"], m["datatype"], m["shape"]) for m in meta] == [
        ("tenure", "INT64", [-1]), ("charges", "FP64", [-1]), ("senior", "BOOL", [-1]), ("contract", "BYTES", [-1])]
    assert meta[3]["parameters"]["categories"] == ["Month-to-month", "One year", "Two year"]
    assert IFACE.xgboost_types() == ["int", "float", "int", "c"]


@pytest.mark.parametrize(("raw", "needle"), [
    ([], "expected a JSON object"),
    ({"format": "other/9", "features": []}, "key 'format'"),
    ({"features": []}, "non-empty list"),
    ({"features": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}]}, "declared twice"),
    ({"features": [{"name": "a", "type": "text"}]}, "type 'text'"),
    ({"features": [{"name": "a", "type": "category"}]}, "needs 'categories'"),
    ({"features": [{"name": "a", "type": "category", "categories": ["x", "x"]}]}, "twice"),
    ({"features": [{"name": "a", "type": "int", "categories": ["x"]}]}, "cannot have 'categories'"),
    ({"features": [{"type": "int"}]}, "features[0].name"),
])
def test_interface_errors_name_the_key(raw: Any, needle: str) -> None:
    with pytest.raises(ModelInvalid, match=r"schema\.json") as exc:
        parse_model_interface(raw, "schema.json")
    assert needle in exc.value.message


def test_read_interface_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(ModelInvalid, match="not found"):
        read_model_interface(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ModelInvalid, match="not valid JSON"):
        read_model_interface(tmp_path / "bad.json")


# --- encoding ----------------------------------------------------------------------------------------------------


def test_records_encode_to_float32_with_pandas_category_codes() -> None:
    records = [rec(), rec(tenure=0, charges=3, senior=True, contract="Two year"),
               rec(contract="Month-to-month", senior=1, tenure=5.0, extra_id="ignored")]
    m = encode_records(IFACE, records)
    assert m.dtype == np.float32 and m.shape == (3, 4)
    codes = pd.Categorical([r["contract"] for r in records], categories=SCHEMA["features"][3]["categories"]).codes
    assert m[:, 3].tolist() == codes.astype(float).tolist()
    assert m[:, 0].tolist() == [12.0, 0.0, 5.0]
    assert m[:, 1].tolist() == [np.float32(70.25), 3.0, np.float32(70.25)]
    assert m[:, 2].tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize(("record", "field", "needle"), [
    (rec(tenure=...), "tenure", "'tenure' is missing"),
    (rec(tenure="12"), "tenure", "expected int, got '12' (str)"),
    (rec(tenure=1.5), "tenure", "expected int"),
    (rec(tenure=True), "tenure", "expected int"),
    (rec(tenure=None), "tenure", "got null"),
    (rec(charges="70"), "charges", "expected float"),
    (rec(charges=math.nan), "charges", "finite"),
    (rec(charges=math.inf), "charges", "finite"),
    (rec(charges=-math.inf), "charges", "finite"),
    (rec(charges=False), "charges", "expected float"),
    (rec(senior=2), "senior", "expected bool"),
    (rec(senior="yes"), "senior", "expected bool"),
    (rec(contract="Three year"), "contract", "unknown category"),
    (rec(contract=1), "contract", "expected a string category"),
    (rec(contract=["One year"]), "contract", "expected a string category"),
])
def test_record_errors_name_row_and_field(record: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(FeatureError) as exc:
        encode_records(IFACE, [rec(), record])
    assert exc.value.field == field and exc.value.row == 1
    assert f"row 1: field '{field}'" in exc.value.message and needle in exc.value.message
    assert isinstance(exc.value, MlopsError)


@pytest.mark.parametrize(("records", "needle"), [
    ([], "empty"), ({"tenure": 1}, "must be a list"), ([["a"]], "row 0: expected an object"), (None, "list")])
def test_record_batch_shape_errors(records: Any, needle: str) -> None:
    with pytest.raises(FeatureError, match=needle):
        encode_records(IFACE, records)


def _v2(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": m["name"], "datatype": m["datatype"], "shape": [len(records)],
             "data": [r[m["name"]] for r in records]} for m in IFACE.v2_inputs()]


def test_v2_columns_encode_exactly_as_records() -> None:
    records = [rec(), rec(tenure=40, charges=19.5, senior=True, contract="Two year")]
    m, columns = encode_v2(IFACE, _v2(records))
    assert np.array_equal(m, encode_records(IFACE, records))
    assert columns["contract"] == ["One year", "Two year"]
    nested = _v2(records)
    for t in nested:
        t["shape"] = [2, 1]
        t["data"] = [[v] for v in t["data"]]
    assert np.array_equal(encode_v2(IFACE, nested)[0], m)
    # an integer tensor for a float feature is fine; its values still follow the feature's rules
    alt = _v2(records)
    alt[1] = {"name": "charges", "datatype": "INT32", "shape": [2], "data": [70, 19]}
    assert encode_v2(IFACE, alt)[0][:, 1].tolist() == [70.0, 19.0]


def _mutate(field: str, **changes: Any) -> list[dict[str, Any]]:
    inputs = _v2([rec(), rec()])
    for t in inputs:
        if t["name"] == field:
            t.update(changes)
    return inputs


@pytest.mark.parametrize(("inputs", "field", "needle"), [
    ([t for t in _v2([rec()]) if t["name"] != "charges"], "charges", "input 'charges' is missing"),
    ([*_v2([rec()]), {"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["red"]}], "colour",
     "not an input of the model"),
    ([*_v2([rec()]), _v2([rec()])[0]], "tenure", "given twice"),
    (_mutate("tenure", datatype="BYTES"), "tenure", "datatype 'BYTES' does not fit a int feature"),
    (_mutate("contract", datatype="FP32"), "contract", "use BYTES"),
    (_mutate("tenure", datatype=["INT64"]), "tenure", "datatype ['INT64'] does not fit"),
    (_mutate("tenure", shape=[1, 2]), "tenure", "shape must be [rows] or [rows, 1]"),
    (_mutate("tenure", shape=[3]), "tenure", "says 3 values, 'data' has 2"),
    (_mutate("tenure", shape=[-1]), "tenure", "shape must be"),
    (_mutate("tenure", shape=[1], data=[1]), "charges", "has 2 rows, input 'tenure' has 1"),
    (_mutate("contract", data=["One year", "Nine year"]), "contract", "input 'contract' row 1: unknown category"),
    (_mutate("charges", data=[1.0, math.nan]), "charges", "row 1: expected a finite number"),
    (_mutate("tenure", data="12"), "tenure", "'data' must be a list"),
])
def test_v2_errors_name_the_input(inputs: list[dict[str, Any]], field: str, needle: str) -> None:
    with pytest.raises(FeatureError) as exc:
        encode_v2(IFACE, inputs)
    assert exc.value.field == field
    assert needle in exc.value.message


@pytest.mark.parametrize("inputs", [None, [], {"name": "tenure"}, [5], [{"datatype": "INT64"}]])
def test_v2_malformed_inputs(inputs: Any) -> None:
    with pytest.raises(FeatureError):
        encode_v2(IFACE, inputs)


NUMERIC = parse_model_interface({**SCHEMA, "features": [
    *SCHEMA["features"][:3], {"name": "score", "type": "float"}]})


def _numeric_v2(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [{"name": m["name"], "datatype": m["datatype"], "shape": [len(rows)], "data": [r[j] for r in rows]}
            for j, m in enumerate(NUMERIC.v2_inputs())]


def test_one_matrix_tensor_of_a_numeric_model_is_the_per_input_form() -> None:
    """MLServer's and Triton's clients send a numeric model's rows as one [rows, k] tensor: the same matrix and the
    same raw columns (so the same request log) as one tensor per input, flat or one list per row, from any numeric
    datatype (a float holding an int or a bool input is made that int)."""
    rows = [[12, 70.25, False, 0.5], [40, 19.5, True, -3.0]]
    m, columns = encode_v2(NUMERIC, _numeric_v2(rows))
    flat = [{"name": "input-0", "datatype": "FP64", "shape": [2, 4],
             "data": [12.0, 70.25, 0.0, 0.5, 40.0, 19.5, 1.0, -3.0]}]
    got, got_columns = encode_v2(NUMERIC, flat)
    assert np.array_equal(got, m)
    assert got_columns == columns == {"tenure": [12, 40], "charges": [70.25, 19.5], "senior": [0, 1],
                                      "score": [0.5, -3.0]}
    assert [type(v) for v in got_columns["tenure"]] == [int, int]
    nested = [{**flat[0], "data": [[12.0, 70.25, 0.0, 0.5], [40.0, 19.5, 1.0, -3.0]]}]
    assert np.array_equal(encode_v2(NUMERIC, nested)[0], m)
    ints = [{"name": "x", "datatype": "INT64", "shape": [1, 4], "data": [12, 70, 1, 3]}]
    assert encode_v2(NUMERIC, ints)[0].tolist() == [[12.0, 70.0, 1.0, 3.0]]


@pytest.mark.parametrize(("iface", "tensor", "needle"), [
    (NUMERIC, {"shape": [1, 3], "data": [1.0, 2.0, 0.0]}, "has shape [rows, 4] (its inputs, in order: tenure, "),
    (NUMERIC, {"shape": [2, 4], "data": [1.0] * 7}, "shape [2, 4] says 8 values, 'data' has 7"),
    (NUMERIC, {"shape": [2, 4], "data": [[1.0] * 4, [1.0] * 3]}, "the nesting of 'data' does not match"),
    (NUMERIC, {"shape": [1, 4], "datatype": "BYTES", "data": ["1"] * 4}, "datatype 'BYTES' is not numeric"),
    (NUMERIC, {"shape": [1, 4], "data": "1,2,3,4"}, "'data' must be a list"),
    (NUMERIC, {"shape": [1, 4], "datatype": ["FP64"], "data": [1.0] * 4}, "datatype ['FP64'] is not numeric"),
    (IFACE, {"shape": [1, 4], "data": [1.0] * 4}, "input 'contract' is a category: send one tensor per input"),
])
def test_a_matrix_tensor_that_does_not_fit_names_the_tensor(iface: Any, tensor: dict[str, Any], needle: str
                                                            ) -> None:
    with pytest.raises(FeatureError) as exc:
        encode_v2(iface, [{"name": "input-0", "datatype": "FP64", **tensor}])
    assert exc.value.field == "input-0" and needle in exc.value.message, exc.value.message


@pytest.mark.parametrize(("data", "field", "needle"), [
    ([12.5, 70.25, 0.0, 0.5], "tenure", "input 'tenure' row 0: expected int"),
    ([12.0, 70.25, 0.5, 0.5], "senior", "input 'senior' row 0: expected bool"),
    ([12.0, math.inf, 0.0, 0.5], "charges", "input 'charges' row 0: expected a finite number"),
])
def test_a_bad_value_in_a_matrix_tensor_names_its_input_and_row(data: list[float], field: str, needle: str) -> None:
    with pytest.raises(FeatureError) as exc:
        encode_v2(NUMERIC, [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": data}])
    assert exc.value.field == field and needle in exc.value.message, exc.value.message


def test_one_tensor_that_is_no_matrix_is_still_an_unknown_input() -> None:
    with pytest.raises(FeatureError, match="'input-0' is not an input of the model"):
        encode_v2(NUMERIC, [{"name": "input-0", "datatype": "FP64", "shape": [4], "data": [1.0] * 4}])


def test_frame_goes_through_the_same_rules() -> None:
    frame = pd.DataFrame({
        "tenure": pd.Series([1, 2], dtype="int64"), "charges": [1.5, 2.25],
        "senior": pd.Series([0, 1], dtype="int64"),
        "contract": pd.Categorical(["Two year", "One year"], categories=["Month-to-month", "One year", "Two year"]),
        "label": ["x", "y"],
    })
    m = encode_frame(IFACE, frame)
    assert np.array_equal(m, encode_records(IFACE, records_from_frame(IFACE, frame)))
    assert m[:, 3].tolist() == [2.0, 1.0]
    frame.loc[1, "contract"] = None
    with pytest.raises(FeatureError, match="input 'contract' row 1"):
        encode_frame(IFACE, frame)
    with pytest.raises(FeatureError, match="column 'tenure'"):
        encode_frame(IFACE, frame.drop(columns=["tenure"]))


def test_columns_need_every_feature_and_rows() -> None:
    with pytest.raises(FeatureError, match="input 'senior' is missing"):
        encode_columns(IFACE, {"tenure": [1], "charges": [1.0], "contract": ["One year"]})
    with pytest.raises(FeatureError, match="no rows"):
        encode_columns(IFACE, {"tenure": [], "charges": [], "senior": [], "contract": []})


# --- the model: encoder + predictor against xgboost's own DataFrame path ------------------------------------------


@pytest.fixture(scope="module")
def small_model() -> tuple[Any, pd.DataFrame]:
    """A small real xgboost model on pandas categoricals (the way train fits), and its training frame."""
    import xgboost as xgb

    rng = np.random.default_rng(7)
    n = 600
    frame = pd.DataFrame({
        "tenure": rng.integers(0, 72, n), "charges": rng.uniform(18, 120, n).round(2),
        "senior": rng.integers(0, 2, n),
        "contract": pd.Categorical(rng.choice(["Month-to-month", "One year", "Two year"], n),
                                   categories=["Month-to-month", "One year", "Two year"]),
    })
    y = ((frame["contract"] == "Month-to-month") & (frame["charges"] > 60)).astype(int) ^ (rng.random(n) < 0.1)
    model = xgb.XGBClassifier(n_estimators=30, max_depth=3, enable_categorical=True, tree_method="hist",
                              max_cat_to_onehot=1, random_state=0, n_jobs=1)
    model.fit(frame, y)
    return model.get_booster(), frame


def test_serving_path_equals_the_dataframe_path(small_model: tuple[Any, pd.DataFrame]) -> None:
    import xgboost as xgb

    booster, frame = small_model
    offline = booster.predict(xgb.DMatrix(frame, enable_categorical=True))
    bind_booster(booster, IFACE, "small")
    matrix = encode_records(IFACE, records_from_frame(IFACE, frame))
    fast = make_predictor(booster)
    assert fast.__name__ == "fast"  # the C fast path is taken with the locked xgboost
    assert np.array_equal(fast(matrix), offline)
    assert np.array_equal(predict(booster, matrix), offline)
    assert np.array_equal(fast(matrix[:1]), offline[:1])


def test_bind_booster_refuses_another_models_interface(small_model: tuple[Any, pd.DataFrame]) -> None:
    booster = small_model[0].copy()
    other = parse_model_interface({**SCHEMA, "features": [dict(f) for f in SCHEMA["features"]]})
    other_names = parse_model_interface({**SCHEMA, "features": [{**f, "name": f["name"] + "_x"}
                                                                for f in SCHEMA["features"]]})
    bind_booster(booster, other, "ok")
    with pytest.raises(ModelInvalid, match="trained on features"):
        bind_booster(booster, other_names, "model.ubj")
    swapped = parse_model_interface({**SCHEMA, "features": [SCHEMA["features"][0], SCHEMA["features"][1],
                                                      {"name": "senior", "type": "category", "categories": ["n", "y"]},
                                                      {"name": "contract", "type": "int"}]})
    with pytest.raises(ModelInvalid, match="categorical features differ"):
        bind_booster(booster, swapped, "model.ubj")


@pytest.mark.slow
def test_churn_model_serving_path_equals_offline_on_whole_test_split(request: pytest.FixtureRequest) -> None:
    """The real churn model: the shared encoder + prediction call equal xgboost's DataFrame path on every test row,
    and evaluate's predictions.csv and train's golden.json hold those values."""
    import json

    import xgboost as xgb

    from mlops.config import load_params
    from mlops.stages.data import features_and_label, load_prepared

    root: Path = request.getfixturevalue("_trained_template")
    params = load_params(root / "params.yaml")
    x, _ = features_and_label(load_prepared(root / "data/prepared/test.csv", params.data), params.data)
    iface = read_model_interface(root / "models/feature_schema.json")
    booster = xgb.Booster()
    booster.load_model(str(root / "models/model.ubj"))
    offline = booster.predict(xgb.DMatrix(x[iface.names], enable_categorical=True))
    bind_booster(booster, iface)
    served = make_predictor(booster)(encode_records(iface, records_from_frame(iface, x)))
    assert len(served) == len(x) > 1000
    assert np.max(np.abs(served.astype(np.float64) - offline)) <= 1e-6
    csv = pd.read_csv(root / "reports/predictions.csv")
    assert csv["row"].tolist() == list(range(len(x)))
    assert np.max(np.abs(csv["probability"].to_numpy() - offline)) <= 1e-6
    golden = json.loads((root / "models/golden.json").read_text())
    assert len(golden["records"]) == len(golden["predictions"]) == 32
    got = make_predictor(booster)(encode_records(iface, golden["records"]))
    assert np.max(np.abs(got - np.array(golden["predictions"]))) <= 1e-6
    assert golden["predictions"] == [float(v) for v in offline[golden["rows"]]]

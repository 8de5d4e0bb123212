"""The peers' Open Inference Protocol clients, each in its default mode, driven by the tests (tests/serve_helpers.py
`run_clients`). Runs in the clients' own venv (tritonclient[grpc,http] 2.73, kserve 0.21, numpy; no mlops): they pin
protobuf<7, the project's venv has protobuf 7.

stdin: a JSON list of ops; stdout: a JSON list of results, one per op.
- (tritonclient.grpc and kserve cannot share a process: send one family per run.)
- {"op": "infer", "client": C, "url": "127.0.0.1:PORT", "model": NAME, "version"?: V, "inputs": [{name, datatype,
  shape, data}], "outputs"?: [names], "request_id"?: ID}, C one of
  - "triton-grpc": tritonclient.grpc, numpy inputs (raw_input_contents, its only way);
  - "triton-http": tritonclient.http with its defaults: binary tensors in (set_data_from_numpy) and out
    (InferRequestedOutput's binary_data=True, or binary_data_output when no output is named);
  - "triton-http-json": tritonclient.http with binary_data=False both ways; it sends no Content-Type then, which the
    server refuses (415: a body with no type is what a cross-site fetch can send), so it is given one;
  - "kserve-grpc": kserve.InferenceGRPCClient, numpy inputs (raw_input_contents);
  - "kserve-grpc-lists": kserve.InferenceGRPCClient, list inputs (typed `contents`).
  -> {"outputs": {name: flat list}, "shapes": {name: shape}, "datatypes": {name: datatype}, "model_version", "id"}
     or {"error": message, "status": code}
- {"op": "health", "client": "triton-grpc" | "kserve-grpc", "url", "model"} -> {"live", "ready", "model_ready"} and,
  for triton-grpc, "server_metadata" and "model_metadata" as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np

NP = {"INT64": np.int64, "INT32": np.int32, "FP64": np.float64, "FP32": np.float32, "BOOL": np.bool_}


def array(t: dict[str, Any]) -> Any:
    if t["datatype"] == "BYTES":
        return np.array([str(v).encode() for v in t["data"]], dtype=np.object_).reshape(t["shape"])
    return np.array(t["data"], dtype=NP[t["datatype"]]).reshape(t["shape"])


def plain(a: Any) -> list[Any]:
    flat = np.asarray(a).reshape(-1).tolist()
    return [v.decode() if isinstance(v, bytes) else v for v in flat]


def triton(op: dict[str, Any]) -> dict[str, Any]:
    kind = op["client"]
    if kind == "triton-grpc":
        import tritonclient.grpc as mod
    else:
        import tritonclient.http as mod
    from tritonclient.utils import InferenceServerException

    client = mod.InferenceServerClient(op["url"])
    if op["op"] == "health":
        out = {"live": client.is_server_live(), "ready": client.is_server_ready(),
               "model_ready": client.is_model_ready(op["model"])}
        if kind == "triton-grpc":
            out["server_metadata"] = client.get_server_metadata(as_json=True)
            out["model_metadata"] = client.get_model_metadata(op["model"], as_json=True)
        return out
    binary = kind != "triton-http-json"
    inputs = []
    for t in op["inputs"]:
        i = mod.InferInput(t["name"], list(t["shape"]), t["datatype"])
        if kind == "triton-grpc":
            i.set_data_from_numpy(array(t))
        else:
            i.set_data_from_numpy(array(t), binary_data=binary)
        inputs.append(i)
    outputs = None
    if op.get("outputs"):
        outputs = [mod.InferRequestedOutput(n) if kind == "triton-grpc" else
                   mod.InferRequestedOutput(n, binary_data=binary) for n in op["outputs"]]
    headers = {"x-request-id": op["request_id"]} if op.get("request_id") else {}
    if kind == "triton-http-json":
        headers["Content-Type"] = "application/json"
    try:
        res = client.infer(op["model"], inputs, model_version=op.get("version", ""), outputs=outputs,
                           headers=headers or None)
    except InferenceServerException as exc:
        return {"error": exc.message(), "status": str(exc.status())}
    resp = res.get_response(as_json=True) if kind == "triton-grpc" else res.get_response()
    described = resp["outputs"]
    return {"outputs": {o["name"]: plain(res.as_numpy(o["name"])) for o in described},
            "shapes": {o["name"]: [int(d) for d in o["shape"]] for o in described},
            "datatypes": {o["name"]: o["datatype"] for o in described},
            "model_version": resp.get("model_version"), "id": resp.get("id")}


async def kserve(op: dict[str, Any]) -> dict[str, Any]:
    import grpc
    from kserve import InferenceGRPCClient, InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    client = InferenceGRPCClient(url=op["url"])
    try:
        if op["op"] == "health":
            return {"live": await client.is_server_live(), "ready": await client.is_server_ready(),
                    "model_ready": await client.is_model_ready(op["model"])}
        inputs = []
        for t in op["inputs"]:
            if op["client"] == "kserve-grpc":
                i = InferInput(t["name"], list(t["shape"]), t["datatype"])
                i.set_data_from_numpy(array(t))
            else:
                i = InferInput(t["name"], list(t["shape"]), t["datatype"], data=list(t["data"]))
            inputs.append(i)
        outputs = [RequestedOutput(n) for n in op["outputs"]] if op.get("outputs") else None
        request = InferRequest(model_name=op["model"], infer_inputs=inputs, model_version=op.get("version"),
                               request_outputs=outputs)
        headers = (("x-request-id", op["request_id"]),) if op.get("request_id") else None
        try:
            res = await client.infer(request, headers=headers)
        except grpc.RpcError as exc:
            return {"error": exc.details(), "status": str(exc.code())}
        return {"outputs": {o.name: plain(o.as_numpy()) for o in res.outputs},
                "shapes": {o.name: list(o.shape) for o in res.outputs},
                "datatypes": {o.name: o.datatype for o in res.outputs},
                "model_version": res.model_version, "id": res.id}
    finally:
        await client.close()


def main() -> None:
    results = []
    for op in json.loads(sys.stdin.read()):
        results.append(asyncio.run(kserve(op)) if op["client"].startswith("kserve") else triton(op))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

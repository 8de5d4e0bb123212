"""The server's OpenAPI 3.0 document (GET /openapi.json): the Open Inference Protocol V2 REST paths with the
schemas of its specification (open_inference_rest.yaml, KServe), the records endpoint, /metrics and the admin API
(bearer token)."""

from __future__ import annotations

from typing import Any

from mlops import __version__
from mlops.features import INT_LIMIT, ModelInterface

_FLOAT32_MAX = 3.4028234663852886e38


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = _ref("error")
_ERRORS: dict[str, Any] = {
    "400": _json(_ERR, "Bad input: the message names the field (and the row)"),
    "404": _json(_ERR, "Unknown model, version or path"),
    "405": _json(_ERR, "Method not allowed"),
    "408": _json(_ERR, "Request head or body not received in time (--header-timeout, --body-timeout)"),
    "413": _json(_ERR, "Body over the size limit (--max-body-bytes), or more rows than --max-rows"),
    "415": _json(_ERR, "The body is not declared as JSON (Content-Type: application/json)"),
    "503": _json(_ERR, "Model not ready, or the worker's connection limit reached (--max-connections)"),
    "default": _json(_ERR, "Any other error, as {\"error\": message}"),
}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "Model name"}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "Model version, exactly as loaded (e.g. v1.1.0)"}
_RID = {"name": "x-request-id", "in": "header", "required": False, "schema": {"type": "string"},
        "description": "The client's own id: echoed as x-client-request-id and logged beside the server's id when "
                       "it is printable ASCII of at most 128 characters; the same id always gets the same version "
                       "while a canary runs. It is never the request-log's join key"}
_HEADERS = {"x-model-version": {"description": "The version that answered", "schema": {"type": "string"}},
            "x-request-id": {"description": "The id the server issued for this request: its request-log lines "
                                            "carry it, and late labels quote it (with the row index)",
                             "schema": {"type": "string"}},
            "x-client-request-id": {"description": "The client's x-request-id, when it sent a valid one",
                                    "schema": {"type": "string"}}}


def _with_headers(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "headers": _HEADERS}


def _model_paths(prefix: str, params: list[dict[str, Any]], label: str) -> dict[str, Any]:
    return {
        f"{prefix}": {"parameters": params, "get": {
            "summary": f"Model metadata ({label})", "operationId": f"model-metadata{label.replace(' ', '-')}",
            "tags": ["Open Inference Protocol"],
            "responses": {"200": _with_headers(_json(_ref("metadata_model_response"),
                                                     "Inputs (one per raw feature) and outputs")), **_ERRORS}}},
        f"{prefix}/ready": {"parameters": params, "get": {
            "summary": f"Model ready ({label})", "operationId": f"model-ready{label.replace(' ', '-')}",
            "tags": ["Open Inference Protocol"],
            "responses": {"200": _json(_ref("model_ready"), "Ready"), **_ERRORS}}},
        f"{prefix}/infer": {"parameters": [*params, _RID], "post": {
            "summary": f"Inference ({label})", "operationId": f"model-infer{label.replace(' ', '-')}",
            "tags": ["Open Inference Protocol"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("inference_request")}}},
            "responses": {"200": _with_headers(_json(_ref("inference_response"), "Predictions")), **_ERRORS}}},
    }


def _value_schema(ftype: str, categories: tuple[str, ...] | None) -> dict[str, Any]:
    if ftype == "category":
        return {"type": "string", "enum": list(categories or ())}
    if ftype == "bool":
        return {"type": "boolean"}
    if ftype == "int":
        return {"type": "integer", "minimum": -INT_LIMIT, "maximum": INT_LIMIT}
    return {"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX}


def _record_schema(iface: ModelInterface | None) -> dict[str, Any]:
    """A record of the served model (its features, types and categories), or any record when the server serves
    several models or none yet."""
    if iface is None:
        return {"type": "object", "additionalProperties": {"oneOf": [
            {"type": "number"}, {"type": "string"}, {"type": "boolean"}]}}
    return {"type": "object", "required": iface.names,
            "properties": {f.name: _value_schema(f.type, f.categories) for f in iface.features}}


def _records_path(params: list[dict[str, Any]], label: str) -> dict[str, Any]:
    return {"parameters": [*params, _RID], "post": {
        "summary": f"Predict from records ({label})", "operationId": f"records-predict{label.replace(' ', '-')}",
        "tags": ["Records"],
        "description": "JSON records keyed by the raw feature names, as an application sends them; the same "
                       "encoding as training. Keys that are not features are ignored.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("records_request")}}},
        "responses": {"200": _with_headers(_json(_ref("records_response"), "One prediction per record")),
                      **_ERRORS}}}


def _admin_op(summary: str, op_id: str, body: dict[str, Any] | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary, "operationId": op_id, "tags": ["Admin"], "security": [{"bearerAuth": []}],
        "responses": {
            "200": _json(_ref("admin_state"), "Applied by every worker: the new serving state"),
            "401": _json(_ERR, "No or wrong bearer token, or no admin token configured"),
            "404": _json(_ERR, "Unknown model, or a version not in the store"),
            "409": _json(_ERR, "Refused: checksum mismatch, failed warm-up, or nothing to promote/roll back"),
            "429": _json(_ERR, "Too many refused tokens from this address: wait Retry-After seconds"),
            "503": _json(_ERR, "Written, but not applied by every worker within the admin timeout"),
            "default": _json(_ERR, "Any other error"),
        }}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _examples(paths: dict[str, Any], iface: ModelInterface) -> None:
    """Valid request bodies for the served model (what the documentation shows, and what a fuzzer tries first)."""
    record = iface.example_record()
    v2 = {"id": "example-1", "inputs": [{**{k: v for k, v in m.items() if k != "parameters"}, "shape": [1],
                                          "data": [record[m["name"]]]} for m in iface.v2_inputs()]}
    for path, item in paths.items():
        post = item.get("post")
        if post is None or "requestBody" not in post:
            continue
        content = post["requestBody"]["content"]["application/json"]
        if path.endswith("/infer"):
            content["example"] = v2
        elif path.endswith("/predict"):
            content["example"] = {"instances": [record]}


def document(iface: ModelInterface | None = None) -> dict[str, Any]:
    """The OpenAPI document of everything the server answers; IFACE (the model it serves, when it serves one)
    makes the records schema and the examples exact."""
    error_only = {"default": _json(_ERR, "Error")}
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "Server metadata", "operationId": "server-metadata",
                        "tags": ["Open Inference Protocol"],
                        "responses": {"200": _json(_ref("metadata_server_response"), "Server metadata"),
                                      **error_only}}},
        "/v2/health/live": {"get": {"summary": "Server live", "operationId": "server-live",
                                    "tags": ["Open Inference Protocol"],
                                    "responses": {"200": _json(_ref("health"), "Live"), **error_only}}},
        "/v2/health/ready": {"get": {
            "summary": "Server ready: every model served has a verified, warmed-up version",
            "operationId": "server-ready", "tags": ["Open Inference Protocol"],
            "responses": {"200": _json(_ref("health"), "Ready"), "503": _json(_ref("health"), "Not ready"),
                          **error_only}}},
        **_model_paths("/v2/models/{name}", [_NAME], "routed"),
        **_model_paths("/v2/models/{name}/versions/{version}", [_NAME, _VERSION], "version"),
        "/v1/models/{name}/predict": _records_path([_NAME], "routed"),
        "/v1/models/{name}/versions/{version}/predict": _records_path([_NAME, _VERSION], "version"),
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "tags": ["Operations"],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}},
                                           **error_only}}},
        "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "tags": ["Operations"],
                                  "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0"), **error_only}}},
        "/admin/models/{name}": {"parameters": [_NAME], "get": {
            **_admin_op("Serving state and workers", "admin-state", None),
            "description": "What the model serves (stable, canary and its share, shadow, previous) and the "
                           "generation each worker process applied."}},
        "/admin/models/{name}/load": {"parameters": [_NAME], "post": {
            **_admin_op("Load a version from the store as stable, canary or shadow", "admin-load",
                        _ref("admin_load")),
            "description": "Verifies the store's sha256 and warms the version up before anything changes; "
                           "answers once every worker serves it."}},
        "/admin/models/{name}/promote": {"parameters": [_NAME], "post": _admin_op(
            "Promote the canary to stable (the old stable becomes previous)", "admin-promote", None)},
        "/admin/models/{name}/rollback": {"parameters": [_NAME], "post": _admin_op(
            "Drop canary and shadow; with neither, bring the previous stable back", "admin-rollback", None)},
        "/admin/models/{name}/canary": {"parameters": [_NAME], "post": _admin_op(
            "Set the canary's share of traffic", "admin-canary", _ref("admin_canary"))},
    }
    tensor_data: dict[str, Any] = {"title": "tensor_data", "type": "array", "items": {"anyOf": [
        _ref("tensor_data"), {"type": "number"}, {"type": "string"}, {"type": "boolean"}]}}
    schemas: dict[str, Any] = {
        "error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "health": {"type": "object", "properties": {"live": {"type": "boolean"}, "ready": {"type": "boolean"}}},
        "model_ready": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                                         "ready": {"type": "boolean"}},
                        "required": ["name", "ready"]},
        # The Open Inference Protocol's own schemas (open_inference_rest.yaml).
        "metadata_server_response": {
            "type": "object", "required": ["name", "version", "extensions"],
            "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                           "extensions": {"type": "array", "items": {"type": "string"}}}},
        "metadata_model_response": {
            "type": "object", "required": ["name", "platform"],
            "properties": {"name": {"type": "string"}, "versions": {"type": "array", "items": {"type": "string"}},
                           "platform": {"type": "string"},
                           "inputs": {"type": "array", "items": _ref("metadata_tensor")},
                           "outputs": {"type": "array", "items": _ref("metadata_tensor")},
                           "properties": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "metadata_tensor": {
            "type": "object", "required": ["name", "datatype", "shape"],
            "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                           "shape": {"type": "array", "items": {"type": "integer"}},
                           "parameters": _ref("parameters")}},
        "inference_request": {
            "type": "object", "required": ["inputs"],
            "properties": {"id": {"type": "string"}, "parameters": _ref("parameters"),
                           "inputs": {"type": "array", "items": _ref("request_input")},
                           "outputs": {"type": "array", "items": _ref("request_output")}}},
        "parameters": {"type": "object"},
        "request_input": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string"}, "parameters": _ref("parameters"),
                           "data": _ref("tensor_data")}},
        "tensor_data": tensor_data,
        "request_output": {"type": "object", "required": ["name"],
                           "properties": {"name": {"type": "string"}, "parameters": _ref("parameters")}},
        "response_output": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string"}, "parameters": _ref("parameters"),
                           "data": _ref("tensor_data")}},
        "inference_response": {
            "type": "object", "required": ["model_name", "outputs"],
            "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                           "id": {"type": "string"}, "parameters": _ref("parameters"),
                           "outputs": {"type": "array", "items": _ref("response_output")}}},
        "inference_error_response": {"type": "object", "properties": {"error": {"type": "string"}}},
        # Records and admin.
        "records_request": {
            "type": "object", "required": ["instances"],
            "properties": {"instances": {"type": "array", "minItems": 1, "items": _record_schema(iface)}}},
        "records_response": {
            "type": "object", "required": ["predictions", "model_name", "model_version"],
            "properties": {"predictions": {"type": "array", "items": {"type": "number"}},
                           "model_name": {"type": "string"}, "model_version": {"type": "string"}}},
        "admin_load": {
            "type": "object", "required": ["version"], "additionalProperties": False,
            "properties": {"version": {"type": "string", "example": "v1.1.0",
                                       "pattern": r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"},
                           "role": {"type": "string", "enum": ["stable", "canary", "shadow"], "default": "stable"},
                           "percent": {"type": "number", "minimum": 0, "maximum": 100,
                                       "description": "canary only: its share of traffic (default 10)"}}},
        "admin_canary": {
            "type": "object", "required": ["percent"], "additionalProperties": False,
            "properties": {"percent": {"type": "number", "minimum": 0, "maximum": 100}}},
        "admin_state": {
            "type": "object",
            "required": ["name", "stable", "canary", "canary_percent", "shadow", "previous", "generation", "workers"],
            "properties": {
                "name": {"type": "string"}, "stable": {"type": "string", "nullable": True},
                "canary": {"type": "string", "nullable": True}, "canary_percent": {"type": "number"},
                "shadow": {"type": "string", "nullable": True}, "previous": {"type": "string", "nullable": True},
                "history": {"type": "array", "items": {"type": "string"}},
                "generation": {"type": "integer"}, "updated_at": {"type": "string", "nullable": True},
                "workers": {"type": "array", "items": {"type": "object", "properties": {
                    "index": {"type": "integer"}, "pid": {"type": "integer", "nullable": True},
                    "generation": {"type": "integer", "nullable": True},
                    "versions": {"type": "array", "items": {"type": "string"}}, "ready": {"type": "boolean"},
                    "error": {"type": "string"}}}}}},
    }
    if iface is not None:
        _examples(paths, iface)
    return {
        "openapi": "3.0.3",
        "info": {"title": "mlops model server", "version": __version__,
                 "description": "Open Inference Protocol V2 REST (as MLServer, KServe and Triton), a records "
                                "endpoint, Prometheus metrics and a token-protected admin API. Errors are "
                                "{\"error\": message}; bad input is a 4xx naming the field."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }

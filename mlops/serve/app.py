"""The ASGI application: Open Inference Protocol V2 REST, the records endpoint, admin, /metrics, /openapi.json.

A raw ASGI callable (no framework): routing is a split of the path, bodies are read with a size limit and parsed
with orjson, inputs are encoded by mlops.features straight into the model's float32 matrix. Bad input is a 4xx
naming the field, never a 5xx; a 5xx means a bug, and is logged with its traceback.

Every inference response carries the version that answered, as `model_version` in the body and as the
`x-model-version` header, and the request id the server issued for it as `x-request-id` (the id of its request-log
lines, the one to quote when labels arrive); a client's own `x-request-id` is echoed as `x-client-request-id`, kept
in the log for correlation only, and keeps that client on one side of a canary (the same id, the same version).

What a client cannot do here (each limit in ServeSettings): reach the server under a Host name it was not given
(DNS rebinding), POST anything but JSON or binary tensors with their header (cross-site forms), send more rows
than `max_rows`, count as a failure of the model it calls (its 4xx are client errors, apart), write more than a
bounded share of the request log, or hold the event loop with a big batch (encoded and predicted in a thread).

V2 inference also takes binary tensors (mlops.serve.binary) and gRPC calls (mlops.serve.grpc_server): a codec
turns either into the same request document and the answer back, so one handler validates, routes and counts all.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from mlops import __version__
from mlops.errors import MlopsError
from mlops.features import FeatureError, is_matrix_shape
from mlops.serve.binary import BinaryCodec, Codec
from mlops.serve.models import LoadedModel
from mlops.serve.runtime import Route, Runtime
from mlops.serve.state import Role

log = logging.getLogger("mlops.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json"
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY
_RID_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F))


class HttpError(Exception):
    """An answer other than 200, raised anywhere in a handler: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def parse_json(body: bytes) -> Any:
    """The JSON document in BODY; FeatureError when it is not JSON.

    orjson refuses NaN, Infinity and numbers that overflow to infinity, with a line and column; Python's json reads
    them, so a body that only orjson refuses is read again that way and the validation can name the field that
    holds the non-finite number (off the hot path: only bodies that failed once pay for it).
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        first = exc
    import json

    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise FeatureError(f"the body is not valid JSON: {first}", field="body") from None


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_DUMPS_OPTS)


def _client_id(value: bytes | None) -> str | None:
    """The client's x-request-id when it is a sane token (printable ASCII, at most 128 chars), else None."""
    if value:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        if len(text) <= 128 and all(c in _RID_CHARS for c in text):
            return text
    return None


def host_name(raw: bytes) -> str:
    """The name in a Host header, lower case, without port or brackets: b"[::1]:8080" -> "::1"."""
    text = raw.decode("latin-1").strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[1:end] if end > 0 else text
    name, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        text = name
    return text[:-1] if text.endswith(".") else text


def is_json(content_type: bytes | None) -> bool:
    """application/json (any parameters) or an application/*+json type."""
    if content_type is None:
        return False
    if content_type == JSON:
        return True
    base = content_type.split(b";", 1)[0].strip().lower()
    return base == JSON or (base.startswith(b"application/") and base.endswith(b"+json"))


def v2_rows(inputs: Any) -> int:
    """The most rows any V2 input holds (its data: a shape that claims more than the data is refused as such by the
    encoder), read before anything is encoded."""
    rows = 0
    if type(inputs) is list:
        for t in inputs:
            if type(t) is dict:
                data = t.get("data")
                if type(data) is list and len(data) > rows:
                    rows = len(data)
        if len(inputs) == 1 and rows:  # one [rows, k] tensor of all inputs: its flat data holds k values a row
            shape = inputs[0].get("shape")
            if type(inputs[0]["data"][0]) is not list and is_matrix_shape(shape):
                rows = -(-rows // shape[1])
    return rows


async def read_body(receive: Receive, limit: int, declared: int | None) -> bytes:
    if declared is not None and declared > limit:
        raise HttpError(413, f"request body of {declared} bytes is over the limit of {limit} bytes "
                             "(--max-body-bytes)")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise HttpError(499, "client disconnected")
        body = msg.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise HttpError(413, f"request body is over the limit of {limit} bytes (--max-body-bytes)")
            chunks.append(body)
        if not msg.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ServeApp:
    """The ASGI callable of one worker process."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.settings = runtime.settings
        self._openapi: tuple[tuple[str, str] | None, bytes] | None = None
        self._hosts = self.settings.hosts()
        self._host_ok: dict[bytes, bool] = {}
        # Request ids: a random prefix per worker process and a counter, unique without a syscall per request.
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self._max_rows = self.settings.max_rows
        self._offload_rows = self.settings.offload_rows
        self._throttle: Any = None  # mlops.serve.admin.AuthThrottle, made on the first admin call

    def _host_allowed(self, raw: bytes | None) -> bool:
        """No Host header (HTTP/1.0) passes: browsers always send one, and DNS rebinding needs a browser."""
        if self._hosts is None or raw is None:
            return True
        ok = self._host_ok.get(raw)
        if ok is None:
            ok = host_name(raw) in self._hosts
            if len(self._host_ok) < 256:  # the values seen are few; a flood of others is answered uncached
                self._host_ok[raw] = ok
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                try:
                    await self.rt.start()
                except Exception as exc:  # uvicorn reports it and exits the worker
                    log.exception("worker start failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await self.rt.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- HTTP ----------------------------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        method: str = scope["method"]
        parts = scope["path"].strip("/").split("/")
        rid_raw = auth = length = host = ctype = hlen = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                rid_raw = value
            elif key == b"content-length":
                length = value
            elif key == b"authorization":
                auth = value
            elif key == b"host":
                host = value
            elif key == b"content-type":
                ctype = value
            elif key == b"inference-header-content-length":  # the binary tensor extension
                hlen = value
        rid = f"{self._id_prefix}{next(self._ids):016x}"
        client = _client_id(rid_raw) if rid_raw is not None else None
        headers = [(b"x-request-id", rid.encode())]
        if client is not None:
            headers.append((b"x-client-request-id", client.encode()))
        template = "unmatched"
        status = 500
        try:
            n = len(parts)
            head = parts[0]
            if host is not None and not self._host_allowed(host):
                raise HttpError(400, f"Host '{host.decode('latin-1')[:100]}' is not served here (--allowed-host)")
            # Binary tensors need their header: a custom header, which no cross-site form can send either.
            # A gRPC call (mlops.serve.grpc_server) comes with its codec, in-process.
            if method == "POST" and hlen is None and not is_json(ctype) and "mlops.codec" not in scope \
                    and (head != "admin" or length not in (None, b"0")):
                raise HttpError(415, "the request body must be JSON: send 'Content-Type: application/json' (binary "
                                     "tensors: with 'Inference-Header-Content-Length')")
            if head == "v2":
                if n >= 3 and parts[1] == "models":
                    name = parts[2]
                    version = parts[4] if n >= 5 and parts[3] == "versions" else None
                    tail = parts[5:] if version is not None else parts[3:]
                    if version is not None and not version:
                        raise HttpError(404, "no version in the path")
                    vpart = "/versions/{version}" if version is not None else ""
                    if not tail:
                        template = "/v2/models/{name}" + vpart
                        self._allow(method, "GET")
                        status = await self._model_metadata(send, name, version, headers)
                    elif tail == ["ready"]:
                        template = "/v2/models/{name}" + vpart + "/ready"
                        self._allow(method, "GET")
                        status = await self._model_ready(send, name, version, headers)
                    elif tail == ["infer"]:
                        template = "/v2/models/{name}" + vpart + "/infer"
                        self._allow(method, "POST")
                        status = await self._infer(receive, send, name, version, "v2", rid, client, length,
                                                   headers, start, scope.get("mlops.codec") or BinaryCodec(hlen))
                    else:
                        raise HttpError(404, f"no such path: {scope['path']}")
                elif n == 1:
                    template = "/v2"
                    self._allow(method, "GET")
                    status = await self._json(send, 200, {"name": "mlops", "version": __version__,
                                                          "extensions": ["binary_tensor_data"]}, headers)
                elif n == 3 and parts[1] == "health" and parts[2] in ("live", "ready"):
                    template = f"/v2/health/{parts[2]}"
                    self._allow(method, "GET")
                    if parts[2] == "live":
                        status = await self._json(send, 200, {"live": True}, headers)
                    else:
                        ready = self.rt.ready
                        answer: dict[str, Any] = {"ready": ready}
                        if not ready:  # what a newcomer needs: why not, and what fills the store
                            answer["reason"] = self.rt.not_ready_reason()
                        status = await self._json(send, 200 if ready else 503, answer, headers)
                else:
                    raise HttpError(404, f"no such path: {scope['path']}")
            elif head == "v1" and n >= 4 and parts[1] == "models" and parts[-1] == "predict" and n in (4, 6):
                name = parts[2]
                version = None
                if n == 6:
                    if parts[3] != "versions" or not parts[4]:
                        raise HttpError(404, f"no such path: {scope['path']}")
                    version = parts[4]
                template = "/v1/models/{name}" + ("/versions/{version}" if version else "") + "/predict"
                self._allow(method, "POST")
                status = await self._infer(receive, send, name, version, "v1", rid, client, length, headers,
                                           start)
            elif head == "metrics" and n == 1:
                template = "/metrics"
                self._allow(method, "GET")
                body = await asyncio.to_thread(self.rt.metrics_body)
                status = await self._send(send, 200, body, headers, b"text/plain; version=0.0.4; charset=utf-8")
            elif head == "openapi.json" and n == 1:
                template = "/openapi.json"
                self._allow(method, "GET")
                status = await self._send(send, 200, self._openapi_doc(), headers)
            elif head == "admin":
                from mlops.serve.admin import OPS, AuthThrottle, handle_admin

                if 3 <= n <= 4 and parts[1] == "models" and (n == 3 or parts[3] in OPS):
                    template = "/admin/models/{name}" + (f"/{parts[3]}" if n == 4 else "")
                if self._throttle is None:
                    self._throttle = AuthThrottle(self.settings.admin_max_failures,
                                                  self.settings.admin_failure_window)
                peer = scope.get("client")
                template, code, payload = await handle_admin(self.rt, method, parts, auth, receive, length,
                                                             self._throttle, str(peer[0]) if peer else "")
                status = await self._json(send, code, payload, headers)
            else:
                raise HttpError(404, f"no such path: {scope['path']}")
        except HttpError as exc:
            status = exc.status
            if status != 499:
                await self._json(send, status, {"error": exc.message}, headers + exc.headers)
        except Exception:
            log.exception("request failed", extra={"path": scope["path"], "request_id": rid})
            status = 500
            await self._json(send, 500, {"error": "internal server error (logged); this is a bug in mlops"},
                             headers)
        if "mlops.grpc" not in scope:  # gRPC calls are counted by the gRPC server, per RPC
            self.rt.metrics.count_http(method, template, status)

    @staticmethod
    def _allow(method: str, allowed: str) -> None:
        if method != allowed:
            raise HttpError(405, f"method {method} is not allowed here (use {allowed})",
                            [(b"allow", allowed.encode())])

    @staticmethod
    async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]],
                    content_type: bytes = JSON) -> int:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})
        return status

    async def _json(self, send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]]) -> int:
        return await self._send(send, status, dumps(payload), headers)

    def _openapi_doc(self) -> bytes:
        """Built once per served model version: with one model, its records schema and examples are exact."""
        stable = [r.stable for r in self.rt.routes.values()]
        model = stable[0] if len(stable) == 1 else None
        key = (model.name, model.version) if model is not None else None
        if self._openapi is None or self._openapi[0] != key:
            from mlops.serve.openapi import document

            self._openapi = (key, dumps(document(model.iface if model is not None else None)))
        return self._openapi[1]

    # --- models --------------------------------------------------------------------------------------------------

    def _route(self, name: str) -> Route:
        route = self.rt.routes.get(name)
        if route is None:  # what is served is not listed: clients need not learn it (GET /v2/models/NAME says)
            raise HttpError(404, f"model '{name[:200]}' is not served here")
        return route

    def _version(self, route: Route, version: str) -> tuple[LoadedModel, Role]:
        found = route.by_version.get(version)
        if found is None:  # no list of the loaded versions: a canary's version is nobody's business
            raise HttpError(404, f"version '{version[:200]}' of model '{route.name}' is not loaded here")
        return found

    def _stable(self, route: Route) -> LoadedModel:
        if route.stable is None:
            raise HttpError(503, f"model '{route.name}' is not ready: no version loaded yet")
        return route.stable

    async def _model_metadata(self, send: Send, name: str, version: str | None,
                              headers: list[tuple[bytes, bytes]]) -> int:
        route = self._route(name)
        model = self._version(route, version)[0] if version is not None else self._stable(route)
        versions = [version] if version is not None else sorted(route.by_version)
        return await self._json(send, 200, {
            "name": name, "versions": versions, "platform": model.platform, "inputs": model.iface.v2_inputs(),
            "outputs": model.v2_outputs(), "parameters": model.parameters(),
        }, [*headers, (b"x-model-version", model.version.encode())])

    async def _model_ready(self, send: Send, name: str, version: str | None,
                           headers: list[tuple[bytes, bytes]]) -> int:
        route = self._route(name)
        if version is not None:
            model = self._version(route, version)[0]
        elif route.stable is None:
            return await self._json(send, 503, {"name": name, "ready": False}, headers)
        else:
            model = route.stable
        return await self._json(send, 200, {"name": name, "version": model.version, "ready": True},
                                [*headers, (b"x-model-version", model.version.encode())])

    async def _infer(self, receive: Receive, send: Send, name: str, version: str | None, endpoint: str, rid: str,
                     client: str | None, length: bytes | None, headers: list[tuple[bytes, bytes]],
                     start: float, codec: Codec | None = None) -> int:
        route = self._route(name)
        if version is None:
            picked, role = route.pick(client)
            if picked is None:
                raise HttpError(503, f"model '{name}' is not ready: no version loaded yet")
            model = picked
        else:
            model, role = self._version(route, version)
        headers = [*headers, (b"x-model-version", model.version.encode())]
        mm = self.rt.metrics.model(name, model.version)
        declared = None
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = None
        records: Any = None
        columns: dict[str, list[Any]] | None = None
        req_id: Any = rid
        wanted: tuple[str, ...] | None = None
        try:
            body = await read_body(receive, self.settings.max_body_bytes, declared)
            doc = parse_json(body) if codec is None else codec.decode(body)
            if type(doc) is not dict:
                raise FeatureError(f"the body must be a JSON object, got {type(doc).__name__}", field="body")
            if endpoint == "v2":
                req_id = doc.get("id", rid)
                if type(req_id) is not str:
                    raise FeatureError("'id' must be a string", field="id")
                outputs = doc.get("outputs")
                if outputs is not None:
                    wanted = self._check_outputs(model, outputs)
                params = doc.get("parameters")
                if params is not None and type(params) is not dict:
                    raise FeatureError("'parameters' must be an object", field="parameters")
                inputs = doc.get("inputs")
                rows = v2_rows(inputs)
                self._check_rows(rows)
                if rows > self._offload_rows:  # a big batch: encoded in a thread, the loop keeps serving
                    matrix, columns = await asyncio.to_thread(model.encode_v2, inputs)
                else:
                    matrix, columns = model.encode_v2(inputs)
            else:
                if "instances" not in doc:
                    raise FeatureError("the body must be {\"instances\": [{feature: value, ...}, ...]}",
                                       field="instances")
                records = doc["instances"]
                rows = len(records) if type(records) is list else 0
                self._check_rows(rows)
                if rows > self._offload_rows:
                    matrix = await asyncio.to_thread(model.encode_records, records)
                else:
                    matrix = model.encode_records(records)
        except FeatureError as exc:
            mm.client_error.inc()
            self._log_error(rid, client, name, model.version, role, endpoint, start, 400, exc.message)
            raise HttpError(400, exc.message, headers[1:]) from None
        except HttpError as exc:  # over a limit, or the client went away: the client's doing, not the model's
            mm.client_error.inc()
            if exc.status != 499:
                self._log_error(rid, client, name, model.version, role, endpoint, start, exc.status, exc.message)
            exc.headers = headers[1:]
            raise
        try:
            if rows > self._offload_rows or model.batcher is None:
                t0 = time.perf_counter()
                if rows > self._offload_rows:
                    preds = await asyncio.to_thread(model.predict, matrix)
                else:  # a runtime that takes columns: one call per request, no batch to join
                    preds = model.predict(matrix)
                predict_s = time.perf_counter() - t0
            else:
                preds, predict_s = await model.batcher.submit(matrix)
            payload = self._answer(model, name, endpoint, req_id, preds, wanted)
        except Exception:
            mm.failure.inc()
            raise
        out = model.primary
        if codec is None:
            await self._send(send, 200, dumps(payload), headers)
        else:  # binary tensors, or a gRPC answer
            answer, ctype, extra = codec.encode(payload)
            await self._send(send, 200, answer, headers + extra, ctype)
        # After the response: metrics, request log, shadow. None of it delays the client, and a failure here is
        # logged, never turned into a second response.
        elapsed = time.perf_counter() - start
        try:
            mm.success.inc()
            mm.duration.observe(elapsed)
            mm.predict.observe(predict_s)
            mm.observe_predictions(model.score(preds))
            logged = self.rt.reqlog is not None and (self.settings.log_sample >= 1.0
                                                     or random.random() < self.settings.log_sample)  # noqa: S311
            if logged and self.rt.reqlog is not None:
                self.rt.reqlog.submit((time.time() - elapsed, rid, name, model.version, role, endpoint,
                                       elapsed * 1000.0, 200, records, columns, preds, out, None, client,
                                       model.names))
            if version is None and route.shadow is not None:
                loop = asyncio.get_running_loop()
                args = (route.shadow, endpoint, rid, client, records, columns, logged)
                if rows > self._offload_rows:
                    loop.run_in_executor(None, self._shadow, *args)
                else:
                    loop.call_soon(self._shadow, *args)
        except Exception:
            log.exception("after-response work failed", extra={"request_id": rid})
        return 200

    def _check_rows(self, rows: int) -> None:
        if rows > self._max_rows:
            raise HttpError(413, f"the request has {rows} rows, over the limit of {self._max_rows} rows per request "
                                 "(--max-rows): send smaller batches")

    @staticmethod
    def _check_outputs(model: LoadedModel, outputs: Any) -> tuple[str, ...]:
        """The output names a V2 request asks for, in the model's order; FeatureError for one it does not have."""
        if type(outputs) is not list:
            raise FeatureError("'outputs' must be a list of {\"name\": ...}", field="outputs")
        names = model.outputs
        asked: set[str] = set()
        for o in outputs:
            name = o.get("name") if type(o) is dict else None
            if name not in names:
                which = f"one output, '{names[0]}'" if len(names) == 1 else \
                    "the outputs " + ", ".join(f"'{n}'" for n in names)
                raise FeatureError(f"'outputs': the model has {which}", field="outputs")
            asked.add(str(name))
        return tuple(n for n in names if n in asked) if asked else names

    @staticmethod
    def _answer(model: LoadedModel, name: str, endpoint: str, req_id: Any, preds: Any,
                wanted: tuple[str, ...] | None) -> dict[str, Any]:
        """The response body for PREDS (the task's values, one row per request row) as the task shapes it: V2, one
        tensor per output (the primary one; `label` for a classifier); records, `predictions` (a number per row,
        or a list per class) and `labels`. The churn model's float32 probabilities go out as they are."""
        n = len(preds)
        labels = model.labels(preds) if "label" in model.outputs else None
        if endpoint != "v2":
            payload: dict[str, Any] = {"predictions": preds, "model_name": name, "model_version": model.version}
            if labels is not None:
                payload["labels"] = labels
            return payload
        tensors: list[dict[str, Any]] = []
        for out in wanted or model.outputs:
            if out == "label":
                tensors.append({"name": "label", "shape": [n], "datatype": "BYTES", "data": labels})
            elif preds.ndim == 2:
                tensors.append({"name": out, "shape": [n, int(preds.shape[1])], "datatype": "FP64",
                                "data": preds.reshape(-1)})
            else:
                tensors.append({"name": out, "shape": [n], "datatype": "FP32" if preds.dtype.itemsize == 4
                                else "FP64", "data": preds})
        return {"model_name": name, "model_version": model.version, "id": req_id, "outputs": tensors}

    def _log_error(self, rid: str, client: str | None, name: str, version: str, role: str, endpoint: str,
                   start: float, status: int, message: str) -> None:
        reqlog = self.rt.reqlog
        if reqlog is None:
            return
        if self.settings.log_sample < 1.0 and random.random() >= self.settings.log_sample:  # noqa: S311
            return
        elapsed = time.perf_counter() - start
        reqlog.submit((time.time() - elapsed, rid, name, version, role, endpoint, elapsed * 1000.0, status, None,
                       None, None, "", message, client))

    def _shadow(self, model: LoadedModel, endpoint: str, rid: str, client: str | None, records: Any,
                columns: dict[str, list[Any]] | None, logged: bool) -> None:
        """Score a copy of a request on the shadow version; its answer goes to metrics and the request log only.
        Runs on the loop after the response, or in a thread for a big batch (metrics and the log are thread-safe)."""
        start = time.perf_counter()
        mm = self.rt.metrics.model(model.name, model.version)
        try:
            matrix = model.encode_records(records) if records is not None \
                else model.encode_columns(columns or {})
            preds = model.predict(matrix)
        except MlopsError as exc:
            mm.client_error.inc()
            log.info("shadow refused the input", extra={"model": model.name, "version": model.version,
                                                         "request_id": rid, "error": exc.message})
            if logged:
                self._log_error(rid, client, model.name, model.version, "shadow", endpoint, start, 400,
                                exc.message)
            return
        except Exception:
            mm.failure.inc()
            log.exception("shadow scoring failed", extra={"model": model.name, "version": model.version})
            return
        elapsed = time.perf_counter() - start
        mm.success.inc()
        mm.duration.observe(elapsed)
        mm.observe_predictions(model.score(preds))
        if logged and self.rt.reqlog is not None:
            self.rt.reqlog.submit((time.time() - elapsed, rid, model.name, model.version, "shadow", endpoint,
                                   elapsed * 1000.0, 200, records, columns, preds, model.primary, None,
                                   client, model.names))

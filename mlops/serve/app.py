"""The ASGI application: Open Inference Protocol V2 REST, the records endpoint, admin, /metrics, /openapi.json.

A raw ASGI callable (no framework): routing is a split of the path, bodies are read with a size limit and parsed
with orjson, inputs are encoded by mlops.features straight into the model's float32 matrix. Bad input is a 4xx
naming the field, never a 5xx; a 5xx means a bug, and is logged with its traceback.

Every inference response carries the version that answered, as `model_version` in the body and as the
`x-model-version` header, and echoes `x-request-id` (generated when the client sent none); the request id also
decides canary or stable, so one id always gets the same version.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from mlops import __version__
from mlops.errors import MlopsError
from mlops.features import FeatureError, encode_columns, encode_records, encode_v2
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


def _request_id(value: bytes | None) -> tuple[str, bool]:
    """The client's x-request-id when it is a sane token (printable ASCII, at most 128 chars), else a new one."""
    if value:
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if 0 < len(text) <= 128 and all(c in _RID_CHARS for c in text):
            return text, True
    return uuid.uuid4().hex, False


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
        rid_raw = auth = length = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                rid_raw = value
            elif key == b"content-length":
                length = value
            elif key == b"authorization":
                auth = value
        rid, rid_given = _request_id(rid_raw)
        headers = [(b"x-request-id", rid.encode())]
        template = "unmatched"
        status = 500
        try:
            n = len(parts)
            head = parts[0]
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
                        status = await self._infer(receive, send, name, version, "v2", rid, rid_given, length,
                                                   headers, start)
                    else:
                        raise HttpError(404, f"no such path: {scope['path']}")
                elif n == 1:
                    template = "/v2"
                    self._allow(method, "GET")
                    status = await self._json(send, 200, {"name": "mlops", "version": __version__,
                                                          "extensions": []}, headers)
                elif n == 3 and parts[1] == "health" and parts[2] in ("live", "ready"):
                    template = f"/v2/health/{parts[2]}"
                    self._allow(method, "GET")
                    if parts[2] == "live":
                        status = await self._json(send, 200, {"live": True}, headers)
                    else:
                        ready = self.rt.ready
                        status = await self._json(send, 200 if ready else 503, {"ready": ready}, headers)
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
                status = await self._infer(receive, send, name, version, "v1", rid, rid_given, length, headers,
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
                from mlops.serve.admin import OPS, handle_admin

                if 3 <= n <= 4 and parts[1] == "models" and (n == 3 or parts[3] in OPS):
                    template = "/admin/models/{name}" + (f"/{parts[3]}" if n == 4 else "")
                template, code, payload = await handle_admin(self.rt, method, parts, auth, receive, length)
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
        if route is None:
            served = ", ".join(sorted(self.rt.routes)) or "none yet"
            raise HttpError(404, f"model '{name}' is not served here (models: {served})")
        return route

    def _version(self, route: Route, version: str) -> tuple[LoadedModel, Role]:
        found = route.by_version.get(version)
        if found is None:
            raise HttpError(404, f"version '{version}' of model '{route.name}' is not loaded (loaded: "
                                 f"{', '.join(sorted(route.by_version)) or 'none'})")
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
            "name": name, "versions": versions, "platform": "xgboost", "inputs": model.iface.v2_inputs(),
            "outputs": model.iface.v2_outputs(),
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
                     rid_given: bool, length: bytes | None, headers: list[tuple[bytes, bytes]],
                     start: float) -> int:
        route = self._route(name)
        if version is None:
            picked, role = route.pick(rid if rid_given else None)
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
        try:
            body = await read_body(receive, self.settings.max_body_bytes, declared)
            doc = parse_json(body)
            if type(doc) is not dict:
                raise FeatureError(f"the body must be a JSON object, got {type(doc).__name__}", field="body")
            if endpoint == "v2":
                req_id = doc.get("id", rid)
                if type(req_id) is not str:
                    raise FeatureError("'id' must be a string", field="id")
                outputs = doc.get("outputs")
                if outputs is not None:
                    self._check_outputs(model, outputs)
                params = doc.get("parameters")
                if params is not None and type(params) is not dict:
                    raise FeatureError("'parameters' must be an object", field="parameters")
                matrix, columns = encode_v2(model.iface, doc.get("inputs"))
            else:
                if "instances" not in doc:
                    raise FeatureError("the body must be {\"instances\": [{feature: value, ...}, ...]}",
                                       field="instances")
                records = doc["instances"]
                matrix = encode_records(model.iface, records)
        except FeatureError as exc:
            mm.failure.inc()
            self._log_error(rid, name, model.version, role, endpoint, start, 400, exc.message)
            raise HttpError(400, exc.message, headers[1:]) from None
        except HttpError as exc:
            mm.failure.inc()
            if exc.status != 499:
                self._log_error(rid, name, model.version, role, endpoint, start, exc.status, exc.message)
            exc.headers = headers[1:]
            raise
        try:
            preds, predict_s = await model.batcher.submit(matrix)
        except Exception:
            mm.failure.inc()
            raise
        out = model.iface.output_name
        if endpoint == "v2":
            payload: dict[str, Any] = {"model_name": name, "model_version": model.version, "id": req_id,
                                       "outputs": [{"name": out, "shape": [len(preds)], "datatype": "FP32",
                                                    "data": preds}]}
        else:
            payload = {"predictions": preds, "model_name": name, "model_version": model.version}
        await self._send(send, 200, dumps(payload), headers)
        # After the response: metrics, request log, shadow. None of it delays the client, and a failure here is
        # logged, never turned into a second response.
        elapsed = time.perf_counter() - start
        try:
            mm.success.inc()
            mm.duration.observe(elapsed)
            mm.predict.observe(predict_s)
            mm.observe_predictions(preds)
            logged = self.rt.reqlog is not None and (self.settings.log_sample >= 1.0
                                                     or random.random() < self.settings.log_sample)  # noqa: S311
            if logged and self.rt.reqlog is not None:
                self.rt.reqlog.submit((time.time() - elapsed, rid, name, model.version, role, endpoint,
                                       elapsed * 1000.0, 200, records, columns, preds, out, None))
            if version is None and route.shadow is not None:
                asyncio.get_running_loop().call_soon(self._shadow, route.shadow, endpoint, rid, records, columns,
                                                     logged)
        except Exception:
            log.exception("after-response work failed", extra={"request_id": rid})
        return 200

    @staticmethod
    def _check_outputs(model: LoadedModel, outputs: Any) -> None:
        if type(outputs) is not list:
            raise FeatureError("'outputs' must be a list of {\"name\": ...}", field="outputs")
        for o in outputs:
            if type(o) is not dict or o.get("name") != model.iface.output_name:
                raise FeatureError(f"'outputs': the model has one output, '{model.iface.output_name}'",
                                   field="outputs")

    def _log_error(self, rid: str, name: str, version: str, role: str, endpoint: str, start: float, status: int,
                   message: str) -> None:
        reqlog = self.rt.reqlog
        if reqlog is None:
            return
        if self.settings.log_sample < 1.0 and random.random() >= self.settings.log_sample:  # noqa: S311
            return
        elapsed = time.perf_counter() - start
        reqlog.submit((time.time() - elapsed, rid, name, version, role, endpoint, elapsed * 1000.0, status, None,
                       None, None, "", message))

    def _shadow(self, model: LoadedModel, endpoint: str, rid: str, records: Any,
                columns: dict[str, list[Any]] | None, logged: bool) -> None:
        """Score a copy of a request on the shadow version; its answer goes to metrics and the request log only."""
        start = time.perf_counter()
        mm = self.rt.metrics.model(model.name, model.version)
        try:
            matrix = encode_records(model.iface, records) if records is not None \
                else encode_columns(model.iface, columns or {})
            preds = model.predict(matrix)
        except MlopsError as exc:
            mm.failure.inc()
            log.info("shadow refused the input", extra={"model": model.name, "version": model.version,
                                                         "request_id": rid, "error": exc.message})
            if logged:
                self._log_error(rid, model.name, model.version, "shadow", endpoint, start, 400, exc.message)
            return
        except Exception:
            mm.failure.inc()
            log.exception("shadow scoring failed", extra={"model": model.name, "version": model.version})
            return
        elapsed = time.perf_counter() - start
        mm.success.inc()
        mm.duration.observe(elapsed)
        mm.observe_predictions(preds)
        if logged and self.rt.reqlog is not None:
            self.rt.reqlog.submit((time.time() - elapsed, rid, model.name, model.version, "shadow", endpoint,
                                   elapsed * 1000.0, 200, records, columns, preds, model.iface.output_name, None))

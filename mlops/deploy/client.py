"""A client of the running model server (`mlops serve`): its admin API, its V2 and records endpoints, /metrics.

Standard library only (http.client): deploy runs in CI images that need not carry the server's stack. Every admin
call sends `Authorization: Bearer TOKEN`. Payloads from the server are checked with pydantic at this edge.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.errors import DeployError

Role = Literal["stable", "canary", "shadow"]


class Refused(DeployError):
    """The server answered an admin change with an error status: it says why (`reason`)."""

    def __init__(self, message: str, status: int, reason: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class _StatePayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stable: str | None = None
    canary: str | None = None
    canary_percent: float = 0.0
    shadow: str | None = None
    previous: str | None = None
    generation: int = 0
    workers: Any = None


@dataclass(frozen=True)
class ServerState:
    """What the server serves for one model name (GET /admin/models/{name})."""

    stable: str | None
    canary: str | None
    canary_percent: float
    shadow: str | None
    previous: str | None
    generation: int


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def error(self) -> str:
        data = self.json()
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return str(data["error"])
        return self.body.decode(errors="replace").strip()[:200] or f"HTTP {self.status}"


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    base: str  # path prefix, no trailing slash
    url: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise DeployError(f"deploy.server_url '{url}' is not an http://HOST:PORT URL",
                              hint="the model server listens on plain HTTP on loopback, e.g. http://127.0.0.1:8080")
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"), url.rstrip("/"))

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> Response:
    """One request on CONN (kept alive by the caller); OSError/HTTPException propagate."""
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Accept": "application/json", **(headers or {})}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    payload = resp.read()
    return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)


class Server:
    """The model server at URL, administered with TOKEN."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0) -> None:
        self.endpoint = Endpoint.parse(url)
        self.url = self.endpoint.url
        self.token = token
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None, *, admin: bool = False) -> Response:
        headers: dict[str, str] = {}
        if admin:
            if not self.token:
                raise DeployError("no admin token for the model server",
                                  hint="set the environment variable named by deploy.token_env (MLOPS_ADMIN_TOKEN) "
                                       "to the token `mlops serve` was started with")
            headers["Authorization"] = f"Bearer {self.token}"
        conn = self.endpoint.connect(self.timeout)
        try:
            resp = request(conn, method, self.endpoint.base + path, body, headers)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            raise DeployError(f"cannot reach the model server at {self.url}: {exc}",
                              hint="start it (`mlops serve`) or set deploy.server_url in params.yaml") from None
        finally:
            conn.close()
        if admin and resp.status in (401, 403):
            raise DeployError(f"the model server at {self.url} refused the admin token (HTTP {resp.status})",
                              hint="the token in the deploy.token_env variable must be the server's")
        return resp

    def _admin(self, method: str, path: str, body: Any = None, what: str = "") -> Response:
        resp = self.call(method, path, body, admin=True)
        if resp.status >= 400:
            hint = {409: "the server keeps serving what it served (a checksum or warm-up refused, or the change "
                         "does not fit its state)",
                    503: "a worker did not apply the change in time; it still will: check GET /admin/models/NAME"}
            raise Refused(f"the model server refused to {what} (HTTP {resp.status}): {resp.error()}", resp.status,
                          resp.error(), hint=hint.get(resp.status))
        return resp

    @staticmethod
    def _name(name: str) -> str:
        return quote(name, safe="")

    def state(self, name: str) -> ServerState | None:
        """What the server serves for NAME; None when it serves nothing under that name."""
        resp = self.call("GET", f"/admin/models/{self._name(name)}", admin=True)
        if resp.status == 404:
            return None
        if resp.status >= 400:
            raise DeployError(f"the model server cannot say what it serves for {name} (HTTP {resp.status}): "
                              f"{resp.error()}")
        try:
            p = _StatePayload.model_validate(resp.json())
        except ValidationError:
            raise DeployError(f"the model server at {self.url} answered GET /admin/models/{name} with an "
                              "unexpected document", hint="deploy and the server must be the same mlops release"
                              ) from None
        if p.stable is None and p.canary is None and p.shadow is None:
            return None
        return ServerState(p.stable, p.canary, p.canary_percent, p.shadow, p.previous, p.generation)

    def load(self, name: str, version: str, role: Role, percent: float | None = None) -> None:
        body: dict[str, Any] = {"version": version, "role": role}
        if percent is not None:
            body["percent"] = percent
        self._admin("POST", f"/admin/models/{self._name(name)}/load", body, f"load {name} {version} as {role}")

    def set_canary(self, name: str, percent: float) -> None:
        self._admin("POST", f"/admin/models/{self._name(name)}/canary", {"percent": percent},
                    f"give the canary of {name} {percent:g}% of traffic")

    def promote(self, name: str) -> None:
        self._admin("POST", f"/admin/models/{self._name(name)}/promote", None, f"promote the canary of {name}")

    def rollback(self, name: str) -> None:
        self._admin("POST", f"/admin/models/{self._name(name)}/rollback", None, f"roll back {name}")

    def model_metadata(self, name: str, version: str) -> dict[str, Any]:
        resp = self.call("GET", f"/v2/models/{self._name(name)}/versions/{quote(version, safe='')}")
        data = resp.json()
        if resp.status != 200 or not isinstance(data, dict):
            raise DeployError(f"the model server has no metadata for {name} {version} (HTTP {resp.status}): "
                              f"{resp.error()}")
        return data

    def infer(self, name: str, version: str, body: dict[str, Any]) -> Response:
        return self.call("POST", f"/v2/models/{self._name(name)}/versions/{quote(version, safe='')}/infer", body)

    def metrics(self) -> str | None:
        """The /metrics text, or None when the server does not expose it."""
        resp = self.call("GET", "/metrics")
        return resp.body.decode(errors="replace") if resp.status == 200 else None

"""Helpers for the model-server tests: a real `mlops serve` process on a free loopback port, plain HTTP calls."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops import modelstore
from mlops.files import sha256_file

TOKEN = "test-admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def version(self) -> str | None:
        return self.headers.get("x-model-version")


def call(port: int, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
         raw: bytes | None = None, token: str | None = None, timeout: float = 30.0,
         conn: http.client.HTTPConnection | None = None) -> Reply:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        c.request(method, path, body=data, headers=hdrs)
        resp = c.getresponse()
        payload = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        if own:
            c.close()


def admin(port: int, op: str, body: Any = None, *, name: str = "churn-model") -> Reply:
    path = f"/admin/models/{name}" + (f"/{op}" if op else "")
    return call(port, "POST" if op else "GET", path, body if op else None, token=TOKEN)


def v2_body(records: Sequence[dict[str, Any]], inputs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An Open Inference Protocol request with one input per raw feature, as the model's metadata lists them."""
    n = len(records)
    return {"inputs": [{"name": m["name"], "datatype": m["datatype"], "shape": [n],
                        "data": [r[m["name"]] for r in records]} for m in inputs]}


def install(store: Path, models_dir: Path, version: str, name: str = "churn-model") -> modelstore.StoredModel:
    sha = sha256_file(models_dir / "model.ubj")
    return modelstore.install(store, name, version, models_dir, model_file="model.ubj", model_sha256=sha,
                              meta={"tag": f"{name}@{version}", "commit": "0" * 40})


class Server:
    """`mlops serve` in its own process group; stop() sends SIGTERM and waits, then kills the group."""

    def __init__(self, store: Path, *, workers: int = 1, token: str | None = TOKEN, log_dir: Path | None = None,
                 extra: Sequence[str] = (), cwd: Path | None = None, grpc: bool = False) -> None:
        self.port = free_port()
        self.grpc_port = free_port() if grpc else None  # V2 over gRPC too (--grpc-port)
        self.store = store
        self.log_dir = log_dir
        env = {k: v for k, v in os.environ.items() if k != "MLOPS_ADMIN_TOKEN"}
        if token is not None:
            env["MLOPS_ADMIN_TOKEN"] = token
        args = [sys.executable, "-m", "mlops", "serve", "--store", str(store), "--port", str(self.port),
                "--workers", str(workers), *(["--log-dir", str(log_dir)] if log_dir else []),
                *(["--grpc-port", str(self.grpc_port)] if self.grpc_port else []), *extra]
        self.log_path = (cwd or store.parent) / f"serve-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd or store.parent, start_new_session=True)

    def wait(self, path: str = "/v2/health/live", status: int = 200, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if call(self.port, "GET", path, timeout=2).status == status:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not answering {status} on {path} after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def retrain(template: Path, dest: Path, **train_params: Any) -> Path:
    """A copy of the trained example project retrained with other train params; returns its models/ directory."""
    import yaml

    shutil.copytree(template, dest, symlinks=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["train"].update(train_params)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "mlops", "stage", "train"], cwd=dest, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"retraining failed:\n{proc.stderr}")
    return dest / "models"


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, matched by name and (a subset of) labels."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return None


# --- the peers' V2 clients, in their own environment ----------------------------------------------------------------

# tritonclient[grpc] 2.73 and kserve 0.21 pin protobuf<7; the project's venv has protobuf 7 (onnx, and the code that
# grpcio-tools 1.85 generates): the clients get a venv of their own, made once (uv, from the registry or its cache)
# and driven through tests/v2_clients.py. tritonclient.grpc and kserve both register the `inference.*` messages in
# protobuf's default pool, so they cannot share a process: each family runs in its own.
CLIENTS_VENV = Path(os.environ.get("MLOPS_V2_CLIENTS_VENV", "/tmp/mlops-v2-clients"))
CLIENT_PINS = ("tritonclient[grpc,http]==2.73.0", "kserve==0.21.0", "numpy==1.26.4")
CLIENTS_SCRIPT = Path(__file__).with_name("v2_clients.py")


def clients_python() -> Path | None:
    """The V2 clients' python (made when missing); None when it cannot be made here (no registry, no uv)."""
    python = CLIENTS_VENV / "bin" / "python"

    def usable() -> bool:
        return python.is_file() and all(
            subprocess.run([str(python), "-c", f"import {m}"], capture_output=True, check=False).returncode == 0
            for m in ("tritonclient.grpc, tritonclient.http", "kserve"))

    if usable():
        return python
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    try:
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(CLIENTS_VENV)], check=True,
                       capture_output=True, timeout=120)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *CLIENT_PINS], check=True,
                       capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError):
        return None
    return python if usable() else None


def run_clients(python: Path, ops: Sequence[dict[str, Any]], timeout: float = 300) -> list[Any]:
    """Each op of OPS done by the named client (see tests/v2_clients.py); one result per op, in order. Triton's
    and KServe's clients run in separate processes (see above)."""
    results: dict[int, Any] = {}
    for family in ("triton", "kserve"):
        mine = [(k, op) for k, op in enumerate(ops) if op["client"].startswith(family)]
        if not mine:
            continue
        proc = subprocess.run([str(python), str(CLIENTS_SCRIPT)], input=json.dumps([op for _, op in mine]),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"the {family} clients failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        results.update(zip((k for k, _ in mine), json.loads(proc.stdout), strict=True))
    return [results[k] for k in range(len(ops))]


def tensors(records: Sequence[dict[str, Any]], inputs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One tensor per input of the model's metadata (name, datatype, shape [n], data): what a client sends."""
    return v2_body(records, inputs)["inputs"]

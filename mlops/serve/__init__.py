"""The model server (`mlops serve`): Open Inference Protocol V2 REST and a records endpoint over models from the
model store, with hot swap, canary, shadow, Prometheus metrics, a request log and a token-protected admin API.

Public API: `serve(settings)` runs it until SIGTERM/SIGINT; `ServeSettings`; `resolve_token()`. The heavy parts
(uvicorn, xgboost, prometheus_client) are imported by the worker processes only.
"""

from __future__ import annotations

from mlops.serve.server import serve
from mlops.serve.settings import TOKEN_ENV, ServeSettings, resolve_token

__all__ = ["TOKEN_ENV", "ServeSettings", "resolve_token", "serve"]

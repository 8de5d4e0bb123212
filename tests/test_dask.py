"""`mlops predict` and `mlops monitor` on a real Dask cluster: a `dask scheduler` and two `dask worker` processes
on 127.0.0.1 (and a LocalCluster through `--scheduler local`). The cluster's answers equal the local run's; a worker
killed mid-run costs nothing (its tasks run again, every part file once); a model whose bytes changed after the
registry check is refused on the worker, before it loads."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.predict import ModelSource, ModelTampered, OutputSpec, run_dask, run_local, source_from_directory
from tests.test_predict import CHURN, churn, churn_rows, predict_cli, write_parquet  # noqa: F401 - fixtures

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DASK = str(Path(sys.executable).parent / "dask")
REPO = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A scheduler and N worker processes on loopback (each its own process group, stopped by it)."""

    def __init__(self, workers: int = 2, nanny: bool = True) -> None:
        from distributed import Client

        self.address = f"tcp://127.0.0.1:{_port()}"
        port = self.address.rsplit(":", 1)[1]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", port,
                                        "--no-dashboard"], env=env, cwd=REPO, start_new_session=True,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        for _ in range(workers):
            self.procs.append(subprocess.Popen(
                [DASK, "worker", self.address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                 "--host", "127.0.0.1", *([] if nanny else ["--no-nanny"])], env=env, cwd=REPO,
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.client = Client(self.address, timeout=60)
        self.client.wait_for_workers(workers, timeout=120)

    def worker_pids(self) -> list[int]:
        return sorted(int(p) for p in self.client.run(os.getpid).values())

    def close(self) -> None:
        self.client.close()
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def source(churn: Path) -> ModelSource:  # noqa: F811
    """The churn version as the job hands it to the workers: fetched and verified through `mlops predict`'s job."""
    from mlops.config import load_sections
    from mlops.deploy import fetch_release
    from mlops.jobs.deploy import DeployOptions, resolve

    reg = load_sections(churn / "params.yaml").registry
    release, _ = resolve(churn, reg, DeployOptions(ref=CHURN, push=False))
    dest = churn.parent / "fetched"
    fetched = fetch_release(churn, release, dest)
    return source_from_directory(fetched.directory, "churn-model", "v1.0.0", model_file=fetched.serve_file,
                                 trusted={fetched.serve_file: fetched.serve_sha256}, classes=("No", "Yes"))


@pytest.fixture(scope="module")
def big_input(churn_rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """About 28,000 rows in two Parquet files of small row groups: many partitions."""
    d = tmp_path_factory.mktemp("dask-in") / "in"
    big = pd.concat([churn_rows] * 20, ignore_index=True)
    half = len(big) // 2
    write_parquet(big.iloc[:half], d / "a.parquet", row_group=500)
    write_parquet(big.iloc[half:], d / "b.parquet", row_group=500)
    return d


def _read(d: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted(d.glob("part-*.parquet"))], ignore_index=True)


def test_predict_on_the_cluster_equals_the_local_run(cluster: Cluster, source: ModelSource, big_input: Path,
                                                     tmp_path: Path) -> None:
    local = run_local(source, str(big_input), OutputSpec(url=str(tmp_path / "local")), partition_rows=2_000)
    remote = run_dask(cluster.client, source, str(big_input), OutputSpec(url=str(tmp_path / "dask")),
                      partition_rows=2_000)
    assert remote.partitions == local.partitions > 10
    assert (remote.rows, remote.written) == (local.rows, local.written)
    a, b = _read(tmp_path / "local"), _read(tmp_path / "dask")
    pd.testing.assert_frame_equal(a, b)
    assert b["row"].tolist() == list(range(local.rows))
    # every worker loaded (and verified) the model itself, once: the per-worker cache holds it
    loaded = cluster.client.run(lambda: sorted(__import__("mlops.predict.model", fromlist=["_CACHE"])._CACHE))
    assert all(keys == [source.key] for keys in loaded.values()), loaded


def test_a_small_input_is_cut_for_every_worker_and_xgboost_runs_one_thread_per_task(
        cluster: Cluster, source: ModelSource, churn_rows: pd.DataFrame, tmp_path: Path) -> None:  # noqa: F811
    """One file of four row groups is one partition at the default size: the run cuts it into two partitions per
    worker thread (else one worker scores it all while the other waits), and each worker's xgboost predicts on one
    thread (its tasks already take one thread each)."""
    rows = pd.concat([churn_rows, churn_rows], ignore_index=True).head(2_000)
    src = write_parquet(rows, tmp_path / "one.parquet", row_group=500)
    local = run_local(source, str(src), OutputSpec(url=str(tmp_path / "local")))
    remote = run_dask(cluster.client, source, str(src), OutputSpec(url=str(tmp_path / "dask")))
    assert local.partitions == 1 and remote.partitions == 4
    pd.testing.assert_frame_equal(_read(tmp_path / "local"), _read(tmp_path / "dask"))

    def nthread() -> str:
        from mlops.predict.model import _CACHE

        return str(json.loads(_CACHE[source.key].booster.save_config())["learner"]["generic_param"]["nthread"])

    assert set(cluster.client.run(nthread).values()) == {"1"}


def test_cli_on_a_local_cluster_and_the_scheduler_address(churn: Path, big_input: Path, cluster: Cluster,  # noqa: F811
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = predict_cli(churn, "--ref", CHURN, "--input", str(big_input), "--output", str(tmp_path / "lc"),
                      "--scheduler", "local", "--json")
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("MLOPS_DASK_SCHEDULER", cluster.address)
    res2 = predict_cli(churn, "--ref", CHURN, "--input", str(big_input), "--output", str(tmp_path / "env"),
                       "--json")
    assert res2.exit_code == 0, res2.output
    assert json.loads(res2.stdout)["where"] == cluster.address
    pd.testing.assert_frame_equal(_read(tmp_path / "lc"), _read(tmp_path / "env"))


def test_a_worker_killed_mid_run_loses_no_row_and_duplicates_none(source: ModelSource, big_input: Path,
                                                                  tmp_path: Path) -> None:
    c = Cluster(2, nanny=False)
    state: dict[str, Any] = {}

    def kill_one(futures: list[Any]) -> None:
        while not any(f.done() for f in futures):
            time.sleep(0.01)
        state["pending"] = sum(not f.done() for f in futures)
        victim = c.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        state["killed"] = victim

    try:
        res = run_dask(c.client, source, str(big_input), OutputSpec(url=str(tmp_path / "out")), partition_rows=500,
                       on_submit=kill_one)
        survivors = c.worker_pids()
    finally:
        c.close()
    assert state["pending"] > 0 and state["killed"] not in survivors  # killed while tasks were queued or running
    got = _read(tmp_path / "out")
    assert res.rows == res.written == len(got)
    assert got["row"].tolist() == list(range(res.rows))  # complete, in order, no row twice
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name]


def test_a_tampered_model_is_refused_on_the_worker(cluster: Cluster, source: ModelSource, big_input: Path,
                                                   tmp_path: Path) -> None:
    from mlops.predict.model import clear_cache

    cluster.client.run(clear_cache)  # fresh workers: a verified model already loaded is kept, and was verified
    # the model in shared storage, as workers of a real cluster read it; changed after the registry check
    shared = tmp_path / "model"
    shared.mkdir()
    for rel, data in source.files.items():
        (shared / rel).write_bytes(data)
    by_url = ModelSource(source.name, source.version, source.sha256, url=str(shared), model_file=source.model_file,
                         classes=source.classes)
    model = shared / source.model_file
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ModelTampered, match="does not match the tag's"):
        run_dask(cluster.client, by_url, str(big_input), OutputSpec(url=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()
    # bytes changed on their way to the worker: refused the same way
    bad = dict(source.files)
    bad[source.model_file] = bad[source.model_file][:-1] + b"\x01"
    shipped = ModelSource(source.name, source.version, source.sha256, bad, model_file=source.model_file,
                          classes=source.classes)
    with pytest.raises(ModelTampered, match=source.model_file):
        run_dask(cluster.client, shipped, str(big_input), OutputSpec(url=str(tmp_path / "out")))


def _close(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k not in ("seconds", "generated", "files", "path"):
                _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_monitor_on_the_cluster_equals_the_local_run(churn: Path, cluster: Cluster, source: ModelSource,  # noqa: F811
                                                     big_input: Path, tmp_path: Path) -> None:
    from mlops.jobs.monitor import monitor
    from mlops.monitor import MonitorAlert

    scored = tmp_path / "scored"
    run_local(source, str(big_input), OutputSpec(url=str(scored)), partition_rows=2_000)

    def check(**kw: Any) -> dict[str, Any]:
        try:
            result = monitor(churn, current=scored, out=tmp_path / "r", registered=None, alarm_issue=False, **kw)
        except MonitorAlert as alert:
            result = alert.result
        return result.as_json()  # type: ignore[no-any-return]

    local, remote = check(), check(client=cluster.client)
    assert remote["window"]["rows"] == local["window"]["rows"] == 20 * len(pd.read_csv(churn /
                                                                                          "data/prepared/test.csv"))
    _close(local, remote)  # counts and category frequencies exactly; sums of floats to 1e-9
    assert np.isfinite(remote["performance"]["estimated"]["roc_auc"])

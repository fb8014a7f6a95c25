"""Where a suite's cells run: in this process one after another (``--executor local``, the
default) or as tasks on a Ray cluster (``--executor ray [--ray-address ADDR]``).

On Ray, each (dataset, embedder) is one embedding task (asking for a GPU when the embedder runs
on CUDA and the cluster has one) that writes the shared content-addressed cache; each cell is a
CPU task that depends on it and reads the cache (never recomputing); a cell whose K is searched
by Optuna gets helper tasks that work on its shared study, so its trials spread over workers.
Ray retries a task whose worker died, and the retried cell discards its dead attempt's run, so
each cell is recorded once. Every worker reports to the suite's MLflow store through the
tracking URI, under the suite's parent run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

from clusterbench.core.errors import UserError, one_line_reason

EXECUTORS = ("local", "ray")
PROBE_TIMEOUT_S = 3.0
HANDSHAKE_TIMEOUT_S = 10.0
TASK_RETRIES = 3  # a task whose worker process or node died is run again this many times


def make_executor(name: str, address: str | None = None):
    """None for local (the runner's own loop), else a checked :class:`RayExecutor`."""
    if name not in EXECUTORS:
        raise UserError(f"--executor {name!r}: choose one of {', '.join(EXECUTORS)}")
    if name == "local":
        if address:
            raise UserError("--ray-address needs --executor ray")
        return None
    executor = RayExecutor(address)
    executor.check()
    return executor


def probe_ray_address(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """One TCP connection to the head's GCS port (``ray.init`` itself retries for a minute)."""
    parsed = urlparse(address if "://" in address else f"ray://{address}")
    host, port = parsed.hostname, parsed.port or (10001 if address.startswith("ray://") else 6379)
    if not host:
        raise UserError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise UserError(f"--ray-address {address}: cannot reach a Ray head at {host}:{port} ({why} "
                        f"within {timeout:.0f} s)") from None
    # An open port may be something else (a proxy answers every port): join it in a child process
    # with a deadline, since ray.init on a wrong address retries for about a minute.
    import subprocess
    import sys

    code = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); ray.shutdown()"
    try:
        subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=HANDSHAKE_TIMEOUT_S, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
        raise UserError(f"--ray-address {address}: cannot reach a Ray head at {host}:{port} (no Ray cluster "
                        f"answered within {HANDSHAKE_TIMEOUT_S:.0f} s)") from None


class RayExecutor:
    def __init__(self, address: str | None = None):
        self.address = address

    def check(self) -> None:
        """Ray installed and the address reachable: one line before anything runs."""
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("--executor ray needs Ray: pip install 'clusterbench[ray]'") from None
        if self.address and self.address != "auto":
            probe_ray_address(self.address)

    def _start(self) -> bool:
        """Connect (or start a local cluster sized to this machine); True if this call started Ray."""
        import ray

        if ray.is_initialized():
            return False
        env = {"env_vars": {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}}
        try:
            if self.address:
                ray.init(address=self.address, runtime_env=env, logging_level="ERROR", log_to_driver=False)
            else:
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, runtime_env=env, logging_level="ERROR",
                         log_to_driver=False)
        except Exception as e:  # noqa: BLE001 - a cluster that cannot be joined is one line
            raise UserError(f"--executor ray: cannot start or join the cluster: {one_line_reason(e)}") from None
        return True

    def run_cells(self, job, cells: list, done: dict) -> Iterator:
        """Submit every cell's tasks, then yield their CellResults as they finish."""
        import ray

        from clusterbench.run import worker
        from clusterbench.run.cell_result import CellResult

        started = self._start()
        embed = ray.remote(worker.embed)
        run_cell = ray.remote(worker.run_cell)
        study = ray.remote(worker.work_on_study)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pending, helpers = {}, []
        try:
            for group in _groups(cells).values():
                todo = [c for c in group if c.key not in done]
                stage = None
                if todo:  # one embedding task per (dataset, embedder), into the shared cache
                    stage = embed.options(num_cpus=1, num_gpus=_gpus_for(group[0]), max_retries=TASK_RETRIES,
                                          name=f"embed {group[0].dataset.name}/{group[0].embedder.name}").remote(job, group[0])
                for cell in group:
                    pending[run_cell.options(num_cpus=1, max_retries=TASK_RETRIES, name=f"cell {cell.key}")
                            .remote(job, cell, stage)] = cell
                    if cell.key not in done and _searches_k(cell) and not job.force:
                        helpers += [study.options(num_cpus=1, max_retries=1, name=f"trials {cell.key}")
                                    .remote(job, cell, stage) for _ in range(max(0, min(cpus, 4) - 1))]
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    cell = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as e:  # retries spent: the cell failed, the suite goes on
                        yield CellResult(cell, status="failed", error=f"ray: {one_line_reason(e)}")
            ray.get(helpers)
        finally:
            for ref in [*pending, *helpers]:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def _groups(cells: list) -> dict:
    groups: dict[tuple[str, str], list] = {}
    for cell in cells:
        groups.setdefault((str(cell.dataset), str(cell.embedder)), []).append(cell)
    return groups


def _searches_k(cell) -> bool:
    """Whether the cell's K comes from a study (``--k auto`` or ``auto:NAME``) over its clusterer."""
    from clusterbench.core.catalog import registries

    k = cell.requested_k
    return isinstance(k, str) and (k == "auto" or k.startswith("auto:")) and not registries()[2].traits(cell.clusterer).owns_k


def _gpus_for(cell) -> float:
    """1 when the embedder takes a ``device`` that may be CUDA and the cluster has a GPU."""
    import ray

    from clusterbench.core.catalog import registries

    embedders = registries()[1]
    if "device" not in embedders.traits(cell.embedder).params or ray.cluster_resources().get("GPU", 0) < 1:
        return 0
    device = str(cell.embedder.params.get("device", embedders.parameters(cell.embedder.name).get("device", "auto")))
    return 0 if device == "cpu" else 1

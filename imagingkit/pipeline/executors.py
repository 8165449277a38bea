"""Where sessions run: in this process, on a local process pool, or on Dask.

Every executor maps one picklable function over a list of items and returns
the results in order; the function itself catches and reports a session's
failure, so one bad session never stops the others.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable
from typing import Any

from imagingkit.errors import ParameterError


def _progress(total: int, show: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, desc=desc, unit="session", leave=False)


def run_serial(func: Callable[[Any], Any], items: Iterable[Any], progress: bool = False) -> list[Any]:
    """Run in this process, one item after the other."""
    items = list(items)
    results = []
    with _progress(len(items), progress, "sessions") as bar:
        for item in items:
            results.append(func(item))
            bar.update()
    return results


def run_local_pool(
    func: Callable[[Any], Any], items: Iterable[Any], workers: int, progress: bool = False
) -> list[Any]:
    """Run on a pool of ``workers`` local processes; results in the order of ``items``."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return run_serial(func, items, progress)
    results: list[Any] = [None] * len(items)
    with (
        concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool,
        _progress(len(items), progress, f"sessions ({workers} processes)") as bar,
    ):
        futures = {pool.submit(func, item): i for i, item in enumerate(items)}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return results


def run_dask(
    func: Callable[[Any], Any],
    items: Iterable[Any],
    scheduler: str | None = None,
    workers: int = 2,
    progress: bool = False,
) -> list[Any]:
    """Run on Dask distributed: an existing scheduler, or a local cluster of ``workers`` processes.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``), e.g. one started
        by dask-jobqueue on a SLURM cluster. None starts a ``LocalCluster`` on
        the loopback interface (nothing listens beyond this machine).
    workers : int
        Processes of the local cluster (one thread each).
    """
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ParameterError(
            "the Dask executor needs the 'dask' extra: pip install 'imagingkit[dask]'"
        ) from exc
    items = list(items)

    def gather(client) -> list[Any]:
        futures = client.map(func, items, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(items)
        with _progress(len(items), progress, "sessions (dask)") as bar:
            for future in as_completed(futures):
                results[index[future.key]] = future.result()
                bar.update()
        return results

    if scheduler:
        with Client(scheduler) as client:
            return gather(client)
    with (
        LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        return gather(client)


def map_sessions(
    func: Callable[[Any], Any],
    items: Iterable[Any],
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = False,
) -> list[Any]:
    """Dispatch to the named executor: ``"serial"``, ``"local"`` (process pool) or ``"dask"``."""
    if executor == "serial":
        return run_serial(func, items, progress)
    if executor == "local":
        return run_local_pool(func, items, workers, progress)
    if executor == "dask":
        return run_dask(func, items, scheduler=scheduler, workers=workers, progress=progress)
    raise ParameterError(f"unknown executor {executor!r}; expected 'serial', 'local' or 'dask'")

"""Dask, the one engine that runs Landprobe's work on many processes or machines: the client, and tasks run on it.

:func:`dask_client` connects to the Dask scheduler the user named (the ``scheduler`` argument, else the
``LANDPROBE_DASK_SCHEDULER`` environment variable that the plugin sets from its "Dask scheduler" setting), or starts
a ``distributed.LocalCluster`` inside the engine. :func:`run_tasks` runs one function over many items, on a client
when there is one and in this process when there is none, with progress and cancel either way; the results come back
in the items' order, so that the two ways give the same result. Dask schedules, retries and moves the tasks: nothing
here schedules work itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .devices import cpu_threads
from .errors import InputError
from .feedback import Feedback
from .seam import SCHEDULER_VARIABLE

logger = logging.getLogger(__name__)

#: How long to wait for a given Dask scheduler to answer.
CONNECT_TIMEOUT = "10s"

T = TypeVar("T")


def scheduler_address(scheduler: str | None = None) -> str:
    """The Dask scheduler to use: ``scheduler`` when given, else ``LANDPROBE_DASK_SCHEDULER``; empty for none."""
    return (scheduler or os.environ.get(SCHEDULER_VARIABLE, "")).strip()


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int = 0) -> Iterator[tuple[Any, str]]:
    """A ``distributed.Client`` on the given scheduler, or on a LocalCluster started here; and its description.

    Args:
        scheduler: the scheduler's address (``tcp://host:8786``); empty: see :func:`scheduler_address`.
        workers: worker processes of a local cluster (0: one per core, or the CPU threads setting).

    Raises:
        InputError: when the scheduler cannot be reached.

    """
    # Lazy: distributed takes a second to import, and only the jobs that use a cluster need it.
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    if address:
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"Cannot reach the Dask scheduler at {address} ({exc}): start it (dask scheduler) and "
                             f"its workers, or clear the Dask scheduler setting ({SCHEDULER_VARIABLE}) to work on "
                             "this machine.") from None
        try:
            info = client.scheduler_info()
            n = len(info.get("workers", {}))
            # the link Dask guesses when the scheduler runs no dashboard would lead nowhere
            board = f"dashboard {client.dashboard_link}" if "dashboard" in info.get("services", {}) else "no dashboard"
            yield client, f"the Dask scheduler at {address} ({n} workers; {board})"
        finally:
            client.close()
        return
    n_workers = workers or cpu_threads()
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client, f"a local Dask cluster ({n_workers} worker processes, one thread each)"
    finally:
        client.close()
        cluster.close()


def run_tasks(function: Callable[..., T], items: Sequence[tuple[Any, ...]], client: Any | None,
              feedback: Feedback, message: str) -> list[T]:
    """``function(*item)`` for every item, as Dask tasks on ``client`` or here when it is ``None``; in order.

    Progress (``message``, items done of all) and cancel are checked as each item finishes; on cancel or on a task's
    error the tasks not yet finished are cancelled on the cluster.
    """
    if client is None:
        results = []
        for i, item in enumerate(items):
            feedback.check_cancel()
            results.append(function(*item))
            feedback.progress((i + 1) / max(1, len(items)), message)
        return results
    # Lazy: only a job given a cluster needs it.
    from distributed import as_completed

    futures = [client.submit(function, *item, pure=False) for item in items]
    index = {future.key: i for i, future in enumerate(futures)}
    out: list[Any] = [None] * len(futures)
    done = 0
    try:
        ready = as_completed(futures)
        while done < len(futures):
            finished = ready.next_batch(block=False)
            if not finished:
                time.sleep(0.1)
            for future in finished:
                out[index[future.key]] = future.result()
                future.release()
                done += 1
            feedback.progress(done / len(futures), message)
            feedback.check_cancel()
    except BaseException:
        client.cancel([f for f in futures if not f.done()])
        raise
    return out

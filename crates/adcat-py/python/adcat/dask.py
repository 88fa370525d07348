"""Concatenate on a Dask cluster: :func:`concat_on_disk` and :func:`plan`.

Needs ``dask`` and ``distributed`` (``pip install 'adcat[dask]'``); ``import adcat``
works without them, and this module imports them only when called.

How a run goes. The calling process plans the concatenation as a job (as
``adcat job create`` does): it reads the inputs' metadata, indexes and off-axis tables,
writes the output's skeleton where the tasks build it (a hidden sibling of a local
output, the unpublished prefix of an output in object storage), and puts the job, a JSON
document of its elements and tasks, into the graph once. The graph has one Dask task per
job task: *count* tasks (sparse elements: entries kept per block of rows, a few integers),
*write* tasks (each owns whole chunks or shards of one element; a sparse element's take
its count tasks' results) and one *finish* task, which takes every result, completes the
metadata, verifies the output and publishes it (an ``.h5ad`` output is staged as zarr
and converted by finish). Every task opens the inputs and the output by path or URL, so
workers must see them at the same paths (a shared filesystem, or object storage), and
runs adcat's engine with the GIL released.

Tasks are idempotent: Dask re-runs the tasks of a worker that died, and the output is the
same. A task that fails for a real reason (a corrupt input) stops the run with adcat's
message, and nothing is published.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from . import _adcat, _api
from ._errors import AdcatTypeError, AdcatValueError
from ._progress import _interactive, _tqdm
from ._targets import Scratch, is_url

if TYPE_CHECKING:
    from dask.delayed import Delayed
    from distributed import Client, Future

__all__ = ["concat_on_disk", "plan"]

#: How long to wait for a failed run's running tasks before warning that it waits.
_STOP_NOTICE_SECONDS = 30.0


def _require_dask() -> None:
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as e:
        raise ImportError(f"adcat.dask needs dask and distributed ({e}); install them with: pip install 'adcat[dask]'") from e


def _check_location(obj: Any, what: str) -> None:
    """Workers open inputs and the output themselves: only paths and URLs name them."""
    if not (is_url(obj) or isinstance(obj, (str, os.PathLike))):
        raise AdcatTypeError(
            f"{what} must be a path or an s3:// URL that every Dask worker can open, not {type(obj).__name__}; "
            "write it to a file first, or use adcat.concat_on_disk in this process"
        )


def _create(in_files: Any, out_file: Any, force: bool, options: dict[str, Any]) -> tuple[str, list[str]]:
    """Plan the job: returns its JSON text and the planning's warnings."""
    _require_dask()
    in_files = dict(in_files) if isinstance(in_files, Mapping) else list(in_files)
    values = in_files.values() if isinstance(in_files, dict) else in_files
    for i, f in enumerate(values):
        _check_location(f, f"input {i}")
    _check_location(out_file, "out_file")
    scratch = Scratch()
    try:
        _, args = _api._concat_args(in_files, out_file, scratch, **options)
        return _adcat.job_create(args, force=bool(force))
    finally:
        scratch.cleanup()


def _run_task(job: str, task: int, needs: list[list[int]], threads: int | None, follow: bool) -> list[int] | None:
    return _adcat.job_run(job, task, [list(n) for n in needs], max_memory=None, follow_external_links=follow, threads=threads)


def _finish(job: str, results: list[list[int] | None], threads: int | None, follow: bool) -> str:
    return _adcat.job_finish(job, list(results), follow_external_links=follow, threads=threads)


def _graph(job: str, threads: int | None, follow: bool) -> tuple[list[Delayed], Delayed]:
    """One delayed call per task of ``job`` and the finish that takes them all.

    Built as one graph layer: chaining ``dask.delayed`` calls would merge each task's
    graph into its dependents', quadratic in the tasks (5 s for 300 of them).
    """
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    # The graph has side effects: a run's keys are its own, never results cached from
    # an earlier graph of the same job.
    token = tokenize(job, uuid.uuid4().hex)
    layer, job_key, finish_key = f"adcat-{token}", f"adcat-job-{token}", f"adcat-finish-{token}"
    dsk: dict[Any, Any] = {job_key: job}
    keys: list[tuple[str, int]] = []
    for t, (_element, stage, needs) in enumerate(_adcat.job_tasks(job)):
        key = (f"adcat-{stage}-{token}", t)
        dsk[key] = (_run_task, job_key, t, [keys[n] for n in needs], threads, follow)
        keys.append(key)
    dsk[finish_key] = (_finish, job_key, list(keys), threads, follow)
    graph = HighLevelGraph.from_collections(layer, dsk, dependencies=())
    return [Delayed(k, graph, layer=layer) for k in keys], Delayed(finish_key, graph, layer=layer)


def plan(
    in_files: Collection[Any] | Mapping[str, Any],
    out_file: str | os.PathLike[str],
    *,
    max_loaded_elems: int = 100_000_000,
    axis: Literal["obs", 0, "var", 1] = 0,
    join: Literal["inner", "outer"] = "inner",
    merge: Literal["same", "unique", "first", "only"] | None = None,
    uns_merge: Literal["same", "unique", "first", "only"] | None = None,
    label: str | None = None,
    keys: Collection[str] | None = None,
    index_unique: str | None = None,
    fill_value: Any | None = None,
    pairwise: bool = False,
    var_names: Sequence[str] | None = None,
    var_key: str | None = None,
    obs_filter: str | None = None,
    obs_names: Sequence[str] | None = None,
    var_filter: str | None = None,
    max_memory: int | str | None = None,
    zarr_format: Literal[2, 3] | None = None,
    compression: str | None = None,
    task_size: int | str | None = None,
    threads: int | None = 1,
    force: bool = True,
    follow_external_links: bool = False,
    provenance: bool = True,
) -> Delayed:
    """Plan a concatenation and return its Dask graph without running it.

    The output's skeleton is written now (hidden beside a local output, unpublished under
    an object-storage prefix); computing the returned object runs the tasks and publishes
    the output, and its result is the output's location. Combine it with other
    collections, inspect it (``.dask``, ``.visualize()``), or compute it on any
    ``distributed`` client. If it is never computed, or a task fails, the unpublished
    skeleton stays until the next run for the same output (``force=True``) replaces it;
    :func:`concat_on_disk` removes it itself.

    Parameters
    ----------
    in_files, out_file
        As for :func:`adcat.concat_on_disk`, but paths or ``s3://`` URLs only: every
        worker opens them itself.
    max_loaded_elems, axis, join, merge, uns_merge, label, keys, index_unique, fill_value, pairwise, var_names, var_key, obs_filter, obs_names, var_filter, max_memory, zarr_format, compression, follow_external_links, provenance
        As for :func:`adcat.concat_on_disk`. ``max_memory`` bounds each task.
    task_size
        Target uncompressed output size of one task (bytes or a size like ``"256MiB"``;
        default 1 GiB): smaller tasks spread over more workers.
    threads
        Threads of adcat's engine inside each task (default 1: Dask's workers are the
        parallelism, as its own tasks are single-threaded; ``None``: one per core).
    force
        Replace an existing output (only a file or an AnnData store, never an input).

    Returns
    -------
    dask.delayed.Delayed
        The finish task, depending on every other.

    Examples
    --------
    >>> graph = adcat.dask.plan(["a.h5ad", "b.zarr"], "atlas.zarr", join="outer")  # doctest: +SKIP
    >>> graph.compute()  # on the current distributed client  # doctest: +SKIP
    '/data/atlas.zarr'
    """
    options = _api._options(locals())
    job, warns = _create(in_files, out_file, force, {**options, "task_size": task_size})
    try:
        graph = _graph(job, threads, bool(follow_external_links))[1]
    except BaseException:
        _adcat.job_discard(job)
        raise
    _warn(warns)
    return graph


def concat_on_disk(
    in_files: Collection[Any] | Mapping[str, Any],
    out_file: str | os.PathLike[str],
    *,
    client: Client | None = None,
    max_loaded_elems: int = 100_000_000,
    axis: Literal["obs", 0, "var", 1] = 0,
    join: Literal["inner", "outer"] = "inner",
    merge: Literal["same", "unique", "first", "only"] | None = None,
    uns_merge: Literal["same", "unique", "first", "only"] | None = None,
    label: str | None = None,
    keys: Collection[str] | None = None,
    index_unique: str | None = None,
    fill_value: Any | None = None,
    pairwise: bool = False,
    var_names: Sequence[str] | None = None,
    var_key: str | None = None,
    obs_filter: str | None = None,
    obs_names: Sequence[str] | None = None,
    var_filter: str | None = None,
    max_memory: int | str | None = None,
    zarr_format: Literal[2, 3] | None = None,
    compression: str | None = None,
    task_size: int | str | None = None,
    threads: int | None = 1,
    progress: bool | None = None,
    force: bool = True,
    follow_external_links: bool = False,
    provenance: bool = True,
) -> None:
    """Concatenate AnnData stores on a Dask cluster, as :func:`adcat.concat_on_disk` does in
    this process; returns when the output is published.

    The same options and result as :func:`adcat.concat_on_disk`; see the module's docs for
    how the work is split. If a task fails (a corrupt input), its error is raised here
    with adcat's message after the run's other tasks have stopped, and the unpublished
    output is removed. A worker that dies mid-task is replaced by Dask and its tasks run
    again; the output is the same.

    Parameters
    ----------
    in_files, out_file
        Paths or ``s3://`` URLs that every worker can open.
    client
        The ``distributed.Client`` to run on (default: the current one).
    max_loaded_elems, axis, join, merge, uns_merge, label, keys, index_unique, fill_value, pairwise, var_names, var_key, obs_filter, obs_names, var_filter, max_memory, zarr_format, compression, task_size, threads, force, follow_external_links, provenance
        As for :func:`plan`.
    progress
        A tqdm bar of finished tasks in this process (default: when interactive and tqdm
        is installed). The Dask dashboard shows the tasks as they run (``adcat-count``,
        ``adcat-write``, ``adcat-finish``).

    Raises
    ------
    ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError, NotImplementedError, OSError
        As :func:`adcat.concat_on_disk`; also ``ValueError`` without a client.
    distributed.KilledWorker
        A task's workers died again and again (Dask's ``allowed_failures``).

    Examples
    --------
    >>> from distributed import Client
    >>> client = Client("tcp://scheduler:8786")  # doctest: +SKIP
    >>> adcat.dask.concat_on_disk(paths, "/shared/atlas.zarr", join="outer", label="batch")  # doctest: +SKIP
    """
    options = _api._options(locals())
    _require_dask()
    client = _client(client)
    job, warns = _create(in_files, out_file, force, {**options, "task_size": task_size})
    follow = bool(follow_external_links)
    futures: list[Future] = []
    try:
        tasks, finish = _graph(job, threads, follow)
        futures = client.compute([*tasks, finish], optimize_graph=False)
        _wait(client, futures, progress)
    except BaseException:
        _abandon(client, futures, job)
        raise
    finally:
        del futures
    _warn(warns)


def _client(client: Client | None) -> Client:
    if client is not None:
        return client
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        raise AdcatValueError(
            "adcat.dask.concat_on_disk: no Dask client; pass client=, or start one first (distributed.Client(...))"
        ) from None


def _wait(client: Client, futures: list[Future], progress: bool | None) -> None:
    """Wait for every future, raising the first task error at once."""
    from distributed import as_completed

    bar = _bar(progress, len(futures))
    try:
        # On the client's loop: it need not be the default client.
        for f in as_completed(futures, loop=client.loop):
            if f.status != "finished":
                f.result()  # raises the task's error
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _bar(progress: bool | None, total: int) -> Any | None:
    if progress is False:
        return None
    tqdm = _tqdm()
    if tqdm is None:
        if progress:
            warnings.warn("progress=True needs tqdm (pip install tqdm); running without a progress bar", stacklevel=4)
        return None
    if progress is None and not _interactive():
        return None
    return tqdm(total=total, unit="task", desc="adcat (dask)", leave=False)


def _abandon(client: Client, futures: list[Future], job: str) -> None:
    """After a failure or an interrupt: stop the run's tasks, then remove its unpublished
    output. The caller re-raises the original error; problems here are warnings."""
    try:
        _stop(client, futures)
    except BaseException:  # a second Ctrl-C while waiting
        warnings.warn("adcat: stopped while waiting for the run's tasks; its unpublished output is left "
                      "(the next run for the same output replaces it)", stacklevel=4)
        return
    try:
        _adcat.job_discard(job)
    except Exception as e:
        warnings.warn(f"adcat: could not remove the unpublished output: {e}", stacklevel=4)


#: Worker task states in which a task of the run may still start or write.
_LIVE_STATES = frozenset({"waiting", "ready", "constrained", "executing", "long-running", "cancelled", "resumed"})


def _live(keys: set[Any], dask_worker: Any = None) -> int:
    """How many of ``keys`` this worker may still run or is running (cancelled ones
    included: a thread cannot be interrupted)."""
    return sum(1 for key, ts in dask_worker.state.tasks.items() if key in keys and ts.state in _LIVE_STATES)


def _stop(client: Client, futures: list[Future]) -> None:
    """Cancel a run and wait until no worker may still run one of its tasks (two quiet
    polls in a row): its unpublished output is removed next, and nothing may recreate
    parts of it. Workers that cannot be reached are not waited for."""
    if not futures:
        return
    keys = {f.key for f in futures}
    client.cancel(futures)
    start, told, quiet, pause = time.monotonic(), False, 0, 0.05
    while quiet < 2:
        try:
            busy = sum(client.run(_live, keys, on_error="ignore").values())
        except Exception:  # the cluster itself is gone: nothing runs there any more
            return
        quiet = quiet + 1 if busy == 0 else 0
        if busy and not told and time.monotonic() - start > _STOP_NOTICE_SECONDS:
            warnings.warn(f"adcat: waiting for {busy} task(s) of the run to end before removing its unpublished output", stacklevel=4)
            told = True
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def _warn(messages: list[str]) -> None:
    for m in messages:
        warnings.warn(m, UserWarning, stacklevel=3)

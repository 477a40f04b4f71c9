"""The worker processes of a region load (:func:`biobank.genomes.regions.load_regions`).

A worker is ``python -m biobank.genomes.workers``: it reads pickled staging
jobs on its stdin and writes each one's pickled result (a
:class:`~biobank.genomes.regions.StagedRegion`, or the error it raised) on its
stdout, one job at a time, until it reads ``None``.

Why not :mod:`multiprocessing`'s ``spawn``: a spawned process first re-imports
the parent's ``__main__`` (the ``biobank`` command with its CLI, a benchmark
or a notebook's script, with whatever they import), and where bytecode is not
cached (``PYTHONDONTWRITEBYTECODE=1``) every module is compiled again. A
worker started here imports only the loading modules (:mod:`numpy`,
:mod:`polars`, :mod:`duckdb`, :mod:`cyvcf2` and :mod:`biobank.genomes.regions`),
and it imports them as soon as it starts, before its first job, so the parent
starts it before its own set-up and the imports overlap that set-up.

The protocol is private to :mod:`biobank.genomes.regions`; a worker that ends
without answering (killed, out of memory) is reported as a
:class:`~biobank.core.errors.StoreError`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import IO, Any

from biobank.core.errors import StoreError

__all__ = ["StageWorker", "stage_shared"]

#: the directory holding the ``biobank`` package (put on the worker's path)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class StageWorker:
    """One worker process; :meth:`run` a job in it, :meth:`close` it when done."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "biobank.genomes.workers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def run(self, job: tuple[Any, ...]) -> Any:
        """Run one job in the worker; return its result or raise its error.

        Raises
        ------
        StoreError
            If the worker ended without an answer (killed, out of memory).
        BaseException
            Whatever the job raised in the worker (e.g. ``ValidationError``).
        """
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        try:
            pickle.dump(job, self.proc.stdin)
            self.proc.stdin.flush()
            status, value = pickle.load(self.proc.stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            code = self.proc.wait()
            raise StoreError(
                f"a load worker process ended without an answer (exit code {code});"
                " nothing was loaded, run the load again"
            ) from exc
        if status == "error":
            raise value
        return value

    def close(self, *, kill: bool = False) -> None:
        """End the worker (at once with ``kill``, else after its current job)."""
        if kill:
            self.proc.kill()
        else:
            try:
                assert self.proc.stdin is not None
                pickle.dump(None, self.proc.stdin)
                self.proc.stdin.flush()
            except OSError:
                pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # the worker has gone: nothing to flush
                    pipe.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def stage_shared(
    jobs: Sequence[tuple[Any, ...]],
    workers: Sequence[StageWorker],
    stage: Callable[[tuple[Any, ...]], Any],
) -> Generator[Any, None, None]:
    """Run ``jobs`` in the worker processes and, with ``stage``, in this one; yield
    the results in job order, each as soon as it and those before it are done.

    This process stages from the front of ``jobs``, each worker takes the next
    job from the back when it has finished its last (by a thread per worker that
    waits on it). The workers start late (their imports), so this process
    stages the first jobs, and its results are handed over first: the caller
    publishes them while the workers stage the last jobs.

    The results have a ``discard()`` (their scratch files): on a failure, or
    when the caller stops early (closing the generator), nothing new starts,
    the jobs under way finish, what was not handed over is discarded and the
    first error is raised.
    """
    results: dict[int, Any] = {}
    errors: list[BaseException] = []
    done = threading.Condition()
    bounds = [0, len(jobs) - 1]  # the next job from the front, from the back
    stop = [False]

    def take(front: bool) -> int | None:
        with done:
            if errors or stop[0] or bounds[0] > bounds[1]:
                return None
            i = bounds[0] if front else bounds[1]
            bounds[0 if front else 1] += 1 if front else -1
            return i

    def feed(worker: StageWorker) -> None:
        while (i := take(front=False)) is not None:
            try:
                value = worker.run(jobs[i])
            except BaseException as exc:
                with done:
                    errors.append(exc)
                    done.notify_all()
                return
            with done:
                results[i] = value
                done.notify_all()

    feeders = [threading.Thread(target=feed, args=(w,)) for w in workers]
    for t in feeders:
        t.start()
    handed = 0
    try:
        try:
            while (i := take(front=True)) is not None:
                value = stage(jobs[i])
                with done:
                    results[i] = value
        except BaseException as exc:
            with done:
                errors.append(exc)
        for handed in range(len(jobs)):
            with done:
                while handed not in results and not errors:
                    done.wait()
                if errors:
                    raise errors[0]
                value = results[handed]
            yield value
        handed = len(jobs)
    finally:
        with done:
            stop[0] = True
        for t in feeders:
            t.join()
        for j, value in results.items():
            if j >= handed:
                value.discard()


def _answer(out: IO[bytes], status: str, value: Any) -> None:
    try:
        data = pickle.dumps((status, value))
    except Exception:  # an error that does not pickle: its words are enough
        data = pickle.dumps(("error", StoreError(f"{type(value).__name__}: {value}")))
    out.write(data)
    out.flush()


class _NoPandas:
    """An import hook that says pandas is not installed (see :func:`main`)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not imported in a load worker", name=name)
        return None


def main() -> None:
    """Serve jobs from stdin until ``None`` (the worker process's entry point).

    DuckDB (and pyarrow) import pandas, if it is installed, on the first
    statement with parameters, to recognise pandas values among them: 1.2 s of
    CPU here without cached bytecode, in a process that passes no pandas
    value. The worker therefore imports as if pandas were not installed.
    """
    sys.meta_path.insert(0, _NoPandas)
    # the protocol keeps the real stdout; anything a library prints goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    inp = sys.stdin.buffer
    # the imports of a job, before the first one (DuckDB imports pyarrow's
    # compute and dataset on its first Arrow scan)
    import cyvcf2  # noqa: F401
    import pyarrow.compute
    import pyarrow.dataset  # noqa: F401

    from biobank.genomes import regions

    while True:
        try:
            job = pickle.load(inp)
        except EOFError:
            return
        if job is None:
            return
        try:
            result = regions.stage_job(job)
        except BaseException as exc:
            exc.add_note("in the load worker process:\n" + traceback.format_exc())
            _answer(out, "error", exc)
            if not isinstance(exc, Exception):
                return
            continue
        _answer(out, "ok", result)


if __name__ == "__main__":
    main()

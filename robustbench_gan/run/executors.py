"""Executors run a run's job graph (:class:`~robustbench_gan.run.plan.JobGraph`): the local one here, in this
process, as a topological loop; Ray's as tasks on a cluster (registered lazily: its module is the only one that
imports Ray). Every executor runs the same jobs the same way; the driver alone writes caches and results."""
from __future__ import annotations

from typing import Any, Callable, Iterator

from ..errors import ConfigError
from ..execution import EXECUTORS
from ..core.progress import progress_bar
from .jobs import CellJob, ShardJob
from .plan import Executor, JobEnv, JobGraph


def progress_units(job: Any, n_eval: int) -> int:
    """What a job adds to a run's progress bar, in evaluated samples: a shard its samples, a whole cell every
    sample, a fit or a prerequisite nothing (the bar then counts images, with images/s and an ETA)."""
    if isinstance(job, ShardJob):
        return job.samples
    return n_eval if isinstance(job, CellJob) else 0


def run_bar(jobs: list[Any], env: JobEnv, *, desc: str, enabled: bool) -> tuple[Any, Callable[[Any], int]]:
    """An executor's bar over ``jobs``: counting evaluated images where the jobs attack any, else jobs; and the
    function giving what each finished job adds to it."""
    n_eval = len(env.eval.y) if env.eval is not None else 0
    total = sum(progress_units(job, n_eval) for job in jobs)
    if total:
        bar = progress_bar(total=total, desc=desc, enabled=enabled, leave=True, log_lines=False, unit="img")
        return bar, lambda job: progress_units(job, n_eval)
    bar = progress_bar(total=len(jobs), desc=desc, enabled=enabled, leave=True, log_lines=False)
    return bar, lambda job: 1


class LocalExecutor:
    """Runs the jobs one after the other in this process, in the graph's order (the default): a classifier is
    trained just before the first cell that needs it, so a run that is stopped keeps everything finished so far."""

    def __init__(self, *, progress: bool = True) -> None:
        self.progress = progress

    def run(self, graph: JobGraph, env: JobEnv, *, desc: str) -> Iterator[tuple[str, Any]]:
        outputs = dict(graph.done)
        needed = graph.needed()
        pending = graph.pending()
        # the suite's bar, counting the images attacked (images/s, ETA); without a terminal the run logs a line
        # per finished cell instead (run.pipeline)
        bar, units = run_bar(pending, env, desc=desc, enabled=self.progress)
        try:
            for job in pending:
                output = job.run({dep: outputs[dep] for dep in job.deps}, env)
                if job.id in needed:
                    outputs[job.id] = output
                bar.update(units(job))
                yield job.id, output
        finally:
            bar.close()


def make_executor(kind: str = "local", *, address: str | None = None, num_cpus: float | None = None,
                  num_gpus: float | None = None, progress: bool = True) -> Executor:
    """The executor registered as ``kind`` (:data:`~robustbench_gan.execution.EXECUTORS`: ``local``, ``ray`` or
    one of your own); ``local`` never imports Ray. Ray's tasks take 1 CPU unless ``num_cpus`` says otherwise;
    another executor is given the resources that were set."""
    if kind not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS.names())}, got {kind!r}")
    if kind == "local":
        return LocalExecutor(progress=progress)
    if kind == "ray":
        num_cpus = 1.0 if num_cpus is None else num_cpus
    resources = {"address": address, "num_cpus": num_cpus, "num_gpus": num_gpus}
    return EXECUTORS.get(kind)(progress=progress, **{k: v for k, v in resources.items() if v is not None})

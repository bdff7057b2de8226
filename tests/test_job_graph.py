"""One job graph (issue 23): the plan holds every job a run needs (shared prerequisites, classifier fits, cells)
with their dependencies, and every executor runs it the same way. The Ray side of the dependency test is in
test_ray.py (it reuses DEPENDENT_SUITE and assert_built_once from here)."""
from __future__ import annotations

from pathlib import Path

import pytest

from robustbench_gan.run import JobGraph, LocalExecutor, run_suite
from robustbench_gan.run.jobs import BuildJob, CellJob, FitJob, MergeJob
from suite_files import NO_TRANSFER, suite_toml

# a distillation teacher, and one GAN shared by two defenses (gan-b has gan-a's GAN settings: one generator for
# both); the GAN report also needs the reference CNN
SMALL_GAN = {"kind": "gan-augmentation", "gan_epochs": 1, "width": 8, "z_dim": 8}
DEPENDENT_SUITE = suite_toml(
    "dependent", seed=2, defenses=[{"name": "distilled", "kind": "distillation", "temperature": 20},
                                   {"name": "gan-a", **SMALL_GAN, "samples": 100},
                                   {"name": "gan-b", **SMALL_GAN, "samples": 200}],
    transfer=NO_TRANSFER, evaluation={"n": 100})

BUILT_ONCE = ["GAN generator", "classifier", "classifier", "classifier", "classifier", "classifier",
              "distillation teacher"]
"""What the dependent suite builds besides its cells: 4 classifiers of the suite + the GAN report's reference CNN,
the teacher and the shared GAN, each once."""


def assert_built_once(built: list[tuple[str, str]]) -> None:
    """``built``: (what, cache key) of every non-cell job an executor ran for the dependent suite."""
    assert sorted(what for what, _ in built) == BUILT_ONCE
    assert len(set(built)) == len(built)


class Recording(LocalExecutor):
    """The local executor, keeping the graph it was given and the jobs it ran, in order."""

    def __init__(self) -> None:
        super().__init__(progress=False)
        self.graph: JobGraph | None = None
        self.ran: list = []

    def run(self, graph, env, *, desc):
        self.graph = graph
        for job_id, output in super().run(graph, env, desc=desc):
            self.ran.append(graph.jobs[job_id])
            yield job_id, output


@pytest.fixture(scope="module")
def dependent(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dependent") / "dependent.toml"
    path.write_text(DEPENDENT_SUITE)
    return path


def test_the_graph_holds_every_job_with_its_dependencies_and_runs_each_once(dependent, tmp_path):
    """The teacher and the shared GAN are jobs the fits depend on, each built once; the cells depend on their
    classifier; the local executor runs the graph in its order; a second run on the same cache runs nothing."""
    executor = Recording()
    run_suite(dependent, out=tmp_path / "out", device="cpu", progress=False, executor=executor)
    graph = executor.graph
    assert graph is not None and [job.id for job in executor.ran] == [job.id for job in graph.pending()]
    assert_built_once([(job.what, job.key) for job in executor.ran if not isinstance(job, (CellJob, MergeJob))])

    builds = {job.what: job for job in graph.jobs.values() if isinstance(job, BuildJob)}
    fits = {job.recipe.defense.name: job for job in graph.jobs.values() if isinstance(job, FitJob)
            if job.recipe.model.name == "logistic"}
    assert fits["gan-a"].deps == fits["gan-b"].deps == (builds["GAN generator"].id,)
    assert fits["distilled"].deps == (builds["distillation teacher"].id,) and fits["none"].deps == ()
    for cell in (job for job in graph.jobs.values() if isinstance(job, CellJob)):
        (ident,) = [(m.name, d.name) for m, d in cell.cell.targets]
        assert cell.deps == (fits[ident[1]].id,)
    order = list(graph.jobs)
    for job in graph.jobs.values():  # a topological order: every dependency comes first
        assert all(order.index(dep) < order.index(job.id) for dep in job.deps)
    models = {p.stem for p in (tmp_path / "out" / "cache" / "models").glob("*.pt")}
    assert {builds["GAN generator"].key, builds["distillation teacher"].key} <= models  # the driver cached them

    again = Recording()
    run_suite(dependent, out=tmp_path / "out", device="cpu", progress=False, executor=again)
    assert again.graph is None and again.ran == []  # nothing pending: the executor is not even asked


def test_a_job_cannot_be_added_before_its_dependencies():
    graph = JobGraph()
    with pytest.raises(ValueError, match="depends on"):
        graph.add(CellJob(0, None, ((("m", "none"), "classifier:m/none"),)))  # type: ignore[arg-type]
    graph.resolve("classifier:m/none", object())
    graph.add(CellJob(0, None, ((("m", "none"), "classifier:m/none"),)))  # type: ignore[arg-type]
    assert [job.id for job in graph.pending()] == ["cell:0"] and graph.needed() == {"classifier:m/none"}

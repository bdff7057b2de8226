"""Running suites and ``benchmark()``: plan (cells, the job graph, the executor protocol), jobs (prerequisite,
fit and cell jobs), classifiers (resolved or planned once each), cells (a pure function per cell), records
(shaping and aggregation), cache (finished cells), executors (where the graph runs)."""
from .cells import EvalData, run_cell
from .executors import LocalExecutor
from .pipeline import load_suite_data, run_pipeline, run_suite
from .plan import NO_DEFENSE, Cell, CellSettings, Executor, Job, JobEnv, JobGraph, plan_cells
from .records import CellOutput

__all__ = ["NO_DEFENSE", "Cell", "CellOutput", "CellSettings", "EvalData", "Executor", "Job", "JobEnv", "JobGraph",
           "LocalExecutor",
           "load_suite_data", "plan_cells", "run_cell", "run_pipeline", "run_suite"]

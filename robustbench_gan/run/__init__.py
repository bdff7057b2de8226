"""Running suites and ``benchmark()``: plan (cells as plain tasks), classifiers (train/load once), cells (a pure
function per cell), records (shaping and aggregation), cache (finished cells), executors (where cells run)."""
from .cells import EvalData, run_cell
from .executors import Executor, LocalExecutor
from .pipeline import load_suite_data, run_pipeline, run_suite
from .plan import NO_DEFENSE, Cell, CellSettings, plan_cells
from .records import CellOutput

__all__ = ["NO_DEFENSE", "Cell", "CellOutput", "CellSettings", "EvalData", "Executor", "LocalExecutor",
           "load_suite_data", "plan_cells", "run_cell", "run_pipeline", "run_suite"]

"""The executors a suite's ``[execution] executor`` can name. The registry lives here, below the suite format and
the run code, so that a suite is checked against every registered executor (a user's included) and neither
imports the other; its entries are lazy: an executor's module (Ray's, the only one importing Ray) loads when a
run asks for it."""
from __future__ import annotations

from typing import Any

from .registry import Registry

EXECUTORS: Registry[Any] = Registry("executor")
"""Executor classes by name. An executor implements ``run(graph, env, *, desc)`` (see
:class:`robustbench_gan.run.plan.Executor`) and is built with ``progress`` and the ``[execution]`` resources
given (``address``, ``num_cpus``, ``num_gpus``)."""
EXECUTORS.register_lazy("local", "robustbench_gan.run.executors:LocalExecutor")
EXECUTORS.register_lazy("ray", "robustbench_gan.run.ray_executor:RayExecutor")

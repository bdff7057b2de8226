"""Static checks of the package's import graph (ast only: nothing here imports robustbench_gan)."""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

import pytest

PKG = "robustbench_gan"
ROOT = Path(__file__).resolve().parents[1] / PKG
Graph = dict[str, set[str]]


def discover(root: Path, name: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under root (a package named `name`)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [name, *path.relative_to(root).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def iter_imports(node: ast.AST, *, type_checking: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in the tree, at any depth; the bodies of `if TYPE_CHECKING:` only with
    ``type_checking`` (imports for annotations: no cycle at run time, but still a dependency of the design)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    skip = not type_checking and isinstance(node, ast.If) and _is_type_checking(node.test)
    for child in node.orelse if skip else ast.iter_child_nodes(node):
        yield from iter_imports(child, type_checking=type_checking)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _resolve(module: str, is_package: bool, target: str | None, level: int) -> str:
    """Absolute name of `from <level dots><target> import ...` written in `module`."""
    if level == 0:
        return target or ""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(parts):
        return ""
    base = ".".join(parts[:len(parts) - (level - 1)])
    return f"{base}.{target}" if target else base


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that is `name` or a dotted prefix of it."""
    parts = name.split(".")
    return next((m for i in range(len(parts), 0, -1) if (m := ".".join(parts[:i])) in modules), None)


def explicit_edges(root: Path, name: str, *, type_checking: bool = False) -> Graph:
    """Module -> modules of the package it imports, as written in its source (``type_checking``: the imports under
    `if TYPE_CHECKING:` too)."""
    modules = discover(root, name)
    graph: Graph = {}
    for module, path in modules.items():
        targets: list[str] = []
        for node in iter_imports(_parse(path), type_checking=type_checking):
            if isinstance(node, ast.Import):
                targets += [alias.name for alias in node.names]
                continue
            base = _resolve(module, path.name == "__init__.py", node.module, node.level)
            targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        graph[module] = {m for t in targets if (t == name or t.startswith(name + ".")) and (m := _owner(t, modules))}
    return graph


def runtime_edges(explicit: Graph, name: str) -> Graph:
    """Explicit edges plus the parent packages Python initialises first, the top-level package included (its
    ``__init__`` imports its public names lazily, so it adds no edge of its own)."""
    def parents(module: str) -> set[str]:
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(name.count(".") + 1, len(parts))}

    graph: Graph = {}
    for module, targets in explicit.items():
        extra = parents(module).union(*(parents(t) for t in targets))
        graph[module] = {m for m in targets | extra if m in explicit and m != module}
    return graph


def imports_torch(path: Path) -> bool:
    """Whether the file imports torch anywhere (module level or in functions) outside TYPE_CHECKING blocks."""
    names: list[str] = []
    for node in iter_imports(_parse(path)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif node.level == 0:
            names.append(node.module or "")
    return any(n == "torch" or n.startswith("torch.") for n in names)


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module, and self-loops (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def shortest_path(graph: Graph, start: str, is_target: Callable[[str], bool], prefer: Graph | None = None,
                  ) -> list[str] | None:
    """BFS from `start` to the nearest module satisfying `is_target` (start included), or None; among equally
    short paths, edges in `prefer` (the explicit imports) are taken first."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        if is_target(v):
            path = [v]
            while (p := previous[path[-1]]) is not None:
                path.append(p)
            return path[::-1]
        for w in sorted(graph.get(v, ()), key=lambda w: (w not in (prefer or {}).get(v, ()), w)):
            if w not in previous:
                previous[w] = v
                queue.append(w)
    return None


def _short(path: list[str]) -> str:
    return " -> ".join(m.removeprefix(PKG + ".") for m in path)


def _under(module: str, prefixes: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _example_cycle(graph: Graph, component: list[str]) -> list[str]:
    """One shortest cycle through the component's first module."""
    start, members = component[0], set(component)
    sub = {v: graph[v] & members for v in component} | {"": graph[start] & members}
    return [start, *(shortest_path(sub, "", lambda m: m == start) or [""])[1:]]


def test_no_import_cycles() -> None:
    """No strongly connected components or self-imports among every import: function-level ones and those under
    `if TYPE_CHECKING:` included (a cycle there is one in the design, even when Python never runs it)."""
    graph = explicit_edges(ROOT, PKG, type_checking=True)
    found = [f"{{{_short(c).replace(' -> ', ', ')}}}: {_short(_example_cycle(graph, c))}" for c in cycles(graph)]
    assert not found, "import cycles (every import, incl. function-level and TYPE_CHECKING):\n  " + "\n  ".join(found)


def test_attacks_never_import_evaluation_run_or_reports() -> None:
    """Attacks perturb; scoring them is the evaluation's: no module under attacks/ imports the evaluation package,
    run/ or reports/ (TYPE_CHECKING imports included), directly or through another module."""
    explicit = explicit_edges(ROOT, PKG, type_checking=True)
    banned = [f"{PKG}.{m}" for m in ("evaluation", "run", "reports", "api", "cli")]
    sources = [m for m in explicit if _under(m, [f"{PKG}.attacks"])]
    assert len(sources) > 10, sources
    paths = [p for s in sources if (p := shortest_path(explicit, s, lambda m: _under(m, banned)))]
    assert not paths, "attacks reach the evaluation/run/reports layers:\n  " + "\n  ".join(map(_short, paths))


def test_results_and_reports_never_reach_attacks_or_defenses() -> None:
    """Loading or reporting results never (transitively) runs attack, defense, runner, api or GAN code."""
    explicit = explicit_edges(ROOT, PKG)
    graph = runtime_edges(explicit, PKG)
    required = [f"{PKG}.{m}" for m in ("results", "samples", "reports.html", "checks.explanations")]
    optional = [f"{PKG}.{m}" for m in ("checks", "checks.row_checks", "compare", "export")]
    sources = sorted({*required, *optional, *(m for m in graph if _under(m, [f"{PKG}.reports"]))} & graph.keys())
    banned = [f"{PKG}.{m}" for m in ("attacks", "defenses", "run", "runner", "api", "gan")]
    problems = [f"missing module {m}" for m in required if m not in graph]
    paths = (shortest_path(graph, s, lambda m: _under(m, banned), explicit) for s in sources)
    problems += [_short(p) for p in paths if p]
    header = "results/report layers reach attacks/defenses/runner/api/gan (shortest paths):\n  "
    assert not problems, header + "\n  ".join(problems)


def test_checks_explanations_import_no_torch() -> None:
    """The check explanations (used by the HTML report) load without torch."""
    modules = discover(ROOT, PKG)
    source = f"{PKG}.checks.explanations"
    if source not in modules:
        pytest.fail(f"missing module {source}")
    torch_users = {m for m, path in modules.items() if imports_torch(path)}
    explicit = explicit_edges(ROOT, PKG)
    path = shortest_path(runtime_edges(explicit, PKG), source, torch_users.__contains__, explicit)
    assert path is None, f"{source} reaches a module that imports torch: {_short(path or [])}"


def test_graph_walker_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The walker, on a tiny package: relative and function-level imports, TYPE_CHECKING, parents, cycles."""
    files = {
        "__init__.py": "",
        "a.py": "import os\n\ndef f():\n    from .b import x\n    return x\n",
        "b.py": "from json import dumps\nfrom . import c\nx = 1\n",
        "c.py": "",
        "e.py": "",
        "f.py": "from .sub.d import K\n",
        "sub/__init__.py": "from . import d\n",
        "sub/d.py": "import typing\nfrom typing import TYPE_CHECKING\nfrom ..a import f\n\nif TYPE_CHECKING:\n"
                    "    import pkg.c\nif typing.TYPE_CHECKING:\n    from pkg import c\nelse:\n    import torch\n\n"
                    "class K:\n    def m(self):\n        from .. import b\n        import pkg.e.nothing\n",
    }
    for rel, text in files.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_text(text, encoding="utf-8")
    explicit = explicit_edges(tmp_path / "pkg", "pkg")
    assert explicit == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set(),
                        "pkg.e": set(), "pkg.f": {"pkg.sub.d"},
                        "pkg.sub": {"pkg.sub.d"}, "pkg.sub.d": {"pkg.a", "pkg.b", "pkg.e"}}
    runtime = runtime_edges(explicit, "pkg")
    assert runtime["pkg.sub.d"] == {"pkg", "pkg.a", "pkg.b", "pkg.e", "pkg.sub"}  # own parent packages
    assert runtime["pkg.f"] == {"pkg", "pkg.sub.d", "pkg.sub"} and runtime["pkg.sub"] == {"pkg", "pkg.sub.d"}
    assert imports_torch(tmp_path / "pkg" / "sub" / "d.py") and not imports_torch(tmp_path / "pkg" / "a.py")
    assert shortest_path(runtime, "pkg.sub", lambda m: m == "pkg.c") == ["pkg.sub", "pkg.sub.d", "pkg.b", "pkg.c"]
    assert cycles(explicit) == []
    looped = {"w": {"x"}, "x": {"y"}, "y": {"w", "x"}, "z": {"z"}, "v": {"w"}}
    assert cycles(looped) == [["w", "x", "y"], ["z"]]
    assert _example_cycle(looped, ["w", "x", "y"]) == ["w", "x", "y", "w"]

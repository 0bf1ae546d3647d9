"""The house rules, checked: dependencies point one way, no import cycle, modules stay readable.

The layers are declared once, in pyproject.toml's [tool.importlinter] (docs/architecture.md says
why each layer sits where it does). Imports inside functions count: grimp reads every import
statement of a module, wherever it stands.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
from radon.complexity import cc_visit
from radon.visitors import Function

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "digest"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
# radon's rank D starts at 21 branches: past that a function is hard to hold in one's head
MAX_COMPLEXITY = 20


def test_the_layering_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_anywhere_in_the_package() -> None:
    graph = grimp.build_graph("digest")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch) -> None:
    # the check above must be able to fail: a two-module cycle, imported inside a function
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from cyclic import b\n")
    (pkg / "b.py").write_text("from cyclic import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("cyclic")) == [["cyclic.a", "cyclic.b"]]


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_too_long_to_read_in_one_sitting() -> None:
    long = {
        str(f.relative_to(ROOT)): n
        for f in _python_files()
        if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_longer_than_a_screen() -> None:
    long = {}
    for f in _python_files():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body_start = node.body[0].lineno
                # the docstring does not count: a function that explains itself is not longer for it
                if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                    body_start = node.body[1].lineno if len(node.body) > 1 else node.body[0].end_lineno or 0
                length = (node.end_lineno or 0) - body_start + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{f.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}


def test_no_function_is_too_branchy_to_follow() -> None:
    branchy = {
        f"{f.relative_to(ROOT)}:{block.lineno} {block.fullname}": block.complexity
        for f in _python_files()
        for block in cc_visit(f.read_text())
        if isinstance(block, Function) and block.complexity > MAX_COMPLEXITY
    }
    assert branchy == {}

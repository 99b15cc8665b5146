"""Every actor-less unit of work names its row-level security scope.

`core.runtime.unit_of_work()` without `scope=` falls back to a platform scope (every business's rows),
logged only as "unscoped <module>:<function>". That default is for code that has not said what it
touches; a new call site must say it: `Scope.tenant(id)` when the business is known,
`Scope.platform("why")` for work across businesses or before one is known, `Scope.none()` for platform
tables only. The use cases' `core.access.use_case.unit_of_work(actor)` derives the scope from its actor
and is not checked here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("core", "web", "bots", "ussd")
RUNTIME = "core.runtime"
FUNCTION = "unit_of_work"


def unscoped_calls(source: str, filename: str = "<source>") -> list[int]:
    """Lines of calls to core.runtime's `unit_of_work` (however imported) without a `scope=` keyword."""
    tree = ast.parse(source, filename)
    names: set[str] = set()  # the function's local names: `from core.runtime import unit_of_work as x`
    modules: set[str] = set()  # the module's: `import core.runtime as rt`, `from core import runtime`
    dotted = False  # `import core.runtime`: reached as core.runtime.unit_of_work
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            for alias in node.names:
                if node.module == RUNTIME and alias.name == FUNCTION:
                    names.add(alias.asname or alias.name)
                elif node.module == "core" and alias.name == "runtime":
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == RUNTIME:
                    if alias.asname:
                        modules.add(alias.asname)
                    else:
                        dotted = True
    if filename.replace("\\", "/").endswith("core/runtime.py"):
        names.add(FUNCTION)  # its own callers, if it ever has any

    def is_target(func: ast.expr) -> bool:
        if isinstance(func, ast.Name):
            return func.id in names
        if isinstance(func, ast.Attribute) and func.attr == FUNCTION:
            owner = func.value
            if isinstance(owner, ast.Name):
                return owner.id in modules
            return dotted and ast.unparse(owner) == RUNTIME
        return False

    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and is_target(node.func)
        and not any(k.arg == "scope" for k in node.keywords)
    )


def test_every_runtime_unit_of_work_names_its_scope() -> None:
    missing = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in unscoped_calls(path.read_text(), str(path))
    ]
    assert missing == [], (
        "unit_of_work() from core.runtime without scope= (it would fall back to the whole platform): "
        "pass Scope.tenant(id) when the business is known, Scope.platform('why') for work across "
        "businesses or before one is known, Scope.none() for platform tables only:\n  " + "\n  ".join(missing)
    )


class TestTheCheckFinds:
    def test_a_call_without_scope_however_the_function_is_imported(self) -> None:
        source = (
            "from core.runtime import unit_of_work\n"
            "from core.runtime import unit_of_work as uow\n"
            "import core.runtime\n"
            "import core.runtime as rt\n"
            "from core import runtime\n"
            "async def f():\n"
            "    async with unit_of_work() as s: ...\n"
            "    async with uow(readonly=True) as s: ...\n"
            "    async with core.runtime.unit_of_work() as s: ...\n"
            "    async with rt.unit_of_work(ends_job=False) as s: ...\n"
            "    async with runtime.unit_of_work(\n"
            "        readonly=True,\n"
            "    ) as s: ...\n"
        )
        assert unscoped_calls(source) == [7, 8, 9, 10, 11]

    def test_nothing_when_the_scope_is_named(self) -> None:
        source = (
            "from core.runtime import unit_of_work\n"
            "from core.db import Scope\n"
            "async def f(t):\n"
            "    async with unit_of_work(scope=Scope.tenant(t)) as s: ...\n"
            "    async with unit_of_work(readonly=True, scope=Scope.platform('every business')) as s: ...\n"
        )
        assert unscoped_calls(source) == []

    def test_nothing_for_the_use_case_unit_of_work(self) -> None:
        # core.access.use_case.unit_of_work(actor) takes its scope from the actor.
        source = (
            "from core.access.use_case import unit_of_work\n"
            "async def f(actor):\n"
            "    async with unit_of_work(actor) as uow: ...\n"
        )
        assert unscoped_calls(source) == []

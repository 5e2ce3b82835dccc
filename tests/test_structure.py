"""The package's imports, read from its source: which way the dependencies run (see docs/architecture.md).

Every ``import`` and ``from ... import`` of every module under ``expertbook/`` counts, at module level
and inside functions alike (a lazy import is still a dependency). ``from expertbook.x import y`` is an
import of ``expertbook.x.y`` when ``y`` is a module, else of ``expertbook.x``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "expertbook"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

AREAS = ("auth", "clinic", "experts", "calendars", "video", "webhooks", "api", "main", "notifications")
# What the outbox infrastructure must never import: every area, and the modules that gather them.
NOT_FOR_NOTIFICATIONS = ("clinic", "experts", "calendars", "video", "webhooks", "auth", "api", "main", "demo")
# The booking areas (and the API on top of them), which accounts must not know.
NOT_FOR_AUTH = ("clinic", "experts", "calendars", "video", "webhooks", "api")
# Calendars sit between experts and video: video (Google Meet) calls calendars' Google client, so calendars
# must know neither video nor the areas above it; and experts knows none of them (it asks a registered busy source).
NOT_FOR_CALENDARS = ("video", "api", "clinic", "main")
NOT_FOR_EXPERTS = ("calendars", "video", "api")
# Webhooks listen to the booking areas; those never know about it (they send signals, and the clinic
# booking takes webhooks' rows through a registered statement part).
NOT_WEBHOOKS_AWARE = ("clinic", "experts", "calendars", "video", "auth", "notifications", "api", "main")
# The clinic's modules, a room per responsibility, top to bottom: each imports only modules of the
# layers below its own (see docs/architecture.md). A module not listed fails the test until it is placed.
CLINIC_LAYERS = (
    ("views",),  # pages (it connects the emails and the account hooks)
    ("account_hooks",),  # what the clinic does when an account changes
    ("booking", "queue", "moves"),  # taking a place; the desk's queue and cancellations; moves
    ("sessions",),  # creating, finding and running sessions
    ("waitlist",),  # waiting lists, and who gets a freed place
    ("places", "appointments", "doctors", "hospitals"),  # the place-taking UPDATE; reading appointments; directory; staff
    ("inputs", "states", "emails", "forms"),  # limits and checks; how things read; emails; form shapes
    ("links", "signals", "clock", "models"),  # signed links, signals, zones, tables
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT.parent)}:{self.line}: {self.source} imports {self.target}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute name of a ``from ... import``'s module (relative imports resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of one of the package's modules by another, with where it is written."""
    names = modules(root)
    found = []
    for module, path in names.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                parent = _absolute(module, node, path.name == "__init__.py")
                for alias in node.names:
                    child = f"{parent}.{alias.name}"
                    targets.append(child if child in names else parent)
            for target in targets:
                # "import expertbook.a.b" names a module; keep the longest prefix that is one of ours.
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if target and target.split(".")[0] == PACKAGE and target != module:
                    found.append(Import(module, target, path, node.lineno))
    return sorted(set(found), key=lambda edge: (edge.source, edge.line, edge.target))


def area(module: str) -> str:
    """The part of the package a module belongs to: its area package, or itself if it is a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def in_area(module: str, names: tuple[str, ...]) -> bool:
    return len(module.split(".")) > 1 and module.split(".")[1] in names


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The graph's cycles, one per strongly connected component with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _explain(component: list[str], found: list[Import], key=lambda module: module) -> str:
    """One cycle through ``component``, each step as the import that makes it (file:line)."""
    members = set(component)
    steps: dict[tuple[str, str], Import] = {}
    for edge in found:
        step = (key(edge.source), key(edge.target))
        if step[0] != step[1] and step[0] in members and step[1] in members:
            steps.setdefault(step, edge)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier and start not in came_from:  # breadth first: the shortest way back to start
        nxt = []
        for node in frontier:
            for source, target in steps:
                if source == node and target not in came_from:
                    came_from[target] = node
                    nxt.append(target)
        frontier = nxt
    path, node = [], start
    while True:
        previous = came_from[node]
        path.append(steps[(previous, node)])
        node = previous
        if node == start:
            break
    return f"import cycle through {', '.join(component)}:\n  " + "\n  ".join(str(edge) for edge in reversed(path))


@pytest.fixture(scope="module")
def found() -> list[Import]:
    return imports()


def test_the_reader_sees_module_level_function_level_and_relative_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "a").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a" / "__init__.py").write_text("")
    (package / "a" / "x.py").write_text("from . import y\n")
    (package / "a" / "y.py").write_text("def f():\n    from expertbook.b import helper\n")
    (package / "b.py").write_text("import expertbook.a.x\nfrom expertbook.a import y as why\n")
    edges = {(edge.source, edge.target, edge.line) for edge in imports(package)}
    assert edges == {
        ("expertbook.a.x", "expertbook.a.y", 1),
        ("expertbook.a.y", "expertbook.b", 2),
        ("expertbook.b", "expertbook.a.x", 1),
        ("expertbook.b", "expertbook.a.y", 2),
    }
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        graph.setdefault(source, set()).add(target)
    assert cycles(graph) == [["expertbook.a.x", "expertbook.a.y", "expertbook.b"]]


def test_notifications_import_no_area(found):
    wrong = [str(edge) for edge in found if in_area(edge.source, ("notifications",))
             and (in_area(edge.target, NOT_FOR_NOTIFICATIONS) or edge.target in (f"{PACKAGE}.demo", PACKAGE))]
    assert not wrong, "expertbook.notifications is infrastructure; it must not import areas:\n" + "\n".join(wrong)


def test_auth_imports_no_booking_area(found):
    wrong = [str(edge) for edge in found if in_area(edge.source, ("auth",)) and in_area(edge.target, NOT_FOR_AUTH)]
    assert not wrong, "expertbook.auth sits below the areas; it must not import them:\n" + "\n".join(wrong)


def test_clinic_modules_import_only_layers_below(found):
    layer = {f"{PACKAGE}.clinic.{name}": depth for depth, names in enumerate(CLINIC_LAYERS) for name in names}
    unplaced = sorted(name for name in modules() if name.startswith(f"{PACKAGE}.clinic.") and name not in layer)
    assert not unplaced, "place every clinic module in CLINIC_LAYERS (tests/test_structure.py): " + ", ".join(unplaced)
    wrong = [str(edge) for edge in found if edge.source in layer and edge.target in layer and layer[edge.target] <= layer[edge.source]]
    assert not wrong, "a clinic module imports one of its own layer or above (see CLINIC_LAYERS):\n" + "\n".join(wrong)


def test_no_module_import_cycle(found):
    graph: dict[str, set[str]] = {}
    for edge in found:
        graph.setdefault(edge.source, set()).add(edge.target)
    problems = [_explain(component, found) for component in cycles(graph)]
    assert not problems, "\n".join(problems)


def test_no_cycle_between_areas(found):
    graph: dict[str, set[str]] = {}
    for edge in found:
        if area(edge.source) != area(edge.target):
            graph.setdefault(area(edge.source), set()).add(area(edge.target))
    problems = [_explain(component, found, key=area) for component in cycles(graph)]
    assert not problems, "\n".join(problems)


def test_only_the_cli_imports_the_devtools(found):
    wrong = [str(edge) for edge in found if in_area(edge.target, ("devtools",))
             and not in_area(edge.source, ("devtools",)) and edge.source != f"{PACKAGE}.cli"]
    assert not wrong, "expertbook.devtools is for development only; only expertbook.cli's commands may import it:\n" + "\n".join(wrong)


def test_calendars_import_neither_video_nor_the_areas_above(found):
    wrong = [str(edge) for edge in found if in_area(edge.source, ("calendars",)) and in_area(edge.target, NOT_FOR_CALENDARS)]
    assert not wrong, "expertbook.calendars sits below video (video imports it for Google Meet):\n" + "\n".join(wrong)


def test_experts_import_neither_calendars_nor_video(found):
    wrong = [str(edge) for edge in found if in_area(edge.source, ("experts",)) and in_area(edge.target, NOT_FOR_EXPERTS)]
    assert not wrong, "expertbook.experts knows no area above it (they plug in through signals and registries):\n" + "\n".join(wrong)


def test_no_area_below_the_top_imports_webhooks(found):
    wrong = [str(edge) for edge in found if in_area(edge.source, NOT_WEBHOOKS_AWARE) and in_area(edge.target, ("webhooks",))]
    assert not wrong, "expertbook.webhooks listens to the areas' signals; no area may import it:\n" + "\n".join(wrong)

"""The layout: the import graph of the package and the recipe, read from the
code (function-level imports included), and the package docstring's index."""

import ast
import glob
import os

import speechbrain_w2vbert
from tests.helpers import RECIPE_DIR, ROOT

PACKAGE_DIR = os.path.dirname(speechbrain_w2vbert.__file__)
PACKAGE_MODULES = sorted(os.path.splitext(os.path.basename(p))[0]
                         for p in glob.glob(os.path.join(PACKAGE_DIR, "*.py")) if not p.endswith("__init__.py"))
RECIPE_MODULES = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(RECIPE_DIR, "*.py")))


def imports_of(path):
    """Every module name a file imports, anywhere in it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def package_graph():
    """package module -> the package modules it imports."""
    graph = {}
    for name in PACKAGE_MODULES:
        imported = imports_of(os.path.join(PACKAGE_DIR, f"{name}.py"))
        graph[name] = {m.split(".")[1] for m in imported if m.startswith("speechbrain_w2vbert.")} - {name}
    return graph


def test_the_package_import_graph_has_no_cycle():
    graph = package_graph()
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in graph[node]:
            assert state.get(nxt) != "open", " -> ".join(path + [nxt])
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_no_package_module_imports_the_cli_or_the_recipe():
    for name, imported in package_graph().items():
        assert name == "cli" or "cli" not in imported, f"{name} imports the CLI module"
    for name in PACKAGE_MODULES:
        imported = imports_of(os.path.join(PACKAGE_DIR, f"{name}.py"))
        assert not imported & set(RECIPE_MODULES), f"{name} imports the recipe: {imported & set(RECIPE_MODULES)}"


def test_the_recipe_imports_the_package_and_its_own_folder_only():
    ours = {"speechbrain_w2vbert", *RECIPE_MODULES}
    for name in RECIPE_MODULES:
        for module in imports_of(os.path.join(RECIPE_DIR, f"{name}.py")):
            top = module.split(".")[0]
            assert top in ours or not os.path.exists(os.path.join(ROOT, top)), (name, module)  # no tests/, bench/


def test_the_package_docstring_names_every_module():
    doc = speechbrain_w2vbert.__doc__
    missing = [name for name in PACKAGE_MODULES if f":mod:`speechbrain_w2vbert.{name}`" not in doc]
    assert missing == []

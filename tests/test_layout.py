"""The layout: the package's wings and the arrows allowed between them, the
import graph (function-level imports included) without cycles, the modules
that must import without torch, and the package docstring's index."""

import ast
import os
import subprocess
import sys

import speechbrain_w2vbert
from tests.helpers import RECIPE_DIR, ROOT

PACKAGE_DIR = os.path.dirname(speechbrain_w2vbert.__file__)
PACKAGE = "speechbrain_w2vbert"

#: Each wing (a subpackage, or a top-level module) and the wings its modules
#: may import; a wing may always import its own modules, and any wing may
#: import ``compat`` (the 0.1.x names; it imports nothing of the package at
#: import time). Reading down the list goes up the house: nothing imports a
#: wing listed after it.
WINGS = {
    "compat": set(),
    "environment": set(),
    "audio": set(),
    "models": set(),
    "text": set(),
    "lm": {"text"},
    "training": {"audio", "models", "text"},
    "inference": {"audio", "models", "text", "lm"},
    "hf": {"models", "text", "lm"},
    "onnx": {"audio", "models", "text", "lm", "inference"},
    "serve": {"audio", "models", "text", "lm", "inference", "onnx"},
    "cli": {"audio", "models", "text", "lm", "inference", "hf", "onnx", "serve"},
}

#: Modules that import, and whose doctests pass, without torch: the text
#: wing, the result types and what turns frame paths into words and cues.
TORCH_FREE = ["speechbrain_w2vbert", "speechbrain_w2vbert.environment", "speechbrain_w2vbert.text.normalize",
              "speechbrain_w2vbert.text.tokenizer", "speechbrain_w2vbert.text.corpus",
              "speechbrain_w2vbert.text.overlap",
              "speechbrain_w2vbert.inference.results", "speechbrain_w2vbert.inference.timestamps",
              "speechbrain_w2vbert.inference.subtitles", "speechbrain_w2vbert.inference.chunking",
              "speechbrain_w2vbert.inference.pipeline", "speechbrain_w2vbert.inference.manifest",
              "speechbrain_w2vbert.onnx.frontend", "speechbrain_w2vbert.onnx.runtime", "speechbrain_w2vbert.onnx.vad",
              "speechbrain_w2vbert.onnx.quantize", "speechbrain_w2vbert.lm.ngram", "speechbrain_w2vbert.serve.errors",
              "speechbrain_w2vbert.serve.forms", "speechbrain_w2vbert.serve.batching"]
#: Modules that import without torch (what they do with it comes later).
TORCH_FREE_IMPORT = ["speechbrain_w2vbert.compat", "speechbrain_w2vbert.text.scoring", "speechbrain_w2vbert.audio",
                     "speechbrain_w2vbert.inference.segmentation", "speechbrain_w2vbert.inference.decoding",
                     "speechbrain_w2vbert.onnx", "speechbrain_w2vbert.cli"]


def package_modules():
    """Dotted names of every module of the package (``__init__`` as the package's own name)."""
    names = []
    for folder, _, files in os.walk(PACKAGE_DIR):
        for file in files:
            if file.endswith(".py"):
                relative = os.path.relpath(os.path.join(folder, file), os.path.dirname(PACKAGE_DIR))[:-3]
                name = relative.replace(os.sep, ".")
                names.append(name[: -len(".__init__")] if name.endswith(".__init__") else name)
    return sorted(names)


def path_of(module):
    base = os.path.join(os.path.dirname(PACKAGE_DIR), *module.split("."))
    return os.path.join(base, "__init__.py") if os.path.isdir(base) else base + ".py"


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
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def wing_of(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def package_graph():
    """package module -> the package modules it imports."""
    modules = set(package_modules())
    graph = {}
    for name in modules:
        imported = {m for m in imports_of(path_of(name)) if m in modules}
        graph[name] = imported - {name}
    return graph


def test_every_module_is_in_a_wing():
    assert {wing_of(m) for m in package_modules()} - {None, "configs"} <= set(WINGS)


def test_wings_import_only_the_wings_below_them():
    wrong = []
    for module, imported in package_graph().items():
        wing = wing_of(module)
        for target in imported:
            target_wing = wing_of(target)
            if target_wing in (None, "compat", wing) or wing is None:
                continue
            if target_wing not in WINGS[wing]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


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


def test_the_package_imports_neither_the_recipe_nor_the_tools():
    recipe = {os.path.splitext(f)[0] for f in os.listdir(RECIPE_DIR) if f.endswith(".py")}
    for module in package_modules():
        tops = {m.split(".")[0] for m in imports_of(path_of(module))}
        assert not tops & (recipe | {"tools", "tests", "bench"}), (module, tops & (recipe | {"tools", "tests"}))


def test_the_recipe_imports_the_package_and_its_own_folder_only():
    recipe = {os.path.splitext(f)[0] for f in os.listdir(RECIPE_DIR) if f.endswith(".py")}
    for name in recipe:
        for module in imports_of(os.path.join(RECIPE_DIR, f"{name}.py")):
            top = module.split(".")[0]
            assert top in recipe | {PACKAGE} or not os.path.exists(os.path.join(ROOT, top)), (name, module)


def test_the_torch_free_modules_import_without_torch():
    """In a process where importing torch (or speechbrain) fails, these
    modules import and their doctests pass."""
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] in ('torch', 'torchaudio', 'speechbrain', 'transformers'):\n"
               "            raise ImportError(f'{name} is blocked in this test')\n"
               "sys.meta_path.insert(0, Block())\n")
    code = blocker + ("import doctest, importlib\n"
                      f"for name in {TORCH_FREE_IMPORT!r}:\n"
                      "    importlib.import_module(name)\n"
                      f"for name in {TORCH_FREE!r}:\n"
                      "    module = importlib.import_module(name)\n"
                      "    failed, _ = doctest.testmod(module)\n"
                      "    assert failed == 0, name\n"
                      "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_package_docstring_names_every_module():
    doc = speechbrain_w2vbert.__doc__
    missing = [name for name in package_modules() if name != PACKAGE and f":mod:`{name}`" not in doc]
    assert missing == []

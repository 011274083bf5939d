"""The hyperparameter files and the docstrings, by the rules SpeechBrain's
own consistency checks apply in its CI (``tests/utils/check_yaml.py``'s
``check_yaml_vs_script`` and ``check_docstrings.py``, in the speechbrain
repository, not its wheel), here as rules of our own: each file loads with
plain ``load_hyperpyyaml``, declares nothing the recipe does not use, and
comments every plain value."""

import ast
import glob
import os
import re

import pytest
import yaml
from hyperpyyaml import load_hyperpyyaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = sorted(glob.glob(os.path.join(ROOT, "hparams", "*.yaml")))
TRAIN = os.path.join(ROOT, "recipes", "OpenSLR54", "train.py")


def top_level_keys(path):
    """Declared top-level keys, in order (``__set_seed``-style keys too)."""
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^([A-Za-z_]\w*):", f.read(), flags=re.M)


def used_by_train_py():
    """(names train.py reads from hparams, regexes of names it reads through
    f-strings) — ``hparams["x"]``, ``hparams.x``, ``self.hparams.x``,
    ``getattr(self.hparams, "x")``, ``hparams[f"{split}_csv"]``."""
    with open(TRAIN, encoding="utf-8") as f:
        text = f.read()
    names = set(re.findall(r"""hparams\[["'](\w+)["']\]""", text))
    names |= set(re.findall(r"hparams\.(\w+)", text))
    names |= set(re.findall(r"""getattr\(self\.hparams, ["'](\w+)["']""", text))
    patterns = []
    for template in re.findall(r"""hparams(?:\[|, )f["']([^"']+)["']""", text):
        patterns.append(re.compile(re.sub(r"\\\{\w+\\\}", r"\\w+", re.escape(template)) + "$"))
    return names, patterns


def run_options():
    """SpeechBrain's run options: keys the Brain reads from the hparams itself."""
    from speechbrain.core import RunOptions

    return set(RunOptions().as_dict())


@pytest.mark.parametrize("path", HPARAMS, ids=os.path.basename)
def test_every_key_is_used(path):
    """What ``check_yaml_vs_script`` enforces: a key is referenced below its
    declaration, read by train.py, or a SpeechBrain run option."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    names, patterns = used_by_train_py()
    options = run_options()
    unused = []
    for key in top_level_keys(path):
        if key.startswith("__"):
            continue  # __set_seed: run for its side effect
        declared = re.search(rf"^{key}:", text, flags=re.M).end()
        referenced = re.search(rf"<{key}(\[[^>]*\])?>", text[declared:]) is not None
        if not (referenced or key in names or key in options or any(p.match(key) for p in patterns)):
            unused.append(key)
    assert not unused, f"{os.path.basename(path)}: not used by train.py nor referenced: {unused}"


@pytest.mark.parametrize("path", HPARAMS, ids=os.path.basename)
def test_conventions(path):
    """Seed first, data paths as placeholders, a comment (unit, range or
    meaning) on every plain value, and every stateful object checkpointed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    keys = top_level_keys(path)
    assert keys[:2] == ["seed", "__set_seed"], keys[:2]
    assert re.search(r"^data_folder: !PLACEHOLDER", text, flags=re.M)
    for line in text.splitlines():
        assert not re.match(r"^\s*[a-z_]+: [^!#\n]+$", line), f"{os.path.basename(path)}: no comment: {line}"
    recoverables = text[text.index("checkpointer:"):].split("train_logger:")[0]
    for name in ("encoder", "lr_schedule_head", "lr_schedule_encoder", "counters", "counter"):
        assert re.search(rf"^\s+{name}: !ref <", recoverables, flags=re.M), name


def tiny_overrides(path, tmp_path):
    """The overrides that make a file's encoder one of the tiny random ones."""
    from speechbrain_w2vbert import TINY_CONFIG_DIR
    from speechbrain_w2vbert.models.wav2vec2 import TINY_CONFIG_DIRS

    overrides = {"data_folder": str(tmp_path), "output_folder": str(tmp_path / "out")}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if "encoder_source: !apply" not in text:  # a hub id: point it at a tiny config, no weights
        source = TINY_CONFIG_DIRS["hubert_tiny"] if "Wav2Vec2Encoder" in text else TINY_CONFIG_DIR
        overrides.update(encoder_source=source, encoder_pretrained=False)
    return overrides


@pytest.mark.parametrize("path", HPARAMS, ids=os.path.basename)
def test_loads_with_plain_hyperpyyaml(path, tmp_path):
    with open(path, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, tiny_overrides(path, tmp_path))
    encoder = hparams["encoder"]
    assert set(hparams["checkpointer"].recoverables) >= {"encoder", "counter", "counters", "lr_schedule_encoder"}
    assert hparams["checkpointer"].recoverables["encoder"] is encoder
    assert encoder.frame_rate == 50.0
    if path.endswith("_tiny.yaml"):  # the CPU demo
        assert hparams["precision"] == "fp32" and encoder.model.config.layerdrop == 0.0
    else:  # the GPU recipes
        assert hparams["precision"] == "bf16" and encoder.model.config.layerdrop == 0.05


def test_the_recipe_loads_no_project_specific_composer():
    with open(TRAIN, encoding="utf-8") as f:
        text = f.read()
    assert "load_hyperpyyaml(fin, overrides)" in text and "compose" not in text
    for path in HPARAMS:
        with open(path, encoding="utf-8") as f:
            assert "base" not in yaml.safe_load(re.sub(r"!\S+", "", f.read())), path


def public_definitions_without_docstring(folder):
    """Every function and class (nested ones included) whose name does not
    start with an underscore and that has no docstring, as
    ``check_docstrings`` requires, plus modules without one."""
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        relative = os.path.relpath(path, ROOT)
        if ast.get_docstring(tree) is None and os.path.basename(path) != "__init__.py":
            missing.append(f"{relative}: module")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if not node.name.startswith("_") and ast.get_docstring(node) is None:
                    missing.append(f"{relative}:{node.lineno} {node.name}")
    return missing


@pytest.mark.parametrize("folder", ["speechbrain_w2vbert", "recipes"])
def test_docstrings(folder):
    assert public_definitions_without_docstring(folder) == []

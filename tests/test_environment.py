"""The installed environment: the import check, the lock and the metadata."""

import importlib.metadata
import os
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from speechbrain_w2vbert import environment
from tools import envcheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(ROOT, "requirements", "lock.txt")


def run_check(*args, pythonpath=None):
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "speechbrain_w2vbert.environment", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_libraries_import_together(capsys):
    assert envcheck.main(["--lock", LOCK]) == 0
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}"
                         for name in ("torch", "torchaudio", "speechbrain", "transformers"))
    out = capsys.readouterr().out
    assert f"{versions} import together, with the {len(environment.PRIVATE_APIS)} private names" in out


def test_the_private_names_this_package_uses_are_there():
    assert environment.missing_private_apis() == []


def test_a_torchaudio_that_does_not_load_is_one_clear_line(tmp_path):
    # A torchaudio whose extension does not load, as torchaudio 2.11.1 beside
    # torch 2.11.0 (its OSError names libtorchaudio.so and the symbol).
    fake = tmp_path / "torchaudio"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise OSError('Could not load this library: /site-packages/torchaudio/lib/libtorchaudio.so')\n"
    )
    done = run_check(pythonpath=str(tmp_path))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    torch_version, audio_version = importlib.metadata.version("torch"), importlib.metadata.version("torchaudio")
    assert line.startswith(f"speechbrain-w2vbert: cannot import torchaudio (torch {torch_version}, "
                           f"torchaudio {audio_version}): OSError: Could not load this library: ")
    assert "libtorchaudio.so" in line and "make install" in line
    assert f"pip install {environment.pinned_pair()}" in line


def test_lock_round_trip_and_strict_comparison(tmp_path, capsys):
    installed = envcheck.installed_versions()
    lock = str(tmp_path / "lock.txt")
    envcheck.write_lock(lock, installed)
    assert envcheck.read_full_lock(lock) == installed
    no_deps = envcheck.read_lock(envcheck.no_deps_lock(lock))
    assert set(no_deps) == set(envcheck.NO_DEPS) and not set(no_deps) & set(envcheck.read_lock(lock))
    assert envcheck.lock_python(lock) == "%d.%d" % sys.version_info[:2]
    assert envcheck.main(["--lock", lock, "--strict"]) == 0

    with open(lock, encoding="utf-8") as f:
        text = f.read()
    torch_pin = f"torch=={importlib.metadata.version('torch')}\n"
    assert torch_pin in text
    with open(lock, "w", encoding="utf-8") as f:
        f.write(text.replace(torch_pin, "torch==0.0.1\n"))
    capsys.readouterr()
    assert envcheck.main(["--lock", lock, "--strict"]) == 1
    assert f"  torch: 0.0.1 -> {importlib.metadata.version('torch')}" in capsys.readouterr().out.splitlines()
    assert envcheck.main(["--lock", lock]) == 0  # without --strict it only reports


def test_lock_of_another_python_stops_the_install(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# Python 2.7.18 (Linux x86_64), written 2010-01-01.\nsix==1.16.0\n")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "envcheck.py"),
                           "--python-of", str(lock)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "was tested with Python 2.7" in done.stderr
    assert "make install PYTHON=python2.7" in done.stderr


def test_bad_lock_line_names_the_file_and_line(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("torch==2.11.0\ntorchaudio>=2.11\n")
    with pytest.raises(ValueError, match=r"lock.txt:2: not a `name==version` line: 'torchaudio>=2.11'"):
        envcheck.read_lock(str(lock))


def test_the_lock_satisfies_the_metadata_and_pins_the_torch_pair():
    """Every requirement of the installed package (pyproject.toml) admits the
    lock's version, and torch and torchaudio are pinned exactly, as a pair."""
    lock = envcheck.read_lock(LOCK)
    requirements = [Requirement(r) for r in importlib.metadata.requires("speechbrain-w2vbert")]
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": "test"}):
            continue
        name = envcheck.canonical_name(requirement.name)
        assert name in lock, f"{requirement} is not in {LOCK}"
        assert requirement.specifier.contains(lock[name][1], prereleases=True), (requirement, lock[name])
    pins = {envcheck.canonical_name(r.name): str(r.specifier) for r in requirements}
    assert pins["torch"].startswith("==") and pins["torchaudio"].startswith("=="), pins
    assert pins["torch"] == f"=={lock['torch'][1]}" and pins["torchaudio"] == f"=={lock['torchaudio'][1]}"

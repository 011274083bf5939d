#!/usr/bin/env python3
"""Development tooling: is this environment the tested one
(``requirements/lock.txt``), and writing that lock.

The lock of the tested environment is a plain ``name==version`` list;
:func:`installed_versions`, :func:`read_lock`, :func:`lock_differences` and
:func:`write_lock` compare an environment with it and write it. From the
shell (``make install``, ``make test-latest`` and ``make lock`` run it)::

    python tools/envcheck.py                                    # the package's import check only
    python tools/envcheck.py --lock requirements/lock.txt [--strict] [--held-back]
    python tools/envcheck.py --write-lock requirements/lock.txt
    python tools/envcheck.py --python-of requirements/lock.txt  # before any install

It needs only the standard library until it runs the package's import check
(:mod:`speechbrain_w2vbert.environment`), so ``--python-of`` works in a bare
interpreter.
"""

import argparse
import datetime
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout, before any install
from speechbrain_w2vbert.environment import package_requirements  # noqa: E402 (standard library only)

#: Distributions never written to the lock: the project itself (installed
#: from the checkout).
NOT_LOCKED = ("speechbrain-w2vbert",)

#: Distributions installed with ``pip install --no-deps`` from their own lock
#: file (:func:`no_deps_lock`), because their metadata asks for what the rest
#: of the environment cannot have: pyctcdecode 0.5.0 declares ``numpy<2`` and
#: ``hypothesis`` but imports only numpy, pygtrie and kenlm, and works with
#: numpy 2 (``tests/test_decoding.py`` decodes with it).
NO_DEPS = ("pyctcdecode",)



def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares them.

    Example
    -------
    >>> canonical_name("HyperPyYAML"), canonical_name("ruamel.yaml"), canonical_name("typing_extensions")
    ('hyperpyyaml', 'ruamel-yaml', 'typing-extensions')
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> Dict[str, Tuple[str, str]]:
    """Every distribution of the running interpreter but the project itself.

    Returns
    -------
    dict
        canonical name -> (name as the distribution spells it, version).

    Example
    -------
    >>> "pip" in installed_versions() and "speechbrain-w2vbert" not in installed_versions()
    True
    """
    found = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical_name(name) not in NOT_LOCKED:
            found[canonical_name(name)] = (name, dist.version)
    return found


def read_lock(path: str) -> Dict[str, Tuple[str, str]]:
    """The ``name==version`` lines of a lock file (comments ignored).

    Arguments
    ---------
    path : str
        The lock file.

    Returns
    -------
    dict
        canonical name -> (name, version).

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
    ...     _ = f.write("# Python 3.11.7\\nHyperPyYAML==1.2.3\\ntorch==2.11.0\\n")
    >>> read_lock(f.name)
    {'hyperpyyaml': ('HyperPyYAML', '1.2.3'), 'torch': ('torch', '2.11.0')}
    """
    pins = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
            if match is None:
                raise ValueError(f"{path}:{number}: not a `name==version` line: {line!r}")
            pins[canonical_name(match.group(1))] = (match.group(1), match.group(2))
    return pins


def read_full_lock(path: str) -> Dict[str, Tuple[str, str]]:
    """:func:`read_lock` of a lock and of its :func:`no_deps_lock` file, when
    there is one: the whole tested environment."""
    pins = read_lock(path)
    if os.path.exists(no_deps_lock(path)):
        pins.update(read_lock(no_deps_lock(path)))
    return pins


def lock_python(path: str) -> Optional[str]:
    """The ``major.minor`` Python version a lock file's header names, if any.

    Arguments
    ---------
    path : str
        The lock file.

    Returns
    -------
    str or None
    """
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = re.match(r"#.*\bPython (\d+\.\d+)", line)
            if match:
                return match.group(1)
    return None


def lock_differences(lock: Dict[str, Tuple[str, str]], installed: Dict[str, Tuple[str, str]]) -> List[str]:
    """One line per distribution whose version differs between a lock and an
    environment (or that only one of them has), sorted by name.

    Arguments
    ---------
    lock, installed : dict
        As :func:`read_lock` and :func:`installed_versions` return them.

    Returns
    -------
    list of str

    Example
    -------
    >>> lock = {"torch": ("torch", "2.11.0"), "six": ("six", "1.16.0")}
    >>> now = {"torch": ("torch", "2.15.0"), "rich": ("rich", "15.0.0"), "six": ("six", "1.16.0")}
    >>> for line in lock_differences(lock, now): print(line)
    rich: not in the lock -> 15.0.0
    torch: 2.11.0 -> 2.15.0
    """
    lines = []
    for key in sorted(set(lock) | set(installed)):
        locked, present = lock.get(key), installed.get(key)
        name = (locked or present)[0]
        if locked is None:
            lines.append(f"{name}: not in the lock -> {present[1]}")
        elif present is None:
            lines.append(f"{name}: {locked[1]} -> not installed")
        elif locked[1] != present[1]:
            lines.append(f"{name}: {locked[1]} -> {present[1]}")
    return lines


def newest_on_index(name: str) -> Optional[str]:
    """The newest release of ``name`` on the package index pip is configured
    with (``pip index versions``), or None if pip cannot tell.

    Arguments
    ---------
    name : str
        A distribution name.

    Returns
    -------
    str or None
    """
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name],
                          capture_output=True, text=True, timeout=300)
    match = re.search(r"^Available versions: ([^,\s]+)", done.stdout, re.M)
    return match.group(1) if match else None


def held_back() -> List[str]:
    """One line per exact pin (``==``) of this package's metadata that holds
    back a newer release on the index (the drift the pins hide from
    ``make test-latest``).

    Returns
    -------
    list of str
    """
    lines = []
    for requirement in package_requirements():
        match = re.match(r"([A-Za-z0-9._-]+)\s*==\s*([^\s;,]+)$", requirement)
        if match:
            newest = newest_on_index(match.group(1))
            if newest is not None and newest != match.group(2):
                lines.append(f"{match.group(1)}: pinned to {match.group(2)}, newest on the index {newest}")
    return lines


def no_deps_lock(path: str) -> str:
    """The lock file of the :data:`NO_DEPS` distributions beside a lock.

    Example
    -------
    >>> no_deps_lock("requirements/lock.txt")
    'requirements/lock-no-deps.txt'
    """
    stem, ext = os.path.splitext(path)
    return f"{stem}-no-deps{ext}"


def write_lock(path: str, installed: Dict[str, Tuple[str, str]]) -> None:
    """Writes ``installed`` as a lock file, with a header naming the Python,
    the platform and the date; the :data:`NO_DEPS` distributions go to
    :func:`no_deps_lock` instead.

    Arguments
    ---------
    path : str
        The lock file (replaced).
    installed : dict
        As :func:`installed_versions` returns it.
    """
    python = ".".join(platform.python_version_tuple()[:3])
    header = [
        "# The tested environment: every distribution of a venv in which `make test` passed.",
        f"# Python {python} ({platform.system()} {platform.machine()}), written {datetime.date.today()}.",
        "# `make install` installs exactly this; `make lock` rewrites it (README: Updating the lock).",
    ]
    no_deps_header = [
        "# Part of the tested environment installed with `pip install --no-deps` (make install does it):",
        "# see NO_DEPS in speechbrain_w2vbert/environment.py for why.",
    ]
    for target, keep, head in ((path, False, header), (no_deps_lock(path), True, no_deps_header)):
        lines = [f"{name}=={version}" for key, (name, version) in sorted(installed.items()) if (key in NO_DEPS) == keep]
        with open(target, "w", encoding="utf-8") as f:
            f.write("\n".join(head + lines) + "\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line (see the module docstring); returns the exit status:
    0 fine, 1 the environment differs from the lock (with ``--strict``),
    2 the libraries do not import together or the Python is not the lock's."""
    parser = argparse.ArgumentParser(prog="tools/envcheck.py", description=__doc__.split("\n")[0])
    parser.add_argument("--lock", help="compare the environment with this lock file (and its -no-deps file, "
                        "when there is one) and print the differences")
    parser.add_argument("--strict", action="store_true", help="with --lock: exit 1 when anything differs")
    parser.add_argument("--write-lock", metavar="PATH", help="write this environment as a lock file")
    parser.add_argument("--held-back", action="store_true",
                        help="also list the exact pins of pyproject.toml that hold back a newer release")
    parser.add_argument("--python-of", metavar="LOCK",
                        help="only check that this interpreter is the Python the lock was made with")
    args = parser.parse_args(argv)
    prog = "speechbrain-w2vbert"

    if args.python_of:
        wanted, have = lock_python(args.python_of), "%d.%d" % sys.version_info[:2]
        if wanted is not None and wanted != have:
            print(f"{prog}: {args.python_of} was tested with Python {wanted}, this is Python {have} "
                  f"({sys.executable}); run `make install PYTHON=python{wanted}`, or `pip install -e .` "
                  "for the untested ranges of pyproject.toml.", file=sys.stderr)
            return 2
        return 0

    from speechbrain_w2vbert import environment

    if environment.main() != 0:
        return 2
    installed = installed_versions()
    status = 0
    if args.lock:
        differences = lock_differences(read_full_lock(args.lock), installed)
        if differences:
            print(f"{prog}: {len(differences)} versions differ from {args.lock} (lock -> this environment):")
            for line in differences:
                print(f"  {line}")
            status = 1 if args.strict else 0
        else:
            print(f"{prog}: the environment is {args.lock}, exactly ({len(installed)} distributions)")
    if args.held_back:
        for line in held_back():
            print(f"{prog}: {line} (probe it: make test-latest PAIR=...)")
    if args.write_lock:
        write_lock(args.write_lock, installed)
        print(f"{prog}: wrote {args.write_lock} ({len(installed)} distributions)")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""What a modulefile sets: the activation as changes a module tool applies and undoes, plus what
building against the environment needs.

:func:`module_changes` is :mod:`pmpm.publish.activation`'s computation turned into ``set`` /
``unset`` / ``path`` changes. :func:`build_changes` adds what EasyBuild's modules give, so that
after ``module load`` the host's compilers build against the environment:

* ``CPATH`` (``include``), ``LIBRARY_PATH`` and ``LD_RUN_PATH`` (``lib``, ``lib64``) for every
  stack, compiled stack first: ``cc x.c -lfftw3`` finds the header and the library, and the GNU
  linker writes ``LD_RUN_PATH`` into the program as its run path (when the command line gives no
  ``-rpath``), so the program loads the environment's library later without ``LD_LIBRARY_PATH``
  (never set for conda stacks: see :mod:`pmpm.publish.activation`). ``PKG_CONFIG_PATH`` and
  ``CMAKE_PREFIX_PATH`` come from the activation itself.
* ``PMPM_ROOT_<NAME>`` and ``PMPM_VERSION_<NAME>`` for every package that installs headers or
  libraries (EasyBuild's ``EBROOT<NAME>``/``EBVERSION<NAME>``, under pmpm's name so EasyBuild's
  own checks do not take them for its builds): ``NAME`` is the package name in capitals with
  every other character than a letter or digit as ``_`` (``fftw`` -> ``PMPM_ROOT_FFTW``,
  ``libxml2`` -> ``PMPM_ROOT_LIBXML2``); the value is the stack holding it.

These are for modules only: ``pmpm activate`` sets what ``conda activate`` sets (a user who
activates to run tools keeps building against the system's libraries), and the Jupyter kernel
needs none of them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pmpm.env import inventory
from pmpm.env.layout import Layout
from pmpm.publish.activation import ACTIVE_VAR, find_run, run_activation

#: stands for "the value before" of a list variable while computing a modulefile
_SENTINEL = "/__pmpm_previous_value__"
_NOT_NAME = re.compile(r"[^A-Z0-9]+")
_LIBRARY = re.compile(r"^lib(64)?/[^/]+\.(so(\.[0-9.]+)?|a)$")


@dataclass(frozen=True)
class Change:
    """One variable change: ``set`` (value), ``unset``, or ``path`` (entries before/after the old
    value, which the module tools prepend/append and remove again on unload)."""

    name: str
    kind: str  # "set" | "unset" | "path"
    value: str = ""
    prepend: tuple[str, ...] = ()
    append: tuple[str, ...] = ()


#: not put in a modulefile: a module is not a conda activation level
_NOT_IN_MODULES = frozenset({"CONDA_SHLVL", ACTIVE_VAR})


def module_changes(layout: Layout) -> list[Change]:
    """The activation as changes a module tool can apply and undo, independent of who loads it.

    The activation runs twice from a bare environment: once to learn which variables it touches,
    then with each of those standing at a sentinel value, so that ``a:b:<sentinel>`` reads as
    "prepend a and b" and a value without the sentinel as "set".
    """
    base = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"), "LANG": "C"}
    first = run_activation(layout, base)
    touched = {k for k in set(first) | set(base) if first.get(k) != base.get(k)} - _NOT_IN_MODULES
    probe = dict(base)
    for name in touched:
        if name != "PATH":  # PATH stays real: activation scripts run commands
            probe[name] = _SENTINEL
    second = run_activation(layout, probe)
    changes = []
    for name in sorted(touched):
        old = probe.get(name)
        new = second.get(name)
        if new is None:
            changes.append(Change(name, "unset"))
            continue
        parts = new.split(os.pathsep)
        marker = old.split(os.pathsep) if old is not None else []
        at = find_run(parts, marker)
        if at is None:
            changes.append(Change(name, "set", value=first.get(name, new)))
        else:
            head, tail = parts[:at], parts[at + len(marker) :]
            changes.append(Change(name, "path", prepend=tuple(p for p in head if p), append=tuple(tail)))
    return [c for c in changes if c.kind != "path" or c.prepend or c.append]


def root_variable(package: str) -> str:
    """``PMPM_ROOT_<NAME>`` for a package name."""
    return "PMPM_ROOT_" + _NOT_NAME.sub("_", package.upper()).strip("_")


def _buildable(files: list[str]) -> bool:
    """The package has something to compile or link against."""
    return any(f.startswith("include/") or _LIBRARY.match(f) for f in files)


def build_changes(layout: Layout) -> list[Change]:
    """The compiler search paths and the per-package root variables (see the module docstring)."""
    include: list[str] = []
    libs: list[str] = []
    roots: dict[str, Change] = {}
    for prefix in layout.prefixes:  # the compiled stack first: it shadows the conda stack
        include += [str(p) for p in (prefix / "include",) if p.is_dir()]
        libs += [str(p) for p in (prefix / "lib", prefix / "lib64") if p.is_dir() and not p.is_symlink()]
        for record in inventory.meta_records(prefix):
            name = root_variable(str(record["name"]))
            if name not in roots and _buildable(list(record.get("files") or [])):
                roots[name] = Change(name, "set", value=str(prefix))
                version = name.replace("PMPM_ROOT_", "PMPM_VERSION_", 1)
                roots[version] = Change(version, "set", value=str(record.get("version", "")))
    changes = [Change(n, "path", prepend=tuple(e)) for n, e in
               (("CPATH", include), ("LIBRARY_PATH", libs), ("LD_RUN_PATH", libs)) if e]  # fmt: skip
    return changes + [roots[n] for n in sorted(roots)]

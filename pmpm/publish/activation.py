"""What activating an environment does to the process environment, and scripts that do and undo it.

One computation serves ``pmpm activate``, ``pmpm deactivate``, the Lmod/Tcl modules and the Jupyter
kernel: py-rattler's activation (``rattler.shell.activate``: PATH, ``CONDA_PREFIX``, the env file's
``variables`` from ``conda-meta/state``, and the packages' ``etc/conda/activate.d`` scripts), plus
what pmpm adds for HPC use, is run in a ``bash`` subprocess and the environment before and after is
compared. The result is a plain list of variable changes, so

* ``pmpm activate`` prints those changes for bash, zsh or fish (fish gets the effect of the
  packages' ``.sh`` activation scripts too), and stores the old values in ``PMPM_ACTIVE_ENV`` so
  ``pmpm deactivate`` puts back exactly what was there;
* a modulefile gets ``setenv``/``prepend_path`` lines that do the same, and the module tool undoes
  them on unload.

What pmpm adds beyond conda's activation, for every stack of the layout (compiled stack first):
``MANPATH`` (``share/man``), ``PKG_CONFIG_PATH`` (``lib/pkgconfig``, ``share/pkgconfig``) and
``CMAKE_PREFIX_PATH``, each only for folders that exist. For a system_install's compiled stack
also ``PATH``, ``PYTHONPATH`` (its ``site-packages``, since the Python running it is the conda
stack's or the host's) and ``LD_LIBRARY_PATH``.

The rule for ``LD_LIBRARY_PATH``: never for conda stacks or a conda_install prefix. Conda packages
and pmpm's compiled packages there find their libraries through RPATH/``$ORIGIN``, and putting a
conda ``lib`` on ``LD_LIBRARY_PATH`` would make the host's own programs load conda's libstdc++,
libcurl or libssl. A system_install's compiled stack is built by the host's compilers against the
site's libraries, with no conda runtime in it, so its ``lib`` is added: that shadows no system
library, and covers build systems there that ignore the RPATH flags.

Shell functions or aliases an activation script defines are not carried over: only exported
variables are (conda-forge's activation scripts set variables).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pmpm import paths
from pmpm.conda import variables
from pmpm.env.layout import Layout
from pmpm.errors import PmpmError

#: what ``pmpm activate`` stores so that ``pmpm deactivate`` can undo it
ACTIVE_VAR = "PMPM_ACTIVE_ENV"
SHELLS = ("bash", "zsh", "fish")
#: set by bash itself between the two snapshots, not by the activation
_BASH_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD", "BASH_EXECUTION_STRING"})
#: stands for "the value before" of a list variable while computing a modulefile
_SENTINEL = "/__pmpm_previous_value__"


@dataclass(frozen=True)
class Change:
    """One variable change: ``set`` (value), ``unset``, or ``path`` (entries before/after the old
    value, which the module tools prepend/append and remove again on unload)."""

    name: str
    kind: str  # "set" | "unset" | "path"
    value: str = ""
    prepend: tuple[str, ...] = ()
    append: tuple[str, ...] = ()


def _existing(*paths: Path) -> list[str]:
    return [str(p) for p in paths if p.is_dir()]


def _site_packages(prefix: Path) -> list[str]:
    return sorted(str(p) for p in prefix.glob("lib/python3*/site-packages") if p.is_dir())


def _prepend(name: str, entries: list[str]) -> list[str]:
    if not entries:
        return []
    joined = shlex.quote(os.pathsep.join(entries))
    if name == "MANPATH":  # an empty entry keeps the system's manual pages: "dir:" when unset
        return [f'export MANPATH={joined}:"${{MANPATH-}}"']
    return [f'export {name}={joined}"${{{name}:+:${name}}}"']


def _literal_variables(script: str, env_vars: dict[str, str]) -> list[str]:
    """py-rattler 0.28 writes the env file's variables in double quotes, so ``$HOME`` or a
    backquote in a value would be expanded; conda sets them literally. Re-quote those lines."""
    lines: list[str] = []
    skip = 0
    for line in script.splitlines():
        if skip:  # the rest of a value that spans lines
            skip -= 1
            continue
        name = line[len("export ") :].split("=", 1)[0] if line.startswith("export ") else None
        if name in env_vars:
            line = f"export {name}={shlex.quote(env_vars[name])}"
            skip = env_vars[name].count("\n")
        lines.append(line)
    return lines


def bash_script(layout: Layout, path: list[str]) -> str:
    """The bash code that activates ``layout`` when the current ``PATH`` is ``path``.

    py-rattler writes the conda part with ``PathModificationBehavior.Replace`` and ``path`` minus
    this environment's own ``bin`` folders, so PATH never holds them twice.
    """
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

    own_bins = {str(p / "bin") for p in layout.prefixes}
    clean = [p for p in path if p and p not in own_bins]
    primary = layout.conda if layout.conda is not None else layout.compile
    script = activate(
        primary, ActivationVariables(None, clean, PathModificationBehavior.Replace), Shell.bash
    ).script
    lines = _literal_variables(script, variables.read(primary))
    if layout.kind == "system" and layout.compile != primary:
        compile_ = layout.compile
        lines += _prepend("PATH", _existing(compile_ / "bin"))
        for name, value in variables.read(compile_).items():
            lines.append(f"export {name}={shlex.quote(value)}")
        scripts = sorted((compile_ / "etc" / "conda" / "activate.d").glob("*.sh"))
        if scripts:  # the compiled stack's own activation scripts see their own prefix
            lines.append('_pmpm_prefix="${CONDA_PREFIX-}"')
            lines.append(f"CONDA_PREFIX={shlex.quote(str(compile_))}")
            lines += [f". {shlex.quote(str(s))}" for s in scripts]
            lines.append('CONDA_PREFIX="$_pmpm_prefix"; unset _pmpm_prefix')
    for prefix in reversed(layout.prefixes):  # the compiled stack ends up first
        lines += _prepend("MANPATH", _existing(prefix / "share" / "man"))
        lines += _prepend(
            "PKG_CONFIG_PATH", _existing(prefix / "lib" / "pkgconfig", prefix / "share" / "pkgconfig")
        )
        lines += _prepend("CMAKE_PREFIX_PATH", [str(prefix)])
    if layout.kind == "system":
        lines += _prepend("PYTHONPATH", _site_packages(layout.compile))
        lines += _prepend("LD_LIBRARY_PATH", _existing(layout.compile / "lib", layout.compile / "lib64"))
    return "\n".join(lines) + "\n"


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for item in path.read_bytes().split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
    return env


def run_activation(layout: Layout, env: Mapping[str, str]) -> dict[str, str]:
    """The environment after activating ``layout`` in a shell whose environment is ``env``."""
    for prefix in layout.prefixes:
        if not prefix.is_dir():
            raise PmpmError(
                f"{prefix} does not exist", hint="create the environment with `pmpm conda_install`"
            )
    script = bash_script(layout, env.get("PATH", "").split(os.pathsep))
    with tempfile.TemporaryDirectory(prefix="pmpm-activate-") as tmp:
        work = Path(tmp)
        (work / "activate.sh").write_text(script)
        driver = 'env -0 > "$1/before"; . "$1/activate.sh" >/dev/null; env -0 > "$1/after"'
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", driver, "bash", str(work)],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if not (work / "after").is_file():
            raise PmpmError(
                f"activating {layout.root} failed in bash (exit {proc.returncode})",
                hint=proc.stderr.strip()[-2000:] or "check the packages' etc/conda/activate.d scripts",
            )
        before, after = _read_env(work / "before"), _read_env(work / "after")
    # bash's own variables differ between env and `before`; everything else was set by the script
    result = dict(env)
    for key in set(before) | set(after):
        if key in _BASH_OWN or before.get(key) == after.get(key):
            continue
        if key in after:
            result[key] = after[key]
        else:
            result.pop(key, None)
    return result


# --- modulefiles -----------------------------------------------------------------------------

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
        at = _find(parts, marker)
        if at is None:
            changes.append(Change(name, "set", value=first.get(name, new)))
        else:
            head, tail = parts[:at], parts[at + len(marker) :]
            changes.append(Change(name, "path", prepend=tuple(p for p in head if p), append=tuple(tail)))
    return [c for c in changes if c.kind != "path" or c.prepend or c.append]


def _find(parts: list[str], marker: list[str]) -> int | None:
    if not marker:
        return None
    for i in range(len(parts) - len(marker) + 1):
        if parts[i : i + len(marker)] == marker:
            return i
    return None


# --- pmpm activate / deactivate ----------------------------------------------------------------


def _deactivated(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """``env`` with a pmpm activation recorded in it undone; notes for what could not be."""
    result = dict(env)
    notes: list[str] = []
    raw = result.pop(ACTIVE_VAR, None)
    if raw is None:
        return result, notes
    try:
        saved = json.loads(raw)
        old, new = dict(saved["old"]), dict(saved["new"])
    except (ValueError, KeyError, TypeError):
        return result, [f"{ACTIVE_VAR} is not pmpm's: left the environment as it is"]
    for name, was in old.items():
        now = result.get(name)
        if now == new.get(name):
            if was is None:
                result.pop(name, None)
            else:
                result[name] = was
            continue
        undone = _remove_added(now, was, new.get(name))
        if undone is None:
            notes.append(f"{name} changed since activation: left as it is")
        else:
            result[name] = undone
    return result, notes


def _remove_added(now: str | None, was: str | None, set_to: str | None) -> str | None:
    """For a list variable changed after activation: drop just the entries activation added."""
    if now is None or set_to is None:
        return None
    parts, before = set_to.split(os.pathsep), (was or "").split(os.pathsep) if was else []
    at = _find(parts, before) if before else len(parts)
    if at is None:
        return None
    added = parts[:at] + parts[at + len(before) :]
    current = now.split(os.pathsep)
    for entry in added:
        if entry not in current:
            return None
        current.remove(entry)
    return os.pathsep.join(current)


def _quote(shell: str, value: str) -> str:
    if shell == "fish":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return shlex.quote(value)


def _emit(shell: str, current: Mapping[str, str], target: Mapping[str, str]) -> str:
    lines = []
    for name in sorted(set(current) | set(target)):
        if current.get(name) == target.get(name):
            continue
        value = target.get(name)
        if shell == "fish":
            if value is None:
                lines.append(f"set -e {name}")
            elif name.endswith("PATH"):  # fish keeps *PATH variables as lists
                lines.append(f"set -gx {name} " + " ".join(_quote(shell, v) for v in value.split(os.pathsep)))
            else:
                lines.append(f"set -gx {name} {_quote(shell, value)}")
        elif value is None:
            lines.append(f"unset {name}")
        else:
            lines.append(f"export {name}={_quote(shell, value)}")
    if shell in ("bash", "zsh"):
        lines.append("hash -r 2>/dev/null || true")  # forget cached command locations
    return "\n".join(lines) + "\n"


def _check_shell(shell: str) -> None:
    if shell not in SHELLS:
        raise PmpmError(f"unknown shell `{shell}`", hint=f"use one of: {', '.join(SHELLS)}")


def activate_script(
    prefix: Path, shell: str = "bash", env: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """The script for ``eval "$(pmpm activate PREFIX)"`` (an active pmpm environment is replaced
    first), and notes for stderr."""
    from pmpm.env import layout as layouts

    _check_shell(shell)
    current = dict(os.environ if env is None else env)
    found = layouts.find(prefix)
    if not any(paths.conda_meta(p).is_dir() for p in found.prefixes):
        raise PmpmError(
            f"{found.root} is not an environment made by pmpm (no conda-meta folder)",
            hint="give the PREFIX passed to `pmpm conda_install`",
        )
    base, notes = _deactivated(current)
    after = run_activation(found, base)
    changed = {k for k in set(base) | set(after) if base.get(k) != after.get(k)}
    record = {
        "prefix": str(found.root),
        "old": {k: base.get(k) for k in sorted(changed)},
        "new": {k: after.get(k) for k in sorted(changed)},
    }
    after[ACTIVE_VAR] = json.dumps(record, separators=(",", ":"))
    return _emit(shell, current, after), notes


def deactivate_script(shell: str = "bash", env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """The script that undoes ``pmpm activate``, and notes (for stderr) on what it left alone."""
    _check_shell(shell)
    current = dict(os.environ if env is None else env)
    if ACTIVE_VAR not in current:
        return "", ["no pmpm environment is active: nothing to deactivate"]
    target, notes = _deactivated(current)
    return _emit(shell, current, target), notes


def activate_command(prefix: Path, shell: str) -> int:
    """``pmpm activate``: the script on stdout, for ``eval``."""
    import sys

    script, notes = activate_script(prefix, shell)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(script)
    sys.stdout.flush()
    return 0


def deactivate_command(shell: str) -> int:
    """``pmpm deactivate``: the script on stdout, notes on stderr (eval sees only the script)."""
    import sys

    script, notes = deactivate_script(shell)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(script)
    sys.stdout.flush()
    return 0

"""What activating an environment does to the process environment, and scripts that do and undo it.

One computation serves ``pmpm activate``, ``pmpm deactivate``, the Lmod/Tcl modules and the Jupyter
kernel: py-rattler's activation (``rattler.shell.activate``: PATH, ``CONDA_PREFIX``, the env file's
``variables`` from ``conda-meta/state``, and the packages' ``etc/conda/activate.d`` scripts), plus
what pmpm adds for HPC use, is run in a ``bash`` subprocess and the environment before and after is
compared. The result is a plain list of variable changes, so

* ``pmpm activate`` prints those changes for bash, zsh or fish (fish gets the effect of the
  packages' ``.sh`` activation scripts too), plus conda's activation-level variables and prompt
  (:mod:`pmpm.publish.conda_level`: over an active conda or pmpm environment it replaces that
  one, one level up, as plain ``conda activate`` does), and stores the old values in
  ``PMPM_ACTIVE_ENV`` so ``pmpm deactivate`` puts back exactly what was there, one activation
  at a time;
* a modulefile gets ``setenv``/``prepend_path`` lines that do the same, and the module tool undoes
  them on unload (:mod:`pmpm.publish.module_env`, which adds the compiler search paths).

What pmpm adds beyond conda's activation, for every stack of the layout (compiled stack first):
``MANPATH`` (``share/man``), ``PKG_CONFIG_PATH`` (``lib/pkgconfig``, ``share/pkgconfig``) and
``CMAKE_PREFIX_PATH``, each only for folders that exist. For a compiled stack of its own beside
the conda stack (system_install, or one target's stack of several) also ``PATH`` and
``PYTHONPATH`` (its ``site-packages``, since the Python running it is the conda stack's or the
host's); for a system_install's also ``LD_LIBRARY_PATH``.

An environment with several CPU targets activates one of them: the best this CPU runs, or the
one ``PMPM_TARGET`` names (:mod:`pmpm.host.target_choice`); ``pmpm activate`` says which on
stderr and keeps it in its ``PMPM_ACTIVE_ENV`` entry.

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
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pmpm import paths
from pmpm.conda import variables
from pmpm.env import layout as layouts
from pmpm.env.layout import Layout
from pmpm.errors import PmpmError
from pmpm.host import target_choice
from pmpm.publish import conda_level, shell_code

#: what ``pmpm activate`` stores so that ``pmpm deactivate`` can undo it
ACTIVE_VAR = "PMPM_ACTIVE_ENV"
SHELLS = ("bash", "zsh", "fish")
#: set by bash itself between the two snapshots, not by the activation
_BASH_OWN = frozenset({"_", "SHLVL", "PWD", "OLDPWD", "BASH_EXECUTION_STRING"})


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


def bash_script(layout: Layout, path: list[str], replacing: str | None = None) -> str:
    """The bash code that activates ``layout`` when the current ``PATH`` is ``path``.

    py-rattler writes the conda part with ``PathModificationBehavior.Replace`` and ``path`` minus
    this environment's own ``bin`` folders, so PATH never holds them twice. ``replacing``: the
    active conda environment this one takes the place of (py-rattler takes its ``bin`` folders
    off PATH and runs its ``deactivate.d`` scripts first, as ``conda activate`` does).
    """
    # py-rattler: >100 ms, imported only when an activation is computed (not for deactivate)
    from rattler.shell import ActivationVariables, PathModificationBehavior, Shell, activate

    own_bins = {str(p / "bin") for p in layout.prefixes}
    clean = [p for p in path if p and p not in own_bins]
    primary = layout.conda if layout.conda is not None else layout.compile
    script = activate(
        primary,
        ActivationVariables(Path(replacing) if replacing else None, clean, PathModificationBehavior.Replace),
        Shell.bash,
    ).script
    lines = _literal_variables(script, variables.read(primary))
    if layout.split and layout.compile != primary:
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
    if layout.split:
        lines += _prepend("PYTHONPATH", _site_packages(layout.compile))
    if layout.kind == "system":
        lines += _prepend("LD_LIBRARY_PATH", _existing(layout.compile / "lib", layout.compile / "lib64"))
    return "\n".join(lines) + "\n"


def _read_env(path: Path) -> dict[str, str]:
    env = {}
    for item in path.read_bytes().split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode(errors="surrogateescape")] = value.decode(errors="surrogateescape")
    return env


def run_activation(layout: Layout, env: Mapping[str, str], replacing: str | None = None) -> dict[str, str]:
    """The environment after activating ``layout`` in a shell whose environment is ``env``
    (``replacing``: see :func:`bash_script`)."""
    for prefix in layout.prefixes:
        if not prefix.is_dir():
            raise PmpmError(
                f"{prefix} does not exist", hint="create the environment with `pmpm conda_install`"
            )
    script = bash_script(layout, env.get("PATH", "").split(os.pathsep), replacing)
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


def find_run(parts: list[str], marker: list[str]) -> int | None:
    """Where the run of entries ``marker`` starts in ``parts`` (None: nowhere, or no marker)."""
    if not marker:
        return None
    for i in range(len(parts) - len(marker) + 1):
        if parts[i : i + len(marker)] == marker:
            return i
    return None


# --- pmpm activate / deactivate ----------------------------------------------------------------
#
# ``PMPM_ACTIVE_ENV`` holds a JSON list, one entry per ``pmpm activate`` still in effect (the last
# is the newest): the prefix and, for every variable that activation changed, its value before
# (``old``) and after (``new``). ``pmpm deactivate`` puts the newest entry's ``old`` values back, so
# the shell is exactly as before that activation, including an environment it replaced.

#: what conda itself keeps per activation level: when ``conda deactivate`` already undid a pmpm
#: activation, these are conda's to keep and pmpm only takes back the rest
_CONDA_LEVEL = ("PATH", "CONDA_", "__CONDA_SHLVL_")


def _entries(env: Mapping[str, str]) -> list[dict] | None:
    """The activations recorded in ``env`` (None: the variable is there but not pmpm's)."""
    raw = env.get(ACTIVE_VAR)
    if raw is None:
        return []
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    entries = [data] if isinstance(data, dict) else data  # a dict: one entry, as older pmpm wrote
    ok = isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("old"), dict) and isinstance(e.get("new"), dict)
        for e in entries
    )
    return entries if ok else None


def _level(entry: dict, env: Mapping[str, str]) -> str:
    """Where the conda level ``entry`` made stands in ``env``: ``top`` (still the active one),
    ``gone`` (``conda deactivate`` went below it) or ``covered`` (something activated on top)."""
    made, now = entry.get("shlvl"), conda_level.shlvl(env)
    if not isinstance(made, int):  # written by an older pmpm, which kept no level
        return "top"
    if now < made:
        return "gone"
    return "top" if now == made and env.get("CONDA_PREFIX") == entry.get("conda_prefix") else "covered"


def _deactivated(env: Mapping[str, str]) -> tuple[dict[str, str] | None, list[str]]:
    """``env`` with its newest pmpm activation undone (None: it cannot be), and notes."""
    entries = _entries(env)
    if entries is None:
        return None, [f"{ACTIVE_VAR} is not pmpm's: left the environment as it is"]
    if not entries:
        return None, ["no pmpm environment is active: nothing to deactivate"]
    entry, rest = entries[-1], entries[:-1]
    result, notes = dict(env), []
    where = _level(entry, env)
    if where == "covered":
        return None, [
            f"{env.get('CONDA_PREFIX')} was activated after {entry.get('prefix')}: "
            "deactivate it first (`conda deactivate`)"
        ]
    for name, was in entry["old"].items():
        if where == "gone" and name.startswith(_CONDA_LEVEL):
            continue  # conda took its part back already
        now, set_to = result.get(name), entry["new"].get(name)
        if now == set_to:
            if was is None:
                result.pop(name, None)
            else:
                result[name] = was
            continue
        undone = _remove_added(now, was, set_to)
        if undone is None:
            notes.append(f"{name} changed since activation: left as it is")
        else:
            result[name] = undone
    if rest:
        result[ACTIVE_VAR] = json.dumps(rest, separators=(",", ":"))
    else:
        result.pop(ACTIVE_VAR, None)
    return result, notes


def _remove_added(now: str | None, was: str | None, set_to: str | None) -> str | None:
    """For a list variable changed after activation: drop just the entries activation added."""
    if now is None or set_to is None:
        return None
    parts, before = set_to.split(os.pathsep), (was or "").split(os.pathsep) if was else []
    at = find_run(parts, before) if before else len(parts)
    if at is None:
        return None
    added = parts[:at] + parts[at + len(before) :]
    current = now.split(os.pathsep)
    for entry in added:
        if entry not in current:
            return None
        current.remove(entry)
    return os.pathsep.join(current)


def _check_shell(shell: str) -> None:
    if shell not in SHELLS:
        raise PmpmError(f"unknown shell `{shell}`", hint=f"use one of: {', '.join(SHELLS)}")


def activate_script(
    prefix: Path, shell: str = "bash", env: Mapping[str, str] | None = None
) -> tuple[str, list[str]]:
    """The script for ``eval "$(pmpm activate PREFIX)"``, and notes for stderr.

    Over an active environment it does what plain ``conda activate`` does (see
    :mod:`pmpm.publish.conda_level`): the active one is replaced, one level up. Activating the
    pmpm environment that is active already activates it afresh at the same level."""
    _check_shell(shell)
    current = dict(os.environ if env is None else env)
    found = layouts.find(prefix)
    if not any(paths.conda_meta(p).is_dir() for p in found.prefixes):
        raise PmpmError(
            f"{found.root} is not an environment made by pmpm (no conda-meta folder)",
            hint="give the PREFIX passed to `pmpm conda_install`",
        )
    found, choice = target_choice.select(found, current)
    primary = str(found.conda if found.conda is not None else found.compile)
    entries, notes = _entries(current), [choice.describe()] if choice is not None else []
    if entries is None:
        notes.append(f"{ACTIVE_VAR} is not pmpm's: it is replaced")
        current.pop(ACTIVE_VAR)
        entries = []
    start = current  # the environment the new activation is undone back to
    over = current  # the environment activation starts from (a pmpm one on top is undone)
    if entries and _level(entries[-1], current) == "top":
        undone, undo_notes = _deactivated(current)
        notes += undo_notes
        if undone is not None:
            over = undone
            if entries[-1].get("prefix") == str(found.root):  # activating it again
                start, entries = undone, entries[:-1]
    replacing = over.get("CONDA_PREFIX") if conda_level.shlvl(over) > 0 else None
    after = run_activation(found, over, replacing)
    env_vars = variables.read(Path(primary))
    if found.compile != Path(primary):
        env_vars = {**variables.read(found.compile), **env_vars}
    same = start.get("CONDA_PREFIX") == primary
    after.update(conda_level.level_variables(start, primary, env_vars, same))
    after.pop(ACTIVE_VAR, None)
    start_vars = {k: v for k, v in start.items() if k != ACTIVE_VAR}
    changed = sorted(k for k in set(start_vars) | set(after) if start_vars.get(k) != after.get(k))
    entry = {
        "prefix": str(found.root),
        **({"target": choice.target} if choice is not None else {}),
        "conda_prefix": primary,
        "shlvl": conda_level.shlvl(after),
        "old": {k: start_vars.get(k) for k in changed},
        "new": {k: after.get(k) for k in changed},
    }
    after[ACTIVE_VAR] = json.dumps([*entries, entry], separators=(",", ":"))
    return shell_code.emit(shell, current, after), notes


def deactivate_script(shell: str = "bash", env: Mapping[str, str] | None = None) -> tuple[str, list[str]]:
    """The script that undoes the newest ``pmpm activate``, and notes (for stderr) on what it left."""
    _check_shell(shell)
    current = dict(os.environ if env is None else env)
    target, notes = _deactivated(current)
    if target is None:
        return "", notes
    return shell_code.emit(shell, current, target), notes


def _print(script: str, notes: list[str]) -> int:
    """The script on stdout (for ``eval``), notes on stderr (eval does not see them)."""
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(script)
    sys.stdout.flush()
    return 0


def activate_command(prefix: Path, shell: str) -> int:
    """``pmpm activate``."""
    return _print(*activate_script(prefix, shell))


def deactivate_command(shell: str) -> int:
    """``pmpm deactivate``."""
    return _print(*deactivate_script(shell))

"""Shared by the tests of tests/publish: the module tools, a bash to run them in, env dumps.

Lmod and Environment Modules come from Debian (``.ci/run``); the two packages conflict in apt,
so CI installs lmod and unpacks environment-modules' .deb into /opt/environment-modules. Module
tests load the generated files in a bash that sourced the tool's init, then compare ``env`` from
before ``module load`` with ``env`` after ``module unload``.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from tests.factories import LocalChannel

#: ``pmpm`` as a shell command, for scripts that ``eval "$(pmpm activate ...)"``
PMPM = f"{shlex.quote(sys.executable)} -m pmpm"

# --- the module tools ------------------------------------------------------------------------


def _lmod_init() -> str | None:
    for path in (os.environ.get("LMOD_PKG", "") + "/init/bash", "/usr/share/lmod/lmod/init/bash"):
        if os.path.isfile(path):
            return f". {shlex.quote(path)}"
    return None


def _modules_init() -> str | None:
    tclsh = shutil.which("tclsh")
    candidates = [os.environ.get("PMPM_TEST_MODULECMD", "")]
    candidates += glob.glob("/usr/lib/*/modulecmd.tcl") + glob.glob(
        "/usr/share/modules/libexec/modulecmd.tcl"
    )
    candidates += glob.glob("/opt/environment-modules/usr/lib/*/modulecmd.tcl")
    found = next((c for c in candidates if c and os.path.isfile(c)), None)
    if tclsh is None or found is None:
        return None
    return f'eval "$({shlex.quote(tclsh)} {shlex.quote(found)} bash autoinit)"'


LMOD = _lmod_init()
TCL = _modules_init()
TOOLS = [
    pytest.param(
        "lmod", LMOD, marks=pytest.mark.skipif(LMOD is None, reason="Lmod is not installed (apt: lmod)")
    ),
    pytest.param(
        "tcl",
        TCL,
        marks=pytest.mark.skipif(
            TCL is None,
            reason="Environment Modules is not installed (apt: environment-modules, or unpack its .deb "
            "into /opt/environment-modules, or set PMPM_TEST_MODULECMD)",
        ),
    ),
]

#: Variables the module tools keep for themselves, ignored when comparing env before load with
#: env after unload. Seen left behind: Lmod keeps its encoded module table (_ModuleTable002_),
#: reference counts of PATH entries (__LMOD_REF_COUNT_PATH) and its pushenv stack
#: (__LMOD_STACK_CONDA_PREFIX); Environment Modules leaves LOADEDMODULES set to "" where it was
#: unset. Also ignored, being the same bookkeeping: _LMFILES_ and __MODULES_* (its reference
#: counts, conflict and pushenv tracking). Everything else must be exactly as before.
TOOL_OWN_PREFIXES = ("_ModuleTable", "__LMOD_", "__MODULES_")
TOOL_OWN = {"LOADEDMODULES", "_LMFILES_"}


def _tool_own(name: str) -> bool:
    return name in TOOL_OWN or name.startswith(TOOL_OWN_PREFIXES)


def _parse_env(text: str) -> dict[str, str]:
    env = {}
    for item in text.split("\0"):
        if "=" in item:
            key, _, value = item.partition("=")
            env[key] = value
    return env


def _bash(script: str, tmp: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", script],
        env=env if env is not None else _clean_env(tmp),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _clean_env(tmp: Path) -> dict[str, str]:
    """A small starting environment with no duplicate PATH entries (Lmod drops duplicates on
    unload, which is Lmod's business, not the module's)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp),
        "LANG": "C",
        "CONDA_PREFIX": "/some/earlier/conda",  # a value the module must put back
        "MANPATH": "/usr/share/man",
    }


def _dump(name: str) -> str:
    return f"env -0 > {shlex.quote(str(name))}"


# --- an environment ----------------------------------------------------------------------------

ACTIVATE_SH = """\
export DEMO_ACTIVATED="$CONDA_PREFIX/share/demo-activate"
export DEMO_SEARCH_PATH="$CONDA_PREFIX/share/demo-activate${DEMO_SEARCH_PATH:+:$DEMO_SEARCH_PATH}"
"""


def _activate_channel(root: Path) -> LocalChannel:
    """A package with an activate.d script and a man page, like many conda-forge packages."""
    channel = LocalChannel(root)
    channel.add(
        PackageMeta("demo-activate", "1.0", "0", noarch="generic", summary="sets variables on activation"),
        {
            "etc/conda/activate.d/demo-activate.sh": ACTIVATE_SH,
            "etc/conda/deactivate.d/demo-activate.sh": "unset DEMO_ACTIVATED DEMO_SEARCH_PATH\n",
            "share/demo-activate/README": "demo\n",
            "share/man/man1/demo-tool.1": ".TH DEMO-TOOL 1\n",
        },
    )
    channel.index()
    return channel


def _load_and_unload(init: str, moddir: Path, name: str, tmp: Path, checks: str, env=None):
    before, loaded, after = tmp / "before", tmp / "loaded", tmp / "after"
    script = "\n".join(
        [
            init,
            f"module use {shlex.quote(str(moddir))}",
            _dump(before),
            f"module load {shlex.quote(name)} || exit 7",
            checks,
            _dump(loaded),
            f"module unload {shlex.quote(name.split('/')[0])}",
            _dump(after),
        ]
    )
    proc = _bash(script, tmp, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return (
        proc,
        _parse_env(before.read_text()),
        _parse_env(loaded.read_text()),
        _parse_env(after.read_text()),
    )


def _differences(a: dict[str, str], b: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k) and not _tool_own(k)}

"""What a build sees: template objects for the tools a recipe may use (``{{ mpi.cc }}``,
``{{ python.site_packages }}``, resolved when first read and only then part of the build key),
and the process environment a build runs in (:func:`build_env`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm import paths
from pmpm.build.plan import digest
from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler
    from pmpm.builders import Flags
    from pmpm.host.mpi.choice import MpiChoice

Say = Callable[[str], None]


class ToolValues:
    """A tool's values (paths, version, identity), found when first asked for: kept for one
    state of the stacks and shared by every rendering that reads them."""

    def __init__(self, find: Callable[[], dict[str, str]]) -> None:
        self._find = find

    @cached_property
    def values(self) -> dict[str, str]:
        return self._find()


class ToolContext:
    """A template object (``{{ mpi.cc }}``, ``{{ python.site_packages }}``) for one rendering of
    one recipe, which notes whether that recipe read it.

    Only a recipe that reads it depends on it: its identity then joins the build key. A new one
    is made for each rendering (the values are shared, :class:`ToolValues`), so the note belongs
    to that recipe alone and is read back right after it is rendered.
    """

    def __init__(self, what: str, values: ToolValues, missing_hint: str) -> None:
        self._what = what
        self._source = values
        self._hint = missing_hint
        self.used = False

    @property
    def _resolved(self) -> dict[str, str]:
        return self._source.values

    def __getattr__(self, item: str) -> str:
        if item.startswith("_"):
            raise AttributeError(item)
        self.used = True
        values = self._resolved
        if not values:
            raise PmpmError(
                f"a recipe uses {{{{ {self._what}.{item} }}}} but there is no {self._what}", hint=self._hint
            )
        if item not in values:
            raise AttributeError(item)
        return values[item]

    def identity(self, *, used: bool = False) -> str | None:
        """Its identity when the recipe used it (or ``used``: it depends on it regardless)."""
        return self._resolved.get("identity") if self.used or used else None

    def provider(self) -> str | None:
        """Where it comes from (``conda``/``external``), without counting as a use."""
        return self._resolved.get("provider")


def mpi_values(choice: MpiChoice, say: Say) -> dict[str, str]:
    """The chosen MPI as recipes see it; the choice and its reason are said once, when used."""
    say(f"MPI: {choice.reason}")
    mpi = choice.mpi
    if mpi is None:
        return {}
    return {**{k: str(v) for k, v in mpi.as_template().items()}, "identity": mpi.identity()}


#: where pip puts a package for ``--prefix P`` (the same scheme for conda's and the host's python)
_SITE = (
    "import sys, sysconfig; p = sys.argv[1]; "
    "print(sysconfig.get_path('purelib', 'posix_prefix', {'base': p, 'platbase': p})); "
    "print(sys.version.split()[0])"
)


def python_values(python: Path | None, prefix: Path) -> dict[str, str]:
    if python is None:
        return {}
    out = subprocess.run(
        [python, "-c", _SITE, str(prefix)], capture_output=True, text=True, check=False
    ).stdout.split()
    if len(out) != 2:
        return {}
    return {
        "executable": str(python),
        "site_packages": out[0],
        "version": out[1],
        "identity": f"{os.path.realpath(python)} {out[1]}",
    }


def build_env(
    compiler: Compiler,
    host,
    flags: Flags,
    recipe_env: dict[str, str],
    *,
    jobs: int | None = None,
    where: Path | None = None,
    python: Path | None = None,
    epoch: int | None = None,
) -> dict[str, str]:
    """The process environment of a build: PATH, compilers and flags for its stacks, then the recipe's.

    ``epoch`` (the source's time, :mod:`pmpm.sources.epoch`) is exported as ``SOURCE_DATE_EPOCH``:
    tools that date their output use it instead of the clock, so rebuilds give the same bytes."""
    env = dict(os.environ)
    # the prefix's tools first (in system_install mode: the compiled stack's, then the host's,
    # then the conda stack's); build tools installed beside pmpm (meson, ninja, cmake from
    # PyPI) last, so a pipx-installed pmpm can build meson projects. `python` is always the
    # interpreter packages are built for (a folder with that one link comes first).
    python = python or compiler.python_exe()
    shims = [str(_python_shim(python))] if python is not None else []
    stacks = [str(p / "bin") for p in compiler.stacks(where)]
    if compiler.system:
        path = [*shims, stacks[0], compiler.host_path(), *stacks[1:], str(Path(sys.executable).parent)]
    else:
        path = [*shims, *stacks, env.get("PATH", ""), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join(p for p in path if p)
    for var, lang in (("CC", "cc"), ("CXX", "cxx"), ("FC", "fc"), ("F77", "fc")):
        if lang in host.compilers:
            env[var] = host.compilers[lang].path
    env.update(
        CFLAGS=flags.cflags,
        CXXFLAGS=flags.cxxflags,
        FFLAGS=flags.fflags,
        FCFLAGS=flags.fflags,
        CPPFLAGS=flags.cppflags,
        LDFLAGS=flags.ldflags,
        PKG_CONFIG_PATH=os.pathsep.join(
            str(p / sub / "pkgconfig") for p in compiler.stacks(where) for sub in ("lib", "share")
        ),
        CMAKE_PREFIX_PATH=os.pathsep.join(str(p) for p in compiler.stacks(where)),
        CPU_COUNT=str(jobs or compiler.jobs),
    )
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    env.update(recipe_env)
    return env


def _python_shim(python: Path) -> Path:
    shim = paths.python_shims_dir() / digest({"python": str(python)})[:12]
    link = shim / "python"
    if not link.is_symlink() or os.readlink(link) != str(python):
        shim.mkdir(parents=True, exist_ok=True)
        # made aside and renamed over: builds running side by side may get here together
        temp = shim / f".python-{os.getpid()}-{threading.get_ident()}"
        temp.unlink(missing_ok=True)
        temp.symlink_to(python)
        os.replace(temp, link)
    return shim

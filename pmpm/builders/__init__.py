"""Build systems: each turns a prepared source tree into argument lists that stage an install.

A builder knows only how its build system takes a prefix, flags, parallelism and a staging root
(``DESTDIR``, ``--destdir``, ``pip --root``); fetching, logging, packaging and installing are the
executor's job. Built-in builders are registered through the ``pmpm.builders`` entry-point group
exactly like third-party ones, so a site can add its own build system without patching pmpm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Flags:
    """Exact compiler and linker flags for one build: what reaches the compiler, and the record."""

    cflags: str = ""
    cxxflags: str = ""
    fflags: str = ""
    ldflags: str = ""
    cppflags: str = ""


@dataclass(frozen=True)
class BuildContext:
    """Everything a builder may use; all strings are already rendered from the recipe templates."""

    name: str
    version: str
    source_dir: Path  # the unpacked source tree (top folder of the project)
    build_dir: Path  # out-of-tree build folder, kept between runs for incremental builds
    stage_dir: Path  # staging root: files land at stage_dir / prefix.relative_to("/")
    prefix: Path  # the final install prefix (absolute)
    jobs: int
    flags: Flags
    env: dict[str, str]  # complete environment for every step: PATH, CC/CXX/FC, CFLAGS..., PKG_CONFIG_PATH
    args: tuple[str, ...] = ()  # the recipe's extra arguments for the configure step
    python: Path | None = None  # the interpreter Python packages are built for
    script: str | None = None  # the recipe's explicit shell script (script builder only)

    @property
    def staged_prefix(self) -> Path:
        return self.stage_dir / self.prefix.relative_to(self.prefix.anchor)


@dataclass(frozen=True)
class Step:
    """One command of a build; ``shell`` is true only for a recipe's explicit ``script:``."""

    name: str  # configure | build | install | test | script
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)  # additions to BuildContext.env
    shell: bool = False


class Builder(Protocol):
    """A build system plugin (entry-point group ``pmpm.builders``)."""

    name: str

    def supports(self, source_dir: Path) -> bool:
        """True when the tree looks like this build system's (used when a recipe names none)."""
        ...

    def steps(self, ctx: BuildContext) -> list[Step]:
        """The commands that configure, build and stage-install the tree, in order."""
        ...

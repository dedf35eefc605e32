"""Python projects (PEP 517): ``pip wheel`` with the target interpreter, then a staged ``pip install``.

The wheel is built by the prefix's own interpreter so its tags and extension ABI fit it; build
isolation stays on, so build requirements come from the user's pip configuration (index, proxy),
and a recipe can turn it off with ``--no-build-isolation`` in its arguments.

The install runs pip with ``--root STAGE --prefix PREFIX``: pip lays files out for PREFIX
(``lib/pythonX.Y/site-packages``, ``bin``, scripts' ``#!PREFIX/bin/python``) and writes them under
STAGE. ``--ignore-installed`` stops pip looking at, or uninstalling from, the live prefix, and
``--no-compile`` keeps bytecode out: pip would compile it at the staged path and every traceback
would then name a folder that no longer exists.

The wheel's file name is only known after the build, yet naming the wheel file to pip would make
it record a ``direct_url.json`` pointing into our build folder (``pip freeze`` then shows
``name @ file:///...``). So a few lines of Python, run by the same interpreter, read name and
version from the newest wheel and install that by name from the wheel folder.
"""

from __future__ import annotations

from pathlib import Path

from pmpm.builders import BuildContext, Step

PROJECT_FILES = ("pyproject.toml", "setup.py")

INSTALL_NEWEST_WHEEL = """\
import glob, os, runpy, sys
folder = sys.argv[1]
wheels = sorted(glob.glob(os.path.join(folder, '*.whl')), key=os.path.getmtime)
if not wheels:
    sys.exit('pmpm: the wheel step left no wheel in ' + folder)
name, version = os.path.basename(wheels[-1]).split('-')[:2]
sys.argv = ['pip', 'install', *sys.argv[2:], '--find-links', folder, name + '==' + version]
runpy.run_module('pip', run_name='__main__', alter_sys=True)
"""

PIP_QUIET = ("--no-input", "--disable-pip-version-check")


def is_python_project(source_dir: Path) -> bool:
    """A ``setup.py``, or a ``pyproject.toml`` that declares a build or a project.

    A bare ``pyproject.toml`` only configures tools (ruff, black) in many C and C++ projects, so
    its presence alone says nothing; the tables are checked by line to stay free of a TOML parser.
    """
    if (source_dir / "setup.py").is_file():
        return True
    pyproject = source_dir / "pyproject.toml"
    if not pyproject.is_file():
        return False
    lines = pyproject.read_text(errors="replace").splitlines()
    return any(line.strip() in ("[build-system]", "[project]") for line in lines)


class PythonBuilder:
    name = "python"

    def supports(self, source_dir: Path) -> bool:
        return is_python_project(source_dir)

    def steps(self, ctx: BuildContext) -> list[Step]:
        python = str(ctx.python or ctx.prefix / "bin" / "python")
        wheels = ctx.build_dir / "wheels"
        env = {"PIP_REQUIRE_VIRTUALENV": "0"}  # a user's "only in a venv" guard must not stop us
        wheel = (python, "-m", "pip", "wheel", *PIP_QUIET, "--no-deps", "--wheel-dir", str(wheels))
        install = (
            python,
            "-c",
            INSTALL_NEWEST_WHEEL,
            str(wheels),
            *PIP_QUIET,
            "--no-deps",
            "--no-index",
            "--root",
            str(ctx.stage_dir),
            "--prefix",
            str(ctx.prefix),
            "--ignore-installed",
            "--no-compile",
            "--no-warn-script-location",
        )
        return [
            Step("build", (*wheel, *ctx.args, str(ctx.source_dir)), ctx.build_dir, env=env),
            Step("install", install, ctx.build_dir, env=env),
        ]

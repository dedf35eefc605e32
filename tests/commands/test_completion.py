"""Shell completion through typer's machinery, run by the real bash, zsh and fish.

Each shell loads the script ``pmpm --show-completion SHELL`` prints and completes a partial
command line with the installed ``pmpm`` console script on PATH: command names, recipe names
(``recipes show``) and archspec's target names (``--target``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.build.recipe import RecipeBook

BIN = Path(sys.executable).parent
SCRIPT = BIN / "pmpm"

pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason=f"no installed console script {SCRIPT}")


def _env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("_PMPM", "_TYPER"))}
    return {**keep, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": str(home)}


def _script(shell: str, tmp_path: Path) -> Path:
    """The completion script as a user gets it (shell named, since the test's parent is not one)."""
    env = {**_env(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    proc = subprocess.run(
        [SCRIPT, "--show-completion", shell], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "_PMPM_COMPLETE" in proc.stdout
    path = tmp_path / f"pmpm.{shell}"
    path.write_text(proc.stdout)
    return path


def _run(shell: str, code: str, tmp_path: Path) -> list[str]:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed")
    argv = (
        [exe, "--no-config", "-c", code]
        if shell == "fish"
        else [exe, "-f" if shell == "zsh" else "--norc", "-c", code]
    )
    proc = subprocess.run(argv, env=_env(tmp_path), capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout.split()


def _bash(words: list[str], tmp_path: Path) -> list[str]:
    script = _script("bash", tmp_path)
    line = " ".join(words)
    code = (
        f"source {script}\n"
        f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        "_pmpm_completion pmpm\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    return _run("bash", code, tmp_path)


def _zsh(words: list[str], tmp_path: Path) -> list[str]:
    """zsh's completion widgets need a terminal; the script's function runs as zsh runs it, with
    ``_arguments`` printing the candidates it is handed instead of drawing them."""
    script = _script("zsh", tmp_path)
    code = (
        "compdef() { :; }\n"
        '_arguments() { print -r -- "$@"; }\n'
        f"source {script}\n"
        f"words=({' '.join(words)}); CURRENT={len(words)}\n"
        "_pmpm_completion\n"
    )
    out = " ".join(_run("zsh", code, tmp_path))
    # typer hands zsh `*: :(("name":"help" ...))`: the names are the quoted words before each colon
    return [part.split('"')[1] for part in out.split("((", 1)[-1].split(" ") if part.startswith(('"', '("'))]


def _fish(words: list[str], tmp_path: Path) -> list[str]:
    script = _script("fish", tmp_path)
    line = " ".join(words)
    return _run("fish", f"source {script}; complete -C '{line}'", tmp_path)


SHELLS = {"bash": _bash, "zsh": _zsh, "fish": _fish}


@pytest.mark.parametrize("shell", SHELLS)
def test_commands_complete(shell, tmp_path):
    found = SHELLS[shell](["pmpm", "re"], tmp_path)
    assert {"record", "recipes", "remove", "repair"} <= set(found), found
    assert "verify" not in found


@pytest.mark.parametrize("shell", SHELLS)
def test_recipe_names_complete(shell, tmp_path):
    expected = {n for n in RecipeBook().sources() if n.startswith("f")}
    assert expected, "the built-in recipes include fftw"
    found = SHELLS[shell](["pmpm", "recipes", "show", "f"], tmp_path)
    assert set(found) == expected, found


@pytest.mark.parametrize("shell", SHELLS)
def test_target_names_complete(shell, tmp_path):
    expected = {n for n in archspec.cpu.TARGETS if n.startswith("x86_64_v")}
    found = SHELLS[shell](["pmpm", "host", "--target", "x86_64_v"], tmp_path)
    assert set(found) == expected, found

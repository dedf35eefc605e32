"""Shell completion as a new user gets it: ``pmpm --install-completion`` run from bash, zsh or
fish (typer finds the shell it runs in), then a fresh interactive shell on a terminal (a
pseudo-terminal) that reads its own startup files, where TAB is pressed.

TAB completes a unique recipe name (``pmpm recipes show ff<TAB>``) and target name (``pmpm host
--target icel<TAB>``); Ctrl-A and ``echo MARK:`` then print the completed line. Each is the
first TAB of the shell's session, which is the one zsh's autoloaded script used to miss.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import termios
import time
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.build.recipe import RecipeBook

BIN = Path(sys.executable).parent
SCRIPT = BIN / "pmpm"
DEADLINE = 30  # seconds to wait for a shell's output before giving up (no timing assertion)

pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason=f"no installed console script {SCRIPT}")


def _unique_prefix(names: list[str], name: str) -> str:
    """The shortest start of ``name`` that no other of ``names`` has (at least two letters)."""
    for n in range(2, len(name) + 1):
        if [other for other in names if other.startswith(name[:n])] == [name]:
            return name[:n]
    pytest.skip(f"{name} is a prefix of another name")


def _env(home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "PMPM_CACHE_DIR": str(home / "cache"),
    }


def _take_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pseudo-terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


#: the terminal's control sequences (bracketed paste, cursor moves), which fish puts before output
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """An interactive shell on a pseudo-terminal: type into it, read what it shows."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        leader, follower = pty.openpty()
        self.proc = subprocess.Popen(
            argv, stdin=follower, stdout=follower, stderr=follower, env=env, preexec_fn=_take_terminal
        )
        os.close(follower)
        self.leader = leader
        self.shown = ""

    def type(self, keys: str) -> None:
        os.write(self.leader, keys.encode())

    def text(self) -> str:
        """What the shell showed, without carriage returns and terminal control sequences."""
        return ESCAPES.sub("", self.shown.replace("\r", ""))

    def wait_for(self, pattern: str) -> re.Match[str] | None:
        """Read until ``pattern`` (a regex over :meth:`text`) shows."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), flags=re.M)
            if found:
                return found
            ready, _, _ = select.select([self.leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.leader, 4096)
                except OSError:  # the shell has gone
                    break
                self.shown += chunk.decode(errors="replace")
        return re.search(pattern, self.text(), flags=re.M)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.leader)


SHELLS = {
    "bash": ["bash", "-i"],
    "zsh": ["zsh", "-i"],
    "fish": ["fish", "-i"],
}


@pytest.fixture(params=sorted(SHELLS))
def shell(request, tmp_path) -> Terminal:
    """The shell with pmpm's completion installed from within it, started afresh."""
    name = request.param
    if shutil.which(name) is None:
        pytest.skip(f"{name} is not installed")
    env = _env(tmp_path)
    installed = subprocess.run(
        [name, "-c", "pmpm --install-completion; true"],  # `; true`: the shell must not exec pmpm
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert f"{name} completion installed" in installed.stdout, installed.stdout + installed.stderr
    terminal = Terminal(SHELLS[name], env)
    yield terminal
    terminal.close()


def _complete(terminal: Terminal, line: str, expected: str) -> str:
    """Type ``line``, press TAB once, and return the line the shell then runs."""
    terminal.shown = ""  # what earlier lines showed is not this line's
    terminal.type(line + "\t")
    terminal.wait_for(re.escape(expected))  # the shell redraws the line once completion is in
    terminal.type("\x01echo MARK:\r")
    found = terminal.wait_for(r"^MARK:(.*)$")
    assert found, f"the shell printed no MARK line:\n{terminal.shown[-2000:]}"
    return found.group(1).strip()


def test_first_tab_completes_a_recipe_then_a_target(shell):
    recipes = sorted(RecipeBook().sources())
    recipe = "fftw" if "fftw" in recipes else recipes[0]
    start = _unique_prefix(recipes, recipe)
    assert _complete(shell, f"pmpm recipes show {start}", f"show {recipe}") == f"pmpm recipes show {recipe}"

    targets = sorted(["host", *archspec.cpu.TARGETS])
    target = "icelake" if "icelake" in targets else "x86_64_v3"
    start = _unique_prefix(targets, target)
    line = _complete(shell, f"pmpm host --target {start}", f"--target {target}")
    assert line == f"pmpm host --target {target}"

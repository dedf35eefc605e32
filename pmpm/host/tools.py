"""Ask an installed tool about itself (``--version``, ``-show``), never through a shell."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping


def ask(argv: list[str], env: Mapping[str, str], *, timeout: float) -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr), or None when the tool cannot run or hangs.

    stdin is closed so a tool that prompts cannot stall detection; undecodable output is
    replaced, since version banners of vendor compilers are not always UTF-8.
    """
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env),
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode, done.stdout, done.stderr

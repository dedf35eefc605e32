"""The one exception type users see.

Every failure a user can cause or fix (bad YAML, an unsatisfiable spec, a wrong checksum, a lock
held by another run) is raised as :class:`PmpmError` with what went wrong, where (file and line,
package), and what to do next. The CLI prints it without a traceback; anything else escaping is a
bug in pmpm and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


class PmpmError(Exception):
    """A failure explained for the user.

    ``where`` names the file (and line) or package; ``hint`` says what to do next; ``log`` points
    at a kept log when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        log: Path | None = None,
        exit_code: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        self.log = log
        self.exit_code = exit_code

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\nhint: {self.hint}"
        if self.log:
            text += f"\nlog: {self.log}"
        return text


def located(path: Path | str, line: int | None) -> str:
    """Format a ``file:line`` location the way compilers do, so editors can jump to it."""
    return f"{path}:{line}" if line else str(path)


def run_reporting(call) -> int:
    """Run a command; print a user error as ``error: ...`` (no traceback) and return the exit code."""
    try:
        return call()
    except PmpmError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; the prefix was put back as it was", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:  # output piped into `head` or a closed pager: stop quietly, like cat
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        # the last resort for a full disk no stage explained: never a traceback for that
        from pmpm.env.diskspace import last_resort  # here: diskspace imports this module

        full: PmpmError | None = last_resort(exc)
        if full is None and isinstance(exc, OSError) and exc.filename:
            full = PmpmError(
                f"cannot use {exc.filename2 or exc.filename}: {exc.strerror or exc}",
                hint="check that path (its type, permissions, mount); a prefix this run was "
                "changing has been put back as it was",
            )
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr, flush=True)
        return full.exit_code


def combined(problems: list[PmpmError], what: str) -> PmpmError:
    """One error for several problems, so a user fixes them all in one run, not one per run.

    Each problem keeps its own ``file:line`` at the start of a line, where editors jump, and
    its hint; a single problem is returned as it is.
    """
    if len(problems) == 1:
        return problems[0]
    lines = [f"{len(problems)} problems {what}:"]
    for problem in problems:
        lines.append(f"{problem.where}: {problem.message}" if problem.where else problem.message)
        if problem.hint:
            lines.append(f"  hint: {problem.hint}")
    return PmpmError("\n".join(lines))

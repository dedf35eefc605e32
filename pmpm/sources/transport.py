"""Moving bytes: reading a URL (``file://`` or over HTTP, in blocks) and running git, each
failure turned into a short reason or a :class:`~pmpm.errors.PmpmError` naming what to check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from pmpm.errors import PmpmError
from pmpm.sources.extract import BLOCK
from pmpm.sources.spec import COMMIT

TIMEOUT = (15, 120)  # connect, read (seconds between bytes): a stalled mirror fails over to the next


class FetchFailed(Exception):
    """One URL failed; the reason ends up in the list of all URLs tried."""


def chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(BLOCK):
        yield chunk


def url_chunks(url: str) -> Iterator[bytes]:
    """Chunks of the file behind ``url``; failures become ``FetchFailed`` with a short reason."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise FetchFailed(f"file URL on another host ({parsed.netloc}) is not supported")
        path = Path(url2pathname(unquote(parsed.path)))
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise FetchFailed(exc.strerror or str(exc)) from None
        with handle:
            yield from chunks(handle)
        return
    import requests  # not needed by runs that find everything cached

    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                raise FetchFailed(f"HTTP {response.status_code} {response.reason}")
            yield from response.iter_content(BLOCK)
    except requests.RequestException as exc:
        raise FetchFailed(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    """requests nests the cause three wrappers deep; users need only the last one."""
    import requests  # loaded already: only a failed download gets here

    if isinstance(exc, requests.Timeout):
        return f"timed out after {TIMEOUT[0]} s (connect) / {TIMEOUT[1]} s (read)"
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    if isinstance(exc, requests.ConnectionError) and errno:
        return f"cannot connect: {errno.group(0)}"
    return f"{type(exc).__name__}: {exc}"


# -- git plumbing --------------------------------------------------------------------------------


def run_git(args: list[str], cwd: Path | None, what: str, where: str | None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    try:
        result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PmpmError("git is not installed", where=where, hint="install git to use git: sources") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise PmpmError(f"{what}:\n{tail}", where=where, hint="check the repository URL and your access")
    return result.stdout


def clone_mirror(url: str, mirror: Path, where: str | None) -> None:
    """Clone beside the final place and rename, so a killed clone never looks like a mirror."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=mirror.parent))
    try:
        run_git(["clone", "--mirror", "--quiet", "--", url, str(tmp)], None, f"cannot clone {url}", where)
        try:
            os.rename(tmp, mirror)
        except OSError:
            if not mirror.is_dir():  # else another run mirrored it first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_ref(mirror: Path, ref: str) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=mirror,
        capture_output=True,
        text=True,
        check=False,
    )
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and COMMIT.fullmatch(commit) else None

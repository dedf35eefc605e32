"""The environment file, read into a typed model that remembers lines.

Users bring environment files written for conda, mamba, conda-lock or the original pmpm; anything
they can write there must either load or be rejected with ``file:line`` and what to write instead.
Everything downstream works from :class:`EnvSpec` and never looks at YAML again, so every check a
user can fail happens here, where the line numbers are still known.
"""

from __future__ import annotations

import re
from pathlib import Path

from rattler import Subdir

from pmpm.errors import PmpmError, combined, located
from pmpm.spec.model import EnvSpec
from pmpm.spec.reader import URL, _Reader
from pmpm.spec.yaml_lines import describe, parse_yaml


def load_env_file(path: Path, *, subdir: str | None = None) -> EnvSpec:
    """Read an environment file; ``subdir`` (default: this machine's) decides ``sel(...)`` entries."""
    path = Path(path).expanduser().resolve()
    text = _read_text(path)
    if _is_explicit(text):
        return _load_explicit(text, path)
    root = parse_yaml(text, path)
    if root is None:
        raise PmpmError(
            "the environment file has nothing but comments",
            where=str(path),
            hint="list packages under `dependencies:`",
        )
    if not root.is_mapping:
        raise PmpmError(
            f"the top level must be a mapping with keys such as `channels:` and `dependencies:`, "
            f"not {describe(root)}",
            where=located(path, root.line),
            hint="explicit package lists must start with a line `@EXPLICIT`",
        )

    known_subdirs = [str(p) for p in Subdir.all()]
    if subdir is None:
        subdir = str(Subdir.current())
    elif subdir not in known_subdirs:
        raise PmpmError(f"unknown platform `{subdir}`", hint=f"use one of: {', '.join(known_subdirs)}")
    reader = _Reader(path, subdir, known_subdirs)
    spec = reader.read(root.value)
    if reader.problems:  # every problem at once: also recipes no recipe folder has
        from pmpm.build.recipe import unknown_recipes  # the build stage's: not for a valid file

        reader.problems += unknown_recipes(spec)
        reader.problems.sort(key=_line_of)
        raise combined(reader.problems, "in the environment file")
    return spec


def _line_of(problem: PmpmError) -> int:
    """The line a reader's problem names (its ``where`` is ``file:line``), for reporting in order."""
    line = (problem.where or "").rpartition(":")[2]
    return int(line) if line.isdigit() else 0


def _read_text(path: Path) -> str:
    if not path.exists():
        raise PmpmError("environment file not found", where=str(path), hint="check the path")
    if path.is_dir():
        raise PmpmError(
            "expected an environment file, found a folder",
            where=str(path),
            hint="pass the environment.yml inside it",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PmpmError(f"cannot read the environment file: {exc.strerror}", where=str(path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PmpmError(
            "the environment file is not valid UTF-8",
            where=located(path, line),
            hint="save the file as UTF-8",
        ) from None
    if not text.strip():
        raise PmpmError(
            "the environment file is empty", where=str(path), hint="list packages under `dependencies:`"
        )
    return text


# --- @EXPLICIT files -------------------------------------------------------------------------


def _is_explicit(text: str) -> bool:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line == "@EXPLICIT"
    return False


def _load_explicit(text: str, path: Path) -> EnvSpec:
    """Explicit lists pin exact package files; keep the URLs with their checksum fragments."""
    urls: list[str] = []
    platforms: list[str] = []
    marker_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            match = re.match(r"#\s*platform:\s*(\S+)", line)
            if match and not marker_seen:
                platforms.append(match.group(1))
            continue
        if not line:
            continue
        if not marker_seen:
            marker_seen = True  # _is_explicit made sure this is `@EXPLICIT`
            continue
        url = line.split("#", 1)[0]
        if not URL.match(line) or not url.endswith((".conda", ".tar.bz2")):
            raise PmpmError(
                f"`{line}` is not a package URL",
                where=located(path, number),
                hint="after `@EXPLICIT` every line must be the URL of a .conda or .tar.bz2 file",
            )
        urls.append(line)
    if not urls:
        raise PmpmError("no package URLs after `@EXPLICIT`", where=str(path))
    return EnvSpec(path=path, platforms=platforms, explicit=urls)

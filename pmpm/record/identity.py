"""The environment id: a hash of an environment's content, wherever it lives.

See :mod:`pmpm.record.api` for what enters it. The environment's own locations are written as
tokens (``${prefix}``, ``${compile}``...) by :func:`neutral`, which the lock file and the build
inputs use too, so a moved or rebuilt environment hashes the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from pmpm.record.model import FileEntry, Record


def location_tokens(locations: dict[str, Path]) -> list[tuple[str, str]]:
    """Each location of the environment and its token, longest first (a path inside another is
    replaced before the outer one)."""
    pairs = [(str(path), "${" + name + "}") for name, path in locations.items()]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def neutral(value: Any, tokens: list[tuple[str, str]]) -> Any:
    """``value`` with the environment's own location replaced by tokens."""
    if isinstance(value, str):
        for path, token in tokens:
            value = value.replace(path, token)
        return value
    if isinstance(value, dict):
        return {k: neutral(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [neutral(v, tokens) for v in value]
    return value


_HOST_PATH = re.compile(r"\s*(?<!\S)/\S+")


def _compiler_identity(text: str) -> str:
    """``gcc 12.2.0 /usr/bin/gcc-12 (gcc (Debian 12.2.0-14) 12.2.0)`` -> the same without the
    path: where a compiler is installed is the host's business, its version line is the identity."""
    return _HOST_PATH.sub("", text)


def _file_identity(entry: FileEntry, stack: Path | None, tokens: list[tuple[str, str]]) -> str | None:
    if entry.link is not None:
        return "link:" + neutral(entry.link, tokens)
    if entry.prefix == "binary":
        return "binary-with-prefix"
    if entry.prefix == "text" and stack is not None:
        try:
            data = (stack / entry.path).read_bytes()
        except OSError:
            return entry.sha256
        for path, token in tokens:
            data = data.replace(os.fsencode(path), token.encode())
        return hashlib.sha256(data).hexdigest()
    return entry.sha256


def identity_document(record: Record, locations: dict[str, Path] | None = None) -> dict[str, Any]:
    """Everything the environment id hashes, location-neutral (see :mod:`pmpm.record.api`)."""
    if locations is None:
        locations = {k: Path(v) for k, v in record.layout.items() if k not in ("kind", "root")}
    tokens = location_tokens(locations)
    compiled = []
    for package in record.compiled_packages:
        rendered = package.recipe.get("rendered")
        recipe_digest = None
        if rendered:
            data = json.loads(rendered)
            data.pop("source", None)  # where the source came from; its identity is below
            recipe_digest = hashlib.sha256(
                json.dumps(neutral(data, tokens), sort_keys=True).encode()
            ).hexdigest()
        stack = locations.get(package.stack)
        compiled.append(
            {
                "name": package.name,
                "version": package.version,
                "recipe": recipe_digest or package.recipe.get("sha256"),
                "source": package.source.get("identity"),
                "target": package.target,
                "flags": neutral(package.flags, tokens),
                "compilers": {k: _compiler_identity(v) for k, v in sorted(package.compilers.items())},
                "mpi": neutral(package.mpi, tokens),
                "python": neutral(package.python, tokens),
                "options": package.options,
                "requires": {
                    "recipes": sorted(package.requires.get("recipes") or {}),
                    "conda": package.requires.get("conda") or {},
                },
                "files": sorted([f.path, _file_identity(f, stack, tokens)] for f in package.files),
            }
        )
    return {
        "id_format": record.id_format,
        "conda": sorted(
            [p.name, p.version, p.build, p.subdir, p.sha256 or p.md5] for p in record.conda_packages
        ),
        "compiled": compiled,
        "pip": sorted([p.name.lower(), p.version] for p in record.pip_packages),
        "variables": neutral(record.variables, tokens),
    }


def compute_id(record: Record, locations: dict[str, Path] | None = None) -> str:
    document = identity_document(record, locations)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- pmpm record

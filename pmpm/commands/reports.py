"""The ``--json`` documents of ``cache list``, ``diff`` and ``verify`` (``docs/json.md``).

The text forms stay with the modules that compute them; these read the same results and print
them as :mod:`pmpm.commands.jsonout` documents, with the same exit codes as the text forms.
"""

from __future__ import annotations

import time
from pathlib import Path

from pmpm.build import binary_cache
from pmpm.commands import jsonout
from pmpm.commands.jsonout import Say
from pmpm.paths import build_channel
from pmpm.record import api as records
from pmpm.record import verify as checks

#: the first character of a ``pmpm diff`` line and what it means
_DIFF_KINDS = {"+": "added", "-": "removed", "~": "changed"}


def cache_list(folder: Path | None, say: Say) -> int:
    channel = folder or build_channel()
    packages = []
    for package in binary_cache._packages(channel):
        name, version, build = binary_cache._describe(package)
        st = package.stat()
        packages.append(
            {
                "name": name,
                "version": version,
                "build": build,
                "subdir": package.parent.name,
                "path": str(package),
                "size": st.st_size,
                "last_used": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(st.st_mtime)),
            }
        )
    jsonout.emit("cache list", {"channel": str(channel), "packages": packages}, say)
    return 0


def diff(a: Path, b: Path, say: Say) -> int:
    """Exit 1 when the environments differ, as the text form."""
    left, right = records.read(a), records.read(b)
    same = left.environment_id == right.environment_id
    lines = [] if same else checks.differences(left, right)
    document = {
        "a": {"path": str(a), "environment_id": left.environment_id, "target": left.host.target},
        "b": {"path": str(b), "environment_id": right.environment_id, "target": right.host.target},
        "same": same,
        "differences": [{"kind": _DIFF_KINDS[line[0]], "text": line[2:]} for line in lines],
    }
    jsonout.emit("diff", document, say)
    return 0 if same else 1


def verify(prefix: Path, say: Say) -> int:
    """Exit 1 when anything differs from the record, as the text form (which also says how)."""
    report = checks.check(prefix)
    problems = [{"kind": p.kind, "what": p.what, "owner": p.owner, "stack": p.stack} for p in report.problems]
    data = {"prefix": str(report.prefix), "environment_id": report.environment_id, "ok": report.ok}
    jsonout.emit("verify", {**data, "problems": problems}, say)
    return 0 if report.ok else 1

"""``pmpm verify`` and ``pmpm diff``: does a prefix still hold what its record says, and how do two
environments differ.

Verify compares the prefix with its record and with the package records in ``conda-meta``:
packages added, removed or changed behind pmpm's back (a ``conda install``, a ``pip install``),
files missing or modified (every installed file is hashed against the sha256 its package
declares), and extra files no package owns and the record does not list. Python's run-time
bytecode (``__pycache__``, ``*.pyc``) is ignored: running the environment writes it. A file that
embeds the prefix is checked modulo the prefix (:mod:`pmpm.record.relocation`), so an environment
moved with conda-pack verifies clean where it was unpacked.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pmpm.env import inventory
from pmpm.errors import PmpmError
from pmpm.record import api as records
from pmpm.record import relocation
from pmpm.record.read import TARGET_STACK

Say = Callable[[str], None]
#: the owner :class:`Problem` names for a file no package owns
UNOWNED = "not in a package"


@dataclass
class Problem:
    kind: str  # missing | modified | extra | package added | package removed | package changed | pip
    what: str
    owner: str | None = None  # the package the file belongs to
    stack: str | None = None  # for a file of a package: the stack it is installed in (repair)

    def __str__(self) -> str:
        owner = f" ({self.owner})" if self.owner else ""
        return f"{self.kind}: {self.what}{owner}"


@dataclass
class Report:
    prefix: Path
    environment_id: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "environment_id": self.environment_id,
            "problems": [{"kind": p.kind, "what": p.what, "owner": p.owner} for p in self.problems],
        }


def _hash(path: Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def check(prefix: Path) -> Report:
    """Compare the environment at ``prefix`` with its record; raises if there is no record."""
    layout = records.layout_of(prefix)
    recorded = records.read(layout.root)
    report = Report(Path(layout.root), recorded.environment_id)
    problems = report.problems
    expected = {(p.stack, p.name): f"{p.version}-{p.build}" for p in recorded.conda_packages}
    expected.update({(p.stack, p.name): f"{p.version}-{p.build}" for p in recorded.compiled_packages})
    other = {(f.stack, f.path): f for f in recorded.other_files}
    recorded_pip = {(p.stack, p.dist_info) for p in recorded.pip_packages}
    to_hash: list[_ToHash] = []
    for stack_name, stack in records.stacks(layout).items():
        owned: set[str] = set()
        found = {}
        for data in inventory.meta_records(stack):
            name = data["name"]
            label = f"{data.get('version')}-{data.get('build')}"
            found[name] = label
            owned.update(data.get("files") or [])
            items = {i.get("_path"): i for i in (data.get("paths_data") or {}).get("paths") or []}
            for entry in inventory.installed_files(data):
                if inventory.is_runtime(entry.path):
                    continue  # rewritten by Python at run time
                path = stack / entry.path
                if not os.path.lexists(path):
                    problems.append(Problem("missing", _shown(stack_name, entry.path), name, stack_name))
                elif entry.sha256 is not None and not path.is_symlink():
                    place = (stack_name, stack, entry.path, items.get(entry.path))
                    to_hash.append((path, entry.sha256, _shown(stack_name, entry.path), name, place))
        for (where, name), label in sorted(expected.items()):
            if where != stack_name:
                continue
            if name not in found:
                problems.append(Problem("package removed", f"{name} {label}"))
            elif found[name] != label:
                problems.append(Problem("package changed", f"{name} {label} -> {found[name]}"))
        for name, label in sorted(found.items()):
            if (stack_name, name) not in expected:
                problems.append(Problem("package added", f"{name} {label}", "not installed by pmpm"))
        present = inventory.walk_files(stack)
        unowned = sorted(rel for rel in present if rel not in owned)
        tool = relocation.tool_files(stack, unowned)
        for rel in unowned:
            kept = other.get((stack_name, rel))
            if kept is None and rel not in tool:
                problems.append(Problem("extra", _shown(stack_name, rel)))
            elif kept is not None and kept.sha256 is not None:
                modulo: _Place | None = None
                if kept.sha256_neutral:  # a text file naming the location: checked modulo it
                    item = {"prefix_placeholder": inventory.NEUTRAL_PREFIX, "sha256": kept.sha256_neutral}
                    modulo = (stack_name, stack, rel, item)
                to_hash.append((stack / rel, kept.sha256, _shown(stack_name, rel), UNOWNED, modulo))
        for kept_in, rel in sorted(other):
            if kept_in == stack_name and rel not in present:
                problems.append(Problem("missing", _shown(stack_name, rel), UNOWNED))
        for pip in inventory.pip_packages(stack, stack_name, unowned):
            if (stack_name, pip.dist_info) not in recorded_pip:
                by = f"installed by {pip.installer}" if pip.installer else "installed"
                problems.append(Problem("package added", f"{pip.name} {pip.version}", f"{by}, not by pmpm"))
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib releases the GIL on large reads
        digests = list(pool.map(_hash, [item[0] for item in to_hash]))
    for (path, want, shown, owner, at), got in zip(to_hash, digests, strict=True):
        if got != want and not _relocated(path, at):
            in_stack = at[0] if at and owner != UNOWNED else None
            problems.append(Problem("modified", shown, owner, in_stack))
    order = ["package added", "package removed", "package changed", "modified", "missing", "extra"]
    problems.sort(key=lambda p: (order.index(p.kind) if p.kind in order else 99, p.what))
    return report


#: a file to hash: path, expected sha256, name shown, owner, and for a package's file where it
#: is (stack name, stack, path in it, its ``paths_data`` entry)
_Place = tuple[str, Path, str, dict | None]
_ToHash = tuple[Path, str, str, str, _Place | None]


def _relocated(path: Path, where: _Place | None) -> bool:
    """A package's file that embeds the prefix and is its package's file moved to this stack."""
    if where is None:
        return False
    _, stack, rel, item = where
    if item is None:
        return False
    return relocation.matches(path, rel, item, {str(stack), str(stack.resolve())})


def _shown(stack_name: str, rel: str) -> str:
    return rel if stack_name == "prefix" else f"{stack_name}/{rel}"


def run(prefix: Path, say: Say, *, as_json: bool = False) -> int:
    """``pmpm verify PREFIX``: say what differs from the record; non-zero exit when anything does."""
    report = check(prefix)
    if as_json:
        say(json.dumps(report.to_dict(), indent=1))
        return 0 if report.ok else 1
    if report.ok:
        say(f"{report.prefix} matches its record (environment id {report.environment_id})")
        return 0
    limit = 200
    for problem in report.problems[:limit]:
        say(f"  {problem}")
    if len(report.problems) > limit:
        say(f"  ... and {len(report.problems) - limit} more")
    raise PmpmError(
        f"{report.prefix} does not match its record (environment id {report.environment_id}): "
        f"{count(report.problems)}",
        hint=_hint(report),
    )


def _hint(report: Report) -> str:
    """What to do next, for the kinds of difference found."""
    repairable = [p for p in report.problems if p.kind in ("missing", "modified") and p.stack]
    steps = []
    if repairable:
        steps.append(f"`pmpm repair {report.prefix}` reinstalls the packages with missing or modified files")
    if len(repairable) < len(report.problems):
        steps.append(
            "remove what was added behind pmpm's back and put back files no package owns, or run "
            "pmpm conda_install again with the env file"
        )
    return "; ".join(steps) + "; `pmpm record PREFIX` shows what the environment should hold"


def count(problems: list[Problem]) -> str:
    kinds: dict[str, int] = {}
    for p in problems:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in kinds.items())


# --------------------------------------------------------------------------- diff


def differences(a: records.Record, b: records.Record) -> list[str]:
    """What differs between two records, one line each: packages, versions, flags, targets."""
    lines: list[str] = []
    conda_a = {p.name: p for p in a.conda_packages}
    conda_b = {p.name: p for p in b.conda_packages}
    for name in sorted(conda_a.keys() | conda_b.keys()):
        old, new = conda_a.get(name), conda_b.get(name)
        if new is None:
            assert old is not None  # the name is in one of the two
            lines.append(f"- {name} {old.version}-{old.build}")
        elif old is None:
            lines.append(f"+ {name} {new.version}-{new.build}")
        elif (old.version, old.build, old.sha256) != (new.version, new.build, new.sha256):
            same = old.version == new.version and old.build == new.build
            detail = " (same name, different package sha256)" if same else ""
            lines.append(f"~ {name} {old.version}-{old.build} -> {new.version}-{new.build}{detail}")
    comp_a = {_compiled_key(p): p for p in a.compiled_packages}
    comp_b = {_compiled_key(p): p for p in b.compiled_packages}
    for key in sorted(comp_a.keys() | comp_b.keys()):
        built_a, built_b = comp_a.get(key), comp_b.get(key)
        name = f"{key[0]} [{key[1]}]" if key[1] else key[0]
        if built_b is None:
            assert built_a is not None  # the name is in one of the two
            lines.append(f"- {name} {built_a.version} (compiled)")
            continue
        if built_a is None:
            lines.append(f"+ {name} {built_b.version} (compiled, target {built_b.target})")
            continue
        lines += [f"~ {name} (compiled): {change}" for change in _compiled_changes(a, built_a, b, built_b)]
    pip_a = {p.name.lower(): p.version for p in a.pip_packages}
    pip_b = {p.name.lower(): p.version for p in b.pip_packages}
    for name in sorted(pip_a.keys() | pip_b.keys()):
        if pip_a.get(name) != pip_b.get(name):
            lines.append(f"~ {name} (pip): {pip_a.get(name, 'absent')} -> {pip_b.get(name, 'absent')}")
    if a.variables != b.variables:
        lines.append(f"~ variables: {a.variables} -> {b.variables}")
    return lines


def _compiled_key(package: records.CompiledPackage) -> tuple[str, str]:
    """A compiled package in a diff: its name, and its target when the environment has a stack
    per target (the same name is then built once per target)."""
    target = package.stack.removeprefix(TARGET_STACK) if package.stack.startswith(TARGET_STACK) else ""
    return package.name, target


def _documents(record: records.Record) -> dict[tuple[str, str], dict]:
    """The id's document of each compiled package (in the record's order), by :func:`_compiled_key`."""
    compiled = records.identity_document(record)["compiled"]
    return {_compiled_key(p): doc for p, doc in zip(record.compiled_packages, compiled, strict=True)}


def _compiled_changes(a, old, b, new) -> list[str]:
    left, right = _documents(a)[_compiled_key(old)], _documents(b)[_compiled_key(new)]
    changes = []
    for key in ("version", "target", "source", "recipe", "options", "mpi", "python"):
        if left.get(key) != right.get(key):
            changes.append(f"{key} {left.get(key)} -> {right.get(key)}")
    for kind in ("flags", "compilers"):
        for name in sorted(left[kind].keys() | right[kind].keys()):
            if left[kind].get(name) != right[kind].get(name):
                changes.append(f"{name} {left[kind].get(name)!r} -> {right[kind].get(name)!r}")
    if left["requires"] != right["requires"]:
        changes.append(f"requires {left['requires']} -> {right['requires']}")
    if not changes and left["files"] != right["files"]:
        files_a, files_b = dict(map(tuple, left["files"])), dict(map(tuple, right["files"]))
        changed = sorted(k for k in files_a.keys() | files_b.keys() if files_a.get(k) != files_b.get(k))
        changes.append("files differ with the same inputs: " + ", ".join(changed[:10]))
    return changes


def diff(a: Path, b: Path, say: Say) -> int:
    """``pmpm diff A B`` (prefixes or record files); exit 1 when the environments differ."""
    left, right = records.read(a), records.read(b)
    if left.environment_id == right.environment_id:
        say(f"same environment (id {left.environment_id})")
        if left.host.target != right.host.target:
            say(f"note: recorded on different hosts: {left.host.target} and {right.host.target}")
        return 0
    say(f"--- {a} (id {left.environment_id})")
    say(f"+++ {b} (id {right.environment_id})")
    lines = differences(left, right)
    for line in lines or ["(no package differs; the id differs in recorded details)"]:
        say(line)
    return 1

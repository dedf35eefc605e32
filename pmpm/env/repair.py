"""``pmpm repair PREFIX``: put back the packages whose files ``pmpm verify`` finds missing or
modified.

Each damaged package -- a conda package or a compiled one, which is a conda package of pmpm's
build channel -- is installed again, exactly the build the prefix records, by the same installer
and under the same prefix lock and journal as ``pmpm conda_install``: from the package cache, or
from its channel when the cache has no intact copy. Nothing is solved and no env file is read, so
it also works where an environment was unpacked (conda-pack). Files no package owns (an ``extra``
file, a package added behind pmpm's back) are left alone: they are not pmpm's to delete.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from pmpm import paths
from pmpm.conda import engine as conda
from pmpm.env.inventory import meta_records
from pmpm.env.transaction import transaction
from pmpm.errors import PmpmError
from pmpm.fsutil import sha256_file
from pmpm.record import api as records
from pmpm.record import verify

Say = Callable[[str], None]

#: problems a reinstall of the package named as owner puts right
_REPAIRED = ("missing", "modified")


def damaged(report: verify.Report) -> dict[str, set[str]]:
    """Package names to reinstall, by stack, from a verify report."""
    found: dict[str, set[str]] = {}
    for problem in report.problems:
        if problem.kind in _REPAIRED and problem.stack is not None and problem.owner:
            found.setdefault(problem.stack, set()).add(problem.owner)
    return found


def _sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


def _cached(data: dict) -> Path | None:
    """The package's folder in the package cache (``data`` is its conda-meta record), when it
    holds every file intact. Installed files are hard links into the cache: a file written in
    place damages the cache's copy too, and such an entry is removed so that the installer
    fetches the package again (prefixes linked to it keep their files)."""
    stem = str(data.get("fn", "")).removesuffix(".conda").removesuffix(".tar.bz2")
    folder = Path(data.get("extracted_package_dir") or paths.package_cache() / stem)  # conda-pack blanks it
    if not stem or not folder.is_dir():
        return None
    for item in (data.get("paths_data") or {}).get("paths") or []:
        linked = item.get("path_type", "hardlink") == "hardlink" and item.get("sha256")
        if linked and _sha256(folder / item["_path"]) != item["sha256"]:
            shutil.rmtree(folder, ignore_errors=True)
            return None
    return folder


def _fetchable(url: str) -> bool:
    """A local package file that exists, or a remote one (the installer says if it is not there)."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path)).is_file()
    return url.startswith(("http://", "https://"))


def _reinstall(stack: Path, names: set[str], say: Say) -> None:
    with transaction([stack], say) as txn:
        lost = sorted(
            f"{data['name']} ({data.get('url') or 'no url'})"
            for data in meta_records(stack)
            if data["name"] in names and _cached(data) is None and not _fetchable(str(data.get("url") or ""))
        )
        if lost:  # checked before anything changes: a failed relink could not be undone either
            raise PmpmError(
                f"cannot repair {stack}: neither the package cache nor the channel has " + ", ".join(lost),
                hint=f"repair takes each package from the package cache ({paths.package_cache()}) "
                "or from the url in its conda-meta record: run it where the environment was built "
                f"(or set PMPM_CACHE_DIR), or rebuild the environment with pmpm conda_install; {stack} "
                "was not changed",
            )
        installed = conda.installed_records(stack)
        with txn.changing():
            conda.install(
                installed,
                stack,
                installed=installed,
                requested=[s for r in installed for s in r.requested_specs],
                reinstall=names,
            )


def run(prefix: Path, say: Say) -> int:
    """Reinstall the damaged packages, then verify again; non-zero when differences remain."""
    report = verify.check(prefix)
    todo = damaged(report)
    if not todo:
        say(f"{report.prefix}: no package has a missing or modified file")
    stacks = records.stacks(records.layout_of(prefix))
    for stack_name, names in sorted(todo.items()):
        say(f"reinstalling in {stacks[stack_name]}: " + ", ".join(sorted(names)))
        _reinstall(stacks[stack_name], names, say)
    after = verify.check(prefix)
    if after.ok:
        say(f"{after.prefix} matches its record (environment id {after.environment_id})")
        return 0
    for problem in after.problems[:200]:
        say(f"  {problem}")
    raise PmpmError(
        f"{after.prefix} still differs from its record: {verify.count(after.problems)}",
        hint="repair puts back files of the recorded packages only; remove extra files and packages "
        "added behind pmpm's back, or rebuild the environment with pmpm conda_install",
    )

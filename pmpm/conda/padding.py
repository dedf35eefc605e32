"""conda-build's ``PaddingError``: a binary placeholder too short for the prefix, said as such.

A file recorded with a *binary* prefix placeholder is relocated by writing the new prefix over
the placeholder inside the file and padding the rest with NUL bytes, so it only fits a prefix no
longer than the placeholder (text placeholders fit any prefix). pmpm builds recipes in a padded
prefix (:meth:`pmpm.build.compile_stage.Compiler.build_prefix`) holding the conda packages they
require: a package built with a shorter placeholder cannot be linked there, which
:func:`check_build_prefix` says before anything is linked. A PREFIX longer than a package's
placeholder fails inside the installer, whose error ("target prefix cannot be longer than the
placeholder prefix") :func:`installer_error` turns into the same diagnosis: neither is a broken
package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pmpm.errors import PmpmError

#: py-rattler's words for it, and the package file and path it names before them
_INSTALLER_SAYS = "target prefix cannot be longer than the placeholder prefix"
_LINKING = re.compile(r"failed to link (\S+?)\.(?:conda|tar\.bz2)\b.*?failed to link '([^']+)'", re.S)


def too_short(record, prefix: Path) -> tuple[str, int] | None:
    """The first file of an installed ``record`` (a ``PrefixRecord``) whose binary placeholder is
    shorter than ``prefix``, with the placeholder's length; None when every file fits."""
    need = len(str(prefix))
    for entry in record.paths_data.paths:
        placeholder = entry.prefix_placeholder
        if placeholder and entry.file_mode.binary and len(placeholder) < need:
            return str(entry.relative_path), len(placeholder)
    return None


def check_build_prefix(records: Iterable, place: Path, recipe: str, where: str | None = None) -> None:
    """Refuse, naming the limit, the package and what to do, to link ``records`` (what recipe
    ``recipe`` requires, read from PREFIX) into its padded build prefix ``place``."""
    for record in records:
        found = too_short(record, place)
        if found is None:
            continue
        path, length = found
        package = f"{record.name.normalized} {record.version} {record.build}"
        raise PmpmError(
            f"padding limit (as conda-build's PaddingError): conda package {package}, which recipe "
            f"{recipe} requires, was built with a binary prefix placeholder of {length} characters "
            f"(in {path}); recipes are built in a padded prefix of {len(str(place))} characters "
            f"({place}), and a binary placeholder relocates only into a prefix no longer than itself",
            where=where,
            hint=f"rebuild {record.name.normalized} with a build prefix of at least {len(str(place))} "
            "characters (conda-build pads to 255 by default), or compile with `pmpm system_install`, "
            "which builds against the conda stack where it is installed instead of in a padded prefix",
        )


def installer_error(text: str, prefix: Path, package_cache: Path) -> PmpmError | None:
    """The padding limit behind the installer's error ``text`` when linking into ``prefix``
    (a conda package into PREFIX, or into a conda stack); None for any other error. The
    placeholder's length is read from the package as extracted in ``package_cache``."""
    if _INSTALLER_SAYS not in text:
        return None
    match = _LINKING.search(text)
    package, path = match.groups() if match else ("a conda package", "one of its files")
    length = _placeholder_length(package_cache / package, path) if match else None
    size = f"of {length} characters " if length is not None else ""
    return PmpmError(
        f"padding limit (as conda-build's PaddingError): {package} was built with a binary prefix "
        f"placeholder {size}(in {path}), shorter than the {len(str(prefix))}-character prefix "
        f"{prefix}; a binary placeholder relocates only into a prefix no longer than itself",
        hint=f"install into a shorter prefix{f' (at most {length} characters)' if length else ''}, or "
        "rebuild the package with a longer build prefix (conda-build pads to 255 characters by default)",
    )


def _placeholder_length(extracted: Path, path: str) -> int | None:
    from rattler.package import PathsJson  # py-rattler: >100 ms; engine (on `pmpm run`) imports this

    try:
        entries = PathsJson.from_package_directory(extracted).paths
    except Exception:  # py-rattler raises its own types; the message is still right without it
        return None
    for entry in entries:
        if str(entry.relative_path) == path and entry.prefix_placeholder is not None:
            return len(entry.prefix_placeholder.placeholder)
    return None

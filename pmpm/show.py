"""``pmpm recipes list|show`` and ``pmpm host``: read-only views for users writing env files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pmpm.build.recipe import RecipeBook, load_data

Say = Callable[[str], None]


def recipes_list(folders: list[Path], say: Say) -> int:
    book = RecipeBook(folders)
    rows = []
    for name, source in sorted(book.sources().items()):
        try:
            data = load_data(source, {}) if source.text is not None else {}
        except Exception as exc:  # a broken recipe must not hide the others
            rows.append((name, "?", "?", f"{source.origin} (unreadable: {exc})"))
            continue
        system = (data.get("build") or {}).get("system", "auto") if data else "plugin"
        rows.append((name, str(data.get("version", "?")), str(system), source.origin))
    if not rows:
        say("no recipes found")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        say("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0


def recipes_show(name: str, folders: list[Path], say: Say) -> int:
    source = RecipeBook(folders).find(name)
    say(f"# {source.origin}")
    say(source.text.rstrip() if source.text is not None else f"(recipe computed by {source.origin})")
    return 0


def host_report(
    target: str,
    compilers: dict[str, str] | None,
    say: Say,
    *,
    targets: bool = False,
    prefix: Path | None = None,
) -> int:
    from pmpm.host.detect import detect_host, known_targets
    from pmpm.host.mpi.choice import choose_mpi, find_mpis

    if targets:
        for name in known_targets():
            say(name)
        return 0
    conda_bin = Path(prefix).absolute() / "bin" if prefix is not None else None
    host = detect_host(target, compilers, conda_bin=conda_bin)
    for key, value in host.describe():
        say(f"{key:<12} {value}")
    say(f"{'compilers':<12} {_compiler_choice(host, conda_bin, compilers or {})}")
    mpis = find_mpis(prefix=prefix)
    for mpi in mpis:
        for key, value in mpi.describe():
            say(f"{key:<12} {value}")
    if not mpis:
        say(f"{'mpi':<12} none found (no mpicc on PATH{' or in PREFIX/bin' if prefix else ''})")
    _, why = choose_mpi(None, prefix=prefix)
    say(f"{'mpi chosen':<12} {why}")
    if prefix is not None:
        from pmpm.host.mpi.choice import decide

        why = decide(None, system=True, base=Path(prefix).absolute(), prefix=Path(prefix)).reason
        say(f"{'  system':<12} {why} (system_install with PREFIX as its conda stack)")
    return 0


def _compiler_choice(host, conda_bin: Path | None, named: dict[str, str]) -> str:
    """Why each compiler was chosen, as conda_install would choose them; system_install skips
    conda's and takes the host's."""
    from pmpm.host.detect import SEARCH

    reasons = []
    for lang, compiler in sorted(host.compilers.items()):
        if lang in named:
            why = "named"
        elif conda_bin is not None and Path(compiler.path).parent == conda_bin:
            why = "conda's, in PREFIX/bin (system_install uses the host's instead)"
        else:
            why = f"first that works on PATH of {', '.join(SEARCH[lang])}"
        reasons.append(f"{lang}: {why}")
    return "; ".join(reasons) or "none found"

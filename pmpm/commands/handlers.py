"""What each ``pmpm`` command calls: the declared parameters, passed on to the module doing the work.

No logic lives here. Each handler imports its module when called, since importing them all
would cost every command what the heaviest one needs. Handlers return the exit code;
:func:`pmpm.errors.run_reporting` turns a :class:`PmpmError` into ``error: ...`` on either
parser's path.
"""

from __future__ import annotations

from pathlib import Path

from pmpm.errors import PmpmError


def _say(text: str) -> None:
    print(text, flush=True)


def _registered(code: int, dry_run: bool, prefixes: list[Path]) -> int:
    """After a successful install, list its stacks in ``~/.conda/environments.txt`` as conda does."""
    if code == 0 and not dry_run:
        from pmpm.commands import registry

        registry.register(prefixes, _say)  # those with conda-meta, checked under its lock
    return code


def conda_install(
    prefix: Path, file: Path | None, lock: Path | None, target: str | None, backend: str | None, **options
) -> int:
    if lock is not None or file is None:
        from pmpm.record import lock as locked

        if options.get("slurm"):
            raise PmpmError(
                "--slurm does not rebuild from a lock yet",
                hint="rebuild from the lock without --slurm, or build through Slurm from the env file",
            )
        rebuild_only = ("update", "fresh", "rebuild", "channel_alias", "slurm")
        kept = {k: v for k, v in options.items() if k not in rebuild_only}
        code = locked.install_command(prefix, lock, file, _say, target=target, **kept)
        return _registered(code, options["dry_run"], [prefix])
    from pmpm.commands import conda_install as command

    code = command.run(command.Options(prefix=prefix, file=file, backend=backend, **options), _say)
    return _registered(code, options["dry_run"], [prefix])


def system_install(**options) -> int:
    from pmpm.commands import system_install as command

    code = command.run(command.Options(**options), _say)
    if code == 0 and not options["dry_run"]:
        from pmpm.env.layout import find

        _registered(code, False, find(options["prefix"]).prefixes)
    return code


def plan(prefix: Path, file: Path, offline: bool, as_json: bool, check: bool, commands: bool) -> int:
    from pmpm.commands import plan as command

    return command.run(prefix, file, offline, as_json, check, _say, commands=commands)


def cache_list(folder: Path | None, as_json: bool) -> int:
    if as_json:
        from pmpm.commands import reports

        return reports.cache_list(folder, _say)
    from pmpm.build import binary_cache

    return binary_cache.list_command(folder, _say)


def cache_push(dest: Path, names: tuple[str, ...]) -> int:
    from pmpm.build import binary_cache

    return binary_cache.push_command(dest, list(names), _say)


def cache_check(prefix: Path, names: tuple[str, ...], offline: bool = False) -> int:
    from pmpm.commands import check

    return check.run(prefix, names, _say, offline=offline)


def cache_prune(older_than: float | None, everything: bool) -> int:
    from pmpm.build import binary_cache

    return binary_cache.prune_command(older_than, everything, _say)


def recipes_list(recipes: tuple[Path, ...], as_json: bool) -> int:
    from pmpm import show

    return show.recipes_list(list(recipes), _say, as_json=as_json)


def recipes_show(name: str, recipes: tuple[Path, ...], as_json: bool) -> int:
    from pmpm import show

    return show.recipes_show(name, list(recipes), _say, as_json=as_json)


def host(target: str, targets: bool, prefix: Path | None, as_json: bool) -> int:
    from pmpm import show

    return show.host_report(target, None, _say, targets=targets, prefix=prefix, as_json=as_json)


def module(prefix: Path, lmod: Path | None, tcl: Path | None, name: str | None) -> int:
    from pmpm.publish import modules

    return modules.module_command(prefix, lmod, tcl, name, _say)


def activate(prefix: Path, shell: str) -> int:
    from pmpm.publish import activation

    return activation.activate_command(prefix, shell)


def deactivate(shell: str) -> int:
    from pmpm.publish import activation

    return activation.deactivate_command(shell)


def record(prefix: Path, as_json: bool) -> int:
    from pmpm.record import api as records

    return records.show(prefix, as_json, _say)


def verify(prefix: Path, as_json: bool) -> int:
    if as_json:
        from pmpm.commands import reports

        return reports.verify(prefix, _say)
    from pmpm.record import verify as command

    return command.run(prefix, _say)


def list_packages(prefix: Path, as_json: bool) -> int:
    from pmpm.commands import listing

    return listing.run(prefix, as_json, _say)


def remove(prefix: Path, yes: bool) -> int:
    from pmpm.commands import remove as command

    return command.run(prefix, yes, _say)


def clean(yes: bool, as_json: bool) -> int:
    from pmpm.commands import clean as command

    return command.run(yes, as_json, _say)


def repair(prefix: Path) -> int:
    from pmpm.env import repair as command

    return command.run(prefix, _say)


def diff(a: Path, b: Path, as_json: bool) -> int:
    if as_json:
        from pmpm.commands import reports

        return reports.diff(a, b, _say)
    from pmpm.record import verify as command

    return command.diff(a, b, _say)


def export(prefix: Path, output: Path) -> int:
    from pmpm.record import lock

    return lock.export(prefix, output, _say)


def run(
    prefix: Path, command: tuple[str, ...], expect: str | None, provenance: Path | None, no_verify: bool
) -> int:
    from pmpm.record import pin

    return pin.run(
        prefix, list(command), _say, expect=expect, provenance_file=provenance, check=not no_verify
    )

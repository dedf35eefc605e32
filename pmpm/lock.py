"""``pmpm export PREFIX -o env.lock`` and ``pmpm conda_install NEWPREFIX --lock env.lock``.

One file carries the whole environment. It is a rattler/pixi lock file (format 7, written and
read by py-rattler's ``LockFile``) for the conda part, followed by one extra top-level mapping,
``pmpm:``, for what a conda lock cannot say: the compiled packages' recipes (their text), their
resolved sources (tarball sha256, git commit, local tree hash), target, flags, compilers and
options, the env file's ``_pmpm`` settings, the variables and the environment id.

Why one file and not a sidecar: a lock is copied around (mailed, committed beside a paper), and a
pair of files gets separated; py-rattler (and pixi, which reads the same format) ignore the
unknown top-level key, so the file still installs with those tools, and pmpm reads ``pmpm:`` back
with a YAML parser -- both directions round-trip without any conversion. The ``pmpm:`` section
stores a sha256 of the conda part so that an edit of either half is caught.

Rebuilding installs exactly the locked conda records (no solve), then builds the compiled
packages from the locked recipe texts with their sources pinned (a url with its sha256, a git
commit, a local path whose tree must hash as locked) for the locked target. A host whose CPU is
not the locked target is an error unless ``--target`` says what to build for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError

Say = Callable[[str], None]
FORMAT = 1
ENVIRONMENT = "default"
_SEPARATOR = "\n# --- pmpm: compiled packages, their recipes and sources (ignored by rattler and pixi)\n"


# --------------------------------------------------------------------------- export


def _conda_part(layout, record) -> tuple[str, str]:
    """The rattler lock text of the conda packages, and the platform it is for."""
    import tempfile

    from rattler import LockChannel, LockFile, LockPlatform, PrefixRecord

    from pmpm.conda import host_subdir, is_compiled

    subdir = record.host.subdir or host_subdir()
    stack = layout.conda if layout.conda is not None else layout.compile
    rattler_records = [
        r
        for r in (PrefixRecord.from_path(p) for p in sorted((stack / "conda-meta").glob("*.json")))
        if not is_compiled(r)
    ]
    platform = LockPlatform(subdir)
    lock = LockFile([platform])
    channels: list[str] = []
    for package in record.conda_packages:
        if package.channel and package.channel not in channels:
            channels.append(package.channel)
    lock.set_channels(ENVIRONMENT, [LockChannel(c) for c in channels])
    for item in rattler_records:
        lock.add_conda_package(ENVIRONMENT, platform, item)
    with tempfile.TemporaryDirectory(prefix="pmpm-lock-") as tmp:
        path = Path(tmp) / "conda.lock"
        lock.to_path(path)
        return path.read_text(encoding="utf-8"), subdir


def _request(package) -> dict[str, Any]:
    """How the rebuild asks for one compiled package: its locked source, version, target, options."""
    source = package.source
    kind = source.get("kind")
    request: dict[str, Any] = {"version": package.version, **package.options}
    if kind == "path":
        request["path"] = source.get("path")
    elif kind == "git":
        request["git"] = source.get("git")
        request["ref"] = str(source.get("identity", "")).removeprefix("git:")
    elif kind == "url":
        request["url"] = source.get("fetched_from") or (source.get("url") or [None])[0]
        request["sha256"] = str(source.get("identity", "")).removeprefix("sha256:")
    return request


def lock_data(record) -> dict[str, Any]:
    from pmpm.matchspec import for_solver
    from pmpm.record import identity_document

    document = {p["name"]: p for p in identity_document(record)["compiled"]}
    normalized = record.env_file.normalized if record.env_file else None
    settings = {}
    requested: list[str] = []
    if isinstance(normalized, dict):
        section = normalized.get("_pmpm") or {}
        if isinstance(section, dict):
            settings = {k: section[k] for k in ("mpi", "compilers", "tests") if k in section}
        written = [d for d in normalized.get("dependencies") or [] if isinstance(d, str)]
        requested = [str(match) for match in for_solver(written)]  # as the solve read them
    compiled = []
    for package in record.compiled_packages:
        if not package.recipe.get("rendered"):
            raise PmpmError(
                f"the record of compiled package {package.name} lacks its recipe (built by an older pmpm)",
                hint="run pmpm conda_install --update on the prefix to rebuild it, then export again",
            )
        compiled.append(
            {
                "name": package.name,
                "version": package.version,
                "target": package.target,
                "recipe": {"text": package.recipe.get("text"), "origin": package.recipe.get("origin")},
                "source": package.source,
                "request": _request(package),
                "flags": document[package.name]["flags"],
                "compilers": document[package.name]["compilers"],
                "requires": package.requires,
            }
        )
    return {
        "format": FORMAT,
        "environment_id": record.environment_id,
        "pmpm_version": record.pmpm_version,
        "host": {"target": record.host.target, "os": record.host.os, "glibc": record.host.glibc},
        "requested": requested,
        "settings": settings,
        "variables": record.variables.get("prefix") or record.variables.get("conda") or {},
        "env_file": record.env_file.text if record.env_file else None,
        "pip": [{"name": p.name, "version": p.version} for p in record.pip_packages],
        "compiled": compiled,
    }


def export(prefix: Path, out: Path, say: Say) -> int:
    """``pmpm export PREFIX -o FILE``."""
    import yaml

    from pmpm import record as records
    from pmpm.fsutil import atomic_write_text

    layout = records._layout(prefix)
    record = records.read(layout.root)
    conda_text, subdir = _conda_part(layout, record)
    data = lock_data(record)
    data["subdir"] = subdir
    data["conda_sha256"] = hashlib.sha256(conda_text.encode()).hexdigest()
    text = conda_text + _SEPARATOR + yaml.safe_dump({"pmpm": data}, sort_keys=False, width=1000)
    atomic_write_text(Path(out), text)
    say(
        f"wrote {out}: {len(record.conda_packages)} conda packages, {len(data['compiled'])} compiled "
        f"(environment id {record.environment_id})"
    )
    if record.pip_packages:
        say("note: pip packages are listed but not locked: " + ", ".join(p.name for p in record.pip_packages))
    return 0


# --------------------------------------------------------------------------- read


def read_lock(path: Path) -> tuple[dict[str, Any], str]:
    """The ``pmpm:`` section and the conda part's text, both checked; clear errors otherwise."""
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PmpmError(f"cannot read the lock file: {exc.strerror}", where=where) from None
    except UnicodeDecodeError:
        raise PmpmError(
            "the lock file is not text", where=where, hint="give a file written by pmpm export"
        ) from None
    conda_text, sep, _ = text.partition(_SEPARATOR)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PmpmError(
            f"the lock file is not valid YAML: {str(exc).splitlines()[0]}",
            where=where,
            hint="the file is damaged; export it again with pmpm export",
        ) from None
    section = data.get("pmpm") if isinstance(data, dict) else None
    if not sep or not isinstance(section, dict):
        raise PmpmError(
            "this is not a pmpm lock file (no `pmpm:` section)",
            where=where,
            hint="write one with `pmpm export PREFIX -o env.lock`",
        )
    if section.get("format") != FORMAT:
        raise PmpmError(f"lock format {section.get('format')!r} is not {FORMAT}", where=where)
    if hashlib.sha256(conda_text.encode()).hexdigest() != section.get("conda_sha256"):
        raise PmpmError(
            "the conda part of the lock file was changed after pmpm wrote it (its sha256 differs)",
            where=where,
            hint="export the lock again from the environment",
        )
    return section, conda_text


def _write_history(prefix: Path, before: list, requested: list[str]) -> None:
    """conda's history of the rebuilt prefix: the lock's requested specs and compiled packages."""
    from pmpm import conda, history
    from pmpm.channels import channel_alias

    after = conda.installed_records(prefix)
    compiled = [s for r in after if conda.is_compiled(r) for s in r.requested_specs]
    history.append(prefix, before, after, [*requested, *compiled], alias=channel_alias())


def _locked_records(path: Path, conda_text: str, subdir: str):
    import tempfile

    from rattler import LockFile

    with tempfile.TemporaryDirectory(prefix="pmpm-lock-") as tmp:
        conda_path = Path(tmp) / "conda.lock"
        conda_path.write_text(conda_text, encoding="utf-8")
        try:
            lock = LockFile.from_path(conda_path)
        except Exception as exc:  # py-rattler's parse errors have their own types
            raise PmpmError(
                f"the conda part of the lock file does not parse: {exc}", where=str(path)
            ) from None
    environment = lock.environment(ENVIRONMENT) or lock.default_environment()
    platform = next((p for p in lock.platforms() if p.name == subdir), None)
    if environment is None or platform is None:
        raise PmpmError(f"the lock file has no packages for {subdir}", where=str(path))
    return environment.conda_repodata_records_for_platform(platform) or []


# --------------------------------------------------------------------------- rebuild


def _host_target() -> str:
    import archspec.cpu

    return archspec.cpu.host().name


def _choose_target(section: dict[str, Any], override: str | None, say: Say) -> str | None:
    locked = sorted({str(c["target"]) for c in section.get("compiled", []) if c.get("target")})
    if not locked:
        return override
    if override is not None:
        if locked != [override]:
            say(
                f"note: building for target {override} (--target); the lock was built for {', '.join(locked)}"
            )
        return override
    here = _host_target()
    if locked == [here]:
        return here
    raise PmpmError(
        f"the lock's compiled packages were built for target {', '.join(locked)}, this host is {here}",
        hint=f"pass --target {locked[0]} to build the same code (it runs only on CPUs with that "
        f"target's features), or --target {here} to build for this host (a different environment id)",
    )


def _write_inputs(folder: Path, section: dict[str, Any], target: str | None) -> Path:
    """The env file the compile stage reads: the locked recipes, sources pinned per package."""
    import yaml

    from pmpm.fsutil import atomic_write_text

    recipes = folder / "recipes"
    recipes.mkdir(parents=True, exist_ok=True)
    packages = []
    for item in section.get("compiled", []):
        text = item.get("recipe", {}).get("text")
        if text:
            atomic_write_text(recipes / f"{item['name']}.yaml", text)
        request = {k: v for k, v in item["request"].items() if v is not None}
        if target is not None:
            request["target"] = target
        packages.append({item["name"]: request})
    env = {
        "channels": [],
        "dependencies": [],
        "_pmpm": {"recipes": ["recipes"], "packages": packages, **section.get("settings", {})},
    }
    path = folder / "compile.yml"
    atomic_write_text(path, yaml.safe_dump(env, sort_keys=False))
    return path


def install(
    prefix: Path,
    lock_path: Path,
    say: Say,
    *,
    target: str | None = None,
    jobs: int = 0,
    offline: bool = False,
    keep_build: bool = False,
) -> int:
    """``pmpm conda_install PREFIX --lock FILE``: the locked conda records (no solve), then the
    locked compiled packages; the record is written at the end like any other run."""
    from contextlib import ExitStack

    from pmpm import conda, journal, variables
    from pmpm.conda_install import _refuse_foreign_folder
    from pmpm.layout import conda_layout
    from pmpm.prefix_lock import prefix_lock
    from pmpm.record import write_record

    section, conda_text = read_lock(lock_path)
    subdir = conda.host_subdir()
    if section.get("subdir") not in (None, subdir):
        raise PmpmError(
            f"the lock is for {section.get('subdir')}, this machine is {subdir}", where=str(lock_path)
        )
    records = _locked_records(lock_path, conda_text, subdir)
    chosen = _choose_target(section, target, say)
    layout = conda_layout(prefix)
    prefix = layout.root
    _refuse_foreign_folder(prefix)
    conda.verify_local_sha256(records)
    work = journal.pmpm_dir(prefix) / "from-lock"
    created = not prefix.exists()
    with ExitStack() as stack:
        stack.enter_context(prefix_lock(prefix, on_wait=say))
        if journal.pending(prefix):
            journal.restore(prefix)
        try:
            journal.begin(prefix)  # in the try: a prefix this run created goes when it fails
            installed = conda.installed_records(prefix)
            say(f"installing {len(records)} locked conda packages into {prefix} (no solve)")
            conda.install(
                records,
                prefix,
                installed=installed,
                requested=section.get("requested") or [],
                ignored={r.name.normalized for r in installed if conda.is_compiled(r)},
            )
            variables.write(prefix, section.get("variables") or {})
            env_file = None
            if section.get("env_file"):
                from pmpm.fsutil import atomic_write_text

                env_file = work / "environment.yml"
                atomic_write_text(env_file, section["env_file"])
            if section.get("compiled"):
                _compile(
                    prefix, section, chosen, work, say, jobs=jobs, offline=offline, keep_build=keep_build
                )
            _write_history(prefix, installed, section.get("requested") or [])
        except BaseException:
            try:
                journal.restore(prefix)
            except PmpmError as exc:
                say(f"could not put {prefix} back as it was: {exc}")
            if created:
                import shutil

                shutil.rmtree(prefix, ignore_errors=True)
            raise
        journal.commit(prefix)
        record = write_record(layout, env_file)
    if section.get("pip"):
        say(
            "note: pip packages of the locked environment are not installed: "
            + ", ".join(f"{p['name']} {p['version']}" for p in section["pip"])
        )
    same = record.environment_id == section.get("environment_id")
    say(
        f"{prefix} is ready: environment id {record.environment_id}"
        + (" (the same as the lock's)" if same else f" (the lock's is {section.get('environment_id')})")
    )
    if not same:
        say(
            "note: the rebuilt environment differs from the locked one; `pmpm diff` with the "
            "original record shows how"
        )
    return 0


def _compile(prefix: Path, section, target, work: Path, say: Say, *, jobs, offline, keep_build) -> None:
    from pmpm import conda
    from pmpm.compile_stage import Compiler
    from pmpm.record import _neutral, _tokens
    from pmpm.spec import load_env_file

    spec = load_env_file(_write_inputs(work, section, target))
    compiler = Compiler(
        spec, prefix, jobs=jobs, offline=offline, say=say, keep_build=keep_build, base=prefix, system=False
    )
    steps = compiler.plan(conda.installed_records(prefix))
    locked = {c["name"]: c for c in section["compiled"]}
    tokens = _tokens({"prefix": prefix})
    for step in steps:
        want = locked.get(step.name)
        if want is None:
            continue
        if step.identity != want["source"].get("identity"):
            raise PmpmError(
                f"the source of {step.name} is not the locked one: locked {want['source'].get('identity')}, "
                f"found {step.identity}",
                where=step.where,
                hint="restore the source the lock names (a local tree must be unchanged), or export "
                "a new lock",
            )
        flags = _neutral(step.inputs.flags, tokens)
        if flags != want.get("flags"):
            changed = [k for k in flags if flags.get(k) != want["flags"].get(k)]
            say(
                f"note: {step.name} builds with other flags than the lock's ({', '.join(changed)}): "
                + "; ".join(f"{k}: {want['flags'].get(k)!r} -> {flags.get(k)!r}" for k in changed)
            )
    compiler.run(steps)


def install_command(
    prefix: Path,
    lock_path: Path | None,
    file: Path | None,
    say: Say,
    *,
    target: str | None = None,
    jobs: int = 0,
    offline: bool = False,
    keep_build: bool = False,
    dry_run: bool = False,
) -> int:
    """The CLI's ``conda_install`` when ``--lock`` is given (or ``--file`` is missing)."""
    if lock_path is None:
        raise PmpmError(
            "conda_install needs an env file (--file env.yml) or a lock file (--lock env.lock)",
            hint="pmpm conda_install PREFIX --file environment.yml",
        )
    if file is not None:
        raise PmpmError("give --file or --lock, not both", hint="a lock file already says everything")
    if dry_run:
        section, conda_text = read_lock(lock_path)
        from pmpm import conda

        records = _locked_records(lock_path, conda_text, conda.host_subdir())
        say(
            f"dry run: would install {len(records)} locked conda packages and build "
            f"{len(section.get('compiled', []))} compiled packages (nothing was changed):"
        )
        for r in records:
            say(f"  + {r.name.normalized} {r.version}-{r.build}")
        for c in section.get("compiled", []):
            say(f"  + {c['name']} {c['version']} (compiled, target {c.get('target')})")
        _choose_target(section, target, say)
        return 0
    return install(prefix, lock_path, say, target=target, jobs=jobs, offline=offline, keep_build=keep_build)

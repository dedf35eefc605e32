"""Real env files solve: ``pmpm conda_install --dry-run`` against stand-ins of what they list.

Conda channels are out of reach, so for each real env file of ``../shared/realworld/envs`` the
test packs a genuine (empty, noarch) package for every dependency, at a version and build that
satisfy its spec, next to a decoy build a wrong reading of ``=*=mpi_*`` would pick, and runs the
real CLI on a copy of the file whose channel lines name that local channel (``channel::pkg``
names resolve through ``--channel-alias`` to the same folder). Before match specs were read one
lenient way, four of these files failed with "solving failed (InvalidMatchSpecError)".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from pmpm.conda.channels import FALLBACK
from pmpm.spec.envfile import load_env_file
from pmpm.spec.model import EnvSpec
from tests.clihelp import REALWORLD, pmpm
from tests.factories import LocalChannel

ENVS = REALWORLD / "envs"
if not ENVS.is_dir():
    pytest.skip(f"real-world env files not found at {ENVS}", allow_module_level=True)

# not installable by design: @EXPLICIT lists (refused with a message) and an unrendered template
FILES = sorted(
    p for p in ENVS.rglob("*") if p.is_file() and "explicit" not in p.parts and "template" not in p.name
)
#: the four that failed before: `=*=mpi_*`, `=3.*`, `2.17` and `>=2.7.0=cuda12*` forms
FORMERLY_REFUSED = {
    "hermes_delta--environment.yml",
    "openmm--devtools-ci-conda-envs-build-ubuntu-latest.yml",
    "pangeo-docker-images--pytorch-notebook-environment.yml",
    "underworld3--environment.yaml",
}


def _candidates(version_spec: str) -> list[str]:
    """Versions near every number the spec names: one of them satisfies it."""
    found = ["0.1", "1.0", "99.0"]
    for token in re.split(r"[,|<>=!~\s]+", version_spec):
        token = token.strip("*.")
        if not token:
            continue
        parts = token.split(".")
        bumped = [*parts[:-1], str(int(parts[-1]) + 1)] if parts[-1].isdigit() else parts
        found += [token, token + ".1", ".".join(bumped), ".".join(bumped) + ".0"]
    return found


def standin(spec_text: str) -> tuple[str, str, str]:
    """(name, version, build) of a package the spec selects; ``=*=mpi_*`` gives build ``mpi_0``."""
    from rattler import BuildString, MatchSpec, PackageRecord

    match = MatchSpec(spec_text.split("::")[-1], strict=False)
    build = re.sub(r"\*", "0", str(match.build)) if match.build is not None else "h0_0"
    name = match.name.normalized
    for version in _candidates(str(match.version or "")):
        record = PackageRecord(name, version, BuildString(build), 0, "noarch")
        if match.matches(record):
            return name, version, build
    raise AssertionError(f"no stand-in version found for {spec_text!r}")  # a gap in _candidates


def local_copy(path: Path, spec: EnvSpec, channel: Path, folder: Path) -> Path:
    """The env file with each channel line naming ``channel`` instead: lines stay where they are."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for ref in spec.channels:
        lines[ref.line - 1] = lines[ref.line - 1].replace(ref.text, str(channel), 1)
    copy = folder / path.name
    copy.write_text("".join(lines), encoding="utf-8")
    return copy


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ENVS)) for p in FILES])
def test_real_env_file_dry_run_solves(tmp_path: Path, path: Path) -> None:
    spec = load_env_file(path)
    channel = LocalChannel(tmp_path / "chan")
    wanted: dict[str, tuple[str, str]] = {}
    for dep in spec.dependencies:
        name, version, build = standin(dep.spec)
        wanted[name] = (version, build)
        channel.add(PackageMeta(name, version, build, 0, noarch="generic"), {})
        if build.startswith(("mpi", "cuda")):  # the build a wrong reading would prefer
            channel.add(PackageMeta(name, version, "nompi_h0_9", 9, noarch="generic"), {})
    channel.index()
    alias = tmp_path / "alias"
    alias.mkdir()
    for name in {*FALLBACK, *(d.channel for d in spec.dependencies if d.channel)}:
        (alias / name).symlink_to(channel.path)
    copy = local_copy(path, spec, channel.path, tmp_path)
    result = pmpm(
        "conda_install", tmp_path / "prefix", "--file", copy, "--dry-run", "--channel-alias", alias.as_uri()
    )
    assert result.code == 0, result.text
    assert not (tmp_path / "prefix").exists()
    for name, (version, build) in wanted.items():
        assert f"+ {name} {version}-{build}\n" in result.out, (name, result.out)


def test_the_formerly_refused_files_are_covered() -> None:
    assert {p.name for p in FILES} >= FORMERLY_REFUSED

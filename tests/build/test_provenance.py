"""Provenance beside the artifact: a compiled ``.conda`` carries its rendered recipe and build
inputs under ``info/``, and the build's log is kept with the installed package (in the prefix,
beside the package in the binary cache), not only in pmpm's prunable log folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pmpm.build import compare
from pmpm.build.inputs import BuildInputs
from tests.clihelp import pmpm, tree_digest

GREET_C = "#include <stdio.h>\nint main(void) { puts(GREETING); return 0; }\n"


@pytest.fixture
def project(tmp_path: Path):
    """``greet``: a program whose greeting is a recipe option, templated into its build script
    and test; it also writes where it is installed (``{{ prefix }}``) into a text file.
    ``broken`` requires it and fails to build."""
    src = tmp_path / "src"
    (src / "greet").mkdir(parents=True)
    (src / "greet" / "greet.c").write_text(GREET_C)
    (src / "broken").mkdir()
    (src / "broken" / "README").write_text("nothing to build\n")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\noptions: {greeting: hello}\n"
        "build:\n  system: script\n  script: |\n    mkdir -p $STAGE_PREFIX/bin $STAGE_PREFIX/share\n"
        "    echo 'compiling greet to say {{ options.greeting }}'\n"
        "    $CC $CFLAGS '-DGREETING=\"{{ options.greeting }}\"' -o $STAGE_PREFIX/bin/greet \\\n"
        "      $SRC_DIR/greet.c\n"
        '    echo "{{ prefix }}" > $STAGE_PREFIX/share/greet-prefix.txt\n'
        "test:\n  commands: ['$PREFIX/bin/greet | grep -x {{ options.greeting }}']\n"
    )
    (recipes / "broken.yaml").write_text(
        "name: broken\nversion: '1.0'\nsource: {path: ../src/broken}\nrequires: {recipes: [greet]}\n"
        "build:\n  system: script\n  script: |\n    echo 'this build fails'\n    exit 3\n"
    )

    def write(packages: str = "[greet]") -> Path:
        env = tmp_path / "env.yml"
        env.write_text(f"dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: {packages}\n")
        return env

    return write


def _machine(tmp_path: Path, name: str) -> dict[str, str]:
    """A machine of its own: its own pmpm cache (logs, build channel), nothing shared."""
    return {"PMPM_CACHE_DIR": str(tmp_path / name)}


def _package(tmp_path: Path, machine: str, name: str) -> Path:
    found = sorted((tmp_path / machine / "channel").glob(f"*/{name}-*.conda"))
    assert len(found) == 1, found
    return found[0]


def _compiled(prefix: Path) -> dict[str, dict]:
    record = json.loads(pmpm("record", prefix, "--json").out)
    return {p["name"]: p for p in record["compiled_packages"]}


def _kept_logs(prefix: Path) -> list[str]:
    folder = prefix / "conda-meta" / "pmpm" / "logs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_package_carries_its_rendered_recipe_and_build_inputs(tmp_path: Path, project) -> None:
    env = project("[{greet: {greeting: bonjour}}]")
    prefix = tmp_path / "a" / "p"
    built = pmpm("conda_install", prefix, "--file", env, env=_machine(tmp_path, "m1"))
    assert built.code == 0, built.text
    package = _package(tmp_path, "m1", "greet")
    out = tmp_path / "unpacked"
    listed = compare.unpack(package, out)

    recipe_text = (out / "info" / "recipe" / "rendered_recipe.yaml").read_text()
    recipe = yaml.safe_load(recipe_text)
    assert recipe["options"] == {"greeting": "bonjour"}  # the env file's value, not the default
    assert "compiling greet to say bonjour" in recipe["build"]["script"]  # rendered, not a template
    assert "{{" not in recipe_text and "hello" not in recipe_text
    assert 'echo "${prefix}"' in recipe["build"]["script"]  # the build prefix, as the key writes it
    assert "placehold" not in recipe_text and str(tmp_path) not in recipe_text
    assert recipe["test"] == ["$PREFIX/bin/greet | grep -x bonjour"]

    stored = json.loads((out / "info" / "pmpm" / "build-inputs.json").read_text())
    inputs = BuildInputs.from_dict(stored, where="the package")
    record = _compiled(prefix)["greet"]
    assert inputs.key == record["build_key"]  # its digest is the build key
    assert package.name.endswith(f"pmpm_{inputs.key[:12]}.conda")
    assert inputs.as_dict() == record["inputs"]  # and it is the value stored beside the package
    assert recipe["source"] == {"kind": "path", "identity": inputs.source}
    # info/ files are not listed in paths.json, as conda-build and rattler-build do
    assert sorted(listed) == ["bin/greet", "share/greet-prefix.txt"]

    # the same key on another machine, into another prefix: the same bytes, provenance included
    other = tmp_path / "elsewhere" / "q"
    again = pmpm("conda_install", other, "--file", env, env=_machine(tmp_path, "m2"))
    assert again.code == 0 and "building greet" in again.out, again.text
    assert _package(tmp_path, "m2", "greet").read_bytes() == package.read_bytes()


def test_the_build_log_is_kept_with_the_package(tmp_path: Path, project) -> None:
    env = project()
    machine = _machine(tmp_path, "m")
    first, second = tmp_path / "a" / "p", tmp_path / "b" / "p"
    built = pmpm("conda_install", first, "--file", env, env=machine)
    assert built.code == 0, built.text
    package = _package(tmp_path, "m", "greet")
    stem = package.name.removesuffix(".conda")
    assert _kept_logs(first) == [f"{stem}.log"]
    log = first / "conda-meta" / "pmpm" / "logs" / f"{stem}.log"
    text = log.read_text()
    assert "compiling greet to say hello" in text  # the build's commands and their output
    assert "grep -x hello" in text  # and the recipe's tests
    assert package.with_suffix(".log").read_bytes() == log.read_bytes()  # beside it in the channel
    assert _compiled(first)["greet"]["log"] == f"conda-meta/pmpm/logs/{stem}.log"
    shown = pmpm("record", first, env=machine)
    assert f"build log: {log}" in shown.out, shown.text
    listed = json.loads(pmpm("list", first, "--json", env=machine).out)
    assert [p["compiled"]["log"] for p in listed["packages"] if p["name"] == "greet"] == [str(log)]

    cleaned = pmpm("clean", "--yes", env=machine)
    assert cleaned.code == 0, cleaned.text
    assert not (tmp_path / "m" / "logs").exists()  # pmpm's own log folder is gone...
    assert log.read_text() == text  # ...the prefix's copy is not

    reused = pmpm("conda_install", second, "--file", env, env=machine)
    assert reused.code == 0, reused.text
    assert "building" not in reused.out and "from the binary cache" in reused.out
    # a cache hit brings the log of the build that made the package
    assert (second / "conda-meta" / "pmpm" / "logs" / f"{stem}.log").read_text() == text


def test_a_shared_cache_serves_the_log_with_the_package(tmp_path: Path, project) -> None:
    shared = tmp_path / "group-cache"
    env = project()
    env.write_text(env.read_text() + f"  cache: {shared}\n")
    one = pmpm("conda_install", tmp_path / "a", "--file", env, env=_machine(tmp_path, "m1"))
    assert one.code == 0, one.text
    logs = list(shared.glob("*/greet-*.log"))
    assert [p.with_suffix(".conda").is_file() for p in logs] == [True]
    two = pmpm("conda_install", tmp_path / "b", "--file", env, env=_machine(tmp_path, "m2"))
    assert two.code == 0 and "building" not in two.out, two.text
    assert _kept_logs(tmp_path / "b") == [logs[0].name]
    assert (tmp_path / "b" / "conda-meta" / "pmpm" / "logs" / logs[0].name).read_bytes() == logs[
        0
    ].read_bytes()

    pruned = pmpm("cache", "prune", "--all", env=_machine(tmp_path, "m1"))
    assert pruned.code == 0, pruned.text
    assert not list((tmp_path / "m1" / "channel").glob("*/*.log"))  # pruned with its package


def test_the_log_goes_with_its_package_and_a_failed_run_keeps_the_old_one(tmp_path: Path, project) -> None:
    machine = _machine(tmp_path, "m")
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", project(), env=machine).code == 0
    old = _kept_logs(prefix)
    assert len(old) == 1

    # a run that rebuilds greet (its log replaced) and then fails leaves PREFIX as it was
    before = tree_digest(prefix)
    failed = pmpm(
        "conda_install", prefix, "--file", project("[{greet: {greeting: bonjour}}, broken]"), env=machine
    )
    assert failed.code == 1 and "this build fails" in failed.err and "Traceback" not in failed.text
    assert tree_digest(prefix) == before
    assert _kept_logs(prefix) == old

    # replaced by another build: only the new build's log is kept
    rebuilt = pmpm("conda_install", prefix, "--file", project("[{greet: {greeting: bonjour}}]"), env=machine)
    assert rebuilt.code == 0, rebuilt.text
    new = _kept_logs(prefix)
    assert len(new) == 1 and new != old
    assert "compiling greet to say bonjour" in (prefix / "conda-meta" / "pmpm" / "logs" / new[0]).read_text()

    # removed from the env file: its log goes too
    (tmp_path / "env.yml").write_text("dependencies: []\n")
    dropped = pmpm("conda_install", prefix, "--file", tmp_path / "env.yml", env=machine)
    assert dropped.code == 0, dropped.text
    assert _kept_logs(prefix) == [] and _compiled(prefix) == {}


def test_pack_adds_info_files_but_never_replaces_its_own(tmp_path: Path) -> None:
    from pmpm.build.package import PackageMeta, pack
    from pmpm.errors import PmpmError

    staged = tmp_path / "stage"
    (staged / "bin").mkdir(parents=True)
    (staged / "bin" / "tool").write_text("#!/bin/sh\n")
    meta = PackageMeta("tool", "1.0", "0", timestamp=1_700_000_000_000)
    extra = {"recipe/rendered_recipe.yaml": "name: tool\n", "pmpm/build-inputs.json": "{}\n"}
    package = pack(staged, meta, tmp_path / "out", extra_info=extra)
    listed = compare.unpack(package, tmp_path / "x")
    assert list(listed) == ["bin/tool"]
    assert (tmp_path / "x" / "info" / "recipe" / "rendered_recipe.yaml").read_text() == "name: tool\n"
    assert "recipe" not in (tmp_path / "x" / "info" / "files").read_text()
    with pytest.raises(PmpmError, match=r"info/index\.json is written by pmpm itself"):
        pack(staged, meta, tmp_path / "out2", extra_info={"index.json": "{}"})

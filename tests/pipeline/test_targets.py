"""Several CPU targets: the compiled packages built once per target into a stack each, beside one
conda stack, for conda_install and system_install (pmpm.pipeline.targets)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from pmpm.env.layout import find
from tests.build.test_compile_stage import project  # noqa: F401  (the recipes-and-sources fixture)
from tests.clihelp import installed, march, pmpm, tree_digest


def _two_targets() -> tuple[str, str]:
    """Two generic x86-64 levels this CPU runs (its builds' tests run here)."""
    import archspec.cpu

    host = archspec.cpu.host()
    levels = [t for t in ("x86_64_v2", "x86_64_v3", "x86_64_v4") if archspec.cpu.TARGETS[t] <= host]
    if host.family.name != "x86_64" or len(levels) < 2:
        pytest.skip(f"needs an x86-64 CPU running two x86-64 levels (this one is {host.name})")
    return levels[0], levels[1]


@pytest.fixture
def targets_env(project, tmp_path, monkeypatch):  # noqa: F811
    """The project's env file, written with a given `_pmpm` target line; a cache of its own."""
    env, _ = project
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "cache"))
    text = env.read_text()

    def write(line: str) -> Path:
        env.write_text(text.replace("_pmpm:\n", f"_pmpm:\n  {line}\n"))
        return env

    return write


def _run(stack: Path) -> str:
    return subprocess.run([stack / "bin" / "hello"], capture_output=True, text=True, check=True).stdout


def _record(prefix: Path) -> dict:
    result = pmpm("record", prefix, "--json")
    assert result.code == 0, result.text
    return json.loads(result.out)


def _ok(*args: str | Path) -> str:
    result = pmpm(*args)
    assert result.code == 0, result.text
    return result.out


def test_conda_install_builds_a_stack_per_target(tmp_path, targets_env):
    a, b = _two_targets()
    env = targets_env(f"targets: [{a}, {b}]")
    prefix = tmp_path / "p"
    out = _ok("conda_install", prefix, "--file", env)
    assert f"compiled for 2 targets ({a}, {b})" in out
    layout = find(prefix)
    assert layout.targets == (a, b) and layout.conda == prefix
    stacks = {t: prefix / "compile" / t for t in (a, b)}
    for target, stack in stacks.items():
        assert layout.stack(target) == stack and find(stack) == layout  # found from any stack
        have = installed(stack)
        assert have["greet"].startswith("1.0-pmpm_") and have["hello"].startswith("2.0-pmpm_")
        assert "demo-data" in have  # the recipe's conda requirement, linked from the conda stack
        assert _run(stack) == "hello, world\n"
        assert march(stack / "lib" / "libgreet.so") == target.replace("_", "-")
    conda_stack = installed(prefix)
    assert "libdemo" in conda_stack and "greet" not in conda_stack  # one shared conda stack
    assert installed(stacks[a])["greet"] != installed(stacks[b])["greet"]  # the key has the target

    record = _record(prefix)
    schema = Path(__file__).parents[2] / "docs" / "record.schema.json"
    jsonschema.validate(record, json.loads(schema.read_text()))  # the documented format
    listed = {(p["name"], p["target"], p["stack"]) for p in record["compiled_packages"]}
    assert listed == {(n, t, f"compile:{t}") for n in ("greet", "hello") for t in (a, b)}
    assert _ok("verify", prefix).startswith(f"{prefix} matches its record")
    assert "is up to date" in _ok("conda_install", prefix, "--file", env)  # a no-op
    dry = _ok("conda_install", prefix, "--file", env, "--dry-run")  # every target's plan
    assert f"target {b} (into {stacks[b]}):" in dry and dry.count(": up to date") == 4
    planned = pmpm("plan", prefix, "--file", env, "--json", "--check")  # `pmpm plan` sees every stack
    assert planned.code == 0, planned.text
    plan = json.loads(planned.out)
    assert [(t["target"], t["prefix"]) for t in plan["targets"]] == [(t, str(stacks[t])) for t in (a, b)]
    assert {p["decision"] for t in plan["targets"] for p in t["packages"]} == {"up to date"}
    assert {p["target"] for p in plan["targets"][1]["packages"]} == {b}

    # dropping a target removes its stack; the id changes with the targets
    one_id, greet_b = record["environment_id"], installed(stacks[b])["greet"]
    targets_env(f"targets: [{b}]")
    out = _ok("conda_install", prefix, "--file", env)
    assert not (prefix / "compile").exists() and find(prefix).targets == ()
    assert not (prefix / "conda-meta" / "pmpm" / "layout.json").exists()  # today's plain prefix
    assert installed(prefix)["greet"] == greet_b  # the same build key as in its target stack
    assert _run(prefix) == "hello, world\n" and march(prefix / "lib" / "libgreet.so") == b.replace("_", "-")
    assert _record(prefix)["environment_id"] != one_id
    assert _ok("verify", prefix).startswith(f"{prefix} matches its record")
    assert "is up to date" in _ok("conda_install", prefix, "--file", env)

    # and back to two: the compiled packages move out of PREFIX into the target stacks
    targets_env(f"targets: [{a}, {b}]")
    planned = pmpm("plan", prefix, "--file", env, "--check")
    assert planned.code == 1 and f"target {a} (into {stacks[a]}):" in planned.out, planned.text
    _ok("conda_install", prefix, "--file", env)
    assert "greet" not in installed(prefix) and _run(stacks[a]) == "hello, world\n"
    assert _record(prefix)["environment_id"] == one_id  # the same content, the same id


def test_system_install_builds_a_stack_per_target_and_moves_between_layouts(tmp_path, targets_env):
    a, b = _two_targets()
    env = targets_env(f"target: {a}")
    root = tmp_path / "root"
    _ok("system_install", root, "--file", env)
    assert _run(root / "compile") == "hello, world\n"

    targets_env(f"targets: [{a}, {b}]")
    out = _ok("system_install", root, "--file", env)
    assert f"removed the compiled stack {root / 'compile'}" in out
    layout = find(root)
    assert layout.targets == (a, b) and layout.conda == root / "conda"
    assert sorted(p.name for p in (root / "compile").iterdir()) == [a, b]  # nothing of the old stack
    for target in (a, b):
        stack = root / "compile" / target
        assert find(stack) == layout and _run(stack) == "hello, world\n"
        assert march(stack / "lib" / "libgreet.so") == target.replace("_", "-")
        assert "demo-data" not in installed(stack)  # beside the conda stack, as with one target
    assert {p["stack"] for p in _record(root)["compiled_packages"]} == {f"compile:{a}", f"compile:{b}"}
    assert _ok("verify", root).startswith(f"{root} matches its record")
    assert "is up to date" in _ok("system_install", root, "--file", env)

    targets_env(f"target: {b}")
    _ok("system_install", root, "--file", env)
    assert find(root).targets == () and (root / "compile" / "conda-meta").is_dir()
    assert not (root / "compile" / a).exists() and not (root / "compile" / b).exists()
    assert march(root / "compile" / "lib" / "libgreet.so") == b.replace("_", "-")
    assert _ok("verify", root).startswith(f"{root} matches its record")


def test_targets_share_the_binary_cache_and_the_option_overrides_the_file(tmp_path, targets_env):
    a, b = _two_targets()
    env = targets_env(f"target: {a}")
    first = tmp_path / "first"
    _ok("conda_install", first, "--file", env, "--targets", f"{a},{b}")
    assert find(first).targets == (a, b)
    # another prefix takes every target's builds from the cache; so does a one-target build
    out = _ok("conda_install", tmp_path / "second", "--file", env, "--targets", f"{a},{b}")
    assert out.count("from the binary cache") == 4 and "building" not in out
    out = _ok("conda_install", tmp_path / "one", "--file", env, "--targets", b)
    assert out.count("from the binary cache") == 2
    assert installed(tmp_path / "one")["hello"] == installed(first / "compile" / b)["hello"]
    # the option is part of the no-op check: without it the env file's one target is built
    out = _ok("conda_install", first, "--file", env)
    assert "is up to date" not in out and find(first).targets == ()

    bad = pmpm("conda_install", first, "--file", env, "--targets", f"{a},not-a-cpu")
    assert bad.code != 0 and "--targets: unknown target `not-a-cpu`" in bad.text
    assert "Traceback" not in bad.text


def test_a_lock_rebuilds_every_target(tmp_path, targets_env):
    a, b = _two_targets()
    env = targets_env(f"targets: [{a}, {b}]")
    prefix = tmp_path / "p"
    _ok("conda_install", prefix, "--file", env)
    lock = tmp_path / "env.lock"
    _ok("export", prefix, "-o", lock)
    again = tmp_path / "again"
    out = _ok("conda_install", again, "--lock", lock)
    assert "(the same as the lock's)" in out
    assert find(again).targets == (a, b)
    for target in (a, b):
        assert (
            installed(again / "compile" / target)["hello"] == installed(prefix / "compile" / target)["hello"]
        )
    assert _ok("diff", prefix, again).startswith("same environment")
    assert _ok("verify", again).startswith(f"{again} matches its record")


def test_a_failing_target_puts_every_stack_back(tmp_path, targets_env, project):  # noqa: F811
    a, b = _two_targets()
    env = targets_env(f"targets: [{a}, {b}]")
    recipe = env.parent / "recipes" / "hello.yaml"
    prefix = tmp_path / "p"
    _ok("conda_install", prefix, "--file", env)
    before = tree_digest(prefix)
    # the second target's test fails, after the conda stage and the first target changed
    recipe.write_text(
        recipe.read_text().replace(
            "commands: [hello]", f'commands: [hello, "test {{{{ target.name }}}} != {b}"]'
        )
    )
    env.write_text(env.read_text().replace("- libdemo\n", "- libdemo\n  - demo-tool\n"))
    failed = pmpm("conda_install", prefix, "--file", env)
    assert failed.code != 0 and "hello" in failed.text and "test" in failed.text
    assert "Traceback" not in failed.text
    assert tree_digest(prefix) == before  # the conda stack and both target stacks as they were
    assert _ok("verify", prefix).startswith(f"{prefix} matches its record")


def test_without_a_conda_stack_each_target_stack_keeps_the_variables(tmp_path, monkeypatch):
    """`conda: false`: no conda stack holds the env file's variables, so every target's stack does
    (activation of the chosen stack reads them there), and a changed value reaches each one."""
    from pmpm.conda import variables

    a, b = _two_targets()
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "src" / "tool"
    src.mkdir(parents=True)
    (src / "Makefile").write_text(
        "all:\n\tprintf '#!/bin/sh\\necho tool\\n' > tool\n"
        "install:\n\tmkdir -p $(DESTDIR)$(PREFIX)/bin\n\tinstall -m 755 tool $(DESTDIR)$(PREFIX)/bin/\n"
    )
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tool.yaml").write_text(
        "name: tool\nversion: '1.0'\nsource: {path: ../src/tool}\nbuild: {system: make}\n"
    )
    env = tmp_path / "env.yml"

    def write(value: str) -> None:
        env.write_text(
            f"dependencies: []\nvariables: {{RUN_MODE: {value}}}\n"
            f"_pmpm:\n  conda: false\n  mpi: none\n  targets: [{a}, {b}]\n"
            "  recipes: [recipes]\n  packages: [tool]\n"
        )

    root = tmp_path / "root"
    write("fast")
    _ok("system_install", root, "--file", env)
    for target in (a, b):
        assert variables.read(root / "compile" / target) == {"RUN_MODE": "fast"}
    forced = pmpm("run", root, "--", "sh", "-c", "echo $RUN_MODE", env={"PMPM_TARGET": a})
    assert forced.code == 0 and forced.out.strip() == "fast", forced.text

    write("careful")  # only a variable changed: not a no-op
    _ok("system_install", root, "--file", env)
    for target in (a, b):
        assert variables.read(root / "compile" / target) == {"RUN_MODE": "careful"}
    assert "is up to date" in _ok("system_install", root, "--file", env)

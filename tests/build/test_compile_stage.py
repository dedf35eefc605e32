"""The compile stage through the CLI: recipes from a folder, local sources, real gcc builds."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import installed, pmpm, tree_digest
from tests.recordhelp import APP_C, LIB_C, LIB_H, MAKEFILE


@pytest.fixture
def project(tmp_path, demo_channel):
    """Two local source trees and their recipes: ``greet`` (make) and ``hello`` (script, links greet)."""
    src = tmp_path / "src"
    (src / "greet").mkdir(parents=True)
    (src / "greet" / "greet.c").write_text(LIB_C % "hello, world")
    (src / "greet" / "greet.h").write_text(LIB_H)
    (src / "greet" / "Makefile").write_text(MAKEFILE)
    (src / "hello").mkdir()
    (src / "hello" / "hello.c").write_text(APP_C)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\nbuild: {system: make}\n"
    )
    (recipes / "hello.yaml").write_text(
        "name: hello\n"
        "version: '2.0'\n"
        "source: {path: ../src/hello}\n"
        "requires: {recipes: [greet], conda: [demo-data]}\n"
        "build:\n"
        "  system: script\n"
        "  script: |\n"
        "    mkdir -p $STAGE_PREFIX/bin\n"
        "    $CC $CFLAGS $CPPFLAGS -o $STAGE_PREFIX/bin/hello $SRC_DIR/hello.c $LDFLAGS -lgreet\n"
        "test:\n"
        "  commands: [hello]\n"
    )
    env = tmp_path / "env.yml"
    env.write_text(
        f"channels: [{demo_channel.path}]\n"
        "dependencies:\n  - libdemo\n"
        "_pmpm:\n  recipes: [recipes]\n  packages:\n    - hello\n"
    )
    return env, src


def _run(prefix: Path, program: str) -> str:
    return subprocess.run([prefix / "bin" / program], capture_output=True, text=True, check=True).stdout


def test_recipes_build_in_order_and_install_as_conda_packages(tmp_path, project, monkeypatch):
    env, _ = project
    prefix = tmp_path / "p"
    # a cache of its own: other tests' builds of the same recipes would be taken from the cache
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "cache"))
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert result.out.index("building greet") < result.out.index("building hello")
    assert _run(prefix, "hello") == "hello, world\n"
    have = installed(prefix)
    assert have["greet"].startswith("1.0-pmpm_") and have["hello"].startswith("2.0-pmpm_")
    assert "demo-data" in have and "libdemo" in have  # the recipe's conda requirement joined the solve
    record = json.loads(next((prefix / "conda-meta").glob("hello-2.0-*.json")).read_text())
    assert any(d.startswith("greet ==1.0 pmpm_") for d in record["depends"])
    assert "bin/hello" in record["files"]

    readelf = subprocess.run(
        ["readelf", "-p", ".GCC.command.line", prefix / "lib" / "libgreet.so"], capture_output=True, text=True
    ).stdout
    from pmpm.host.detect import detect_host

    assert detect_host().arch_flags("cc").split()[0] in readelf  # e.g. -march=icelake-client

    again = pmpm("conda_install", prefix, "--file", env)
    assert again.code == 0, again.text
    assert "building" not in again.out


def test_source_edit_rebuilds_with_the_reason(tmp_path, project):
    env, src = project
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    (src / "greet" / "greet.c").write_text(LIB_C % "hello, changed world")

    plan = pmpm("plan", prefix, "--file", env)
    assert plan.code == 0, plan.text
    assert "greet 1.0: rebuild (source changed" in plan.out
    assert "hello 2.0: rebuild (dependency greet rebuilt)" in plan.out

    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert _run(prefix, "hello") == "hello, changed world\n"


def test_failing_compile_leaves_prefix_byte_identical(tmp_path, project):
    env, src = project
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)
    (src / "hello" / "hello.c").write_text("int main(void) { this is not C }\n")
    (src / "greet" / "greet.c").write_text(LIB_C % "greet was rebuilt first")

    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "building hello failed at step `script`" in result.err
    assert "error:" in result.err.split("last lines of the log:")[1]  # the compiler's own message
    log = Path(result.err.split("log: ")[1].split()[0])
    assert "this is not C" in log.read_text()
    assert tree_digest(prefix) == before  # greet's rebuild was rolled back too
    assert _run(prefix, "hello") == "hello, world\n"


def test_unknown_recipe_and_cycle_are_clear_errors(tmp_path, project):
    env, _ = project
    text = env.read_text().replace("    - hello\n", "    - helo\n")
    env.write_text(text)
    result = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert result.code == 1
    assert "no recipe named 'helo'" in result.err and "did you mean hello" in result.err
    assert f"{env}:7" in result.err

    recipes = env.parent / "recipes"
    (recipes / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\n"
        "requires: {recipes: [hello]}\nbuild: {system: make}\n"
    )
    env.write_text(text.replace("helo", "hello"))
    result = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert result.code == 1
    assert "cycle: hello -> greet -> hello" in result.err
    assert not (tmp_path / "p").exists()


def test_dropped_package_is_removed(tmp_path, project):
    env, _ = project
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    env.write_text(env.read_text().replace("  packages:\n    - hello\n", "  packages:\n    - greet\n"))
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert "removed compiled packages no longer listed: hello" in result.out
    assert "hello" not in installed(prefix) and "greet" in installed(prefix)
    assert not (prefix / "bin" / "hello").exists()


def test_recipes_list_and_show(tmp_path, project):
    recipes = project[0].parent / "recipes"
    listing = pmpm("recipes", "list", "--recipes", recipes)
    assert listing.code == 0, listing.text
    lines = {line.split()[0]: line.split() for line in listing.out.splitlines()}
    assert lines["greet"][1:3] == ["1.0", "make"]
    assert lines["fftw"][1:3] == ["3.3.10", "autotools"]  # built-ins are listed too
    shown = pmpm("recipes", "show", "fftw")
    assert shown.code == 0 and "--enable-avx2" in shown.out
    missing = pmpm("recipes", "show", "fftww")
    assert missing.code == 1 and "did you mean fftw" in missing.err


def test_recipe_plugin_from_an_entry_point(tmp_path, project):
    """A recipe that needs logic: a Python plugin found through the ``pmpm.recipes`` group."""
    env, src = project
    plugins = tmp_path / "plugins"
    (plugins / "pmpm_test_plugin-0.1.dist-info").mkdir(parents=True)
    (plugins / "pmpm_test_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: pmpm-test-plugin\nVersion: 0.1\n"
    )
    (plugins / "pmpm_test_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[pmpm.recipes]\nplugged = pmpm_test_plugin:recipe\n"
    )
    (plugins / "pmpm_test_plugin.py").write_text(
        "def recipe(context):\n"
        "    # logic a YAML file cannot hold: the version depends on the target's features\n"
        "    wide = 'avx2' in context['target']['features']\n"
        f"    return {{'name': 'plugged', 'version': '2.0' if wide else '1.0',\n"
        f"            'source': {{'path': {str(src / 'greet')!r}}}, 'build': {{'system': 'make'}}}}\n"
    )
    extra = {"PYTHONPATH": str(plugins)}
    listing = pmpm("recipes", "list", env=extra)
    assert "plugged" in listing.out and "plugin pmpm_test_plugin:recipe" in listing.out

    env.write_text(env.read_text().replace("    - hello\n", "    - plugged\n"))
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--keep-build", env=extra)
    assert result.code == 0, result.text
    from pmpm.host.detect import detect_host

    expected = "2.0" if "avx2" in detect_host().features else "1.0"
    assert installed(prefix)["plugged"].startswith(f"{expected}-pmpm_")
    kept = Path(result.out.split("kept the build folder of plugged: ")[1].split()[0])
    assert (kept / "src" / "libgreet.so").is_file()  # --keep-build kept the build tree


def test_recipe_tests_run_with_the_package_installed(tmp_path, project):
    """`{{ prefix }}` and `$PREFIX` name a prefix holding the package and its requirements, and
    the commands run in bash; a failing one stops the build and leaves PREFIX as it was."""
    env, _ = project
    recipe = env.parent / "recipes" / "hello.yaml"
    tests = (
        "test:\n  commands:\n"
        '    - "{{ prefix }}/bin/hello"\n'
        '    - test "$($PREFIX/bin/hello)" = "hello, world"\n'
        "    - test -f $PREFIX/lib/libgreet.so && test -f {{ prefix }}/conda-meta/greet-1.0-*.json\n"
    )
    recipe.write_text(recipe.read_text().split("test:\n")[0] + tests)
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    log = Path(result.out.split("installed hello 2.0")[1].split("log: ")[1].split(")")[0])
    assert "=== hello: test" in log.read_text()
    assert _run(prefix, "hello") == "hello, world\n"

    before = tree_digest(prefix)
    recipe.write_text(
        recipe.read_text().split("test:\n")[0] + 'test:\n  commands: ["test -f $PREFIX/bin/nope"]\n'
    )
    failed = pmpm("conda_install", prefix, "--file", env)
    assert failed.code == 1
    assert "building hello failed at step `test`" in failed.err, failed.err
    log = Path(failed.err.split("log: ")[1].split()[0])
    assert "$PREFIX/bin/nope" in log.read_text()
    assert tree_digest(prefix) == before

"""Recipes (pmpm.build.recipe), called in-process: the built-ins load and render against this
host, options, versions and the target reach the rendered recipe, a missing recipe is named with
its env-file line and the closest names, a user's recipe shadows a built-in, and a broken recipe
file is an error naming it (and the line, for bad YAML).

The template context is this machine's: archspec targets and compilers from
:func:`pmpm.host.detect.detect_host`, the system MPI, the running Python.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from pmpm.build.environment import python_values
from pmpm.build.recipe import (
    Recipe,
    RecipeBook,
    apply_request,
    builtin_dir,
    load_data,
    render,
    resolve_options,
    unknown_recipes,
)
from pmpm.builders import registry
from pmpm.errors import PmpmError
from pmpm.host.detect import detect_host
from pmpm.host.mpi.choice import choose_mpi
from pmpm.spec.envfile import load_env_file

PREFIX = "/opt/envs/demo"
BUILTINS = sorted(builtin_dir().glob("*.yaml"))


@pytest.fixture(scope="module")
def tools() -> dict[str, Any]:
    """``{{ mpi.* }}`` and ``{{ python.* }}`` as a run on this machine finds them."""
    mpi, _ = choose_mpi(None, prefix=None)
    return {
        "mpi": {k: str(v) for k, v in mpi.as_template().items()} if mpi is not None else {},
        "python": python_values(Path(sys.executable), Path(PREFIX)),
    }


def context(tools: dict[str, Any], target: str = "host") -> dict[str, Any]:
    """What recipes are rendered against (as the compile stage builds it) for ``target``."""
    host = detect_host(target, env={**os.environ, "PMPM_ALLOW_FOREIGN_TARGET": "1"})
    return {
        "prefix": PREFIX,
        "conda_prefix": "",
        "flags": asdict(host.flags()),
        "target": host.as_template(),
        "compilers": {k: c.path for k, c in host.compilers.items()},
        "jobs": 2,
        **tools,
    }


def rendered(
    book: RecipeBook, name: str, ctx: dict[str, Any], request: dict[str, Any] | None = None
) -> Recipe:
    """One recipe for one ``_pmpm.packages`` entry, through the same steps as a build."""
    request = request or {}
    source = book.find(name, where="env.yml:7")
    data = apply_request(dict(load_data(source, ctx)), request, where="env.yml:7")
    options = resolve_options(data, request, origin=source.origin, where="env.yml:7")
    return render(data, {**ctx, "options": options}, origin=source.origin)


def write_recipe(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_every_builtin_recipe_loads_and_renders_for_this_host(tools):
    assert BUILTINS, f"no built-in recipes in {builtin_dir()}"
    if not tools["mpi"]:
        pytest.skip("no MPI on PATH: recipes that use {{ mpi.cc }} cannot render")
    book = RecipeBook()
    ctx = context(tools)
    for path in BUILTINS:
        assert book.find(path.stem).origin == str(path)
        recipe = rendered(book, path.stem, ctx)
        assert recipe.name == path.stem and recipe.origin == str(path)
        assert recipe.version and recipe.version == str(load_data(book.find(path.stem), ctx)["version"])
        assert recipe.system in registry.builders(), f"{path}: unknown build system {recipe.system}"
        assert recipe.system != "script" or recipe.script
        text = recipe.canonical()
        assert json.loads(text)["name"] == path.stem
        assert "{{" not in text and "{%" not in text, f"{path}: template markup left after rendering"
        assert "" not in recipe.args, f"{path}: an argument rendered empty was kept"


def test_options_reach_the_rendered_recipe(tools):
    book, ctx = RecipeBook(), context(tools)
    default = rendered(book, "fftw", ctx)
    assert default.options["precision"] == "double"
    assert "--enable-threads" in default.args and "--enable-float" not in default.args
    assert default.test_commands == ["fftw-wisdom -V"]

    single = rendered(book, "fftw", ctx, {"precision": "float", "threads": False})
    assert single.options == {**default.options, "precision": "float", "threads": False}
    assert "--enable-float" in single.args and "--enable-threads" not in single.args
    assert single.test_commands == ["fftwf-wisdom -V"]
    assert single.canonical() != default.canonical()  # so the build key differs


def test_an_unknown_option_names_the_recipe_its_line_and_the_options_it_has(tools):
    with pytest.raises(PmpmError) as failed:
        rendered(RecipeBook(), "fftw", context(tools), {"precison": "float"})
    error = failed.value
    assert error.where == "env.yml:7"
    assert "'fftw'" in error.message and str(builtin_dir() / "fftw.yaml") in error.message
    assert "`precison`" in error.message
    assert error.hint == "its options are: mpi, openmp, precision, simd, threads"


def test_the_version_asked_for_chooses_the_checksum_and_the_urls(tools):
    book, ctx = RecipeBook(), context(tools)
    data = load_data(book.find("zlib"), ctx)
    old = next(v for v in data["versions"] if v != data["version"])
    recipe = rendered(book, "zlib", ctx, {"version": old})
    assert recipe.version == old
    assert recipe.source["sha256"] == data["versions"][old]
    assert all(url.endswith(f"zlib-{old}.tar.gz") for url in recipe.source["url"])
    assert recipe.test_commands == [f"pkg-config --exact-version={old} zlib"]

    with pytest.raises(PmpmError) as failed:
        rendered(book, "zlib", ctx, {"version": "9.9.9"})
    assert failed.value.where == "env.yml:7"
    assert f"{old}, not 9.9.9, and nothing pins that version" in failed.value.message
    pinned = rendered(book, "zlib", ctx, {"version": "9.9.9", "sha256": "ab" * 32})
    assert pinned.version == "9.9.9" and pinned.source["sha256"] == "ab" * 32


@pytest.mark.skipif(platform.machine() != "x86_64", reason="compares two x86_64 targets")
def test_the_target_chooses_what_is_built(tools):
    book = RecipeBook()
    baseline = rendered(book, "fftw", context(tools, "x86_64"))
    v3 = rendered(book, "fftw", context(tools, "x86_64_v3"))
    assert "--enable-sse2" in baseline.args and "--enable-avx2" not in baseline.args
    assert {"--enable-sse2", "--enable-avx", "--enable-avx2"} <= set(v3.args)
    assert "--enable-avx512" not in v3.args
    with_flags = rendered(book, "mpi4py", {**context(tools, "x86_64_v3"), "mpi": {"cc": "/site/mpicc"}})
    assert with_flags.env["CFLAGS"] == context(tools, "x86_64_v3")["flags"]["cflags"]
    assert "haswell" in with_flags.env["CFLAGS"] or "x86-64-v3" in with_flags.env["CFLAGS"]
    assert with_flags.env["MPICC"] == "/site/mpicc"


def test_a_template_naming_nothing_known_is_an_error_naming_the_recipe(tmp_path, tools):
    path = write_recipe(
        tmp_path / "recipes",
        "demo",
        "name: demo\nversion: '1.0'\nsource: {path: .}\nbuild: {system: make, args: ['{{ flags.cflag }}']}\n",
    )
    with pytest.raises(PmpmError) as failed:
        rendered(RecipeBook([tmp_path / "recipes"]), "demo", context(tools))
    assert failed.value.where == str(path)
    assert "`build.args[0]`" in failed.value.message and "cflag" in failed.value.message


def test_missing_recipes_are_named_with_their_lines_and_the_closest_names(tmp_path):
    env = tmp_path / "env.yml"
    env.write_text(
        "dependencies: []\n"
        "_pmpm:\n"
        "  recipes: [recipes]\n"
        "  packages:\n"
        "    - zlibb\n"
        "    - fftw\n"
        "    - mpi4pi: {version: '4.1.2'}\n"
        "    - qqqqqqqq\n"
    )
    spec = load_env_file(env)
    missing = unknown_recipes(spec)
    assert [e.where for e in missing] == [f"{env}:5", f"{env}:7", f"{env}:8"]
    assert [e.message for e in missing] == [
        "no recipe named 'zlibb'",
        "no recipe named 'mpi4pi'",
        "no recipe named 'qqqqqqqq'",
    ]
    assert missing[0].hint.startswith("did you mean zlib")
    assert missing[1].hint.startswith("did you mean mpi4py")
    assert "did you mean" not in missing[2].hint
    # where it looked, saying which folder is not there
    assert f"{tmp_path / 'recipes'} (which does not exist)" in missing[2].hint
    assert str(builtin_dir()) in missing[2].hint


def test_a_user_recipe_shadows_the_builtin_of_that_name(tmp_path, tools):
    mine = write_recipe(
        tmp_path / "site",
        "zlib",
        "name: zlib\nversion: '1.3.1.mine'\nsource: {path: ../zlib-src}\nbuild: {system: make}\n",
    )
    later = write_recipe(
        tmp_path / "later",
        "zlib",
        "name: zlib\nversion: '0.1'\nsource: {path: .}\nbuild: {system: make}\n",
    )
    book = RecipeBook([tmp_path / "site", tmp_path / "later"])
    assert book.find("zlib").origin == str(mine)  # the first folder named wins
    assert RecipeBook([tmp_path / "later"]).find("zlib").origin == str(later)
    assert book.find("fftw").origin == str(builtin_dir() / "fftw.yaml")  # the others still there
    recipe = rendered(book, "zlib", context(tools))
    assert recipe.version == "1.3.1.mine" and recipe.source == {"path": "../zlib-src"}

    env = tmp_path / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [site]\n  packages: [zlib]\n")
    spec = load_env_file(env)
    assert unknown_recipes(spec) == []
    assert RecipeBook(list(spec.pmpm.recipes)).find("zlib").origin == str(mine)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: demo\nversion: '1.0'\nsource: {path: .}\nbuild: {system: make\n", 5),
        ("name: demo\nversion: '1.0'\nsource:\n  path: .\n\tbuild: {}\n", 5),
        ("name: demo\nversion: '1.0'\nsource: {path: .}\nbuild:\n  system: make\n args: [x]\n", 6),
    ],
    ids=["unclosed-flow-mapping", "tab", "bad-indent"],
)
def test_bad_recipe_yaml_names_the_file_and_line(tmp_path, text, line):
    path = write_recipe(tmp_path / "recipes", "demo", text)
    with pytest.raises(PmpmError) as failed:
        load_data(RecipeBook([tmp_path / "recipes"]).find("demo"), {})
    assert failed.value.where == f"{path}:{line}"
    assert failed.value.message.startswith("invalid YAML")


@pytest.mark.parametrize(
    ("text", "line", "message", "hint"),
    [
        ("# a list\n- name: demo\n", 2, "a recipe must be a mapping", None),
        (
            "version: '1'\nname: other\nsource: {}\nbuild: {}\n",
            2,
            "named 'demo' but says name: 'other'",
            "name the",
        ),
        ("# demo\nname: demo\nsource: {path: .}\nbuild: {}\n", 2, "recipe is missing `version`", None),
        (
            "name: demo\nversion: '1'\nverison: '1'\nsource: {}\nbuild: {}\n",
            3,
            "unknown recipe key `verison`",
            "did you mean `version`?",
        ),
        (
            "name: demo\nversion: '1'\nsource: {}\nbuild:\n  system: make\n  sytem: make\n",
            6,
            "unknown build key `sytem`",
            "did you mean `system`?",
        ),
        ("name: demo\nversion: '1'\nsource: {}\n\nbuild: [make]\n", 5, "`build` must be a mapping", None),
    ],
    ids=[
        "not-a-mapping",
        "other-name",
        "no-version",
        "unknown-key",
        "unknown-build-key",
        "build-not-a-mapping",
    ],
)
def test_a_recipe_that_is_not_one_is_an_error_naming_its_file_and_line(tmp_path, text, line, message, hint):
    path = write_recipe(tmp_path / "recipes", "demo", text)
    with pytest.raises(PmpmError) as failed:
        load_data(RecipeBook([tmp_path / "recipes"]).find("demo"), {})
    assert failed.value.where == f"{path}:{line}"
    assert message in failed.value.message
    assert hint is None or (failed.value.hint or "").startswith(hint)


def test_an_unquoted_version_is_kept_as_written(tmp_path, tools):
    """Not the float 2.1: a version (and a versions key, a git tag) is the text the recipe gives;
    option defaults keep their YAML types, as the env file's option values do."""
    write_recipe(
        tmp_path / "recipes",
        "demo",
        "name: demo\nversion: 2.10\nversions: {2.10: 'ab', 1.20: 'cd'}\n"
        "source: {git: ../demo.git, ref: 2.10}\nbuild: {system: make, args: [-j, 08]}\n"
        "options: {level: 1.50, fast: true}\n",
    )
    book = RecipeBook([tmp_path / "recipes"])
    recipe = rendered(book, "demo", context(tools))
    assert recipe.version == "2.10" and recipe.source["ref"] == "2.10"
    assert recipe.args == ["-j", "08"]
    assert recipe.options == {"level": 1.5, "fast": True}
    assert rendered(book, "demo", context(tools), {"version": "1.20"}).version == "1.20"


def test_an_unknown_version_lists_each_known_version_once(tmp_path, tools):
    write_recipe(
        tmp_path / "recipes",
        "demo",
        "name: demo\nversion: '2.0'\nversions: {'2.0': 'ab', '1.0': 'cd'}\n"
        "source: {url: 'https://example.invalid/demo-{{ version }}.tar.gz', sha256: 'ab'}\n"
        "build: {system: make}\n",
    )
    with pytest.raises(PmpmError) as failed:
        rendered(RecipeBook([tmp_path / "recipes"]), "demo", context(tools), {"version": "3.0"})
    assert failed.value.where == "env.yml:7"
    assert "knows versions 2.0, 1.0, not 3.0," in failed.value.message

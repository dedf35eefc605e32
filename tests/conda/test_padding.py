"""A conda package whose binary placeholder is shorter than pmpm's padded build prefix, required by
a recipe: refused as a padding limit (conda-build's ``PaddingError``), not as a broken package.

The package is real: a shared library compiled with gcc under a short build prefix, which it
embeds (a binary placeholder), packed and indexed by ``tests/factories.py``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pmpm.build.compile_stage import BUILD_PREFIX_LENGTH
from pmpm.build.package import PackageMeta
from tests.clihelp import installed, pmpm, tree_digest, write_env

RECIPE = """\
name: app
version: '1.0'
source: {path: ../src/app}
requires: {conda: [libshort]}
build:
  system: script
  script: |
    mkdir -p $STAGE_PREFIX/bin
    $CC $CFLAGS $CPPFLAGS -o $STAGE_PREFIX/bin/app $SRC_DIR/app.c $LDFLAGS -lshort
"""
APP_C = "#include <stdio.h>\nconst char *where(void);\nint main(void) { puts(where()); return 0; }\n"


#: shorter than pmpm's build prefix, longer than the tests' stacks
PLACEHOLDER_LENGTH = 170


def _short_placeholder_channel(channel_factory, tmp_path: Path) -> tuple[Path, str]:
    """A channel with ``libshort``, whose ``lib/libshort.so`` embeds its build prefix, padded to
    ``PLACEHOLDER_LENGTH`` characters."""
    head = f"{tmp_path}/bp_"
    build_prefix = Path(head + "placehold_" * 20)
    build_prefix = Path(str(build_prefix)[:PLACEHOLDER_LENGTH])
    (build_prefix / "lib").mkdir(parents=True)
    (tmp_path / "short.c").write_text(f'const char *where(void) {{ return "{build_prefix}/share"; }}\n')
    subprocess.run(
        ["gcc", "-fPIC", "-shared", "-o", build_prefix / "lib" / "libshort.so", tmp_path / "short.c"],
        check=True,
    )
    channel = channel_factory("chan")
    channel.add(PackageMeta("libshort", "1.0", "0"), build_prefix, placeholder=str(build_prefix))
    channel.index()
    return channel.path, str(build_prefix)


def _project(tmp_path: Path, channel: Path, packages: str) -> Path:
    (tmp_path / "src" / "app").mkdir(parents=True)
    (tmp_path / "src" / "app" / "app.c").write_text(APP_C)
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "app.yaml").write_text(RECIPE)
    return write_env(
        tmp_path / "env.yml", [channel], ["libshort"], f"_pmpm:\n  recipes: [recipes]\n{packages}"
    )


def test_a_short_placeholder_is_a_padding_limit_not_a_broken_package(channel_factory, tmp_path):
    channel, placeholder = _short_placeholder_channel(channel_factory, tmp_path)
    assert len(placeholder) == PLACEHOLDER_LENGTH < BUILD_PREFIX_LENGTH
    env = _project(tmp_path, channel, "")
    prefix = tmp_path / "p"
    first = pmpm("conda_install", prefix, "--file", env)
    assert first.code == 0, first.text  # PREFIX is short: the package itself relocates fine
    assert installed(prefix) == {"libshort": "1.0-0"}
    before = tree_digest(prefix)

    env.write_text(env.read_text() + "  packages:\n    - app\n")
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1, result.text
    error = result.err
    assert "broken" not in error and "Traceback" not in error
    assert f"{env}:8: padding limit (as conda-build's PaddingError)" in error  # the `- app` line
    assert "conda package libshort 1.0 0, which recipe app requires" in error
    assert f"binary prefix placeholder of {len(placeholder)} characters (in lib/libshort.so)" in error
    assert f"padded prefix of {BUILD_PREFIX_LENGTH} characters" in error
    assert f"hint: rebuild libshort with a build prefix of at least {BUILD_PREFIX_LENGTH} characters" in error
    assert "pmpm system_install" in error
    assert tree_digest(prefix) == before  # PREFIX is left as it was


def test_system_install_builds_against_it_as_the_hint_says(channel_factory, tmp_path):
    channel, _ = _short_placeholder_channel(channel_factory, tmp_path)
    env = _project(tmp_path, channel, "  packages: [app]\n")
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 0, result.text
    run = subprocess.run([root / "compile" / "bin" / "app"], capture_output=True, text=True, check=False,
                         env={"LD_LIBRARY_PATH": str(root / "conda" / "lib")})  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{root / 'conda'}/share\n"  # the library relocated into the conda stack


def test_a_prefix_longer_than_the_placeholder_is_a_padding_limit(channel_factory, tmp_path):
    channel, _ = _short_placeholder_channel(channel_factory, tmp_path)
    env = write_env(tmp_path / "env.yml", [channel], ["libshort"])
    prefix = Path((f"{tmp_path}/envs_" + "long_" * 40)[: PLACEHOLDER_LENGTH + 10])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1, result.text
    error = result.err
    assert "broken" not in error and "Traceback" not in error
    said = (
        "padding limit (as conda-build's PaddingError): libshort-1.0-0 was built with a binary prefix "
        f"placeholder of {PLACEHOLDER_LENGTH} characters (in lib/libshort.so), shorter than the "
        f"{PLACEHOLDER_LENGTH + 10}-character prefix {prefix}"
    )
    assert said in error
    assert f"hint: install into a shorter prefix (at most {PLACEHOLDER_LENGTH} characters)" in error
    assert not prefix.exists()  # PREFIX is left as it was

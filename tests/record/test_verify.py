"""``pmpm verify`` catches each kind of drift; ``pmpm diff`` says how two environments differ."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clihelp import pmpm, tree_digest
from tests.factories import write_demo_wheel
from tests.recordhelp import make_project, record_of

#: a compiled script whose shebang names the prefix: conda-pack rewrites it to `#!/usr/bin/env`
HELLO_AGAIN = """\
name: hello-again
version: '1.0'
source: {path: ../src/hello}
requires: {recipes: [hello]}
build:
  system: script
  script: |
    mkdir -p $STAGE_PREFIX/bin
    printf '#!{{ prefix }}/bin/hello\\n' > $STAGE_PREFIX/bin/hello-again
    chmod +x $STAGE_PREFIX/bin/hello-again
"""


def _edit(path, data: bytes) -> None:
    """Change an installed file as an editor that saves a new file does. Installed files are
    hard links into the package cache, shared by every prefix with that package (as with
    conda): writing into one in place would change them all."""
    path.unlink()
    path.write_bytes(data)


@pytest.fixture
def built(tmp_path, demo_channel):
    project = make_project(tmp_path, demo_channel.path)
    prefix = tmp_path / "p"
    project.install(prefix)
    return project, prefix


@pytest.fixture
def built_private_cache(tmp_path, demo_channel):
    """The project built with a package cache of its own: a test may damage that cache."""
    env = {"PMPM_CACHE_DIR": str(tmp_path / "cache")}
    project = make_project(tmp_path, demo_channel.path)
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", project.env, env=env)
    assert result.code == 0, result.text
    return prefix, env


def test_a_fresh_environment_verifies(built):
    _, prefix = built
    subprocess.run([prefix / "bin" / "python", "-c", "import json"], check=True)  # writes no drift
    result = pmpm("verify", prefix)
    assert result.code == 0, result.text
    assert "matches its record" in result.out


def test_modified_deleted_and_extra_files_are_listed(built):
    _, prefix = built
    _edit(prefix / "include" / "greet.h", b"/* changed */\n")  # a compiled package's file
    (prefix / "share" / "hello" / "where.txt").unlink()
    (prefix / "lib" / "stray.so").write_bytes(b"\0")
    result = pmpm("verify", prefix)
    assert result.code == 1
    assert "modified: include/greet.h (greet)" in result.out
    assert "missing: share/hello/where.txt (hello)" in result.out
    assert "extra: lib/stray.so" in result.out
    assert "error:" in result.err and "1 modified, 1 missing, 1 extra" in result.err
    assert "Traceback" not in result.text

    report = json.loads(pmpm("verify", prefix, "--json").out)
    assert report["ok"] is False and len(report["problems"]) == 3


def test_a_modified_conda_package_file_is_caught(built):
    _, prefix = built
    target = prefix / "lib" / "libdemo.so.2.0.0"
    _edit(target, target.read_bytes() + b"\0")
    result = pmpm("verify", prefix)
    assert result.code == 1 and "modified: lib/libdemo.so.2.0.0 (libdemo)" in result.out


def test_pip_install_behind_pmpms_back_is_caught(built, tmp_path):
    _, prefix = built
    wheel = write_demo_wheel(tmp_path / "wheels")
    subprocess.run(
        [prefix / "bin" / "python", "-m", "pip", "install", "--no-index", "--no-deps", "-q", wheel],
        check=True,
        capture_output=True,
    )
    result = pmpm("verify", prefix)
    assert result.code == 1
    assert "package added: demo-pip-pkg 0.1 (installed by pip, not by pmpm)" in result.out
    assert "extra: lib/python" in result.out and "demo_pip_pkg/__init__.py" in result.out


def test_diff_names_versions_flags_and_targets(built, tmp_path):
    project, prefix = built
    other = tmp_path / "q"
    project.write_env(conda="libdemo <2", greet_options="target: x86_64_v2")
    project.install(other)
    result = pmpm("diff", prefix, other)
    assert result.code == 1
    assert "~ libdemo 2.0-0 -> 1.0-0" in result.out
    assert "~ greet (compiled): target " in result.out and "-> x86_64_v2" in result.out
    assert "cflags" in result.out
    same = pmpm("diff", prefix, prefix / "conda-meta" / "pmpm" / "record.json")
    assert same.code == 0 and "same environment" in same.out


def test_verify_and_diff_without_a_record_fail_clearly(tmp_path):
    folder = tmp_path / "not-an-env"
    folder.mkdir()
    for args in (("verify", folder), ("diff", folder, folder), ("diff", folder / "x.json", folder)):
        result = pmpm(*args)
        assert result.code == 1 and result.err.startswith("error:"), result.text
        assert "Traceback" not in result.text


def _conda_pack(*args: str | Path) -> None:
    exe = Path(sys.executable).with_name("conda-pack")  # conda-pack from PyPI, a test dependency
    proc = subprocess.run([exe, *map(str, args), "--quiet"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("how", ["conda-unpack", "dest-prefix"])
def test_an_environment_moved_with_conda_pack_verifies_and_runs(tmp_path, demo_channel, how):
    project = make_project(tmp_path / "project", demo_channel.path)
    (project.root / "recipes" / "hello-again.yaml").write_text(HELLO_AGAIN)
    project.env.write_text(
        f"channels: [{demo_channel.path}]\ndependencies: [libdemo, demo-tool]\n"
        "_pmpm:\n  recipes: [recipes]\n  packages: [hello, hello-again]\n"
    )
    prefix = tmp_path / "built-here"
    project.install(prefix)
    # files no package owns that name the prefix (as pip's scripts do), recorded by a re-run
    (prefix / "share" / "notes.txt").write_text(f"built in {prefix}\n")
    (prefix / "bin" / "hello-note").write_text(f"#!{prefix}/bin/hello\n")
    (prefix / "bin" / "hello-note").chmod(0o755)
    project.install(prefix, "--update")
    assert {"share/notes.txt", "bin/hello-note"} <= {f["path"] for f in record_of(prefix)["other_files"]}
    moved = tmp_path / "moved"
    archive = tmp_path / "env.tar.gz"
    if how == "dest-prefix":
        _conda_pack("-p", prefix, "-o", archive, "--dest-prefix", moved)
    else:
        _conda_pack("-p", prefix, "-o", archive)
    moved.mkdir()
    subprocess.run(["tar", "-xzf", archive, "-C", moved], check=True)
    if how == "conda-unpack":
        early = pmpm("verify", moved)  # unpacked, not relocated yet: not the recorded environment
        assert early.code == 1 and "modified: share/hello/where.txt (hello)" in early.out, early.text
        subprocess.run([sys.executable, moved / "bin" / "conda-unpack"], check=True)
    shutil.rmtree(prefix)  # as on a compute node: nothing left where it was built
    # compiled libraries find each other by a relative RPATH: nothing in them names a prefix
    assert str(prefix).encode() not in (moved / "lib" / "libgreet.so").read_bytes()
    assert b"$ORIGIN" in (moved / "lib" / "libgreet.so").read_bytes()
    where = (moved / "share" / "hello" / "where.txt").read_text()
    assert str(moved) in where and str(prefix) not in where  # a text file naming the prefix, relocated

    result = pmpm("verify", moved)
    assert result.code == 0, result.text
    assert "matches its record" in result.out
    tool = pmpm("run", moved, "--", "demo-tool")
    assert tool.code == 0, tool.text
    assert f"prefix={moved}" in tool.out  # libdemo's compiled-in prefix, relocated
    for script in ("hello-again", "hello-note"):
        ran = pmpm("run", moved, "--", script)
        assert ran.code == 0 and "hello, world" in ran.out, ran.text

    library = moved / "lib" / "libgreet.so"
    data = library.read_bytes()
    _edit(library, data[:200] + bytes([data[200] ^ 1]) + data[201:])
    (moved / "share" / "notes.txt").write_text(f"built in {moved} (edited)\n")
    changed = pmpm("verify", moved)
    assert changed.code == 1 and "modified: lib/libgreet.so (greet)" in changed.out, changed.text
    assert "modified: share/notes.txt (not in a package)" in changed.out


def _damage(prefix, write) -> None:
    """Delete and modify files of a conda package (libdemo) and of compiled ones (greet, hello)."""
    (prefix / "include" / "demo.h").unlink()
    write(prefix / "lib" / "libdemo.so.2.0.0", b"not a library\n")  # a file relocated at install
    (prefix / "share" / "hello" / "where.txt").unlink()
    write(prefix / "include" / "greet.h", b"/* changed */\n")


def test_repair_reinstalls_damaged_conda_and_compiled_packages(built):
    project, prefix = built
    _damage(prefix, _edit)
    before = pmpm("verify", prefix)
    assert before.code == 1 and "2 modified, 2 missing" in before.err, before.text
    assert f"pmpm repair {prefix}" in before.err

    result = pmpm("repair", prefix)
    assert result.code == 0, result.text
    assert "reinstalling in" in result.out and "greet, hello, libdemo" in result.out
    after = pmpm("verify", prefix)
    assert after.code == 0, after.text
    hello = subprocess.run([prefix / "bin" / "hello"], capture_output=True, text=True, check=True)
    assert hello.stdout == "hello, world\n"
    assert not (prefix / "conda-meta" / "pmpm" / "journal").exists()
    assert "is up to date" in project.install(prefix)  # the same packages: still a no-op


def test_repair_refetches_a_package_whose_cache_copy_was_written_through(built_private_cache):
    """Writing into an installed file in place writes into the package cache too (hard links):
    repair must not link the damaged copy again."""
    prefix, env = built_private_cache

    def in_place(path, data):
        with path.open("r+b") as handle:
            handle.write(data)
            handle.truncate()

    in_place(prefix / "include" / "greet.h", b"/* changed */\n")  # a compiled package
    in_place(prefix / "include" / "demo.h", b"/* changed */\n")  # a conda package
    assert pmpm("verify", prefix, env=env).code == 1
    result = pmpm("repair", prefix, env=env)
    assert result.code == 0, result.text
    assert pmpm("verify", prefix, env=env).code == 0


def test_repair_leaves_extra_files_and_says_so(built):
    _, prefix = built
    (prefix / "share" / "hello" / "where.txt").unlink()
    (prefix / "lib" / "stray.so").write_bytes(b"\0")
    result = pmpm("repair", prefix)
    assert result.code == 1 and "extra: lib/stray.so" in result.out, result.text
    assert "still differs from its record: 1 extra" in result.err and "Traceback" not in result.text
    assert (prefix / "share" / "hello" / "where.txt").is_file() and (prefix / "lib" / "stray.so").is_file()


def test_repair_without_the_packages_fails_clearly_and_changes_nothing(built_private_cache):
    prefix, env = built_private_cache
    _damage(prefix, _edit)
    shutil.rmtree(env["PMPM_CACHE_DIR"])  # no package cache, and the build channel lived there
    before = tree_digest(prefix)
    result = pmpm("repair", prefix, env=env)
    assert result.code == 1 and result.err.startswith("error:"), result.text
    assert "neither the package cache nor the channel has greet" in result.err
    assert "was not changed" in result.err
    assert "Traceback" not in result.text
    assert tree_digest(prefix) == before

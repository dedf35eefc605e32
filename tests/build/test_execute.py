"""One build run by pmpm.build.execute directly, on tiny real sources with the real gcc and make:
the package it packs, the log it keeps (and names), and how a failing step is reported.

No env file, no plan, no install: the executor alone, as the compile stage calls it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conda_package_handling import api as cph

from pmpm.build.execute import PackageBuild, build_package, run_command, run_tests
from pmpm.builders import Flags, Step, registry
from pmpm.errors import PmpmError

pytestmark = pytest.mark.skipif(
    not (shutil.which("gcc") and shutil.which("make")), reason="needs gcc and make on PATH"
)

HELLO_C = '#include <stdio.h>\nint main(void) { printf("%d\\n", GREETING); return 0; }\n'
MAKEFILE = """\
hello: hello.c
\t$(CC) $(CFLAGS) -o $@ hello.c $(LDFLAGS)
install: hello
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp hello $(DESTDIR)$(PREFIX)/bin/
"""


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's build logs go (``PMPM_LOG_DIR``, as a user may set it)."""
    folder = tmp_path / "logs"
    monkeypatch.setenv("PMPM_LOG_DIR", str(folder))
    return folder


def source(root: Path, c_text: str = HELLO_C, makefile: str = MAKEFILE) -> Path:
    root.mkdir(parents=True)
    (root / "hello.c").write_text(c_text)
    (root / "Makefile").write_text(makefile)
    return root


def build(tmp_path: Path, tree: Path, *, builder: str = "make", **given) -> PackageBuild:
    """``build_package`` for package ``hello`` into a prefix that does not exist (and must not)."""
    options = {
        "flags": Flags(cflags="-O2 -DGREETING=42"),
        "env": {"PATH": os.environ["PATH"], "CC": "gcc", "LC_ALL": "C"},
        "args": [],
        "script": None,
        **given,
    }
    return build_package(
        name="hello",
        version="1.0",
        build_string="pmpm_0123456789ab",
        source_tree=tree,
        work=tmp_path / "work",
        prefix=tmp_path / "prefix",
        builder=registry.get(builder),
        jobs=2,
        python=None,
        depends=[],
        out_dir=tmp_path / "channel" / "linux-64",
        extra={"key": "0123456789ab"},
        **options,
    )


def test_a_make_build_is_packed_with_its_log_kept(tmp_path, logs):
    result = build(tmp_path, source(tmp_path / "src"))
    assert result.package == tmp_path / "channel" / "linux-64" / "hello-1.0-pmpm_0123456789ab.conda"
    assert not (tmp_path / "prefix").exists()  # built and staged, never installed

    # the log: kept where PMPM_LOG_DIR says, every step with its command and output
    assert result.log.parent == logs and result.log.is_file()
    log = result.log.read_text()
    assert "=== hello: build" in log and "=== hello: install" in log
    assert "gcc -O2 -DGREETING=42 -o hello hello.c" in log

    # a genuine conda package: the binary the flags made, with its metadata
    out = tmp_path / "unpacked"
    cph.extract(str(result.package), dest_dir=str(out))
    index = json.loads((out / "info" / "index.json").read_text())
    assert (index["name"], index["version"], index["build"]) == ("hello", "1.0", "pmpm_0123456789ab")
    listed = [p["_path"] for p in json.loads((out / "info" / "paths.json").read_text())["paths"]]
    assert listed == ["bin/hello"]
    run = subprocess.run([out / "bin" / "hello"], capture_output=True, text=True, check=True)
    assert run.stdout == "42\n"
    assert result.files == 2  # bin/ and bin/hello, as staged


def test_a_failing_step_names_the_package_the_step_and_the_log(tmp_path, logs):
    broken = source(tmp_path / "src", c_text="int main(void) { return GREETING }\n")
    with pytest.raises(PmpmError) as failed:
        build(tmp_path, broken)
    error = failed.value
    assert error.message.startswith("building hello failed at step `build` (exit code 2)")
    assert "error: expected ';'" in error.message  # the log's last lines, where the cause is
    assert error.log is not None and error.log.parent == logs and error.log.is_file()
    assert "error: expected ';'" in error.log.read_text()  # kept after the failure
    assert f"\nlog: {error.log}" in str(error)  # what the user reads says where the log is
    assert "PREFIX was left as it was" in (error.hint or "")
    assert not (tmp_path / "prefix").exists()
    assert not (tmp_path / "channel").exists()


def test_a_missing_build_tool_is_named_with_what_to_do(tmp_path, logs):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    with pytest.raises(PmpmError) as failed:
        build(tmp_path, source(tmp_path / "src"), env={"PATH": str(empty)})
    assert "building hello failed at step `build`: cannot run make" in failed.value.message
    assert "install the missing tool" in (failed.value.hint or "")
    assert failed.value.log is not None and "cannot run make" in failed.value.log.read_text()


def test_an_install_step_that_ignores_destdir_is_refused(tmp_path, logs):
    makefile = "hello: hello.c\n\t$(CC) $(CFLAGS) -o $@ hello.c\ninstall: hello\n\t@echo installed nowhere\n"
    with pytest.raises(PmpmError) as failed:
        build(tmp_path, source(tmp_path / "src", makefile=makefile))
    assert failed.value.message.startswith("building hello installed nothing into the staging folder")
    assert "DESTDIR" in (failed.value.hint or "")
    assert failed.value.log is not None and "installed nowhere" in failed.value.log.read_text()


def test_a_recipe_script_builds_into_the_stage(tmp_path, logs):
    script = (
        'mkdir -p "$STAGE_PREFIX/bin"\n'
        '$CC $CFLAGS -o "$STAGE_PREFIX/bin/hello" "$SRC_DIR/hello.c"\n'
        'echo "built $PKG_NAME $PKG_VERSION for $PREFIX"\n'
    )
    result = build(tmp_path, source(tmp_path / "src"), builder="script", script=script)
    assert f"built hello 1.0 for {tmp_path / 'prefix'}" in result.log.read_text()
    assert (result.staged / "bin" / "hello").is_file()

    with pytest.raises(PmpmError) as failed:
        build(
            tmp_path,
            source(tmp_path / "src2"),
            builder="script",
            script="echo step one\nfalse\necho after $PKG_NAME\n",
        )
    assert failed.value.message.startswith("building hello failed at step `script` (exit code 1)")
    text = failed.value.log.read_text()
    assert "\nstep one\n" in text and "after hello" not in text  # bash -e: the first failure stops it


@pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake")
def test_an_incremental_build_skips_a_configure_step_that_did_not_change(tmp_path, logs):
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "hello.c").write_text(HELLO_C)
    (tree / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello hello.c)\n"
        "install(TARGETS hello DESTINATION bin)\n"
    )
    first = build(tmp_path, tree, builder="cmake", incremental=True)
    assert "=== hello: configure (in" in first.log.read_text()
    (tree / "hello.c").write_text(HELLO_C.replace("GREETING", "GREETING + 1"))
    second = build(tmp_path, tree, builder="cmake", incremental=True)
    log = second.log.read_text()
    assert "configure skipped: same command and flags as last time" in log
    run = subprocess.run([second.staged / "bin" / "hello"], capture_output=True, text=True, check=True)
    assert run.stdout == "43\n"  # the edit was rebuilt without configuring again
    third = build(tmp_path, tree, builder="cmake", incremental=True, flags=Flags(cflags="-O1 -DGREETING=7"))
    text = third.log.read_text()  # the same log as the builds before when in the same second
    assert text.rfind("=== hello: configure (in") > text.rfind("configure skipped")  # new flags: run again


def test_a_failing_recipe_test_names_the_package_and_the_log(tmp_path, logs):
    log = tmp_path / "logs" / "hello.log"
    logs.mkdir()
    prefix = tmp_path / "test-prefix"
    (prefix / "bin").mkdir(parents=True)
    env = {"PATH": os.environ["PATH"]}
    run_tests(
        ["test -d $PREFIX/bin"],
        test_prefix=prefix,
        built_for=prefix,
        env=env,
        cwd=tmp_path,
        log=log,
        package="hello",
    )
    with pytest.raises(PmpmError) as failed:
        run_tests(
            ["hello --version"],
            test_prefix=prefix,
            built_for=prefix,
            env=env,
            cwd=tmp_path,
            log=log,
            package="hello",
        )
    assert failed.value.message.startswith("building hello failed at step `test` (exit code 127)")
    assert failed.value.log == log and "hello: command not found" in log.read_text()


def test_a_step_appends_to_the_log_and_gets_its_own_environment(tmp_path):
    log = tmp_path / "one.log"
    log.write_text("earlier steps\n")
    step = Step("build", ("sh", "-c", 'echo "flag=$EXTRA"'), tmp_path, env={"EXTRA": "from-step"})
    run_command(step, {"PATH": os.environ["PATH"], "EXTRA": "from-base"}, log, package="hello")
    text = log.read_text()
    assert text.startswith("earlier steps\n")
    assert f"=== hello: build (in {tmp_path})\n$ sh -c 'echo \"flag=$EXTRA\"'\nflag=from-step\n" in text

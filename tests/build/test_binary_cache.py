"""The binary cache: a package built once installs into other prefixes, and from other machines'
caches (a shared folder, a web server), without being compiled again."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.clihelp import installed, loaded_by, pmpm

LIB_C = 'const char *greet(void) { return "%s"; }\n'
APP_C = (
    '#include <stdio.h>\nconst char *greet(void);\nint main(void) { printf("%s\\n", greet()); return 0; }\n'
)


@pytest.fixture
def project(tmp_path: Path):
    """``greet`` (a shared library) and ``hello`` (links it, and writes where it is installed
    into a text file): relocation of both binary and text placeholders shows in the results."""
    src = tmp_path / "src"
    (src / "greet").mkdir(parents=True)
    (src / "greet" / "greet.c").write_text(LIB_C % f"hello from {tmp_path.name}")
    (src / "hello").mkdir()
    (src / "hello" / "hello.c").write_text(APP_C)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\n"
        "build:\n  system: script\n  script: |\n    mkdir -p $STAGE_PREFIX/lib\n"
        "    $CC $CFLAGS -fPIC -shared -o $STAGE_PREFIX/lib/libgreet.so $SRC_DIR/greet.c\n"
    )
    (recipes / "hello.yaml").write_text(
        "name: hello\nversion: '1.0'\nsource: {path: ../src/hello}\nrequires: {recipes: [greet]}\n"
        "build:\n  system: script\n  script: |\n    mkdir -p $STAGE_PREFIX/bin $STAGE_PREFIX/share\n"
        "    $CC $CFLAGS -o $STAGE_PREFIX/bin/hello $SRC_DIR/hello.c $LDFLAGS -lgreet\n"
        '    echo "{{ prefix }}" > $STAGE_PREFIX/share/hello-prefix.txt\n'
    )

    def write(extra: str = "") -> Path:
        env = tmp_path / "env.yml"
        env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [hello]\n" + extra)
        return env

    return write


def _check(prefix: Path, tmp_path: Path) -> None:
    """The package works where it was installed and names that place, not the build's."""
    done = subprocess.run([prefix / "bin" / "hello"], capture_output=True, text=True, env={}, check=True)
    assert done.stdout == f"hello from {tmp_path.name}\n"
    assert (prefix / "share" / "hello-prefix.txt").read_text() == f"{prefix}\n"
    ldd = subprocess.run(["ldd", prefix / "bin" / "hello"], capture_output=True, text=True).stdout
    found = re.search(r"libgreet\.so => (\S+)", ldd)
    assert found and os.path.realpath(found[1]) == os.path.realpath(prefix / "lib" / "libgreet.so"), ldd
    dynamic = subprocess.run(["readelf", "-d", prefix / "bin" / "hello"], capture_output=True, text=True)
    assert "Library runpath: [$ORIGIN/../lib]" in dynamic.stdout  # relative: found in any prefix
    assert "placehold" not in (prefix / "bin" / "hello").read_bytes().decode("latin-1").replace("\0", "")


def test_a_second_prefix_installs_from_the_cache(tmp_path: Path, project) -> None:
    env = project()
    first, second = tmp_path / "a" / "p", tmp_path / "a-much-longer-folder" / "elsewhere" / "p"
    built = pmpm("conda_install", first, "--file", env)
    assert built.code == 0, built.text
    assert "building greet" in built.out and "building hello" in built.out
    _check(first, tmp_path)

    plan = pmpm("plan", second, "--file", env)
    assert "greet 1.0: from cache (built before:" in plan.out, plan.text
    reused = pmpm("conda_install", second, "--file", env)
    assert reused.code == 0, reused.text
    assert "building" not in reused.out
    assert reused.out.count("from the binary cache") == 2
    assert installed(second) == installed(first)  # the same builds, keyed without the prefix
    _check(second, tmp_path)
    ids = [json.loads(pmpm("record", p, "--json").out)["environment_id"] for p in (first, second)]
    assert ids[0] == ids[1]


#: modules a run taking every package from the cache has no use for: the builder and packer,
#: Slurm, the modules and kernel writers, MPI discovery, the web cache's HTTP client, pip's
#: requirement parser (no ``pypi:`` source) and jinja2 (the recipe has no template markup).
#: Loading them made this path a third slower than before the pipeline's redesign.
NOT_FOR_A_CACHE_HIT = (
    "pmpm.build.execute",
    "pmpm.cluster.build_jobs",
    "pmpm.publish.modules",
    "pmpm.publish.jupyter",
    "pmpm.host.mpi.choice",
    "requests",
    "packaging.requirements",
    "jinja2",
)


def test_a_cache_hit_loads_nothing_only_a_build_or_another_feature_needs(tmp_path: Path, project) -> None:
    env = project()
    env.write_text(env.read_text().replace("packages: [hello]", "packages: [greet]"))  # no markup
    assert pmpm("conda_install", tmp_path / "a", "--file", env).code == 0
    out, loaded = loaded_by(["conda_install", tmp_path / "b", "--file", env], NOT_FOR_A_CACHE_HIT)
    assert "installed greet 1.0 from the binary cache" in out
    assert loaded == []


def test_rebuild_bypasses_the_cache(tmp_path: Path, project) -> None:
    env = project()
    assert pmpm("conda_install", tmp_path / "a", "--file", env).code == 0
    forced = pmpm("conda_install", tmp_path / "b", "--file", env, "--rebuild", "greet")
    assert forced.code == 0, forced.text
    assert "building greet" in forced.out and "installed hello 1.0 from the binary cache" in forced.out


def _cache_env(tmp_path: Path, name: str) -> dict[str, str]:
    """Another machine: its own pmpm cache (packages, build channel), nothing shared."""
    return {"PMPM_CACHE_DIR": str(tmp_path / name)}


def test_a_shared_folder_serves_other_machines(tmp_path: Path, project) -> None:
    shared = tmp_path / "group-cache"
    env = project(f"  cache: {shared}\n")
    one = pmpm("conda_install", tmp_path / "a", "--file", env, env=_cache_env(tmp_path, "machine1"))
    assert one.code == 0, one.text
    assert "copied the new builds to the binary cache" in one.out
    assert len(list(shared.glob("*/*.conda"))) == 2 and list(shared.glob("*/repodata.json"))

    two = pmpm("conda_install", tmp_path / "b", "--file", env, env=_cache_env(tmp_path, "machine2"))
    assert two.code == 0, two.text
    assert "building" not in two.out and two.out.count("from the binary cache") == 2
    _check(tmp_path / "b", tmp_path)


@pytest.fixture
def web_cache(tmp_path: Path):
    """A real HTTP server on loopback serving a folder: a channel on a web server (a remote conda
    channel cannot be reached from here; this one is local but spoken to over HTTP)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_web_server_serves_the_cache_and_is_checked(tmp_path: Path, project, web_cache) -> None:
    served, url = web_cache
    env = project(f"  cache: {url}\n")
    machine1 = _cache_env(tmp_path, "machine1")
    assert pmpm("conda_install", tmp_path / "a", "--file", env, env=machine1).code == 0
    pushed = pmpm("cache", "push", served, env=machine1)
    assert pushed.code == 0 and "pushed 2 packages" in pushed.out, pushed.text

    fetched = pmpm("conda_install", tmp_path / "b", "--file", env, env=_cache_env(tmp_path, "machine2"))
    assert fetched.code == 0, fetched.text
    assert "building" not in fetched.out and fetched.out.count("from the binary cache") == 2
    _check(tmp_path / "b", tmp_path)
    # each package's build log came with it (pushed beside it, fetched, kept in the prefix)
    served_logs = sorted(p.name for p in served.glob("*/*.log"))
    assert len(served_logs) == 2
    assert sorted(p.name for p in (tmp_path / "b" / "conda-meta" / "pmpm" / "logs").iterdir()) == served_logs

    # a damaged file on the server is refused, and the prefix is left as it was
    package = next(served.glob("*/greet-*.conda"))
    package.write_bytes(package.read_bytes()[:-10] + b"0123456789")
    bad = pmpm("conda_install", tmp_path / "c", "--file", env, env=_cache_env(tmp_path, "machine3"))
    assert bad.code == 1 and "does not match the sha256" in bad.err and "Traceback" not in bad.text
    assert not (tmp_path / "c").exists()


def test_unreachable_web_cache_means_building(tmp_path: Path, project) -> None:
    env = project("  cache: http://127.0.0.1:9/nothing-listens-here\n")
    result = pmpm("conda_install", tmp_path / "a", "--file", env)
    assert result.code == 0, result.text
    assert "cannot be read" in result.out and "building greet" in result.out


def test_cache_list_and_prune(tmp_path: Path, project) -> None:
    env = project()
    machine = _cache_env(tmp_path, "machine")
    assert pmpm("conda_install", tmp_path / "a", "--file", env, env=machine).code == 0
    listed = pmpm("cache", "list", env=machine)
    assert listed.code == 0 and "2 compiled packages" in listed.out
    assert re.search(r"greet\s+1\.0\s+pmpm_\w+", listed.out), listed.out
    assert "say what to prune" in pmpm("cache", "prune", env=machine).err
    kept = pmpm("cache", "prune", "--older-than", "1", env=machine)
    assert kept.code == 0 and "removed 0 packages" in kept.out
    gone = pmpm("cache", "prune", "--all", env=machine)
    assert gone.code == 0 and "removed 2 packages" in gone.out
    rebuilt = pmpm("conda_install", tmp_path / "b", "--file", env, env=machine)
    assert "building greet" in rebuilt.out  # nothing left to take


def test_system_install_builds_for_its_own_prefix(tmp_path: Path, project) -> None:
    """The compiled stack links the site's libraries at their paths: not relocatable, not cached."""
    env = project("  conda: false\n")
    for root in ("s1", "s2"):
        result = pmpm("system_install", tmp_path / root, "--file", env)
        assert result.code == 0, result.text
        assert "building greet" in result.out and "from the binary cache" not in result.out
    assert os.path.exists(tmp_path / "s2" / "compile" / "bin" / "hello")


def test_rpaths_under_the_build_prefix_become_relative(tmp_path: Path) -> None:
    """A library found through ``$ORIGIN/../lib`` wherever the tree lands, and the padded
    build prefix gone from the file (no binary prefix replacement needed)."""
    from pmpm.build.rpath import relative_rpaths

    prefix = "/opt/build_placehold" + "_placehold" * 20
    stage = tmp_path / "stage"
    (stage / "lib").mkdir(parents=True)
    (stage / "bin").mkdir()
    (tmp_path / "greet.c").write_text(LIB_C % "relative")
    (tmp_path / "app.c").write_text(APP_C)
    lib = stage / "lib" / "libgreet.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", lib, tmp_path / "greet.c"], check=True)
    app = stage / "bin" / "app"
    link = ["gcc", "-o", app, tmp_path / "app.c", f"-L{stage / 'lib'}", "-lgreet", f"-Wl,-rpath,{prefix}/lib"]
    subprocess.run(link, check=True)
    assert prefix.encode() in app.read_bytes()

    assert relative_rpaths(stage, prefix) == ["bin/app"]
    dynamic = subprocess.run(["readelf", "-d", app], capture_output=True, text=True, check=True).stdout
    assert "Library runpath: [$ORIGIN/../lib]" in dynamic
    assert prefix.encode() not in app.read_bytes()
    moved = tmp_path / "anywhere" / "else"
    moved.parent.mkdir()
    stage.rename(moved)
    done = subprocess.run([moved / "bin" / "app"], capture_output=True, text=True, env={}, check=True)
    assert done.stdout == "relative\n"

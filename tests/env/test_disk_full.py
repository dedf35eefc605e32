"""A full disk (small tmpfs mounts) anywhere pmpm writes: a clear message, PREFIX as it was.

Each case runs the real CLI against a prefix, a package cache or a build folder on a tmpfs just
too small, then frees the space (removes a filler file) and checks that the next run works.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from tests.clihelp import installed, pmpm, tree_digest, write_env
from tests.factories import LocalChannel

KiB = 1024


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> LocalChannel:
    """One tiny package and three of 200 KiB of incompressible data each."""
    chan = LocalChannel(tmp_path_factory.mktemp("chan"))
    chan.add(PackageMeta("small", "1.0", "0", noarch="generic"), {"share/small/x.txt": "small\n"})
    for i in range(3):
        chan.add(
            PackageMeta(f"big{i}", "1.0", "0", noarch="generic"),
            {f"share/big{i}/data.bin": os.urandom(200 * KiB)},
        )
    chan.index()
    return chan


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """``tmpfs(name, kib)``: a fresh tmpfs of that size under tmp_path, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, kib: int) -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(mount: Path, leave: int = 0) -> Path:
    """Take all the free space of ``mount`` but ``leave`` bytes with one file; returns it."""
    filler = mount / "filler"
    want = max(0, shutil.disk_usage(mount).free - leave)
    with open(filler, "wb") as handle:
        try:
            while want > 0:
                chunk = min(want, 64 * KiB)
                handle.write(b"\0" * chunk)
                handle.flush()
                want -= chunk
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def _failed_for_space(result, mount: Path) -> None:
    assert result.code != 0, result.text
    assert f"no space left on {mount}" in result.err, result.text
    assert "Traceback" not in result.text, result.text


def _no_journal(prefix: Path) -> None:
    assert not (prefix / "conda-meta" / "pmpm" / "journal").exists()


def test_prefix_full_while_writing_the_journal(tmp_path, tmpfs, channel):
    mount = tmpfs("small", 512)
    prefix = mount / "p"
    env = write_env(tmp_path / "env.yml", [channel.path], ["small"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)
    filler = fill(mount)

    write_env(env, [channel.path], ["small", "big0"])
    result = pmpm("conda_install", prefix, "--file", env)
    _failed_for_space(result, mount)
    assert f"writing the journal of {prefix}" in result.err
    assert tree_digest(prefix) == before
    _no_journal(prefix)

    filler.unlink()
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert installed(prefix) == {"small": "1.0-0", "big0": "1.0-0"}


@pytest.mark.parametrize("existing", [True, False], ids=["update", "create"])
def test_prefix_full_while_installing(tmp_path, tmpfs, channel, existing):
    mount = tmpfs("small", 640)
    prefix = mount / "p"
    env = write_env(tmp_path / "env.yml", [channel.path], ["small"])
    if existing:
        assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)
    filler = fill(mount, leave=300 * KiB)  # room for the journal and big0, not for big1 too

    write_env(env, [channel.path], ["small", "big0", "big1"])
    result = pmpm("conda_install", prefix, "--file", env)
    _failed_for_space(result, mount)
    assert f"installing packages into {prefix}" in result.err
    assert "channel" not in result.err  # the disk is to blame, not the packages
    assert tree_digest(prefix) == before
    assert prefix.exists() == existing
    _no_journal(prefix)

    filler.unlink()
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert installed(prefix) == {"small": "1.0-0", "big0": "1.0-0", "big1": "1.0-0"}


def test_package_cache_full(tmp_path, tmpfs, channel):
    cache = tmpfs("cache", 1024)
    filler = fill(cache, leave=300 * KiB)  # one package unpacks, the others do not
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [channel.path], ["big0", "big1", "big2"])
    cache_env = {"PMPM_CACHE_DIR": str(cache)}

    result = pmpm("conda_install", prefix, "--file", env, env=cache_env)
    _failed_for_space(result, cache)
    assert "package cache" in result.err and "PMPM_CACHE_DIR" in result.err
    assert "fix or remove it from the channel" not in result.err
    assert not prefix.exists()

    filler.unlink()
    result = pmpm("conda_install", prefix, "--file", env, env=cache_env)
    assert result.code == 0, result.text
    assert set(installed(prefix)) == {"big0", "big1", "big2"}


def _blob_project(root: Path, size: int, source: str = "{path: ../src/blob}") -> Path:
    """A compiled package (from a local tree by default) whose build writes ``size`` bytes in
    its build folder."""
    (root / "src" / "blob").mkdir(parents=True)
    (root / "src" / "blob" / "blob.c").write_text("int blob(void) { return 1; }\n")
    (root / "recipes").mkdir()
    (root / "recipes" / "blob.yaml").write_text(
        f"name: blob\nversion: '1.0'\nsource: {source}\n"
        "build:\n  system: script\n  script: |\n"
        f"    head -c {size} /dev/urandom > $BUILD_DIR/scratch.dat\n"
        "    mkdir -p $STAGE_PREFIX/lib\n"
        "    $CC $CFLAGS -shared -fPIC -o $STAGE_PREFIX/lib/libblob.so $SRC_DIR/blob.c\n"
    )
    env = root / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [blob]\n")
    return env


@pytest.mark.parametrize("existing", [True, False], ids=["update", "create"])
def test_build_folder_full(tmp_path, tmpfs, existing):
    cache = tmpfs("cache", 1024)
    env = _blob_project(tmp_path, 4 * KiB)
    prefix = tmp_path / "p"
    cache_env = {"PMPM_CACHE_DIR": str(cache)}
    if existing:
        assert pmpm("conda_install", prefix, "--file", env, env=cache_env).code == 0
    before = tree_digest(prefix)
    recipe = tmp_path / "recipes" / "blob.yaml"  # a changed recipe rebuilds, with more scratch data
    recipe.write_text(recipe.read_text().replace(f"head -c {4 * KiB}", f"head -c {400 * KiB}"))
    filler = fill(cache, leave=200 * KiB)

    result = pmpm("conda_install", prefix, "--file", env, env=cache_env)
    _failed_for_space(result, cache)
    assert "building blob" in result.err
    assert tree_digest(prefix) == before
    assert prefix.exists() == existing
    if existing:
        _no_journal(prefix)
    # the half-written build folder (kept between builds of a local tree) gives its space back
    assert not (cache / "dev").exists() or not any((cache / "dev").iterdir())

    filler.unlink()
    result = pmpm("conda_install", prefix, "--file", env, env=cache_env)
    assert result.code == 0, result.text
    assert (prefix / "lib" / "libblob.so").is_file()
    assert installed(prefix)["blob"].startswith("1.0-pmpm_")


def test_source_cache_full(tmp_path, tmpfs):
    """A url source (a tarball, fetched over file://) that the source cache has no room for."""
    import hashlib
    import tarfile

    tree = tmp_path / "tarball" / "blob-1.0"
    tree.mkdir(parents=True)
    (tree / "blob.c").write_text("int blob(void) { return 1; }\n")
    (tree / "data.bin").write_bytes(os.urandom(300 * KiB))
    tarball = tmp_path / "blob-1.0.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(tree, arcname="blob-1.0")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    env = _blob_project(tmp_path, 4 * KiB, source=f"{{url: '{tarball.as_uri()}', sha256: {digest}}}")
    cache = tmpfs("cache", 2048)
    filler = fill(cache, leave=200 * KiB)
    prefix = tmp_path / "p"
    cache_env = {"PMPM_CACHE_DIR": str(cache)}

    result = pmpm("conda_install", prefix, "--file", env, env=cache_env)
    _failed_for_space(result, cache)
    assert f"storing the source {tarball.name} in the source cache" in result.err
    assert not prefix.exists()
    assert not list(cache.rglob(".part-*"))  # no half-downloaded file

    filler.unlink()
    result = pmpm("conda_install", prefix, "--file", env, env=cache_env)
    assert result.code == 0, result.text
    assert (prefix / "lib" / "libblob.so").is_file()


def test_a_full_disk_is_named_whatever_noticed_it(tmp_path, tmpfs):
    """The pieces the stages use: an errno, an error's text, a tool's log, the installer."""
    from pmpm.env.diskspace import DiskFull, full_errno, installer_failure, needs_space, tool_failure

    mount = tmpfs("small", 64)
    fill(mount)
    with pytest.raises(DiskFull) as caught, needs_space("writing a test file", mount):
        (mount / "more").write_bytes(b"x" * 8192)
    assert str(caught.value).startswith(f"no space left on {mount} (writing a test file)")
    assert full_errno(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    assert full_errno(RuntimeError("failed to unpack: No space left on device (os error 28)")) == errno.ENOSPC
    assert full_errno(ValueError("EOF while parsing a value at line 1 column 0")) is None
    full = tool_failure("cc1: error writing to -: No space left on device", "building x", [tmp_path, mount])
    assert full is not None and full.mount == mount
    # the installer's text does not say so (a torn file read back): the free space does
    torn = RuntimeError("failed to read index.json: EOF while parsing a value at line 1 column 0")
    full = installer_failure(torn, tmp_path / "prefix", mount / "pkgs", needed=200 * KiB)
    assert full is not None and full.mount == mount and "package cache" in str(full)
    assert installer_failure(torn, tmp_path / "prefix", tmp_path / "pkgs", needed=200 * KiB) is None


def test_the_last_resort_catches_a_full_disk_no_stage_explained(tmpfs, capsys, monkeypatch):
    from pmpm.errors import run_reporting

    mount = tmpfs("small", 64)
    fill(mount)

    def create() -> int:
        shutil.copyfile(__file__, mount / "record.json")  # the error names the file
        return 0

    def write() -> int:
        with open(mount / "state.json", "wb") as handle:  # a write names none
            handle.write(b"{}" * 8192)
            handle.flush()
        return 0

    assert run_reporting(create) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on {mount} (writing {mount / 'record.json'})"), err
    monkeypatch.chdir(mount)  # the command's folders: the fullest is blamed
    assert run_reporting(write) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no space left on {mount} (writing a file)"), err
    assert "Traceback" not in err


def _data_wheel(folder: Path, size: int) -> Path:
    """A wheel holding ``size`` bytes of incompressible data (pip installs it offline)."""
    import base64
    import hashlib
    import zipfile

    files = {
        "bulky/__init__.py": b"",
        "bulky/data.bin": os.urandom(size),
        "bulky-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bulky\nVersion: 1.0\n",
        "bulky-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for name, data in files.items()
    ]
    files["bulky-1.0.dist-info/RECORD"] = ("".join(record) + "bulky-1.0.dist-info/RECORD,,\n").encode()
    wheel = folder / "bulky-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def test_prefix_full_while_pip_installs(tmp_path, tmpfs, demo_channel):
    mount = tmpfs("small", 48 * 1024)
    prefix = mount / "p"
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["python"])
    result = pmpm("conda_install", prefix, "--file", env, "--offline")
    assert result.code == 0, result.text
    before = tree_digest(prefix)
    filler = fill(mount, leave=256 * KiB)

    wheel = _data_wheel(tmp_path, 1024 * KiB)
    write_env(env, [demo_channel.path], ["python"], f"  - pip:\n      - {wheel}\n")
    result = pmpm("conda_install", prefix, "--file", env, "--offline")
    _failed_for_space(result, mount)
    assert "pip" in result.err
    assert tree_digest(prefix) == before
    _no_journal(prefix)

    filler.unlink()
    result = pmpm("conda_install", prefix, "--file", env, "--offline")
    assert result.code == 0, result.text
    assert any(prefix.glob("lib/python*/site-packages/bulky/data.bin"))


def test_a_file_written_on_a_full_disk_keeps_its_old_content(tmpfs):
    """What the record, the state and the stored build inputs are written with."""
    from pmpm.fsutil import atomic_write_text

    mount = tmpfs("small", 64)
    target = mount / "state.json"
    atomic_write_text(target, "old\n")
    fill(mount)
    with pytest.raises(OSError) as caught:
        atomic_write_text(target, "new\n" * 8192)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in mount.iterdir()) == ["filler", "state.json"]  # no torn temp file

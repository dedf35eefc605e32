"""pmpm.build.package writes genuine conda packages: readable by conda tools, installable by rattler."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conda_package_handling import api as cph
from rattler.exceptions import InstallerError, SolverError
from rattler.package import IndexJson, PathsJson

from pmpm.build.package import PackageMeta, host_subdir, pack
from pmpm.errors import PmpmError
from tests.factories import DemoChannel, LocalChannel, rattler_install, write_tree

PLACEHOLDER = "/opt/pmpm-build_placehold_placehold_placehold"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def info(package: Path, dest: Path) -> Path:
    cph.extract(str(package), dest_dir=str(dest), components="info")
    return dest / "info"


def staged_tree(root: Path) -> Path:
    """A prefix-like tree with every kind of entry pack() distinguishes."""
    write_tree(
        root,
        {
            "bin/tool": f"#!/bin/sh\necho {PLACEHOLDER}\n",
            "lib/libx.so.1.0": b"\x7fELF\0\0" + PLACEHOLDER.encode() + b"/lib\0more\0",
            "share/doc/plain.txt": "no prefix here\n",
            "share/doc/with space.txt": f"prefix={PLACEHOLDER}\n",
        },
        {
            "lib/libx.so.1": "libx.so.1.0",
            "lib/libx.so": f"{root}/lib/libx.so.1",  # absolute into the tree: made relative
            "lib/cmake": "../share/doc",  # link to a directory
            "share/bin-link": f"{PLACEHOLDER}/bin/tool",  # absolute into the placeholder
        },
    )
    (root / "share" / "empty").mkdir()
    return root


def test_pack_writes_package_readable_by_rattler_and_cph(tmp_path: Path) -> None:
    staged = staged_tree(tmp_path / "staged")
    meta = PackageMeta(
        "libx", "1.0", "h0_1", build_number=1, depends=("zlib >=1.2", "bzip2"), license="MIT",
        summary="x", extra={"pmpm": {"build_key": "abc"}},
    )  # fmt: skip
    package = pack(staged, meta, tmp_path / "out", placeholder=PLACEHOLDER)
    assert package == tmp_path / "out" / "libx-1.0-h0_1.conda"
    assert sorted(p.name for p in package.parent.iterdir()) == [package.name]  # no temp leftovers

    index = IndexJson.from_package_archive(package)
    assert (index.name.normalized, str(index.version), str(index.build)) == ("libx", "1.0", "h0_1")
    assert index.build_number == 1
    assert index.depends == ["bzip2", "zlib >=1.2"]
    assert index.subdir == host_subdir()
    assert index.license == "MIT"

    entries = {str(e.relative_path): e for e in PathsJson.from_package_archive(package).paths}
    expected = {
        "bin/tool", "lib/libx.so.1.0", "share/doc/plain.txt", "share/doc/with space.txt",
        "lib/libx.so.1", "lib/libx.so", "lib/cmake", "share/bin-link",
    }  # fmt: skip
    assert set(entries) == expected  # the empty dir is gone

    extracted = tmp_path / "extracted"
    cph.extract(str(package), dest_dir=str(extracted))
    for rel, entry in entries.items():
        path = extracted / rel
        if entry.path_type.softlink:
            assert path.is_symlink(), rel
        else:
            assert entry.path_type.hardlink and not path.is_symlink(), rel
            assert entry.sha256.hex() == sha256(path) == sha256(staged / rel), rel
            assert entry.size_in_bytes == path.stat().st_size, rel

    modes = {rel: e.prefix_placeholder.file_mode.mode for rel, e in entries.items() if e.prefix_placeholder}
    assert modes == {"bin/tool": "text", "share/doc/with space.txt": "text", "lib/libx.so.1.0": "binary"}
    assert all(
        e.prefix_placeholder.placeholder == PLACEHOLDER for e in entries.values() if e.prefix_placeholder
    )

    assert os.readlink(extracted / "lib/libx.so.1") == "libx.so.1.0"
    assert os.readlink(extracted / "lib/libx.so") == "libx.so.1"
    assert os.readlink(extracted / "share/bin-link") == "../bin/tool"
    assert (extracted / "lib/cmake/plain.txt").read_text() == "no prefix here\n"
    assert os.access(extracted / "bin/tool", os.X_OK)
    # a link to a file carries the file's digest, as conda-build records it
    assert entries["lib/libx.so"].sha256 == entries["lib/libx.so.1.0"].sha256

    meta_dir = extracted / "info"
    assert (meta_dir / "files").read_text().splitlines() == sorted(expected)
    assert (meta_dir / "has_prefix").read_text().splitlines() == [
        f"{PLACEHOLDER} text bin/tool",
        f"{PLACEHOLDER} binary lib/libx.so.1.0",
        f'{PLACEHOLDER} text "share/doc/with space.txt"',
    ]
    about = json.loads((meta_dir / "about.json").read_text())
    assert about == {"extra": {"pmpm": {"build_key": "abc"}}, "license": "MIT", "summary": "x"}


def test_pack_is_deterministic(tmp_path: Path) -> None:
    staged = staged_tree(tmp_path / "staged")
    meta = PackageMeta("libx", "1.0", "0")
    first = info(pack(staged, meta, tmp_path / "a", placeholder=PLACEHOLDER), tmp_path / "xa")
    second = info(pack(staged, meta, tmp_path / "b", placeholder=PLACEHOLDER), tmp_path / "xb")
    for name in ("paths.json", "index.json", "about.json", "files", "has_prefix"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_a_package_file_is_readable_as_the_umask_allows(tmp_path: Path) -> None:
    """A build channel shared by a group (Slurm jobs of several users) needs 0664, not 0600."""
    staged = staged_tree(tmp_path / "s")
    old = os.umask(0o002)
    try:
        package = pack(staged, PackageMeta("libx", "1.0", "0"), tmp_path / "out", placeholder=PLACEHOLDER)
    finally:
        os.umask(old)
    assert package.stat().st_mode & 0o777 == 0o664
    assert [p.name for p in package.parent.iterdir()] == [package.name]  # no temporary file left


def test_timestamp_follows_source_date_epoch_or_explicit_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = staged_tree(tmp_path / "staged")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    package = pack(staged, PackageMeta("libx", "1.0", "0"), tmp_path / "a", placeholder=PLACEHOLDER)
    assert (
        json.loads((info(package, tmp_path / "xa") / "index.json").read_text())["timestamp"] == 1700000000000
    )
    package = pack(
        staged, PackageMeta("libx", "1.0", "0", timestamp=42), tmp_path / "b", placeholder=PLACEHOLDER
    )
    assert json.loads((info(package, tmp_path / "xb") / "index.json").read_text())["timestamp"] == 42


def test_noarch_package_metadata(tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"share/d.txt": "d\n"})
    package = pack(tmp_path / "s", PackageMeta("d", "1", "0", noarch="generic"), tmp_path / "out")
    index = json.loads((info(package, tmp_path / "x") / "index.json").read_text())
    assert (index["subdir"], index["noarch"], index["arch"], index["platform"]) == (
        "noarch",
        "generic",
        None,
        None,
    )
    assert not (tmp_path / "x" / "info" / "has_prefix").exists()


@pytest.mark.parametrize(
    ("links", "culprit", "problem"),
    [
        ({"lib/evil": "../../etc/passwd"}, "lib/evil", "escapes"),
        ({"lib/evil": "/etc/passwd"}, "lib/evil", "points outside"),
        # each link alone stays inside; together they walk out (up -> root, root/.. -> outside)
        ({"lib/a/up": "../..", "lib/a/evil": "up/../x"}, "lib/a/evil", "escapes"),
        ({"lib/gone": "libgone.so.1"}, "lib/gone", "dangling"),
        ({"lib/l1": "l2", "lib/l2": "l1"}, "lib/l1", "loop"),
    ],
)
def test_pack_refuses_bad_symlinks(tmp_path: Path, links: dict[str, str], culprit: str, problem: str) -> None:
    write_tree(tmp_path / "s", {"lib/ok.so": b"\0"}, links)
    out = tmp_path / "out"
    with pytest.raises(PmpmError) as error:
        pack(tmp_path / "s", PackageMeta("bad", "1", "0"), out)
    message = str(error.value)
    assert f"symlink {culprit} ->" in message and problem in message and "package bad" in message
    assert not out.exists() or not any(out.iterdir())


def test_external_symlinks_ship_verbatim(tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {}, {"bin/python": sys.executable, "bin/python3": "python"})
    meta = PackageMeta("py", "1", "0")
    package = pack(tmp_path / "s", meta, tmp_path / "out", external_symlinks={"bin/python"})
    cph.extract(str(package), dest_dir=str(tmp_path / "x"))
    assert os.readlink(tmp_path / "x" / "bin/python") == sys.executable
    assert os.readlink(tmp_path / "x" / "bin/python3") == "python"


@pytest.mark.parametrize(
    ("meta_args", "problem"),
    [
        (("Bad Name", "1", "0"), "invalid package name"),
        (("x", "1.0-1", "0"), "invalid version"),
        (("x", "1.0", "a-b"), "invalid build string"),
    ],
)
def test_meta_validation(meta_args: tuple[str, str, str], problem: str) -> None:
    with pytest.raises(PmpmError, match=problem):
        PackageMeta(*meta_args)
    with pytest.raises(PmpmError, match="noarch"):
        PackageMeta("x", "1", "0", noarch="python")


def test_pack_refuses_reserved_dirs_and_bad_placeholders(tmp_path: Path) -> None:
    write_tree(tmp_path / "s", {"info/index.json": "{}"})
    with pytest.raises(PmpmError, match="info/"):
        pack(tmp_path / "s", PackageMeta("x", "1", "0"), tmp_path / "out")
    write_tree(tmp_path / "t", {"a": "b"})
    with pytest.raises(PmpmError, match="placeholder"):
        pack(tmp_path / "t", PackageMeta("x", "1", "0"), tmp_path / "out", placeholder="relative/path")


def test_channel_factory_serves_indexed_packages(
    channel_factory: Callable[..., LocalChannel], tmp_path: Path
) -> None:
    chan = channel_factory("mine")
    chan.add(PackageMeta("a", "1.0", "0", depends=("b",)), {"share/a.txt": "a\n"})
    chan.add(PackageMeta("b", "2.0", "0", noarch="generic"), {"share/b.txt": "b\n"})
    chan.index()
    assert chan.url.startswith("file:///")
    repodata = json.loads((chan.path / host_subdir() / "repodata.json").read_text())
    assert list(repodata["packages.conda"]) == ["a-1.0-0.conda"]
    records = rattler_install(tmp_path / "env", ["a"], [chan.url], cache_dir=tmp_path / "cache")
    assert sorted(r.name.normalized for r in records) == ["a", "b"]
    assert (tmp_path / "env" / "share" / "b.txt").read_text() == "b\n"


# --- the compiled demo channel ---------------------------------------------------------------


def test_demo_packages_paths_json_matches_content(demo_channel: DemoChannel, tmp_path: Path) -> None:
    packages = sorted(demo_channel.path.glob("*/*.conda"))
    assert {p.name for p in packages} >= {
        "libdemo-1.0-0.conda", "libdemo-2.0-0.conda", "demo-tool-1.0-0.conda",
        "demo-data-1.0-0.conda", "demo-needs-old-1.0-0.conda", "demo-conflict-1.0-0.conda",
    }  # fmt: skip
    for package in packages:
        extracted = tmp_path / package.name
        cph.extract(str(package), dest_dir=str(extracted))
        for entry in PathsJson.from_package_archive(package).paths:
            path = extracted / entry.relative_path
            if entry.path_type.hardlink:
                assert entry.sha256.hex() == sha256(path), path
                # rattler reads "size_in_bytes": 0 back as None
                assert (entry.size_in_bytes or 0) == path.stat().st_size, path
            if entry.prefix_placeholder:
                data = path.read_bytes()
                assert demo_channel.build_prefix.encode() in data
                assert entry.prefix_placeholder.file_mode.mode == ("binary" if b"\0" in data else "text")

    libdemo_pkg = demo_channel.path / host_subdir() / "libdemo-2.0-0.conda"
    libdemo = {str(e.relative_path): e for e in PathsJson.from_package_archive(libdemo_pkg).paths}
    assert libdemo["lib/libdemo.so.2.0.0"].prefix_placeholder.file_mode.binary
    assert libdemo["lib/pkgconfig/demo.pc"].prefix_placeholder.file_mode.text
    assert libdemo["lib/libdemo.so"].path_type.softlink


def run(*args: str | Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PYTHONNOUSERSITE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INDEX="1")
    return subprocess.run(list(map(str, args)), check=True, capture_output=True, text=True, env=env).stdout


def test_install_demo_tool_relocates_prefix(demo_channel: DemoChannel, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    records = rattler_install(prefix, ["demo-tool"], [demo_channel.url], cache_dir=tmp_path / "cache")
    assert sorted(f"{r.name.normalized}={r.version}" for r in records) == [
        "demo-data=1.0", "demo-tool=1.0", "libdemo=2.0",
    ]  # fmt: skip

    # binary placeholder in libdemo.so.2.0.0, rewritten and NUL-padded by the installer
    assert run(prefix / "bin" / "demo-tool") == f"demo-tool 2.0 prefix={prefix}\n"
    assert run(prefix / "bin" / "demo-config") == f"{prefix}\n"
    pc = (prefix / "lib" / "pkgconfig" / "demo.pc").read_text()
    assert f"prefix={prefix}\n" in pc and demo_channel.build_prefix not in pc
    assert os.readlink(prefix / "lib" / "libdemo.so") == "libdemo.so.2"
    assert os.readlink(prefix / "lib" / "libdemo.so.2") == "libdemo.so.2.0.0"
    assert not (prefix / "lib" / "libdemo.so.2.0.0").is_symlink()
    assert (prefix / "share" / "demo-data" / "data.txt").read_text() == "demo data 1.0\n"
    assert len(list((prefix / "conda-meta").glob("*.json"))) == 3


def test_demo_tool_runs_against_downgraded_libdemo(demo_channel: DemoChannel, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    rattler_install(prefix, ["demo-tool", "demo-needs-old"], [demo_channel.url], cache_dir=tmp_path / "c")
    assert run(prefix / "bin" / "demo-tool") == f"demo-tool 1.0 prefix={prefix}\n"


def test_demo_conflict_is_unsatisfiable(demo_channel: DemoChannel, tmp_path: Path) -> None:
    with pytest.raises(SolverError, match="libdemo"):
        rattler_install(tmp_path / "env", ["demo-conflict"], [demo_channel.url], cache_dir=tmp_path / "c")


def test_binary_placeholder_needs_prefix_no_longer_than_placeholder(
    demo_channel: DemoChannel, tmp_path: Path
) -> None:
    prefix = tmp_path / ("p" * (len(demo_channel.build_prefix) - len(str(tmp_path))))
    assert len(str(prefix)) > len(demo_channel.build_prefix)
    with pytest.raises(InstallerError, match="cannot be longer than the placeholder"):
        rattler_install(prefix, ["libdemo"], [demo_channel.url], cache_dir=tmp_path / "c")


def test_python_package_is_a_venv_with_pip(demo_channel: DemoChannel, tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    rattler_install(prefix, ["python"], [demo_channel.url], cache_dir=tmp_path / "cache")
    python = prefix / "bin" / "python"
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert str(site / "pip") in run(python, "-m", "pip", "--version")
    assert run(python, "-c", "import sys; print(sys.prefix)") == f"{prefix}\n"
    assert str(prefix) in (prefix / "pyvenv.cfg").read_text()
    # the console script's shebang was relocated too
    assert str(site / "pip") in run(prefix / "bin" / "pip", "--version")

    run(python, "-m", "pip", "install", "--no-index", demo_channel.wheel)
    assert (
        run(python, "-c", "import demo_pip_pkg; print(demo_pip_pkg.hello())") == "hello from demo_pip_pkg\n"
    )
    assert (site / "demo_pip_pkg" / "__init__.py").is_file()

"""Recipe sources against real things: an HTTP server, git repositories, pip and PyPI, hostile tarballs."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.sources.cache import SourceCache
from pmpm.sources.extract import extract_archive
from pmpm.sources.spec import FetchedSource, SourceSpec

WHERE = "recipes/demo.yml"
SIX_SHA256 = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"


@pytest.fixture(autouse=True)
def _no_mirrors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PMPM_SOURCE_MIRRORS", raising=False)


@pytest.fixture
def cache(tmp_path: Path) -> SourceCache:
    return SourceCache(tmp_path / "cache")


def spec(data: dict, base_dir: Path | None = None) -> SourceSpec:
    return SourceSpec.from_dict(data, where=WHERE, base_dir=base_dir or Path("/"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_files(cache: SourceCache) -> list[Path]:
    return sorted(p for p in cache.root.rglob("*") if p.is_file())


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def tarball(tmp_path: Path) -> Path:
    """A typical release tarball: one ``demo-1.0/`` folder, an executable ``configure``."""
    src = tmp_path / "make" / "demo-1.0"
    (src / "src").mkdir(parents=True)
    (src / "src" / "demo.c").write_text("int main(void) { return 0; }\n")
    (src / "configure").write_text("#!/bin/sh\n")
    (src / "configure").chmod(0o755)
    out = tmp_path / "dist" / "demo-1.0.tar.gz"
    out.parent.mkdir()
    with tarfile.open(out, "w:gz") as tf:
        tf.add(src, arcname="demo-1.0")
    return out


# -- an HTTP server on 127.0.0.1 ------------------------------------------------------------------


@dataclass
class Served:
    base: str
    requests: list[str] = field(default_factory=list)


@contextmanager
def http_server(folder: Path) -> Iterator[Served]:
    served = Served("")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep pytest's output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- url sources ----------------------------------------------------------------------------------


def test_url_source_is_downloaded_once_then_served_from_the_cache(cache, tarball, tmp_path):
    with http_server(tarball.parent) as served:
        source = spec({"url": f"{served.base}/demo-1.0.tar.gz", "sha256": sha256(tarball)})
        fetched = cache.fetch(source)
    assert served.requests == ["/demo-1.0.tar.gz"]
    assert fetched.identity == f"sha256:{sha256(tarball)}"
    assert fetched.origin == source.urls[0]
    assert fetched.archive == cache.root / "by-sha256" / sha256(tarball) / "demo-1.0.tar.gz"
    assert fetched.archive.read_bytes() == tarball.read_bytes()

    again = cache.fetch(source)  # the server is gone: only the cache can answer
    assert again == fetched

    top = cache.unpack(again, tmp_path / "work" / "src")
    assert top == tmp_path / "work" / "src" / "demo-1.0"
    assert (top / "src" / "demo.c").read_text().startswith("int main")
    assert os.access(top / "configure", os.X_OK)


def test_second_mirror_is_used_when_the_first_fails(cache, tarball):
    with http_server(tarball.parent) as served:
        urls = [f"{served.base}/gone/demo-1.0.tar.gz", f"{served.base}/demo-1.0.tar.gz"]
        fetched = cache.fetch(spec({"url": urls, "sha256": sha256(tarball)}))
    assert fetched.origin == urls[1]
    assert served.requests == ["/gone/demo-1.0.tar.gz", "/demo-1.0.tar.gz"]


def test_wrong_sha256_is_refused_and_leaves_nothing_in_the_cache(cache, tarball):
    wrong = "0" * 64
    with http_server(tarball.parent) as served:
        url = f"{served.base}/demo-1.0.tar.gz"
        with pytest.raises(PmpmError) as err:
            cache.fetch(spec({"url": url, "sha256": wrong}))
    message = str(err.value)
    assert message.startswith(f"{WHERE}: ")
    assert url in message
    assert f"expected {wrong}, got {sha256(tarball)}" in message
    assert "update sha256" in err.value.hint
    assert cached_files(cache) == []


def test_every_failed_mirror_is_listed_with_its_reason(cache, tarball, tmp_path):
    with http_server(tmp_path) as stopped:
        refused = f"{stopped.base}/demo-1.0.tar.gz"  # nobody listens there any more
    with http_server(tarball.parent) as served:
        missing = f"{served.base}/missing.tar.gz"
        with pytest.raises(PmpmError) as err:
            cache.fetch(spec({"url": [missing, refused], "sha256": sha256(tarball)}))
    lines = [line.strip() for line in str(err.value).splitlines()]
    assert lines[0] == f"{WHERE}: could not fetch the source from any of its URLs:"
    assert lines[1] == f"{missing}: HTTP 404 File not found"
    assert lines[2] == f"{refused}: cannot connect: [Errno 111] Connection refused"


def test_file_url_works_offline(cache, tarball):
    fetched = cache.fetch(spec({"url": tarball.as_uri(), "sha256": sha256(tarball)}), offline=True)
    assert fetched.archive is not None and fetched.archive.read_bytes() == tarball.read_bytes()
    assert fetched.origin == tarball.as_uri()


def test_url_without_sha256_is_an_error_telling_how_to_get_one():
    with pytest.raises(PmpmError) as err:
        spec({"url": "https://example.org/demo-1.0.tar.gz"})
    assert "needs sha256" in str(err.value)
    assert "sha256sum" in err.value.hint
    assert err.value.where == WHERE


def test_offline_cache_miss_says_how_to_seed_the_cache(cache):
    with pytest.raises(PmpmError) as err:
        cache.fetch(spec({"url": "https://example.org/demo-1.0.tar.gz", "sha256": "a" * 64}), offline=True)
    assert "not in the source cache" in str(err.value)
    assert "import_dir" in err.value.hint and "PMPM_SOURCE_MIRRORS" in err.value.hint


def test_mirror_folder_answers_without_network(cache, tarball, tmp_path, monkeypatch):
    elsewhere = tmp_path / "mirror" / "nested"
    elsewhere.mkdir(parents=True)
    (elsewhere / "renamed.tgz").write_bytes(tarball.read_bytes())
    (elsewhere / "unrelated.txt").write_text("not it\n")
    monkeypatch.setenv("PMPM_SOURCE_MIRRORS", f"{tmp_path / 'absent'}:{tmp_path / 'mirror'}")
    # Online, with a URL nobody listens on: any download attempt would fail.
    source = spec({"url": "http://127.0.0.1:9/demo-1.0.tar.gz", "sha256": sha256(tarball)})
    fetched = cache.fetch(source)
    assert fetched.archive is not None and fetched.archive.parent.parent == cache.root / "by-sha256"
    assert cache.fetch(source, offline=True) == fetched


def test_import_dir_seeds_an_offline_cache(cache, tarball, tmp_path):
    extra = tarball.parent / "notes.txt"
    extra.write_text("hello\n")
    added = cache.import_dir(tarball.parent)
    assert added == {extra: sha256(extra), tarball: sha256(tarball)}
    assert cache.add_file(tarball) == sha256(tarball)  # adding twice is harmless
    fetched = cache.fetch(
        spec({"url": "https://example.org/x/demo-1.0.tar.gz", "sha256": sha256(tarball)}), offline=True
    )
    assert fetched.archive is not None and fetched.archive.read_bytes() == tarball.read_bytes()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"url": "x", "git": "y"}, "exactly one of url, git, pypi, path; found url and git"),
        ({"ref": "main"}, "found none"),
        ({"url": "ftp://h/x.tgz", "sha256": "a" * 64}, "unsupported URL"),
        ({"url": "https://h/x.tgz", "sha256": "abc"}, "64 hex digits"),
        ({"url": "https://h/x.tgz", "sha256": "a" * 64, "md5": "x"}, "unknown key md5"),
        ({"git": "https://h/r.git"}, "needs ref"),
        ({"git": "https://h/r.git", "ref": 1.1}, "ref must be"),
        ({"pypi": "six>=1"}, "pinned as 'name==version'"),
        ({"pypi": "six[x]==1.16.0"}, "pinned as 'name==version'"),
        ("https://h/x.tgz", "must be a mapping"),
    ],
)
def test_bad_source_entries_name_the_recipe(data, expected):
    with pytest.raises(PmpmError) as err:
        spec(data)
    assert expected in str(err.value)
    assert str(err.value).startswith(f"{WHERE}: source: ")


def test_spec_paths_are_relative_to_the_recipe(tmp_path):
    assert spec({"path": "src"}, tmp_path).path == tmp_path / "src"
    assert spec({"git": "../repo", "ref": "v1"}, tmp_path / "r").git == str(tmp_path / "repo")
    assert spec({"git": "git@host:org/repo.git", "ref": "v1"}).git == "git@host:org/repo.git"
    assert spec({"url": "https://h/x", "sha256": "SHA256:" + "A" * 64}).sha256 == "a" * 64


# -- git sources ----------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=pmpm", "-c", "user.email=pmpm@example.invalid"]
    signing = ["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]
    result = subprocess.run(
        ["git", "-C", str(repo), *identity, *signing, *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@dataclass
class Repo:
    path: Path
    tagged: str  # the commit tagged v1 (annotated tag)
    head: str  # main, one commit later


def commit_file(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"write {name}")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    path = tmp_path / "upstream"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    tagged = commit_file(path, "version.txt", "1\n")
    git(path, "tag", "-a", "v1", "-m", "release 1")
    head = commit_file(path, "version.txt", "2\n")
    return Repo(path, tagged, head)


def test_git_refs_resolve_to_commits_and_export_without_dot_git(cache, repo, tmp_path):
    v1 = cache.fetch(spec({"git": "../upstream", "ref": "v1"}, tmp_path / "recipes"))
    assert v1.identity == f"git:{repo.tagged}"
    assert v1.origin == str(repo.path) and v1.archive is None
    main = cache.fetch(spec({"git": str(repo.path), "ref": "main"}))
    assert main.identity == f"git:{repo.head}"
    pinned = cache.fetch(spec({"git": str(repo.path), "ref": repo.tagged}))
    assert pinned.identity == v1.identity

    top = cache.unpack(v1, tmp_path / "work")
    assert top == tmp_path / "work"
    assert tree(top) == {"version.txt"}
    assert (top / "version.txt").read_text() == "1\n"
    assert (cache.unpack(main, tmp_path / "work") / "version.txt").read_text() == "2\n"


def test_unknown_git_ref_is_a_clear_error(cache, repo):
    with pytest.raises(PmpmError) as err:
        cache.fetch(spec({"git": str(repo.path), "ref": "v9"}))
    assert "ref 'v9' not found" in str(err.value) and str(repo.path) in str(err.value)
    assert "main, v1" in err.value.hint


def test_git_offline_uses_the_mirror_from_a_first_fetch(cache, repo, tmp_path):
    source = spec({"git": str(repo.path), "ref": "main"})
    with pytest.raises(PmpmError, match="offline"):
        cache.fetch(source, offline=True)
    first = cache.fetch(source)

    commit_file(repo.path, "later.txt", "not fetched\n")
    repo.path.rename(tmp_path / "moved")  # offline must not need the upstream at all
    assert cache.fetch(source, offline=True) == first
    tagged = cache.fetch(spec({"git": str(repo.path), "ref": "v1"}), offline=True)
    assert tagged.identity == f"git:{repo.tagged}"
    assert tree(cache.unpack(first, tmp_path / "work")) == {"version.txt"}


def test_git_fetch_online_sees_new_commits(cache, repo):
    source = spec({"git": str(repo.path), "ref": "main"})
    assert cache.fetch(source).identity == f"git:{repo.head}"
    newer = commit_file(repo.path, "later.txt", "new\n")
    assert cache.fetch(source).identity == f"git:{newer}"


# -- pypi sources ---------------------------------------------------------------------------------

_NETWORK_TROUBLE = (
    "No matching distribution",
    "Could not find a version",
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeout",
)


def test_pypi_sdist_is_fetched_with_pip_and_identified_by_sha256(cache, tmp_path):
    source = spec({"pypi": "six==1.16.0"})
    try:
        fetched = cache.fetch(source, python=sys.executable)
    except PmpmError as exc:
        if any(sign in str(exc) for sign in _NETWORK_TROUBLE):
            pytest.skip(f"pip download cannot reach an index: {str(exc).splitlines()[-1]}")
        raise
    assert fetched.identity == f"sha256:{SIX_SHA256}"
    assert fetched.archive is not None and fetched.archive.name == "six-1.16.0.tar.gz"
    assert sha256(fetched.archive) == SIX_SHA256
    assert fetched.origin == "six==1.16.0"
    # Afterwards the cache answers: no pip (a missing interpreter would fail), no network.
    assert cache.fetch(source, python="/nonexistent/python") == fetched
    assert cache.fetch(source, offline=True) == fetched
    top = cache.unpack(fetched, tmp_path / "work")
    assert top.name == "six-1.16.0" and (top / "six.py").is_file()


def test_pypi_offline_finds_a_dropped_sdist_by_name(cache, tarball, tmp_path, monkeypatch):
    folder = tmp_path / "sdists"
    folder.mkdir()
    (folder / "Demo_Pkg-1.0.tar.gz").write_bytes(tarball.read_bytes())
    monkeypatch.setenv("PMPM_SOURCE_MIRRORS", str(folder))
    fetched = cache.fetch(spec({"pypi": "demo-pkg==1.0"}), offline=True)
    assert fetched.identity == f"sha256:{sha256(tarball)}"
    with pytest.raises(PmpmError, match="not in the source cache"):
        cache.fetch(spec({"pypi": "demo-pkg==2.0"}), offline=True)


# -- path sources ---------------------------------------------------------------------------------


def test_path_identity_follows_content_not_timestamps(cache, tmp_path):
    src = tmp_path / "project"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "setup.py").write_text("# setup\n")
    source = spec({"path": "project"}, tmp_path)

    def identity() -> str:
        fetched = cache.fetch(source)
        assert fetched.identity.startswith("tree:") and fetched.archive is None
        return fetched.identity

    first = identity()
    os.utime(src / "setup.py", (1, 1))
    assert identity() == first
    for ignored in (".git/HEAD", "pkg/__pycache__/mod.cpython-311.pyc", "build/lib/mod.py", "docs/_build/x"):
        (src / ignored).parent.mkdir(parents=True, exist_ok=True)
        (src / ignored).write_text("ignored\n")
    assert identity() != first  # docs/ itself is a new folder
    with_docs = identity()
    (src / "docs" / "_build" / "x").write_text("changed\n")
    assert identity() == with_docs

    (src / "pkg" / "mod.py").write_text("x = 2\n")
    changed = identity()
    assert changed != with_docs
    (src / "setup.py").chmod(0o755)
    assert identity() != changed

    fetched = cache.fetch(source)
    assert cache.unpack(fetched, tmp_path / "work") == src
    assert not (tmp_path / "work").exists()


def test_missing_path_is_an_error(cache, tmp_path):
    with pytest.raises(PmpmError, match="does not exist"):
        cache.fetch(spec({"path": "nope"}, tmp_path))


# -- safe extraction ------------------------------------------------------------------------------


def reg(name: str, data: bytes = b"evil\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def fifo(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info, None


def make_tar(path: Path, members: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the destination that hostile archives aim at."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "secret").write_text("secret\n")
    return path


HOSTILE = {
    "absolute": (
        lambda out: [reg("ok.txt", b"ok\n"), reg(f"{out}/abs-evil")],
        "{out}/abs-evil",
        "absolute path",
    ),
    "dotdot": (lambda out: [reg("pkg/../../outside/evil")], "pkg/../../outside/evil", "'..'"),
    "symlink-abs-then-file": (lambda out: [link("etc", str(out)), reg("etc/evil")], "etc", "absolute path"),
    "symlink-up-then-file": (lambda out: [link("up", "../outside"), reg("up/evil")], "up", "outside"),
    "symlink-chain": (
        lambda out: [link("a", "."), link("b", "a/../outside/secret")],
        "b",
        "resolves outside",
    ),
    "hardlink-up": (lambda out: [link("hl", "../outside/secret", tarfile.LNKTYPE)], "hl", "'..'"),
    "hardlink-abs": (lambda out: [link("hl", f"{out}/secret", tarfile.LNKTYPE)], "hl", "absolute"),
    "fifo": (lambda out: [reg("ok.txt", b"ok\n"), fifo("pipe")], "pipe", "is a fifo"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_tar_members_are_refused_by_name(case, tmp_path, outside):
    members, member, why = HOSTILE[case]
    archive = make_tar(tmp_path / "archives" / f"{case}.tar.gz", members(outside))
    before = tree(tmp_path)
    with pytest.raises(PmpmError) as err:
        extract_archive(archive, tmp_path / "work" / "src", where=WHERE)
    assert f"refusing to unpack {case}.tar.gz: member {member.format(out=outside)!r}" in str(err.value)
    assert why in str(err.value)
    assert err.value.where == WHERE
    assert tree(tmp_path) == before | {"work"}  # no trace: not even the temp folder
    assert list((tmp_path / "work").iterdir()) == []
    assert (outside / "secret").read_text() == "secret\n"


def test_zip_with_dotdot_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("fine.txt", "ok\n")
        zf.writestr("../x", "evil\n")
    with pytest.raises(PmpmError, match=r"member '\.\./x' has a '\.\.' component"):
        extract_archive(archive, tmp_path / "work" / "src")
    assert not (tmp_path / "x").exists() and list((tmp_path / "work").iterdir()) == []


def test_good_archives_unpack_to_their_top_folder(tmp_path, tarball):
    dest = tmp_path / "work" / "src"
    top = extract_archive(tarball, dest)
    assert top == dest / "demo-1.0"
    assert tree(top) == {"configure", "src", "src/demo.c"}

    # Unpacking again replaces the folder whole: no stale file survives.
    (top / "stale.o").write_text("old build\n")
    assert extract_archive(tarball, dest) == top and not (top / "stale.o").exists()

    flat = make_tar(
        tmp_path / "flat.tar.gz",
        [
            reg("a.txt", b"a\n"),
            link("b.txt", "a.txt"),
            reg("lib/x", b"x\n"),
            link("lib/y", "x", tarfile.LNKTYPE),
        ],
    )
    # tar hard links name the archive path: lib/y -> x is refused since x was never unpacked
    with pytest.raises(PmpmError, match="'lib/y' is a hard link to 'x'"):
        extract_archive(flat, dest)
    flat = make_tar(
        tmp_path / "flat2.tar.gz",
        [
            reg("a.txt", b"a\n"),
            link("b.txt", "a.txt"),
            reg("lib/x", b"x\n"),
            link("lib/y", "lib/x", tarfile.LNKTYPE),
        ],
    )
    assert extract_archive(flat, dest) == dest
    assert (dest / "b.txt").read_text() == "a\n" and os.readlink(dest / "b.txt") == "a.txt"
    assert os.path.samefile(dest / "lib" / "x", dest / "lib" / "y")

    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pkg-2/", "")
        zf.writestr("pkg-2/README", "hi\n")
    assert (extract_archive(archive, tmp_path / "z") / "README").read_text() == "hi\n"


def test_corrupt_archive_is_a_clear_error(tmp_path, tarball):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(tarball.read_bytes()[:200])
    with pytest.raises(PmpmError, match="not a readable tar or zip archive"):
        extract_archive(broken, tmp_path / "work")


def test_unpack_of_a_fetched_url_source_uses_the_safe_extractor(cache, tmp_path, outside):
    archive = make_tar(tmp_path / "dist" / "evil.tar.gz", [reg("../evil")])
    fetched = cache.fetch(spec({"url": archive.as_uri(), "sha256": sha256(archive)}))
    assert isinstance(fetched, FetchedSource)
    with pytest.raises(PmpmError, match=r"member '\.\./evil'") as err:
        cache.unpack(fetched, tmp_path / "work")
    assert err.value.where == WHERE
    assert not (tmp_path / "evil").exists()

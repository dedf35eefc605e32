"""pmpm.fsutil: the names files are written under before they are renamed into place."""

from __future__ import annotations

import os
from pathlib import Path

from pmpm.fsutil import temp_beside


def test_temp_names_differ_within_one_process_and_name_the_host(tmp_path: Path) -> None:
    dest = tmp_path / "pkg-1.0-h1.conda"
    names = {temp_beside(dest) for _ in range(50)}
    assert len(names) == 50  # one process, several threads or calls: never the same name
    for name in names:
        assert name.parent == tmp_path and name.name.startswith(".pkg-1.0-h1.conda.")
        assert os.uname().nodename in name.name and str(os.getpid()) in name.name


def test_a_file_written_there_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)  # a group-shared cache
    try:
        tmp = temp_beside(tmp_path / "x")
        tmp.write_bytes(b"x")
        os.replace(tmp, tmp_path / "x")
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == 0o664

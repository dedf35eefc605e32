"""What the env file said that commands run later on PREFIX alone need: the name and MPI module.

``pmpm module PREFIX`` and the Jupyter kernel are made without the env file at hand, so a run
stores the few facts they use in pmpm's folder of the environment (``env.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from pmpm.env.layout import Layout
from pmpm.fsutil import atomic_write_text

_FILE = "env.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass
class EnvInfo:
    name: str | None = None  # the env file's `name:`
    mpi_module: str | None = None  # `_pmpm.mpi: {module: ...}`
    modules: dict[str, str] = field(default_factory=dict)  # `_pmpm.modules`

    @classmethod
    def from_spec(cls, spec) -> EnvInfo:
        mpi = spec.pmpm.mpi
        return cls(
            name=spec.name,
            mpi_module=mpi.get("module") if isinstance(mpi, dict) else None,
            modules=dict(spec.pmpm.modules),
        )


def save(layout: Layout, info: EnvInfo) -> None:
    """Store ``info``; the file is left alone when nothing changed."""
    path = layout.meta_dir / _FILE
    text = json.dumps(asdict(info), indent=1, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    atomic_write_text(path, text)


def read(layout: Layout) -> EnvInfo:
    try:
        data = json.loads((layout.meta_dir / _FILE).read_text())
        return EnvInfo(
            name=data.get("name"), mpi_module=data.get("mpi_module"), modules=dict(data.get("modules") or {})
        )
    except (OSError, ValueError, TypeError, AttributeError):
        return EnvInfo()


def env_name(layout: Layout, info: EnvInfo | None = None) -> str:
    """The env file's ``name:``, else the folder name; safe as a module or kernel name part."""
    info = info or read(layout)
    name = _UNSAFE.sub("_", info.name or layout.root.name).strip("._") or "env"
    return name

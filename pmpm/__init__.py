"""pmpm: environments for HPC from one YAML file.

The top-level package stays import-light on purpose: ``pmpm conda_install`` on an up-to-date
prefix must finish in a fraction of a second, so heavy modules (py-rattler, archspec, rich) are
imported only by the code paths that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: the pinning API for experiments (``pmpm.record.pin``), imported on first use so that ``import pmpm``
#: (and the no-op path of conda_install) stays as cheap as it was
_PINNING = ("environment_id", "require", "provenance", "EnvironmentMismatch")
__all__ = ["__version__", *_PINNING]


def __getattr__(name: str):
    if name in _PINNING:
        from pmpm.record import pin

        return getattr(pin, name)
    raise AttributeError(f"module 'pmpm' has no attribute {name!r}")

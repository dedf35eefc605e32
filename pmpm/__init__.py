"""pmpm: environments for HPC from one YAML file.

The top-level package stays import-light on purpose: ``pmpm conda_install`` on an up-to-date
prefix must finish in a fraction of a second, so heavy modules (py-rattler, archspec, rich) are
imported only by the code paths that need them.
"""

from __future__ import annotations

__version__ = "0.1.0"

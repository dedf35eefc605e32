"""What a build job runs first: can this node's CPU run the target the job was sent here for?

Slurm routes a target's job by node features (``--constraint``), and features are labels an
admin typed: a node advertising ``zen4`` may well be a ``haswell``. Binaries built there would
be tuned for the wrong CPU (or crash in their own tests with illegal instructions), so the job
stops before building anything and names the node, the target and the node's real CPU.

Compatibility is archspec's: the host CPU runs target T when it is T or T is one of its
ancestors (``icelake`` runs ``x86_64_v4``, ``skylake`` and ``x86_64``, not ``zen4``).

Run as ``python -m pmpm.cluster.nodecheck TARGET``; it exits with :data:`EXIT_WRONG_NODE` on a
refusal, so the submitting pmpm can tell a lying feature map from a failed build.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING

from pmpm.errors import PmpmError, run_reporting
from pmpm.host.detect import resolve_target
from pmpm.host.target import host_microarchitecture

if TYPE_CHECKING:
    from archspec.cpu import Microarchitecture

EXIT_WRONG_NODE = 97  # not one that make (2), compilers (1) or signals (128+N) use


def node_name() -> str:
    """Slurm's name for this node (inside a job ``hostname`` may be the same for every node)."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def check_node(target: str, *, host: Microarchitecture | None = None, node: str | None = None) -> str:
    """The target's archspec name when this node's CPU (``host``: detected when not given) can
    run it; a :class:`PmpmError` naming node, target and CPU when it cannot."""
    wanted = resolve_target(target)
    cpu = host if host is not None else host_microarchitecture()
    if wanted == cpu or wanted in cpu.ancestors:
        return str(wanted.name)
    where = node or node_name()
    runs = ", ".join([cpu.name, *(a.name for a in cpu.ancestors)])
    raise PmpmError(
        f"node {where} cannot build for target {wanted.name}: its CPU is {cpu.name} "
        f"({cpu.vendor}, {cpu.family.name}), which cannot run {wanted.name} binaries",
        hint=f"the Slurm feature map sends {wanted.name} jobs to nodes that are not {wanted.name}: "
        f"fix slurm.targets.{wanted.name} (this {cpu.name} node can run: {runs})",
        exit_code=EXIT_WRONG_NODE,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m pmpm.cluster.nodecheck TARGET``: one line saying why the node is fit or not."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pmpm.cluster.nodecheck TARGET", file=sys.stderr)
        return 2

    def run() -> int:
        name = check_node(args[0])
        print(f"node {node_name()} can run target {name}", flush=True)
        return 0

    return run_reporting(run)


if __name__ == "__main__":
    sys.exit(main())

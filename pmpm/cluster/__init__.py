"""Building on a cluster's compute nodes through its scheduler (issue #13).

:mod:`pmpm.cluster.settings` reads the ``_pmpm: {slurm: ...}`` block, :mod:`pmpm.cluster.slurm`
drives Slurm through its own commands (``sbatch``, ``squeue``, ``scontrol``, ``scancel``) and
:mod:`pmpm.cluster.nodecheck` is what a build job runs first: it refuses when the node's CPU
cannot run the target the job was routed there for.
"""

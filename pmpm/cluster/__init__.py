"""Building on a cluster's compute nodes through its scheduler (issue #13).

:mod:`pmpm.cluster.settings` reads the ``_pmpm: {slurm: ...}`` block, :mod:`pmpm.cluster.slurm`
drives Slurm through its own commands (``sbatch``, ``squeue``, ``scontrol``, ``scancel``),
:mod:`pmpm.cluster.build_jobs` is ``--slurm`` (one job per target, submitted at the run's build
stage, waited for, checked), :mod:`pmpm.cluster.build_job` is what each job runs on its node, and
:mod:`pmpm.cluster.nodecheck` is what a job does first: it refuses when the node's CPU cannot
run the target the job was routed there for.
"""

"""Run the out-of-date stages of ``dvc.yaml`` in parallel, N jobs at a time, and record them in dvc.lock.

    python -m pipeline.grid --jobs 4                     # this machine: one GPU per job, or cores shared out
    python -m pipeline.grid --executor slurm --jobs 32   # one sbatch job per run (settings: grid.slurm)
    python -m pipeline.grid --dry-run                    # what would run, and the sbatch script
    python -m pipeline.grid 'train@kvasir-*'             # only these stages (and what they need)

``dvc repro`` runs one stage at a time. This command reads the stage graph from DVC itself (the
resolved ``dvc.yaml``, ``dvc.lock`` and DVC's own ``Stage.changed()``), walks it in the order
``dvc repro`` would, and runs the stages that are out of date as jobs of a submitit executor
(:mod:`pipeline.grid.executors`): a stage starts as soon as every stage it depends on is up to date, and a
train -> evaluate pair (a stage followed by the one stage that needs only it; with its transfers, the stages
that need only it) runs as one job. Each job
runs the stage's own ``cmd`` from the DVC index; before it starts, the coordinator removes the stage's
outputs (``Stage.remove_outs``, as ``dvc repro`` does) or restores them from DVC's run cache when an
identical run is recorded there.

Only this coordinating process writes dvc.lock: when a job finishes, its successful stages are committed
one job at a time (``Repo.commit(stage, force=True)``, i.e. ``dvc commit -f``) under DVC's repository
lock. DVC rewrites dvc.lock in place, so each commit is journalled first (a copy of dvc.lock and the
stage names under ``.dvc/tmp/grid/``): a grid killed during a commit is rolled back and the commit
redone by the next run. A failed job leaves its stages (and what depends on them) out of date; the
command lists the failures with the ends of their logs and exits with status 1. A killed grid's jobs
notice that its heartbeat stopped and end their commands; the next run goes on with what is left. A job that
SLURM requeues or preempts (or submitit requeues ahead of its time limit) is waited for: it restarts with its
first unfinished stage, and a training continues from its resume.pt; the summary counts the requeues and the
epochs they lost.


On a CPU, the cores of a job that ends while none waits are lent to the jobs still running: each CPU job's thread
budget is a file that its training reads at every epoch boundary (:mod:`engine.threads`). Jobs are queued longest
first, by an estimate measured on this machine (:mod:`pipeline.grid.estimate`: a few optimiser steps of each
model, cached per machine); the summary shows each estimate next to the real time.

The package, by concept: ``dvc_adapter`` (the only module that uses DVC's Python API), ``dvcrepo`` (the grid's
DVC side: plan, changed stages, run cache, journalled commits), ``scheduler`` (which job next, where, with how many
cores), ``estimate`` (how long each training takes here), ``lifecycle`` and ``jobs`` (a job from submission to its
end; ``jobs`` is what runs inside it), ``executors`` (submitit's local, SLURM and debug executors), ``slurm``
(sbatch options, job states with or without SLURM accounting, the sbatch file), ``monitor`` and ``outputs``
(progress from each training's progress.json, summary) and ``coordinator`` (composes them: the loop and the
command line).
"""

from pipeline.grid.coordinator import Grid, dry_run, main
from pipeline.grid.monitor import Outcome, epoch_progress

__all__ = ["Grid", "Outcome", "dry_run", "epoch_progress", "main"]

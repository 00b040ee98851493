"""The job of :mod:`pipeline.grid`: a chain of DVC stage commands, run by any submitit executor.

:class:`ChainRunner` runs each stage's command exactly as ``dvc repro`` would (the resolved ``cmd`` from the DVC
index, through ``$SHELL -c``, in the stage's ``wdir``, with ``DVC_ROOT`` and ``DVC_STAGE`` set) and writes its
stdout and stderr to one log file per stage. It watches the coordinator's heartbeat file and stops its command
when the coordinator is gone (killed) or a newer grid has started, so that no orphaned run keeps writing into
the workspace.

A job may run more than once: SLURM restarts a job it requeued or preempted, and submitit requeues a job warned
of its time limit. The job's record (:func:`read_record`, one JSON file per job that only the job writes) lists
its attempts (host, pid, SLURM job id and restart count, why it stopped) and the stages it has finished, so that
a restarted job goes on with the first unfinished stage (a training continues from its ``resume.pt``); the
coordinator reads the record for the job's pid and its number of attempts.

Signals:
- SIGTERM (``scancel``, a requeue or preemption on SLURM; the coordinator cancelling a local job): the command
  gets SIGTERM too (a training saves resume.pt at the end of its epoch, see :mod:`engine.progress`) and the job
  waits for it. On SLURM the job then exits without a result: SLURM either restarts it (requeued, preempted)
  and the coordinator keeps waiting, or ends it (cancelled); elsewhere it returns the result "cancelled".
- SIGUSR2 (SLURM's warning ahead of the time limit, ``--signal``): submitit calls :meth:`ChainRunner.checkpoint`,
  which passes the signal on, gives the command ``stop_grace_s`` seconds to save and end, and hands submitit the
  same job to requeue. Stage commands ignore SIGUSR2 unless they handle it (the training does).

Every job process imports this module: it uses the standard library, psutil (a DVC dependency) and, to requeue,
submitit.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.fsutil import atomic_write_json


@dataclass(frozen=True)
class StageCommand:
    """One DVC stage as a job runs it."""

    name: str  # DVC addressing, e.g. train@synthetic-unet-42
    cmds: tuple[str, ...]  # the stage's resolved cmd (a list in dvc.yaml gives several)
    wdir: str
    log: str  # stdout and stderr of the commands


@dataclass(frozen=True)
class ChainJob:
    """What the coordinator submits: stages to run in order, and how."""

    stages: tuple[StageCommand, ...]
    root: str  # DVC_ROOT
    env: dict[str, str]  # added to the job's environment (thread limits)
    path_prefix: str  # put first on PATH: the folder of the coordinator's interpreter
    heartbeat: str
    run_id: str
    orphan_timeout_s: float
    record: str = ""  # the job's record (attempts, finished stages); "" for none
    stop_grace_s: float = 60.0  # how long a stopped command may take to save and end


@dataclass
class StageResult:
    name: str
    returncode: int | None = None  # None: not started
    start: float | None = None
    end: float | None = None


@dataclass
class ChainResult:
    host: str
    cuda_visible_devices: str | None
    threads: str | None
    stages: list[StageResult] = field(default_factory=list)
    stopped: str | None = None  # why the job stopped its command (cancelled, or the coordinator is gone)
    attempts: int = 1  # runs of the job: 1 + the times it was requeued


def read_record(path: str | os.PathLike) -> dict:
    """A job's record: ``{"attempts": [{start, end, host, pid, pid_started, slurm_job_id, restart, stopped}],
    "stages": {name: {returncode, start, end}}}`` (empty lists and dict before the job starts)."""
    import json

    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    return {"attempts": list(info.get("attempts", [])), "stages": dict(info.get("stages", {}))}


def read_heartbeat(path: str | os.PathLike) -> tuple[str, str] | None:
    """``(run_id, counter)`` from the coordinator's heartbeat file, ``None`` when unreadable."""
    try:
        run_id, counter = Path(path).read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    return run_id, counter


class _Watchdog(threading.Thread):
    """Stops the job's current command when the coordinator's heartbeat stops or names another grid."""

    def __init__(self, job: ChainJob, stop_command) -> None:
        super().__init__(daemon=True, name="grid-watchdog")
        self.job, self.stop_command = job, stop_command
        self.reason: str | None = None
        self.finished = threading.Event()

    def check(self, last: tuple[str, str] | None, since: float) -> tuple[tuple[str, str] | None, float]:
        beat = read_heartbeat(self.job.heartbeat)
        now = time.monotonic()
        if beat is not None and beat[0] != self.job.run_id:
            self.reason = f"a newer grid ({beat[0]}) took over the workspace"
        elif beat != last:
            return beat, now
        elif now - since > self.job.orphan_timeout_s:
            self.reason = f"the coordinator's heartbeat stopped {now - since:.0f} s ago"
        return last, since

    def run(self) -> None:
        last, since = read_heartbeat(self.job.heartbeat), time.monotonic()
        interval = min(5.0, max(0.2, self.job.orphan_timeout_s / 4))
        while not self.finished.wait(interval):
            if self.reason is None:
                last, since = self.check(last, since)
            if self.reason:
                # again at every interval: a command started just as the reason was found is stopped too
                self.stop_command()


def _stage_preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
    """The command takes Ctrl-C as usual (the job ignores SIGINT), ignores SIGUSR2 unless it handles it (SLURM
    signals every process of the job), and on Linux it gets SIGTERM when the job process dies, even by SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Stopped(Exception):
    """SIGTERM: the job is cancelled (``scancel``, the coordinator stopping a local job) or, on SLURM, requeued."""


def _raise_stopped(signum, frame) -> None:  # noqa: ARG001
    raise _Stopped(signal.Signals(signum).name)


def _shell_argv(cmd: str) -> list[str]:
    """``cmd`` through the user's shell without its rc files, as ``dvc repro`` runs a stage command."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    opts = {"bash": ["--noprofile", "--norc"], "zsh": ["--no-rcs"]}.get(Path(shell).name.lower(), [])
    return [shell, *opts, "-c", cmd]


def terminate_tree(proc: subprocess.Popen | int, grace_s: float = 5.0) -> None:
    """SIGTERM a process (a Popen of ours, or a pid) and its descendants; SIGKILL what is left after
    ``grace_s``. A Popen is reaped by its own ``wait`` so that its return code stays right."""
    import psutil

    pid = proc if isinstance(proc, int) else proc.pid
    try:
        root = psutil.Process(pid)
        others = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    if isinstance(proc, int):
        others = [root, *others]
    else:
        proc.terminate()
    for p in others:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(others, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    if not isinstance(proc, int):
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exited(pid: int) -> bool:
    """Whether our child ``pid`` has ended, without reaping it (its Popen may be waiting for it)."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _signal_tree(pid: int, sig: int) -> None:
    import psutil

    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.NoSuchProcess:
            pass


def on_slurm() -> bool:
    """Whether this process is a SLURM job of submitit (SLURM restarts it when it is requeued)."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and "SLURM_JOB_ID" in os.environ


class ChainRunner:
    """What every executor runs: ``ChainRunner(job)()`` runs the job's stages and returns a :class:`ChainResult`
    (never raises for a failed stage). ``checkpoint`` is submitit's hook for SIGUSR2 (see the module docstring)."""

    def __init__(self, job: ChainJob) -> None:
        self.job = job
        self._proc: subprocess.Popen | None = None
        self._record = read_record(job.record) if job.record else {"attempts": [], "stages": {}}

    def __getstate__(self) -> dict:  # what submitit pickles: the job, not a running process
        return {"job": self.job}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["job"])

    def _save(self) -> None:
        if self.job.record:
            atomic_write_json(self.job.record, self._record)

    def _end_attempt(self, stopped: str | None) -> None:
        if self._record["attempts"] and self._record["attempts"][-1].get("end") is None:
            self._record["attempts"][-1].update(end=time.time(), stopped=stopped)
            self._save()

    def checkpoint(self, *args, **kwargs):
        """SIGUSR2 (the time limit is near): pass it on, let the command save and end, be requeued as is."""
        from submitit.helpers import DelayedSubmission

        proc = self._proc
        if proc is not None:
            _signal_tree(proc.pid, signal.SIGUSR2)
            deadline = time.monotonic() + self.job.stop_grace_s
            while not _exited(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not _exited(proc.pid):
                terminate_tree(proc.pid)
        self._end_attempt("SIGUSR2: time limit")
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the requeue signals this job: it is ending anyway
        return DelayedSubmission(ChainRunner(self.job))

    def __call__(self) -> ChainResult:
        job = self.job
        result = ChainResult(
            host=socket.gethostname(),
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            threads=job.env.get("OMP_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"),
            stages=[StageResult(st.name) for st in job.stages],
            attempts=len(self._record["attempts"]) + 1,
        )
        for sres in result.stages:  # finished by an earlier attempt of this job
            done = self._record["stages"].get(sres.name, {})
            if done.get("returncode") == 0:
                sres.returncode, sres.start, sres.end = 0, done.get("start"), done.get("end")
        beat = read_heartbeat(job.heartbeat)
        if beat is not None and beat[0] != job.run_id:
            # a queued cluster job of a grid that has since been replaced: run nothing
            result.stopped = f"a newer grid ({beat[0]}) took over the workspace"
            return result
        in_main = threading.current_thread() is threading.main_thread()
        old_term = signal.signal(signal.SIGTERM, _raise_stopped) if in_main else None
        try:
            self._start_attempt()  # the pid is published once SIGTERM is handled
            self._run_stages(result)
        except _Stopped as stop:
            result.stopped = f"cancelled ({stop})"
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, old_term)
        if result.stopped and result.stopped.startswith("cancelled") and on_slurm():
            # requeued, preempted or cancelled: SLURM restarts the job or ends it; no result either way
            self._end_attempt("SIGTERM")
            raise SystemExit(128 + signal.SIGTERM)
        self._end_attempt(result.stopped)
        return result

    def _start_attempt(self) -> None:
        import psutil

        attempt = {
            "start": time.time(),
            "end": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_started": psutil.Process().create_time(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
            "stopped": None,
        }
        self._record["attempts"].append(attempt)
        self._save()

    def _run_stages(self, result: ChainResult) -> None:
        job = self.job
        env = dict(os.environ)
        env.update(job.env)
        env["PATH"] = job.path_prefix + os.pathsep + env.get("PATH", "")
        env["DVC_ROOT"] = job.root
        watchdog = _Watchdog(job, lambda: [terminate_tree(p) for p in [self._proc] if p is not None])
        watchdog.start()
        again = len(self._record["attempts"]) > 1
        try:
            for stage, sres in zip(job.stages, result.stages, strict=True):
                if sres.returncode == 0:
                    continue
                env["DVC_STAGE"] = stage.name
                Path(stage.log).parent.mkdir(parents=True, exist_ok=True)
                # a stage restarted after a requeue keeps its first start: its wall time counts the wait
                sres.start = self._record["stages"].get(stage.name, {}).get("start") or time.time()
                self._record["stages"][stage.name] = {"returncode": None, "start": sres.start, "end": None}
                self._save()
                with open(stage.log, "a" if again else "w", encoding="utf-8") as log:
                    if again:
                        att = self._record["attempts"][-1]
                        log.write(f"\n[grid] attempt {len(self._record['attempts'])} on {att['host']}\n")
                    for cmd in stage.cmds:
                        if watchdog.reason:
                            break
                        log.write(f"> {cmd}\n")
                        log.flush()
                        self._proc = subprocess.Popen(
                            _shell_argv(cmd),
                            cwd=stage.wdir,
                            env=env,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            preexec_fn=_stage_preexec if os.name == "posix" else None,
                        )
                        try:
                            sres.returncode = self._proc.wait()
                        except _Stopped as stop:
                            # the command was signalled too (a training saves resume.pt): give it time to end,
                            # whatever signal comes next
                            if threading.current_thread() is threading.main_thread():
                                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                            terminate_tree(self._proc, grace_s=job.stop_grace_s)
                            sres.returncode = self._proc.returncode
                            result.stopped = f"cancelled ({stop})"
                        self._proc = None
                        if sres.returncode != 0:
                            break
                    result.stopped = result.stopped or watchdog.reason
                    if result.stopped:
                        log.write(f"\n[grid] command stopped: {result.stopped}\n")
                sres.end = time.time()
                self._record["stages"][stage.name].update(returncode=sres.returncode, end=sres.end)
                self._save()
                if sres.returncode != 0 or result.stopped:
                    break
        finally:
            watchdog.finished.set()


def run_chain(job: ChainJob) -> ChainResult:
    """Run the stages of ``job`` in order (:class:`ChainRunner`)."""
    return ChainRunner(job)()

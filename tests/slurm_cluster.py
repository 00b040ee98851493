"""A single-node SLURM cluster for tests: munged, slurmctld and slurmd from the distribution's packages
(Debian: ``apt-get install slurm-wlm munge``), every file in one temporary folder.

    cluster = SlurmCluster(tmp_path / "slurm").start()   # or the ``slurm`` fixture of tests/test_grid_slurm.py
    subprocess.run(["sbatch", ...], env=cluster.env)     # SLURM_CONF points the client commands at it
    cluster.stop()

The configuration is the smallest that runs batch jobs: no accounting daemon (``sacct`` fails, as on a cluster
without accounting), process tracking by ``/proc`` (no cgroups needed), one node with this machine's cores,
one partition, jobs requeueable. :func:`unavailable` says why it cannot start here (None when it can).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "srun")
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def unavailable() -> str | None:
    """Why a test cluster cannot start on this machine, or None."""
    missing = [n for n in (*DAEMONS, *CLIENTS) if _which(n) is None]
    if missing:
        return f"SLURM or munge not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "slurmd runs jobs as their user and must be started as root"
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SlurmCluster:
    """munged + slurmctld + slurmd, configured and logging under ``root``."""

    def __init__(self, root: Path, kill_wait_s: int = 30, requeue_delay_s: int = 10, cpus: int | None = None) -> None:
        self.root = Path(root)
        self.kill_wait_s = kill_wait_s
        self.requeue_delay_s = requeue_delay_s
        self.cpus = cpus or len(os.sched_getaffinity(0))
        self.node = f"n{os.getpid()}"
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------------------------------ set-up

    def _write_config(self) -> None:
        r = self.root
        for d in ("munge", "state", "spool", "log", "run"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        ctld_port, slurmd_port = _free_ports(2)
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text(
            "\n".join(
                [
                    "ClusterName=dyglbench-test",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={slurmd_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    # cred_expire also holds a requeued job back before it may start again (default 120 s)
                    f"AuthInfo=socket={r / 'munge' / 'munge.socket'},cred_expire={self.requeue_delay_s}",
                    f"StateSaveLocation={r / 'state'}",
                    f"SlurmdSpoolDir={r / 'spool'}",
                    f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
                    f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
                    f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    "JobRequeue=1",
                    f"KillWait={self.kill_wait_s}",
                    "MinJobAge=300",
                    "SchedulerParameters=sched_interval=2",
                    f"NodeName={self.node} NodeHostname={socket.gethostname()} NodeAddr=127.0.0.1 "
                    f"CPUs={self.cpus} RealMemory={mem_mb} State=UNKNOWN",
                    "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        (r / "cgroup.conf").write_text("CgroupPlugin=autodetect\nIgnoreSystemd=yes\n")

    def _daemon(self, argv: list[str], name: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)

    def _wait(self, what: str, ok, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{Path(p.args[0]).name} exited ({p.returncode}):\n{self.logs()}")
            time.sleep(0.2)
        raise RuntimeError(f"test cluster: {what} not ready after {timeout:.0f} s:\n{self.logs()}")

    def start(self) -> SlurmCluster:
        self._write_config()
        m = self.root / "munge"
        self._daemon(
            [
                _which("munged"),
                "-F",
                "--force",
                f"--key-file={m / 'munge.key'}",
                f"--socket={m / 'munge.socket'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={m / 'munge.seed'}",
            ],
            "munged",
        )
        self._wait("munged", lambda: (m / "munge.socket").exists())
        self._daemon([_which("slurmctld"), "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._wait("slurmctld", lambda: self.run(["scontrol", "ping"], check=False).returncode == 0)
        self._daemon([_which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)], "slurmd")
        self._wait("slurmd", lambda: "idle" in self.run(["sinfo", "-h", "-o", "%T"], check=False).stdout)
        return self

    def stop(self) -> None:
        if self.procs:
            self.run(["scancel", "--full", "-u", str(os.geteuid())], check=False)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    # ---------------------------------------------------------------------------------- helpers

    def run(self, argv: list[str], check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """A client command (sbatch, squeue, scontrol...) of this cluster; ``kw`` as for subprocess.run."""
        kw["env"] = {**self.env, **kw.get("env", {})}
        return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout, **kw)

    def state(self, job_id: str) -> str:
        """The job's state as squeue shows it ('' once slurmctld has forgotten it)."""
        out = self.run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"], check=False).stdout
        return out.strip()

    def logs(self, lines: int = 30) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {f.name}\n" + "\n".join(text))
        return "\n".join(parts)

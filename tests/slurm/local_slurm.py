"""A real single-node SLURM cluster on this machine, under one folder: munged, MariaDB, slurmdbd, slurmctld, slurmd.

Debian's `slurm-wlm`, `slurmdbd`, `munge` and `mariadb-server-core` packages (installed by `.ci/run`); needs root.
Everything the daemons write (keys, sockets, state, spool, logs, the accounting database) lives under the folder,
ports are picked free, and `stop()` ends exactly the processes `start()` started (after cancelling every job).
Clients find the cluster through `SLURM_CONF`, which `env()` sets.

Also a small command line, for trying the SLURM executor by hand:
`python tests/slurm/local_slurm.py FOLDER` starts a cluster, prints the `export SLURM_CONF=...` line and keeps it up
until Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLUSTER = "qadtest"
PARTITION = "debug"
DAEMONS = (
    "munged", "mariadbd", "mariadb-install-db", "my_print_defaults", "slurmdbd", "slurmctld", "slurmd", "sbatch",
    "sacct",
)  # fmt: skip


def missing_programs() -> list[str]:
    """The programs a cluster needs that are not installed (daemons live in /usr/sbin, maybe not on PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    return [name for name in DAEMONS if shutil.which(name, path=path) is None]


def _which(name: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    found = shutil.which(name, path=path)
    if found is None:
        raise RuntimeError(f"{name} is not installed")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nothing listens on now (a fresh subprocess: the test process may forbid sockets)."""
    code = (
        "import socket\n"
        f"socks = [socket.socket() for _ in range({count})]\n"
        "[s.bind(('127.0.0.1', 0)) for s in socks]\n"
        "print(' '.join(str(s.getsockname()[1]) for s in socks))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return [int(p) for p in out.split()]


def _memory_mb() -> int:
    with open("/proc/meminfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def _write_conf(path: Path, settings: dict[str, object], lines: list[str] = ()) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()) + "".join(f"{line}\n" for line in lines))


class LocalSlurm:
    """One cluster under `root`; `start()` returns once `sinfo` shows the node idle."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.host = socket.gethostname()
        self.cpus = os.cpu_count() or 1
        self.memory_mb = _memory_mb()
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = self.root / "etc" / "slurm.conf"

    # ------------------------------------------------------------------------------------------ environment

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), "/usr/sbin"])
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(args, capture_output=True, text=True, env=self.env(), check=check, timeout=timeout)

    # ---------------------------------------------------------------------------------------------- start

    def start(self, timeout: float = 180) -> None:
        for sub in ("etc", "munge", "db", "state", "spool", "log", "run"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # munged refuses group/world-writable parents
        ctld, slurmd, dbd, mysql = free_ports(4)  # no sockets here: the test process may forbid them
        self.ports = {"slurmctld": ctld, "slurmd": slurmd, "slurmdbd": dbd, "mariadb": mysql}
        try:
            self._start_munge()
            self._start_mariadb(mysql, timeout)
            self._write_configs()
            self._start("slurmdbd", [_which("slurmdbd"), "-D"])
            self._wait(self._cluster_added, timeout, "the cluster to be added to the accounting database")
            self._start("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._start("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
            self._wait(self._node_idle, timeout, f"node {self.host} to be idle in sinfo")
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, command: list[str]) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        self.procs[name] = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env()
        )
        log.close()

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    why = self._tail(name)
                    raise RuntimeError(f"{name} exited ({proc.returncode}) while waiting for {what}: {why}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.5)

    def _tail(self, name: str) -> str:
        for path in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            if path.is_file():
                lines = path.read_text(errors="replace").strip().splitlines()
                if lines:
                    return lines[-1]
        return "(no log)"

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        os.chmod(self.root / "munge", 0o755)
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._start(
            "munged",
            [
                _which("munged"), "--foreground", "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                f"--log-file={self.root / 'log' / 'munged.log'}", f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )  # fmt: skip
        self._wait(self.munge_socket.exists, 30, "munged's socket")

    def _start_mariadb(self, port: int, timeout: float) -> None:
        data = self.root / "db" / "data"
        if not (data / "mysql").is_dir():
            self._install_mariadb(data, timeout)
        init = self.root / "db" / "init.sql"
        init.write_text(
            "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';\n"
            "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';\n"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';\n"
        )
        self._start(
            "mariadbd",
            [
                _which("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=root", f"--port={port}",
                "--bind-address=127.0.0.1", f"--socket={self.root / 'db' / 'mysqld.sock'}", f"--init-file={init}",
                f"--pid-file={self.root / 'run' / 'mariadbd.pid'}", "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=8M", "--skip-name-resolve", "--skip-log-bin",
            ],
        )  # fmt: skip
        self._wait((self.root / "db" / "mysqld.sock").exists, timeout, "MariaDB to listen")  # after its TCP port

    def _install_mariadb(self, data: Path, timeout: float, attempts: int = 2) -> None:
        """mariadb-install-db, once more in a fresh folder if it fails (seen once in CI, exit status 1, on a busy
        machine); a second failure raises with the tool's own output."""
        for attempt in range(1, attempts + 1):
            shutil.rmtree(data, ignore_errors=True)
            done = subprocess.run(
                [_which("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                capture_output=True, text=True, check=False, timeout=timeout,
            )  # fmt: skip
            if done.returncode == 0:
                return
            output = (done.stdout + done.stderr).strip()[-2000:]
            if attempt == attempts:
                raise RuntimeError(f"mariadb-install-db failed (exit status {done.returncode}):\n{output}")
            print(f"mariadb-install-db failed (exit status {done.returncode}), trying again:\n{output}", flush=True)

    def _write_configs(self) -> None:
        root, ports = self.root, self.ports
        auth = {"AuthType": "auth/munge", "AuthInfo": f"socket={self.munge_socket}"}
        dbd = root / "etc" / "slurmdbd.conf"
        _write_conf(dbd, {
            **auth, "DbdHost": "localhost", "DbdPort": ports["slurmdbd"], "SlurmUser": "root",
            "StorageType": "accounting_storage/mysql", "StorageHost": "127.0.0.1", "StoragePort": ports["mariadb"],
            "StorageUser": "slurm", "StoragePass": "slurm", "StorageLoc": "slurm_acct_db",
            "PidFile": root / "run" / "slurmdbd.pid", "LogFile": root / "log" / "slurmdbd.log",
        })  # fmt: skip
        os.chmod(dbd, 0o600)
        _write_conf(self.conf, {
            "ClusterName": CLUSTER, "SlurmctldHost": f"{self.host}(127.0.0.1)", **auth, "CredType": "cred/munge",
            "SlurmUser": "root", "SlurmdUser": "root",
            "SlurmctldPort": ports["slurmctld"], "SlurmdPort": ports["slurmd"],
            "StateSaveLocation": root / "state", "SlurmdSpoolDir": root / "spool",
            "SlurmctldPidFile": root / "run" / "slurmctld.pid", "SlurmdPidFile": root / "run" / "slurmd.pid",
            "SlurmctldLogFile": root / "log" / "slurmctld.log", "SlurmdLogFile": root / "log" / "slurmd.log",
            "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none", "MpiDefault": "none",
            # cores, not whole nodes, are allocated: jobs of one CPU each run side by side
            "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_Core",
            "SchedulerType": "sched/backfill", "SchedulerParameters": "sched_interval=2,bf_interval=2",
            "ReturnToService": 2, "JobAcctGatherType": "jobacct_gather/none",
            "AccountingStorageType": "accounting_storage/slurmdbd", "AccountingStorageHost": "localhost",
            "AccountingStoragePort": ports["slurmdbd"], "AccountingStoragePass": self.munge_socket,
            "SlurmctldTimeout": 30, "SlurmdTimeout": 60, "InactiveLimit": 0, "MinJobAge": 600, "KillWait": 5,
        }, [
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
        ])  # fmt: skip

    def _cluster_added(self) -> bool:
        self.run("sacctmgr", "-i", "add", "cluster", CLUSTER, check=False)
        listed = self.run("sacctmgr", "-n", "-P", "list", "cluster", "format=cluster", check=False)
        return CLUSTER in listed.stdout.split()

    def _node_idle(self) -> bool:
        shown = self.run("sinfo", "-h", "-N", "-o", "%N %T", check=False)
        return any(line.split()[1:] == ["idle"] for line in shown.stdout.splitlines() if line.strip())

    # ----------------------------------------------------------------------------------------------- stop

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job of the cluster and wait until squeue lists none."""
        if "slurmctld" not in self.procs or self.procs["slurmctld"].poll() is not None:
            return
        self.run("scancel", "--full", "--user", "root", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = self.run("squeue", "-h", "-o", "%i", check=False)
            if left.returncode != 0 or not left.stdout.strip():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        """Cancel all jobs, then end the daemons this object started (by their PIDs), newest first."""
        self.cancel_all()
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
        self.procs.clear()


def main() -> None:
    """Start a cluster under argv[1] and keep it up until Ctrl-C (or SIGTERM)."""

    def interrupt(*_) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    cluster = LocalSlurm(Path(sys.argv[1]))
    started = time.monotonic()
    try:
        cluster.start()
        print(f"cluster up in {time.monotonic() - started:.0f} s; in another shell:\nexport SLURM_CONF={cluster.conf}")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()

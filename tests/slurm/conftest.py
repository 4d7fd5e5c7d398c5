"""The session's real SLURM cluster (one for all SLURM tests): started once, stopped at the end of the session."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_slurm import LocalSlurm, missing_programs  # tests/slurm is on sys.path (rootdir-less test modules)

INSTALL = Path(__file__).resolve().parents[2] / "tools" / "install_slurm.sh"


def _ensure_packages() -> None:
    """Install the cluster's Debian packages when missing (CI's .ci/run does it first); skip when impossible."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (its daemons run as root)")
    if not missing_programs():
        return
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or missing_programs():
        why = done.stderr.strip().splitlines()[-1:] or [f"still missing: {', '.join(missing_programs())}"]
        pytest.skip(f"SLURM packages cannot be installed here: {why[0]}")


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[LocalSlurm]:
    """A single-node cluster of this machine; SLURM_CONF points every client (and every job) at it."""
    _ensure_packages()
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        cluster.stop()

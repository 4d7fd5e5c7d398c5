"""keep_freed_memory: applied once by the CLI, skipped when the user opts out or set glibc's own variables."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qadistill.runtime import keep_freed_memory

PROBE = "from qadistill.runtime import keep_freed_memory; print(keep_freed_memory())"


def _probe(env_extra: dict[str, str]) -> str:
    env = {"PATH": "/usr/bin:/bin", **env_extra}
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_applies_on_glibc_unless_opted_out():
    assert _probe({}) == "True"
    assert _probe({"QADISTILL_MALLOC_TUNING": "0"}) == "False"
    assert _probe({"MALLOC_MMAP_MAX_": "65536"}) == "False"


def test_opt_out_in_this_process(monkeypatch):
    monkeypatch.setenv("QADISTILL_MALLOC_TUNING", "off")
    assert keep_freed_memory() is False


TRIM_PROBE = """
from qadistill.runtime import keep_freed_memory, return_free_memory
import torch
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
keep_freed_memory()
x = torch.ones(50 * 2**20)  # 200 MB from the heap
y = torch.ones(1)  # above it: the heap's top cannot simply shrink
del x
before = rss_mb()
print(return_free_memory(), round(before - rss_mb()))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim is Linux-only")
def test_return_free_memory_gives_freed_heap_pages_back():
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, check=True).stdout
    applied, released_mb = out.split()
    assert applied == "True" and int(released_mb) > 150

"""What machine a ``reprolab bench`` result was measured on (CPU model, cores, threads, memory, load), so that two
results are compared knowing what they ran on — the 1-minute load says whether the machine was quiet."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch


def machine_info() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = dict(
        cpu_model=model,
        cpu_count=os.cpu_count(),
        platform=platform.platform(),
        python=platform.python_version(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        torch_interop_threads=torch.get_num_interop_threads(),
        cpu_capability=getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)(),
        cuda=torch.cuda.is_available(),
        time=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    if hasattr(os, "sched_getaffinity"):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["load_avg_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    except ImportError:
        pass
    return info

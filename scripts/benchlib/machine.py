"""Where and with what a benchmark ran: machine, tool versions, Debian tools, Markdown tables."""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterable, Sequence


class ToolError(Exception):
    """A tool the benchmark needs is missing and could not be installed."""


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def corpus_dir() -> str:
    """`$FOLIO_CORPUS_DIR`, else `<repo>/../shared/corpus`."""
    return os.environ.get("FOLIO_CORPUS_DIR") or os.path.join(repo_root(), "..", "shared", "corpus")


def runtime_dir() -> str:
    return os.environ.get("FOLIO_RUNTIME_DIR") or os.path.expanduser("~/.cache/folio")


def folio_binary() -> str:
    """`$FOLIO_BENCH_BINARY` (e.g. a debug build, reported as such), else the release build."""
    return os.environ.get("FOLIO_BENCH_BINARY") or os.path.join(repo_root(), "target", "release", "folio")


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_lines(load_at_start: str) -> list[str]:
    """Markdown bullet lines describing the machine; `load_at_start` from `load_average()`."""
    return [
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, {mem_total_gib():.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}",
        f"- load average (1/5/15 min) at start: {load_at_start}, at end: {load_average()} (the "
        "machine is shared: other builds may run at the same time)",
        f"- python {platform.python_version()} ({sys.executable})",
    ]


def run_text(cmd: Sequence[str]) -> str:
    """First line of a command's output (stdout, else stderr), or a note that it failed."""
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unavailable ({err})"
    out = (done.stdout or done.stderr).strip().splitlines()
    return out[0] if out else f"exit {done.returncode}"


def git_commit() -> str:
    commit = run_text(["git", "-C", repo_root(), "rev-parse", "--short=12", "HEAD"])
    dirty = subprocess.run(["git", "-C", repo_root(), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"{commit}{' (with uncommitted changes)' if dirty else ''}"


def ensure_debian_tool(binary: str, package: str) -> str:
    """Path of `binary`; installs Debian `package` with apt-get when it is missing."""
    found = shutil.which(binary)
    if found:
        return found
    sudo: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and not shutil.which("sudo"):
        raise ToolError(f"`{binary}` is missing; install it with: apt-get install {package}")
    print(f"bench: installing {package} with apt-get (needs the Debian mirror)", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update"], env=env, check=False)
        if subprocess.run(install, env=env, check=False).returncode != 0:
            raise ToolError(f"apt-get install {package} failed; install it by hand")
    found = shutil.which(binary)
    if not found:
        raise ToolError(f"{package} is installed but `{binary}` is not on PATH")
    return found


def median(values: Iterable[float]) -> float | None:
    vals = list(values)
    return statistics.median(vals) if vals else None


def fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f} %"


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> list[str]:
    """A Markdown table; `align` has one letter per column (l or r), default left for the first."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out

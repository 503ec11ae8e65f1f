#!/usr/bin/env python3
"""Soak: ``folio serve`` + two ``folio work --engine ocr`` under steady uploads for a long time,
watching every process for leaks.

Run it through the dispatcher: ``scripts/bench soak [--minutes 30] [--clients 20]``.

Services and processes as ``scripts/bench service`` starts them (a private RabbitMQ node and SeaweedFS
on loopback, ``scripts/services/start``; the API with its render pool, two workers with the cores split
between them). ``--clients`` threads each loop: upload a document (cycling a 1-page PNG, the 1-page
sample scan PDF and a 3-page corpus PDF, PDFs at ``--dpi``), poll its status every second until it is
``complete`` or ``partial``, fetch its Markdown, and start again: a closed loop, so the queue stays
bounded and the run measures the processes, not a growing backlog.

Every ``--sample-seconds`` (10) it records, for the API, each worker and the API's render processes
(summed: they are replaced after their page budget): RSS (VmRSS), open file descriptors, and the
established TCP connections to the S3 endpoint and to RabbitMQ (the process's socket inodes matched
against /proc/net/tcp{,6}). After ``--warmup-minutes`` (default: a fifth of the run, at most 5) the
growth of each series is a least-squares line: MiB/hour for RSS, per hour for descriptors and
connections. Target: no upward trend beyond noise, <= 5 MB/hour.

Writes ``bench-out/soak/{samples.csv,summary.json,report.md}`` and prints the report.
``FOLIO_BENCH_BINARY`` runs another build than ``target/release/folio`` (the report names it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_service import Http, Procs, Services, start_api, start_workers  # noqa: E402
from benchlib.machine import ToolError, corpus_dir, folio_binary, git_commit, load_average, machine_lines, md_table, repo_root  # noqa: E402,E501

POLL_S = 1.0
INPUTS = (
    ("image/png", os.path.join("charts", "vegalite_bar.png")),
    ("application/pdf", None),  # examples/sample-scan.pdf
    ("application/pdf", os.path.join("multipage_pdf", "tapus_catalogue_1962_3p.pdf")),
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="soak: leaks of the API and two workers under steady uploads")
    p.add_argument("--minutes", type=float, default=30, help="duration of the load (default 30)")
    p.add_argument("--clients", type=int, default=20, help="concurrent upload loops (default 20)")
    p.add_argument("--warmup-minutes", type=float, default=None,
                   help="samples left out of the fit (default: minutes / 5, at most 5)")
    p.add_argument("--sample-seconds", type=float, default=10, help="sampling period (default 10)")
    p.add_argument("--dpi", type=int, default=100, help="rendering DPI of the PDFs (default 100)")
    p.add_argument("--out", default=os.path.join(repo_root(), "bench-out"))
    args = p.parse_args()
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 5)
    if args.minutes <= 0 or args.clients < 1 or args.sample_seconds <= 0 or not 0 <= args.warmup_minutes < args.minutes:
        p.error("--minutes > 0, --clients >= 1, --sample-seconds > 0, 0 <= --warmup-minutes < --minutes")
    return args


# ----------------------------------------------------------------------------- process readings

def read_status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_mib(pid: int) -> float:
    return int(read_status(pid)["VmRSS"].split()[0]) / 1024


def socket_inodes(pid: int) -> tuple[int, set[str]]:
    """Open descriptors of `pid` and the inodes of its sockets."""
    fd_dir = f"/proc/{pid}/fd"
    count, inodes = 0, set()
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        count += 1
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return count, inodes


def established_by_remote_port() -> dict[str, int]:
    """inode -> remote port of every ESTABLISHED TCP socket (IPv4 and IPv6) of this namespace."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] != "01":  # ESTABLISHED
                        continue
                    found[cols[9]] = int(cols[2].rsplit(":", 1)[1], 16)
        except OSError:
            continue
    return found


def children(pid: int) -> list[int]:
    """Direct children of `pid` (the API's render processes)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def reading(pids: list[int], s3_port: int, amqp_port: int, tcp: dict[str, int]) -> dict[str, float]:
    """RSS, descriptors and S3/AMQP connections, summed over `pids` (those still alive)."""
    rss = fds = s3 = amqp = 0.0
    for pid in pids:
        try:
            rss += rss_mib(pid)
            count, inodes = socket_inodes(pid)
        except (OSError, KeyError):
            continue
        fds += count
        ports = [tcp[i] for i in inodes if i in tcp]
        s3 += sum(1 for p in ports if p == s3_port)
        amqp += sum(1 for p in ports if p == amqp_port)
    return {"rss_mib": rss, "fds": fds, "s3_conns": s3, "amqp_conns": amqp}


# ----------------------------------------------------------------------------- load

class Load:
    """`clients` closed upload loops; counts what happened."""

    def __init__(self, http: Http, clients: int, dpi: int):
        self.http = http
        self.clients = clients
        self.dpi = dpi
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.inputs = []
        for ctype, rel in INPUTS:
            path = os.path.join(repo_root(), "examples", "sample-scan.pdf") if rel is None else os.path.join(corpus_dir(), rel)
            with open(path, "rb") as f:
                self.inputs.append((ctype, os.path.basename(path), f.read()))
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(clients)]

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def loop(self, n: int) -> None:
        i = n
        while not self.stop.is_set():
            ctype, _, body = self.inputs[i % len(self.inputs)]
            i += 1
            query = urllib.parse.urlencode({"dpi": self.dpi}) if ctype == "application/pdf" else ""
            try:
                status, reply = self.http.request("POST", "/v1/documents" + (f"?{query}" if query else ""),
                                                  body, ctype)
            except OSError as err:
                self.count(f"upload error {type(err).__name__}")
                time.sleep(1)
                continue
            if status != 202:
                self.count(f"upload HTTP {status}")
                time.sleep(1)
                continue
            self.count("uploads accepted")
            doc = json.loads(reply)["document_id"]
            while not self.stop.is_set():
                time.sleep(POLL_S)
                try:
                    status, reply = self.http.request("GET", f"/v1/documents/{doc}")
                except OSError:
                    self.count("status error")
                    continue
                state = json.loads(reply).get("status") if status == 200 else None
                if state in ("complete", "partial"):
                    self.count(f"documents {state}")
                    status, _ = self.http.request("GET", f"/v1/documents/{doc}/result?format=md")
                    self.count("results fetched" if status == 200 else f"result HTTP {status}")
                    break

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


# ----------------------------------------------------------------------------- fit and report

def slope_per_hour(ts: list[float], ys: list[float]) -> tuple[float | None, float | None]:
    """Least-squares slope (per hour, `ts` in seconds) and the residuals' standard deviation."""
    n = len(ts)
    if n < 3:
        return None, None
    mt, my = sum(ts) / n, sum(ys) / n
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx == 0:
        return None, None
    b = sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / sxx
    resid = [y - (my + b * (t - mt)) for t, y in zip(ts, ys)]
    sd = (sum(r * r for r in resid) / (n - 2)) ** 0.5
    return b * 3600, sd


def summarize(samples: list[dict], names: list[str], warmup_s: float) -> dict:
    out = {}
    kept = [s for s in samples if s["t"] >= warmup_s]
    for name in names:
        series = {}
        for metric in ("rss_mib", "fds", "s3_conns", "amqp_conns"):
            ts = [s["t"] for s in kept]
            ys = [s[name][metric] for s in kept]
            slope, sd = slope_per_hour(ts, ys)
            all_ys = [s[name][metric] for s in samples]
            series[metric] = {
                "per_hour": slope, "resid_sd": sd,
                "first": ys[0] if ys else None, "last": ys[-1] if ys else None,
                "min": min(all_ys) if all_ys else None, "max": max(all_ys) if all_ys else None,
            }
        out[name] = series
    return out


def f(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def report(args, summary: dict, counts: dict, samples: list[dict], started_load: str, kept: int) -> str:
    binary = os.path.relpath(folio_binary(), repo_root())
    lines = [
        "# Soak",
        "",
        f"- command: `scripts/bench soak --minutes {args.minutes:g} --clients {args.clients} "
        f"--warmup-minutes {args.warmup_minutes:g} --sample-seconds {args.sample_seconds:g} --dpi {args.dpi}`",
        f"- commit: {git_commit()}; binary: `{binary}`",
        *machine_lines(started_load),
        "- services: private RabbitMQ node + SeaweedFS (`weed mini`) on loopback (scripts/services/start)",
        f"- samples: {len(samples)} every {args.sample_seconds:g} s, {kept} after the {args.warmup_minutes:g}-minute warm-up used in the fit",
        "",
        "## Growth after warm-up (least-squares slope)",
        "",
        *md_table(["process", "RSS first → last (MiB)", "RSS min–max (MiB)", "**RSS MiB/hour**", "residual sd (MiB)",
                   "fds first → last", "fds/hour", "S3 conns min–max", "AMQP conns min–max"],
                  [[name, f"{f(s['rss_mib']['first'])} → {f(s['rss_mib']['last'])}",
                    f"{f(s['rss_mib']['min'])}–{f(s['rss_mib']['max'])}",
                    f"**{f(s['rss_mib']['per_hour'], 2)}**", f(s['rss_mib']['resid_sd'], 2),
                    f"{f(s['fds']['first'], 0)} → {f(s['fds']['last'], 0)}", f(s['fds']['per_hour'], 1),
                    f"{f(s['s3_conns']['min'], 0)}–{f(s['s3_conns']['max'], 0)}",
                    f"{f(s['amqp_conns']['min'], 0)}–{f(s['amqp_conns']['max'], 0)}"]
                   for name, s in summary.items()]),
        "",
        "`render` is the sum over the API's render processes alive at each sample (replaced after their page "
        "budget, so it steps). Raw samples: bench-out/soak/samples.csv.",
        "",
        "## Load",
        "",
        *md_table(["event", "count"], [[k, str(v)] for k, v in sorted(counts.items())]),
        "",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    args = parse_args()
    if not os.access(folio_binary(), os.X_OK):
        print(f"bench: no binary at {folio_binary()}: cargo build --release --bin folio "
              "(or set FOLIO_BENCH_BINARY)", file=sys.stderr)
        return 2
    load_at_start = load_average()
    work_dir = os.path.join(args.out, "soak")
    os.makedirs(work_dir, exist_ok=True)
    samples: list[dict] = []
    names = ["api", "render", "worker0", "worker1"]
    with Services(os.path.join(work_dir, "services")) as services:
        s3_port = urllib.parse.urlparse(services.env["FOLIO_S3_ENDPOINT"]).port
        amqp_port = urllib.parse.urlparse(services.env["FOLIO_AMQP_URL"]).port or 5672
        procs = Procs(work_dir, services.env)
        prefix = f"bench-soak-{os.getpid()}-"
        try:
            api, http = start_api(procs, prefix)
            workers = start_workers(procs, prefix, 2)
            load = Load(http, args.clients, args.dpi)
            t0 = time.monotonic()
            load.start()
            end = t0 + args.minutes * 60
            next_sample = t0
            while time.monotonic() < end:
                for p in (api, *workers):
                    if p.poll() is not None:
                        raise ToolError(f"a folio process exited ({p.args}: {p.returncode}); see {work_dir}/*.log")
                tcp = established_by_remote_port()
                row = {"t": round(time.monotonic() - t0, 1)}
                row["api"] = reading([api.pid], s3_port, amqp_port, tcp)
                row["render"] = reading(children(api.pid), s3_port, amqp_port, tcp)
                for i, w in enumerate(workers):
                    row[f"worker{i}"] = reading([w.pid], s3_port, amqp_port, tcp)
                samples.append(row)
                print(f"soak: t={row['t']:.0f}s " + " ".join(
                    f"{n}={row[n]['rss_mib']:.1f}MiB/{row[n]['fds']:.0f}fd" for n in names), file=sys.stderr)
                next_sample += args.sample_seconds
                time.sleep(max(0.0, min(next_sample, end) - time.monotonic()))
            load.finish()
        finally:
            procs.stop_all()
    with open(os.path.join(work_dir, "samples.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        metrics = ["rss_mib", "fds", "s3_conns", "amqp_conns"]
        w.writerow(["t_s", *[f"{n}_{m}" for n in names for m in metrics]])
        for s in samples:
            w.writerow([s["t"], *[f"{s[n][m]:.1f}" for n in names for m in metrics]])
    warmup_s = args.warmup_minutes * 60
    summary = summarize(samples, names, warmup_s)
    kept = sum(1 for s in samples if s["t"] >= warmup_s)
    with open(os.path.join(work_dir, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump({"args": vars(args), "summary": summary, "counts": load.counts}, fh, indent=1)
    text = report(args, summary, load.counts, samples, load_at_start, kept)
    with open(os.path.join(work_dir, "report.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ToolError as err:
        print(f"bench: {err}", file=sys.stderr)
        sys.exit(1)

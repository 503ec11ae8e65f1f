#!/usr/bin/env python3
"""Service benchmarks: ``folio serve`` + ``folio work`` on a private RabbitMQ node and SeaweedFS.

Run it through the dispatcher: ``scripts/bench service [--runs 3] [--e2e-runs N] [--load-seconds 60]``.

The services come from ``scripts/services/start`` with ``FOLIO_PRIVATE_RABBIT=1`` (a private RabbitMQ
node and SeaweedFS on free loopback ports, under ``bench-out/service/services``) and are stopped at the
end. The binary is the release build (``target/release/folio``). Three measurements:

(a) ingest: a 50-page PDF (corpus PDFs cycled with pypdf) uploaded to ``folio serve`` with no worker
    running; the time from the start of the POST until ``folio_pages_enqueued_total`` has grown by 50
    (every page rasterized at 200 DPI, stored as PNG in SeaweedFS and published to RabbitMQ). Pages/s,
    median over ``--runs``.
(b) end to end: a 20-page PDF (the first 20 of the 50) through the service with 2 ``folio work``
    processes (started and ready before the upload) — POST to ``status`` complete, polled every 100 ms —
    against ``folio parse`` of the same file in one process (model loading included; it is ~1 s).
    Medians over ``--e2e-runs`` (default ``--runs``); the ratio is service / parse, target <= 1.15.
(c) load: ``wrk`` (Debian package) with 50 connections for ``--load-seconds`` POSTing a 1-page PNG
    (``charts/vegalite_bar.png``) after ``--warmup-seconds`` of the same load; p50/p99 latency, requests/s,
    non-2xx and socket errors, and the RSS (VmRSS) of the api and of both workers: idle, after the
    warm-up ("before"), sampled every 5 s during the run, and after it. One run.

``--parts ingest,e2e,load`` picks a subset (default all three).

The tenant's in-flight limit is raised (``FOLIO_MAX_IN_FLIGHT``) so that it does not turn load into 429s.
Writes ``bench-out/service/report.md`` and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib.machine import ToolError, corpus_dir, ensure_debian_tool, fmt, folio_binary, git_commit, load_average, machine_lines, md_table, median, repo_root  # noqa: E402,E501

KEY = "bench-key-0123456789abcdef"
TENANT = "bench"
INGEST_PAGES = 50
E2E_PAGES = 20
DPI = 200
TARGET_RATIO = 1.15
LOAD_CONNECTIONS = 50
LOAD_IMAGE = os.path.join("charts", "vegalite_bar.png")
RSS_SAMPLE_S = 5
PARTS = ("ingest", "e2e", "load")
A3_AREA_PT2 = 842 * 1191


def runs_table(header: list, first: list, second: list) -> list:
    """A Markdown table of two measurements per run, with their medians as the last row."""
    rows = [[str(i + 1), fmt(a), fmt(b)] for i, (a, b) in enumerate(zip(first, second))]
    return md_table(header, rows + [["median", fmt(median(first)), fmt(median(second))]])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="service benchmarks (ingest, end to end, load)")
    p.add_argument("--runs", type=int, default=3, help="timed runs of (a) and (b) (>= 1; default 3)")
    p.add_argument("--e2e-runs", type=int, default=None, help="timed runs of (b) (default: --runs)")
    p.add_argument("--load-seconds", type=int, default=60, help="duration of (c) (default 60)")
    p.add_argument("--warmup-seconds", type=int, default=15,
                   help="load before (c)'s 'RSS before' is read (default 15; 0: none)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help=f"comma-separated subset of {','.join(PARTS)} (default: all)")
    p.add_argument("--out", default=os.path.join(repo_root(), "bench-out"))
    args = p.parse_args()
    args.e2e_runs = args.runs if args.e2e_runs is None else args.e2e_runs
    if min(args.runs, args.e2e_runs, args.load_seconds) < 1 or args.warmup_seconds < 0:
        p.error("--runs, --e2e-runs and --load-seconds must be >= 1, --warmup-seconds >= 0")
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = [x for x in args.parts if x not in PARTS]
    if unknown or not args.parts:
        p.error(f"--parts: unknown {unknown}; choose from {', '.join(PARTS)}")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source_pdfs() -> list[str]:
    root = corpus_dir()
    found = [os.path.join(repo_root(), "examples", "sample-scan.pdf")]
    for sub in ("multipage_pdf", "printed", "tables", "handwritten"):
        folder = os.path.join(root, sub)
        if os.path.isdir(folder):
            found += sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".pdf"))
    return [f for f in found if os.path.isfile(f)]


def build_pdf(path: str, pages: int) -> None:
    """Cycle the corpus PDFs' pages (A3 or smaller) up to `pages` pages."""
    from pypdf import PdfReader, PdfWriter

    candidates = []
    for src in source_pdfs():
        for page in PdfReader(src).pages:
            box = page.mediabox
            if float(box.width) * float(box.height) <= A3_AREA_PT2:
                candidates.append(page)
    if not candidates:
        raise ToolError("no source PDF pages found (examples/sample-scan.pdf, corpus PDFs)")
    writer = PdfWriter()
    for n in range(pages):
        writer.add_page(candidates[n % len(candidates)])
    with open(path + ".part", "wb") as f:
        writer.write(f)
    os.replace(path + ".part", path)


class Http:
    def __init__(self, base: str):
        self.base = base

    def request(self, method: str, path: str, body: bytes | None = None, ctype: str | None = None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {KEY}")
        if ctype:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def metric(self, name: str) -> float:
        _, body = self.request("GET", "/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def upload(self, path: str, ctype: str) -> str:
        with open(path, "rb") as f:
            status, body = self.request("POST", "/v1/documents?dpi=%d" % DPI, f.read(), ctype)
        if status != 202:
            raise ToolError(f"upload of {path} answered {status}: {body[:300]!r}")
        return json.loads(body)["document_id"]


def wait_until(what: str, timeout: float, check, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval)
    raise ToolError(f"timed out after {timeout:.0f} s waiting for {what}")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Services:
    """scripts/services/start with a private RabbitMQ node; its env file parsed into a dict."""

    def __init__(self, folder: str):
        self.folder = folder
        self.env: dict[str, str] = {}

    def __enter__(self):
        env = dict(os.environ, FOLIO_SERVICES_DIR=self.folder, FOLIO_PRIVATE_RABBIT="1")
        subprocess.run([os.path.join(repo_root(), "scripts", "services", "start")], env=env, check=True)
        with open(os.path.join(self.folder, "env"), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if "=" in line and not line.startswith("#"):
                    k, v = line.removeprefix("export ").split("=", 1)
                    self.env[k] = v.strip("'\"")
        return self

    def __exit__(self, *exc):
        env = dict(os.environ, FOLIO_SERVICES_DIR=self.folder)
        subprocess.run([os.path.join(repo_root(), "scripts", "services", "stop")], env=env, check=False)


class Procs:
    """The folio processes of the benchmark, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, log_dir: str, base_env: dict[str, str]):
        self.log_dir = log_dir
        self.base_env = base_env
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen:
        log = open(os.path.join(self.log_dir, f"{name}.log"), "ab")
        env = dict(os.environ, **self.base_env, **extra)
        p = subprocess.Popen([folio_binary(), *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            self.stop(p)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start_api(procs: Procs, prefix: str) -> tuple[subprocess.Popen, Http]:
    port = free_port()
    api = procs.start("api", ["serve", "--s3-create-bucket"], {
        "FOLIO_LISTEN": f"127.0.0.1:{port}",
        "FOLIO_API_KEYS": f"{KEY}={TENANT}",
        "FOLIO_MAX_IN_FLIGHT": "100000",
        "FOLIO_AMQP_PREFIX": prefix,
    })
    http = Http(f"http://127.0.0.1:{port}")
    wait_until("folio serve /readyz", 60, lambda: http_ok(http.base + "/readyz"))
    return api, http


def start_workers(procs: Procs, prefix: str, n: int) -> list[subprocess.Popen]:
    workers = []
    for i in range(n):
        port = free_port()
        # The cores are split between the workers, as a deployment would (one CPU limit per
        # worker pod): n workers x (cores / n) intra-op threads, the same total as the anchor's
        # one process with all cores. More threads than cores make ONNX Runtime's spinning
        # threads of the two processes take turns on the same cores.
        threads = str(max(1, (os.cpu_count() or 1) // n))
        w = procs.start(f"worker{i}", ["work", "--engine", "ocr", "--threads", threads], {
            "FOLIO_METRICS_LISTEN": f"127.0.0.1:{port}",
            "FOLIO_AMQP_PREFIX": prefix,
        })
        wait_until(f"worker {i} /readyz", 120, lambda port=port: http_ok(f"http://127.0.0.1:{port}/readyz"))
        workers.append(w)
    return workers


def bench_ingest(procs: Procs, pdf: str, runs: int) -> list[float]:
    api, http = start_api(procs, f"bench-ingest-{os.getpid()}-")
    times = []
    try:
        for _ in range(runs):
            before = http.metric("folio_pages_enqueued_total")
            started = time.monotonic()
            http.upload(pdf, "application/pdf")
            wait_until("50 pages enqueued", 600,
                       lambda: http.metric("folio_pages_enqueued_total") >= before + INGEST_PAGES, 0.05)
            times.append(time.monotonic() - started)
    finally:
        procs.stop(api)
    return times


def bench_e2e(procs: Procs, pdf: str, runs: int, work_dir: str) -> tuple[list[float], list[float]]:
    parse_times = []
    for i in range(runs):
        out = os.path.join(work_dir, f"parse-{i}")
        shutil.rmtree(out, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([folio_binary(), "parse", pdf, "-o", out, "--dpi", str(DPI)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parse_times.append(time.monotonic() - started)
    prefix = f"bench-e2e-{os.getpid()}-"
    api, http = start_api(procs, prefix)
    workers = start_workers(procs, prefix, 2)
    service_times = []
    try:
        for _ in range(runs):
            started = time.monotonic()
            doc = http.upload(pdf, "application/pdf")

            def done(doc=doc):
                status, body = http.request("GET", f"/v1/documents/{doc}")
                return status == 200 and json.loads(body)["status"] in ("complete", "partial")

            wait_until("the 20-page document", 1800, done)
            service_times.append(time.monotonic() - started)
            _, body = http.request("GET", f"/v1/documents/{doc}")
            if json.loads(body)["pages_done"] != E2E_PAGES:
                raise ToolError(f"document {doc} did not complete every page: {body[:300]!r}")
    finally:
        for w in workers:
            procs.stop(w)
        procs.stop(api)
    return parse_times, service_times


def rss_all(api: subprocess.Popen, workers: list[subprocess.Popen]) -> dict[str, float]:
    return {"api": rss_mib(api.pid), **{f"worker{i}": rss_mib(w.pid) for i, w in enumerate(workers)}}


def run_wrk(wrk: str, script: str, url: str, seconds: int, sample=None) -> str:
    """wrk for ``seconds``; ``sample()`` is called every RSS_SAMPLE_S meanwhile."""
    p = subprocess.Popen([wrk, "-t", "2", "-c", str(LOAD_CONNECTIONS), "-d", f"{seconds}s", "--latency",
                          "--timeout", "30s", "-s", script, url],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while sample is not None and p.poll() is None:
        time.sleep(RSS_SAMPLE_S)
        if p.poll() is None:
            sample()
    out, err = p.communicate()
    if p.returncode != 0:
        raise ToolError(f"wrk failed ({p.returncode}): {err.strip()}")
    return out


def bench_load(procs: Procs, image: str, seconds: int, warmup: int, work_dir: str) -> dict:
    wrk = ensure_debian_tool("wrk", "wrk")
    script = os.path.join(work_dir, "upload.lua")
    with open(image, "rb") as f:
        body = f.read()
    lua_body = "".join(f"\\{b:03d}" for b in body)
    with open(script, "w", encoding="ascii") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f'wrk.body = "{lua_body}"\n')
        f.write(f'wrk.headers["Authorization"] = "Bearer {KEY}"\n')
        f.write('wrk.headers["Content-Type"] = "image/png"\n')
    prefix = f"bench-load-{os.getpid()}-"
    api, http = start_api(procs, prefix)
    workers = start_workers(procs, prefix, 2)
    url = http.base + "/v1/documents"
    samples: list[dict] = []
    try:
        rss_idle = rss_all(api, workers)
        # Warm-up under the same load, so that what a process builds once (ONNX Runtime arenas at
        # full batch size, connection buffers, thread pools) exists before "before".
        warm = run_wrk(wrk, script, url, warmup) if warmup > 0 else ""
        rss_before = rss_all(api, workers)
        t0 = time.monotonic()

        def sample():
            samples.append({"t": round(time.monotonic() - t0, 1), **rss_all(api, workers)})

        done = run_wrk(wrk, script, url, seconds, sample)
        time.sleep(2)
        rss_after = rss_all(api, workers)
        accepted = http.metric('folio_uploads_total{result="accepted"}')
    finally:
        for w in workers:
            procs.stop(w)
        procs.stop(api)
    with open(os.path.join(work_dir, "wrk.txt"), "w", encoding="utf-8") as f:
        f.write(done)
    with open(os.path.join(work_dir, "wrk-warmup.txt"), "w", encoding="utf-8") as f:
        f.write(warm)
    return {"wrk": done, "idle": rss_idle, "before": rss_before, "after": rss_after,
            "samples": samples, "accepted": accepted}


def wrk_numbers(out: str) -> dict:
    def latency(pct: str) -> float | None:
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    def count(pattern: str) -> int:
        m = re.search(pattern, out)
        return int(m.group(1)) if m else 0

    m = re.search(r"(\d+) requests in", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": int(m.group(1)) if m else 0,
        "rps": float(rps.group(1)) if rps else None,
        "non2xx": count(r"Non-2xx or 3xx responses: (\d+)"),
        "socket": sum(int(x) for x in sock.groups()) if sock else 0,
    }


def save(work_dir: str, name: str, value) -> None:
    """Each phase's raw numbers as soon as it ends (bench-out/service/NAME.json)."""
    with open(os.path.join(work_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        print(json.dumps(value)[:2000], file=sys.stderr)


def main() -> int:
    args = parse_args()
    if not os.access(folio_binary(), os.X_OK):
        print("bench: build the release binary first: cargo build --release --bin folio", file=sys.stderr)
        return 2
    load_at_start = load_average()
    work_dir = os.path.join(args.out, "service")
    os.makedirs(work_dir, exist_ok=True)
    pdf50 = os.path.join(work_dir, "ingest-50p.pdf")
    pdf20 = os.path.join(work_dir, "e2e-20p.pdf")
    build_pdf(pdf50, INGEST_PAGES)
    build_pdf(pdf20, E2E_PAGES)
    image = os.path.join(corpus_dir(), LOAD_IMAGE)
    services_dir = os.path.join(work_dir, "services")
    ingest = load = None
    parse_t = service_t = None
    with Services(services_dir) as services:
        procs = Procs(work_dir, services.env)
        try:
            if "ingest" in args.parts:
                print("bench: (a) ingest", file=sys.stderr)
                ingest = bench_ingest(procs, pdf50, args.runs)
                save(work_dir, "ingest", ingest)
            if "load" in args.parts:
                print("bench: (c) load", file=sys.stderr)
                load = bench_load(procs, image, args.load_seconds, args.warmup_seconds, work_dir)
                save(work_dir, "load", load)
            if "e2e" in args.parts:
                print("bench: (b) end to end", file=sys.stderr)
                parse_t, service_t = bench_e2e(procs, pdf20, args.e2e_runs, work_dir)
                save(work_dir, "e2e", [parse_t, service_t])
        finally:
            procs.stop_all()
    lines = [
        "# Service benchmark",
        "",
        f"- command: `scripts/bench service --runs {args.runs} --e2e-runs {args.e2e_runs} "
        f"--load-seconds {args.load_seconds} --warmup-seconds {args.warmup_seconds} "
        f"--parts {','.join(args.parts)}`",
        f"- commit: {git_commit()}; binary: `target/release/folio`",
        *machine_lines(load_at_start),
        "- services: private RabbitMQ node + SeaweedFS (`weed mini`) on loopback (scripts/services/start)",
        "",
    ]
    if ingest is not None:
        ingest_rates = [INGEST_PAGES / t for t in ingest]
        lines += [
            f"## (a) Ingest: {INGEST_PAGES}-page PDF, rasterize ({DPI} DPI) + store PNG + publish, no worker",
            "",
            *runs_table(["run", "seconds", "pages/s"], ingest, ingest_rates),
            "",
        ]
    if parse_t is not None:
        ratio = median(service_t) / median(parse_t)
        lines += [
            f"## (b) End to end: {E2E_PAGES}-page PDF, 2 `folio work` vs `folio parse` (anchor, same run)",
            "",
            *runs_table(["run", "folio parse (s)", "serve + 2 workers (s)"], parse_t, service_t),
            "",
            f"- ratio service / parse (medians): **{ratio:.2f}×** (target <= {TARGET_RATIO}×: "
            f"{'met' if ratio <= TARGET_RATIO else 'not met'})",
            "",
        ]
    if load is not None:
        w = wrk_numbers(load["wrk"])
        names = list(load["before"])
        lines += [
            f"## (c) Load: {LOAD_CONNECTIONS} connections, {args.load_seconds} s, 1-page PNG uploads (wrk, one run)",
            "",
            *md_table(["requests", "req/s", "p50 (ms)", "p99 (ms)", "non-2xx", "socket errors",
                       "accepted (api metric)"],
                      [[str(w["requests"]), fmt(w["rps"], 1), fmt(w["p50"]), fmt(w["p99"]), str(w["non2xx"]),
                        str(w["socket"]), f"{load['accepted']:.0f}"]]),
            "",
            *md_table(["process", "RSS idle (MiB)", "RSS before (MiB)", "RSS max during (MiB)",
                       "RSS after (MiB)", "growth before → after"],
                      [[name, fmt(load["idle"][name], 1), fmt(load["before"][name], 1),
                        fmt(max([x[name] for x in load["samples"]] or [load["after"][name]]), 1),
                        fmt(load["after"][name], 1),
                        f"{100 * (load['after'][name] / load['before'][name] - 1):+.1f} %"]
                       for name in names]),
            "",
            f"RSS idle: the processes started, nothing sent; before: after a {args.warmup_seconds} s warm-up "
            f"under the same load; max during: of the samples every {RSS_SAMPLE_S} s; after: 2 s after wrk "
            "ends (workers still busy with the queued pages). Raw wrk output: bench-out/service/wrk.txt; "
            "samples: bench-out/service/load.json.",
            "",
            "RSS samples (MiB):",
            "",
            *md_table(["t (s)", *names], [[fmt(x["t"], 1), *[fmt(x[n], 1) for n in names]]
                                          for x in load["samples"]]),
        ]
    report = "\n".join(lines) + "\n"
    with open(os.path.join(work_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ToolError as err:
        print(f"bench: {err}", file=sys.stderr)
        sys.exit(1)

"""bridge's benchmark suite: both adapters side by side with a2wsgi, asgiref and a
no-adapter baseline, in one run.

    python -m benchmarks                      # full: in-process and server tiers
    python -m benchmarks --quick              # the same, fewer rounds: under a minute
    python -m benchmarks --tier inprocess     # or: server, all (default)
    python -m benchmarks --only hello --only 'a2w.*'   # scenario ids (see --list)
    python -m benchmarks --png docs/benchmarks.png     # also write the chart there

In-process tier (no sockets): a synthetic ASGI server drives the WSGI-to-ASGI adapters
on one event loop (and bridge, with the baseline, on trio too), and a synthetic WSGI
server (threads) drives the ASGI-to-WSGI ones. Server tier: a hello app through each
adapter on real servers on 127.0.0.1 (uvicorn h11 and httptools, hypercorn asyncio and
trio; gunicorn gthread, waitress), each beside its ceiling, the same server serving a
native hello of its own protocol, loaded by wrk (or a Python client), then timed one
request at a time on one connection (p50). In both, every subject runs in every round,
in an order that rotates each round; figures are medians over rounds, and ratios are
computed within a round, then their median taken. Every response is checked (status,
exact length), so a broken path cannot look fast. A hop counter (benchmarks/hops.py)
reports the cross-thread wake-ups each request costs. Only ratios from one run mean
anything: absolute figures vary two-fold between runs on shared machines.

Output: Markdown on stdout (progress on stderr); benchmarks/results/<mode>.md, .json
(every measurement) and .png (<mode>-partial.* for a run limited by --only or --tier);
--json and --png write copies where asked.
"""

from __future__ import annotations

import argparse
import datetime
import faulthandler
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report, scenarios_a2w, scenarios_w2a, servers
from .harness import Config, ScenarioResult, log

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = (
    "bridge",
    "a2wsgi",
    "asgiref",
    "anyio",
    "uvicorn",
    "httptools",
    "hypercorn",
    "trio",
    "uvloop",
    "gunicorn",
    "waitress",
    "matplotlib",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and shorter loads: under a minute")
    parser.add_argument("--tier", choices=("inprocess", "server", "all"), default="all")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run the scenarios whose id contains PATTERN or matches it as a glob (repeatable; see --list)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenario ids and exit")
    parser.add_argument(
        "--rounds", type=int, help="rounds for every scenario (default: per scenario and mode)"
    )
    parser.add_argument(
        "--duration", type=float, help="server tier: seconds of load per measurement (0.4 quick, 2 full)"
    )
    parser.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto", help="server tier load client"
    )
    parser.add_argument(
        "--wrk-threads", type=int, default=1, help="wrk threads (default 1: the server needs a core)"
    )
    parser.add_argument(
        "--hop-sites", action="store_true", help="also show where each counted wake-up comes from"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON record here")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="PATH",
        help="an earlier run's JSON record, for the p50 latency targets of issue 14 (default: "
        "the record this command last wrote, benchmarks/results/<mode>[-partial].json)",
    )
    parser.add_argument(
        "--png", type=Path, metavar="PATH", help="also write the chart here (e.g. docs/benchmarks.png)"
    )
    parser.add_argument("--no-png", action="store_true", help="skip the chart (matplotlib not needed)")
    return parser


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _git() -> dict[str, Any]:
    def run(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False).stdout

    return {
        "commit": run("rev-parse", "HEAD").strip() or None,
        "dirty_files": [line[3:] for line in run("status", "--porcelain").splitlines() if line.strip()],
    }


def _wrk_version() -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else "unknown"


def _earlier(path: Path) -> dict[str, Any] | None:
    """An earlier run's record, or None (none there, or unreadable)."""
    try:
        record: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for w2a in scenarios_w2a.SCENARIOS:
            print(f"{w2a.id:28} in-process  {w2a.title} (WSGI to ASGI)")
        for a2w in scenarios_a2w.SCENARIOS:
            print(f"{a2w.id:28} in-process  {a2w.title} (ASGI to WSGI)")
        for row in servers.ROWS:
            print(f"{row.id:28} server      {row.title} ({row.direction})")
        return 0
    config = Config(
        quick=args.quick,
        rounds=args.rounds,
        only=args.only,
        duration=args.duration,
        client=args.client,
        hop_sites=args.hop_sites,
    )
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    when = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    results: list[ScenarioResult] = []
    seconds: dict[str, float] = {}

    crashed: list[str] = []

    def tier(name: str, func: Any, *extra: Any) -> None:
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            results.extend(func(config, *extra))
        except Exception as exc:  # report what the other tiers measured
            crashed.append(f"FAILED: the {name} tier stopped: {type(exc).__name__}: {exc}")
            log(traceback.format_exc())
        seconds[name] = round(time.perf_counter() - t0, 1)
        log(f"{name}: {seconds[name]} s")

    if args.tier in ("inprocess", "all"):
        # A hang in an adapter must not hang the run (no server processes exist yet).
        faulthandler.dump_traceback_later(1800, exit=True)
        try:
            tier("in-process, WSGI to ASGI", scenarios_w2a.run)
            tier("in-process, ASGI to WSGI", scenarios_a2w.run)
        finally:
            faulthandler.cancel_dump_traceback_later()
    if args.tier in ("server", "all"):
        tier("server tier", servers.run, args.wrk_threads)
    seconds["total"] = round(time.perf_counter() - started, 1)
    if not results:
        log("no scenario matched; see --list")
        return 2

    cores = os.cpu_count()
    subtitle = (
        f"{mode} mode, {when:%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{cores} cores, load {load_before[0]:.1f}"
    )
    command = " ".join(["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)])
    header = f"## bridge benchmarks ({subtitle})\n\n`{command}` · took {seconds['total']:.0f} s"
    # A partial run (--only, --tier) does not overwrite the record of a whole one.
    stem = mode if not args.only and args.tier == "all" else f"{mode}-partial"
    text = report.markdown(results, header)
    checks = report.targets(results)
    text += "\n" + report.targets_table(checks) if checks else ""
    earlier = _earlier(args.compare or RESULTS / f"{stem}.json")
    ceiling = report.ceiling_targets(results, earlier, judge_p50=not args.quick)
    text += "\n" + report.targets_table(ceiling, "Targets of issue 14") if ceiling else ""
    check_lines = report.hop_check(results)
    if check_lines:
        text += "\n" + "\n".join(check_lines) + "\n"
    failed = crashed + report.failures(results)
    if failed:
        text += "\n" + "\n".join(failed) + "\n"
    if args.hop_sites:
        text += "\n" + report.hop_sites(results)
    print(text)

    document = {
        "meta": {
            "mode": mode,
            "argv": sys.argv[1:] if argv is None else argv,
            "started_utc": when.isoformat(),
            "python": sys.version,
            "platform": platform.platform(),
            "cpu_count": cores,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "packages": _versions(),
            "wrk": _wrk_version(),
            "git": _git(),
            "seconds": seconds,
        },
        "hop_check": check_lines,
        "failures": failed,
        "targets": checks,
        "targets_issue_14": ceiling,
        "scenarios": [r.as_dict() for r in results],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    written = [RESULTS / f"{stem}.md"]
    written[0].write_text(text)
    json_paths = [RESULTS / f"{stem}.json"] + ([args.json] if args.json else [])
    for path in json_paths:
        report.write_json(path, document)
    written += json_paths
    if not args.no_png:
        png_paths = [RESULTS / f"{stem}.png"] + ([args.png] if args.png else [])
        try:
            report.write_png(png_paths, results, subtitle)
            written += png_paths
        except ImportError:
            log("matplotlib is not installed: no chart (pip install matplotlib, or --no-png)")
    log("wrote " + ", ".join(str(p) for p in written))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Output: Markdown tables, the JSON record of every measurement, and a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from .harness import ON_TRIO, ScenarioResult, SubjectResult, median_or_none, ordered, paired_ratios

__all__ = [
    "ceiling_targets",
    "failures",
    "hop_check",
    "markdown",
    "targets",
    "targets_table",
    "write_json",
    "write_png",
]

_COLORS = {
    "bridge": "#1f6feb",
    "bridge" + ON_TRIO: "#74c0fc",
    "a2wsgi": "#f08c00",
    "asgiref": "#2f9e44",
    "baseline": "#868e96",
    "native": "#7048e8",
}


# -- Markdown ------------------------------------------------------------------------------


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "µs/req":
        return f"{value:,.0f} µs"
    if unit == "ms/batch":
        return f"{value:,.1f} ms"
    if unit == "MiB":
        return f"{value:.2f} MiB"
    if unit == "req/s":
        return f"{value:,.0f}"
    return f"{value:.3g} {unit}"


def _hops(hops: dict[str, Any] | None) -> str:
    if not hops:
        return ""

    def fmt(x: float) -> str:
        return f"{x:.0f}" if abs(x - round(x)) < 0.005 else f"{x:.2f}"

    return (
        f" · {fmt(hops['per_request'])} "
        f"({fmt(hops['to_thread_per_request'])}+{fmt(hops['to_loop_per_request'])})"
    )


def _speedup(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}x faster" if value >= 1 else f"{value:.2f}x (slower)"


def _rounds(scenarios: list[ScenarioResult]) -> str:
    """'21 rounds (64 concurrent x 10 ms: 11; memory: 3)'."""
    timing = [s for s in scenarios if s.unit != "MiB"]
    memory = [s for s in scenarios if s.unit == "MiB"]
    if not timing:
        return f"{memory[0].rounds} rounds" if memory else "the rounds"
    common = max({s.rounds for s in timing}, key=lambda r: sum(1 for s in timing if s.rounds == r))
    others = [f"{s.title}: {s.rounds}" for s in timing if s.rounds != common]
    if memory:
        others.append(f"memory: {memory[0].rounds}")
    return f"{common} rounds" + (f" ({'; '.join(others)})" if others else "")


def _inprocess_cell(result: SubjectResult | None, unit: str) -> str:
    if result is None:
        return "—"
    if "failed" in result.extra:
        return "FAILED"
    cell = _number(result.median, unit)
    if result.ratio is not None:
        cell += f" · {result.ratio:.2f}x"
    return cell + _hops(result.hops)


def _inprocess_table(direction: str, scenarios: list[ScenarioResult]) -> list[str]:
    names: list[str] = ordered({n for s in scenarios for n in s.subjects})
    trio = "bridge" + ON_TRIO in names
    lines = [
        f"### In-process, {direction}",
        "",
        f"Cells: median over {_rounds(scenarios)} · ratio to the no-adapter baseline (per round, "
        "then median) · cross-thread wake-ups per request (to thread + to loop). Memory: peak "
        "traced bytes while serving one request.",
        "",
        "| scenario | "
        + " | ".join(names)
        + " | bridge vs a2wsgi (per round, median) |"
        + (" bridge, time on trio / on asyncio (per round, median) |" if trio else ""),
        "|---|" + "---|" * (len(names) + 1 + trio),
    ]
    if trio:
        lines[2] += (
            f" {', '.join(n for n in names if n.endswith(ON_TRIO))}: driven on trio (one `trio.run` "
            "for the tier, in a thread of its own), their ratios to the baseline on asyncio."
        )
    for scenario in scenarios:
        cells = [_inprocess_cell(scenario.subjects.get(name), scenario.unit) for name in names]
        cells.append(_speedup(scenario.speedup))
        if trio:
            cells.append(_times(_vs(scenario.subjects.get("bridge" + ON_TRIO), "bridge")))
        lines.append(f"| {scenario.title} | " + " | ".join(cells) + " |")
    return lines


def _vs(result: SubjectResult | None, other: str) -> float | None:
    """The median per-round ratio that ``harness.versus`` recorded, if any."""
    if result is None:
        return None
    value: float | None = result.extra.get(f"vs_{other}_median")
    return value


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _server_table(direction: str, scenarios: list[ScenarioResult]) -> list[str]:
    app, native = ("WSGI", "ASGI") if direction == "WSGI to ASGI" else ("ASGI", "WSGI")
    first = scenarios[0]
    lines = [
        f"### Server tier, {direction}: the {app} hello app, req/s",
        "",
        f"Median over {first.rounds} rounds ({first.per_round}). Ceiling: the same server "
        f"serving a native {native} hello, in the same rounds; in parentheses, a figure's share "
        "of its row's ceiling (per round, then median). p50: the median latency of one "
        "request at a time on one connection, median over rounds; in parentheses, bridge's "
        "as a multiple of the ceiling's (per round, then median).",
        "",
        f"| {app} app served by | bridge | a2wsgi | one-hop baseline | ceiling: native {native} "
        "hello | bridge vs a2wsgi (per round, median) | bridge vs baseline | p50 at 1 connection: "
        "bridge · ceiling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    footnotes = []
    for scenario in scenarios:
        bridge = scenario.subjects["bridge"]
        cells = [_server_cell(scenario.subjects.get(name)) for name in ("bridge", "a2wsgi", "baseline")]
        ceiling = scenario.subjects.get("native")
        cells.append(_server_cell(ceiling, share=False))
        cells.append(_speedup(scenario.speedup))
        cells.append(_times(_vs(bridge, "baseline")))
        cells.append(_p50_cell(bridge, ceiling))
        label = bridge.extra.get("server", scenario.title)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        footnotes += [f"{label}: {note}." for note in scenario.notes if not note.startswith("ceiling:")]
    return lines + (["", *footnotes] if footnotes else [])


def _p50_cell(bridge: SubjectResult, ceiling: SubjectResult | None) -> str:
    ours = bridge.extra.get("p50_ms_median")
    theirs = ceiling.extra.get("p50_ms_median") if ceiling is not None else None
    if ours is None or theirs is None:
        return "—"
    ratio = bridge.extra.get("p50_vs_native_median")
    return f"{ours:.3f} ms · {theirs:.3f} ms" + (f" ({ratio:.2f}x)" if ratio is not None else "")


def _server_cell(result: SubjectResult | None, share: bool = True) -> str:
    if result is None:
        return "—"
    if "failed" in result.extra or not result.values:
        return "FAILED"
    cell = _number(result.median, "req/s")
    if share and result.ratio is not None:
        cell += f" ({result.ratio:.2f})"
    flawed = result.extra.get("flawed_runs", 0)
    if flawed:
        cell += f" ⚠ {flawed} run(s) with bad responses or socket errors"
    return cell


def markdown(results: Sequence[ScenarioResult], header: str) -> str:
    lines = [header, ""]
    for direction in ("WSGI to ASGI", "ASGI to WSGI"):
        scenarios = [s for s in results if s.tier == "inprocess" and s.direction == direction]
        if scenarios:
            lines += [*_inprocess_table(direction, scenarios), ""]
    for direction in ("WSGI to ASGI", "ASGI to WSGI"):
        scenarios = [s for s in results if s.tier == "server" and s.direction == direction]
        if scenarios:
            lines += [*_server_table(direction, scenarios), ""]
    return "\n".join(lines).rstrip() + "\n"


def failures(results: Sequence[ScenarioResult]) -> list[str]:
    """Every subject that failed (a bad response, an error, a server that did not start)."""
    return [
        f"FAILED: {scenario.id} · {name}: {subject.extra['failed']}"
        for scenario in results
        for name, subject in scenario.subjects.items()
        if "failed" in subject.extra
    ]


def hop_check(results: Sequence[ScenarioResult]) -> list[str]:
    """The counter's self-check: each baseline (on asyncio, and on trio where it runs
    there) pays one hop there and one back."""
    lines = []
    for scenario in results:
        if scenario.id.endswith(".hello") and scenario.tier == "inprocess":
            for name in ("baseline", "baseline" + ON_TRIO):
                hops = scenario.subjects.get(name)
                if hops is not None and hops.hops is not None:
                    n = hops.hops["per_request"]
                    verdict = "ok" if abs(n - 2) < 0.1 else "UNEXPECTED: the counter misses or adds hops"
                    lines.append(
                        f"hop counter self-check, {scenario.direction} {name} hello: "
                        f"{n:g} wake-ups per request (expected 2): {verdict}"
                    )
    return lines


def hop_sites(results: Sequence[ScenarioResult]) -> str:
    lines = ["### Where the wake-ups come from (per request)", ""]
    for scenario in results:
        for name, subject in scenario.subjects.items():
            sites = (subject.hops or {}).get("sites")
            if not sites:
                continue
            lines.append(f"{scenario.id} · {name}: {subject.hops['per_request']:g} per request")  # type: ignore[index]
            requests = subject.hops["requests"]  # type: ignore[index]
            for site, count in sorted(sites.items(), key=lambda kv: -kv[1]):
                lines.append(f"    {count / requests:6.2f}  {site}")
    return "\n".join(lines) + "\n"


# -- bridge's performance targets -----------------------------------------------------------


def targets(results: Sequence[ScenarioResult]) -> list[dict[str, Any]]:
    """bridge's performance targets, checked against this run (bridge only)."""
    by_id = {s.id: s for s in results}
    checks: list[dict[str, Any]] = []

    def bridge(scenario_id: str) -> SubjectResult | None:
        scenario = by_id.get(scenario_id)
        return scenario.subjects.get("bridge") if scenario else None

    def add(what: str, target: str, value: float | None, ok: bool | None, shown: str) -> None:
        if value is not None:
            checks.append({"what": what, "target": target, "measured": shown, "met": ok})

    for sid, what, limit in (
        ("w2a.hello", "WSGI to ASGI hello, x baseline", 1.25),
        ("w2a.out-1mib", "WSGI to ASGI 1 MiB out, x baseline", 2.0),
        ("w2a.echo-1mib", "WSGI to ASGI 1 MiB echo, x baseline", 1.5),
        ("a2w.hello", "ASGI to WSGI hello, x baseline", 1.3),
        ("a2w.out-1mib", "ASGI to WSGI 1 MiB out, x baseline", 2.0),
        ("a2w.echo-1mib", "ASGI to WSGI 1 MiB echo, x baseline", 2.0),
    ):
        result = bridge(sid)
        if result is not None and result.ratio is not None:
            add(what, f"<= {limit}x", result.ratio, result.ratio <= limit, f"{result.ratio:.2f}x")
    hello = by_id.get("w2a.hello")
    if hello is not None and hello.speedup is not None:
        add(
            "WSGI to ASGI hello, vs a2wsgi",
            ">= 3x faster",
            hello.speedup,
            hello.speedup >= 3,
            f"{hello.speedup:.2f}x",
        )
    result = bridge("w2a.concurrent-64")
    if result is not None:
        add(
            "64 concurrent x 10 ms blocking",
            "<= 40 ms",
            result.median,
            result.median <= 40,
            f"{result.median:.1f} ms",
        )
    for sid in (
        "w2a.memory-out-256mib",
        "w2a.memory-in-256mib",
        "a2w.memory-out-256mib",
        "a2w.memory-in-256mib",
    ):
        result = bridge(sid)
        if result is not None:
            add(
                f"{by_id[sid].direction} {by_id[sid].title}",
                "<= 1 MiB",
                result.median,
                result.median <= 1,
                f"{result.median:.2f} MiB",
            )
    row = by_id.get("server.w2a.uvicorn-httptools")
    if row is not None and row.speedup is not None:
        add(
            "hello on uvicorn httptools, vs a2wsgi",
            ">= 2x",
            row.speedup,
            row.speedup >= 2,
            f"{row.speedup:.2f}x",
        )
    gunicorn = by_id.get("server.a2w.gunicorn-gthread")
    if row is not None and gunicorn is not None:
        # Across two rows of the same rounds: the WSGI app through bridge on uvicorn
        # against the same app served natively by gunicorn (the A2W row's ceiling).
        ratio = median_or_none(
            paired_ratios(row.subjects["bridge"].values, gunicorn.subjects["native"].values)
        )
        if ratio is not None:
            add(
                "hello on uvicorn httptools, vs the WSGI app on gunicorn gthread",
                ">= 1x",
                ratio,
                ratio >= 1,
                f"{ratio:.2f}x",
            )
    row = by_id.get("server.a2w.gunicorn-gthread")
    if row is not None and row.speedup is not None:
        add(
            "ASGI hello on gunicorn gthread, vs a2wsgi",
            ">= 2x",
            row.speedup,
            row.speedup >= 2,
            f"{row.speedup:.2f}x",
        )
    return checks


# Issue 14: bridge's share of each server's ceiling, bridge on trio against asyncio, and
# the p50 latency at one connection "not worse". Within one run there is nothing to
# call worse: the p50 (as a multiple of the ceiling's, which absorbs the machine's speed)
# is held against the same figure in an earlier run's record, by default the last one
# this command wrote (``--compare`` names another). The tolerance is the run-to-run
# noise of that figure on a shared machine.
CEILING_SHARES = (
    ("server.w2a.uvicorn-httptools", "WSGI hello on uvicorn httptools", 0.65),
    ("server.w2a.uvicorn-h11", "WSGI hello on uvicorn h11", 0.75),
    ("server.a2w.gunicorn-gthread", "ASGI hello on gunicorn gthread", 0.80),
    ("server.a2w.waitress", "ASGI hello on waitress", 0.70),
)
TRIO_OVER_ASYNCIO = 1.2
P50_TOLERANCE = 0.10


def ceiling_targets(
    results: Sequence[ScenarioResult], previous: dict[str, Any] | None = None, judge_p50: bool = True
) -> list[dict[str, Any]]:
    """The targets of issue 14, checked against this run (bridge only); ``previous`` is
    an earlier run's JSON record, for the p50 latencies. Without ``judge_p50`` (a quick
    run: two runs of 0.15 s, whose p50 ratios swing two-fold from run to run) the p50
    figures are shown, not judged."""
    by_id = {s.id: s for s in results}
    earlier = {
        s["id"]: s["subjects"].get("bridge", {}).get("extra", {}).get("p50_vs_native_median")
        for s in (previous or {}).get("scenarios", [])
    }
    checks: list[dict[str, Any]] = []
    for sid, what, share in CEILING_SHARES:
        row = by_id.get(sid)
        bridge = row.subjects.get("bridge") if row else None
        if bridge is not None and bridge.ratio is not None:
            checks.append(
                {
                    "what": f"{what}, share of the same server's native hello",
                    "target": f">= {share}",
                    "measured": f"{bridge.ratio:.2f}",
                    "met": bridge.ratio >= share,
                }
            )
    hello = by_id.get("w2a.hello")
    on_trio = _vs(hello.subjects.get("bridge" + ON_TRIO), "bridge") if hello else None
    if on_trio is not None:
        checks.append(
            {
                "what": "WsgiToAsgi hello in-process, time on trio / on asyncio",
                "target": f"<= {TRIO_OVER_ASYNCIO}",
                "measured": f"{on_trio:.2f}x",
                "met": on_trio <= TRIO_OVER_ASYNCIO,
            }
        )
    for sid, what, _ in CEILING_SHARES:
        row = by_id.get(sid)
        bridge = row.subjects.get("bridge") if row else None
        now = bridge.extra.get("p50_vs_native_median") if bridge is not None else None
        if bridge is None or now is None:
            continue
        before = earlier.get(sid)
        measured = f"{bridge.extra['p50_ms_median']:.3f} ms, {now:.2f}x the ceiling's"
        checks.append(
            {
                "what": f"{what}, p50 at 1 connection",
                "target": f"not worse than the earlier run's x ceiling (+{P50_TOLERANCE:.0%} noise)"
                + ("" if judge_p50 else "; judged in full runs only"),
                "measured": measured
                + (f" (earlier: {before:.2f}x)" if before is not None else " (no earlier figure)"),
                "met": None if before is None or not judge_p50 else now <= before * (1 + P50_TOLERANCE),
            }
        )
    return checks


def targets_table(checks: list[dict[str, Any]], title: str = "Targets of issue 4") -> str:
    if not checks:
        return ""
    lines = [
        f"### {title} (bridge, this run)",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for check in checks:
        met = "—" if check["met"] is None else "yes" if check["met"] else "NO"
        lines.append(f"| {check['what']} | {check['target']} | {check['measured']} | {met} |")
    return "\n".join(lines) + "\n"


# -- JSON ----------------------------------------------------------------------------------


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")


def _jsonable(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


# -- PNG -----------------------------------------------------------------------------------


def write_png(paths: Sequence[Path], results: Sequence[ScenarioResult], subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timing = [s for s in results if s.tier == "inprocess" and s.unit != "MiB"]
    memory = [s for s in results if s.tier == "inprocess" and s.unit == "MiB"]
    server = [s for s in results if s.tier == "server"]
    lower = [(kind, group) for kind, group in (("memory", memory), ("server", server)) if group]
    if not timing and not lower:
        return
    rows = (1 if timing else 0) + (1 if lower else 0)
    fig = plt.figure(figsize=(13, 4.6 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, len(lower) or 1)
    axes: list[tuple[Any, str, list[ScenarioResult]]] = []
    if timing:
        axes.append((fig.add_subplot(grid[0, :]), "timing", timing))
    for col, (kind, group) in enumerate(lower):
        axes.append((fig.add_subplot(grid[rows - 1, col]), kind, group))
    for ax, kind, scenarios in axes:
        _panel(ax, kind, scenarios)
    fig.suptitle(f"bridge benchmarks — {subtitle}", fontsize=11)
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    plt.close(fig)


def _short(direction: str) -> str:
    return "WSGI→ASGI" if direction == "WSGI to ASGI" else "ASGI→WSGI"


def _panel(ax: Any, kind: str, scenarios: list[ScenarioResult]) -> None:
    names = (
        ["bridge", "a2wsgi", "baseline", "native"]
        if kind == "server"
        else ["bridge", "bridge" + ON_TRIO, "a2wsgi", "asgiref"]
    )
    present = [n for n in names if any(n in s.subjects for s in scenarios)]
    width = 0.8 / max(1, len(present))
    labels = [
        _short(s.direction)
        + "\n"
        + (
            s.title.split(" on ", 1)[1].replace(" ", "\n")  # six servers side by side: narrow
            if kind == "server"
            else s.title.replace("peak memory, ", "").replace(" on ", "\n")
        )
        for s in scenarios
    ]
    for i, name in enumerate(present):
        xs, heights, texts = [], [], []
        for j, scenario in enumerate(scenarios):
            result = scenario.subjects.get(name)
            if result is None:
                continue
            value = result.ratio if kind == "timing" else result.median
            if value is None or math.isnan(value):
                continue
            xs.append(j + (i - (len(present) - 1) / 2) * width)
            heights.append(value)
            if kind == "memory":
                texts.append(f"{value:.2f}")
            elif kind == "server":
                texts.append(f"{value / 1000:.1f}k")
            else:
                texts.append(f"{value:.1f}x")
        label = "one-hop baseline" if name == "baseline" else name
        if name == "native":
            label = "ceiling: the server's own\nnative hello (ASGI or WSGI)"
        bars = ax.bar(xs, heights, width, label=label, color=_COLORS.get(name, _COLORS["baseline"]))
        for bar, text in zip(bars, texts):
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 1),
                textcoords="offset points",
            )
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels(labels, fontsize=8)
    if kind == "timing":
        ax.set_yscale("log")
        ax.axhline(1.0, color=_COLORS["baseline"], linestyle="--", linewidth=1, label="no-adapter baseline")
        ax.set_ylabel("time, x the no-adapter baseline (lower is better)")
        ax.set_title("In-process: cost per request relative to one thread hop", fontsize=10)
    elif kind == "memory":
        ax.set_ylabel("peak MiB while streaming 256 MiB (lower is better)")
        ax.set_title("In-process: peak memory", fontsize=10)
    else:
        ax.set_ylabel("req/s (higher is better)")
        ax.set_title("Servers: hello req/s (each server's ceiling in purple)", fontsize=10)
    ax.legend(fontsize=8, loc="best" if kind == "server" else "upper left")
    ax.grid(axis="y", alpha=0.3)

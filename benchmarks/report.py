"""Output: Markdown tables, the JSON record of every measurement, and a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from .harness import ScenarioResult, SubjectResult, ordered

__all__ = ["failures", "hop_check", "markdown", "targets", "write_json", "write_png"]

_COLORS = {
    "bridge": "#1f6feb",
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
    lines = [
        f"### In-process, {direction}",
        "",
        f"Cells: median over {_rounds(scenarios)} · ratio to the no-adapter baseline (per round, "
        "then median) · cross-thread wake-ups per request (to thread + to loop). Memory: peak "
        "traced bytes while serving one request.",
        "",
        "| scenario | " + " | ".join(names) + " | bridge vs a2wsgi (per round, median) |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for scenario in scenarios:
        cells = [_inprocess_cell(scenario.subjects.get(name), scenario.unit) for name in names]
        lines.append(f"| {scenario.title} | " + " | ".join(cells) + f" | {_speedup(scenario.speedup)} |")
    return lines


def _server_table(direction: str, scenarios: list[ScenarioResult]) -> list[str]:
    app = "WSGI" if direction == "WSGI to ASGI" else "ASGI"
    first = scenarios[0]
    native = first.subjects.get("native")
    native_label = first.notes[0].split(": ", 1)[1] if first.notes else "native"
    lines = [
        f"### Server tier, {direction}: the {app} hello app, req/s",
        "",
        f"Median over {first.rounds} rounds ({first.per_round}); in parentheses, the ratio to "
        f"the native reference ({native_label}) per round, then median.",
        "",
        f"| {app} app served by | bridge | a2wsgi | one-hop baseline | bridge vs a2wsgi "
        "(per round, median) | bridge vs baseline |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        cells = []
        for name in ("bridge", "a2wsgi", "baseline"):
            result = scenario.subjects.get(name)
            cells.append(_server_cell(result))
        bridge = scenario.subjects["bridge"]
        to_floor = bridge.extra.get("vs_baseline_median")
        floor_cell = f"{to_floor:.2f}x" if to_floor is not None else "—"
        label = bridge.extra.get("server", scenario.title)
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {_speedup(scenario.speedup)} | {floor_cell} |"
        )
    lines.append(f"| native: {native_label} | {_server_cell(native)} | | | | |")
    return lines


def _server_cell(result: SubjectResult | None) -> str:
    if result is None:
        return "—"
    if "failed" in result.extra or not result.values:
        return "failed to start"
    cell = _number(result.median, "req/s")
    if result.ratio is not None:
        cell += f" ({result.ratio:.2f}x)"
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
    """The counter's self-check: each baseline pays one hop there and one back."""
    lines = []
    for scenario in results:
        if scenario.id.endswith(".hello") and scenario.tier == "inprocess":
            hops = scenario.subjects.get("baseline")
            if hops is not None and hops.hops is not None:
                n = hops.hops["per_request"]
                verdict = "ok" if abs(n - 2) < 0.1 else "UNEXPECTED: the counter misses or adds hops"
                lines.append(
                    f"hop counter self-check, {scenario.direction} baseline hello: "
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
        ours = row.subjects["bridge"]
        add(
            "hello on uvicorn httptools, vs a2wsgi",
            ">= 2x",
            row.speedup,
            row.speedup >= 2,
            f"{row.speedup:.2f}x",
        )
        if ours.ratio is not None:
            add(
                "hello on uvicorn httptools, vs the WSGI app on gunicorn gthread",
                ">= 1x",
                ours.ratio,
                ours.ratio >= 1,
                f"{ours.ratio:.2f}x",
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


def targets_table(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return ""
    lines = [
        "### Performance targets (bridge, this run)",
        "",
        "| target | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for check in checks:
        met = "yes" if check["met"] else "NO"
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
        ["bridge", "a2wsgi", "baseline", "native"] if kind == "server" else ["bridge", "a2wsgi", "asgiref"]
    )
    present = [n for n in names if any(n in s.subjects for s in scenarios)]
    width = 0.8 / max(1, len(present))
    labels = [
        _short(s.direction) + "\n" + s.title.replace("peak memory, ", "").replace(" on ", "\n")
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
            natives = dict.fromkeys(
                ("WSGI" if s.direction == "WSGI to ASGI" else "ASGI")
                + " app on "
                + s.notes[0].split(" on ", 1)[1]
                for s in scenarios
                if s.notes
            )
            label = "native reference:\n" + ",\n".join(natives)
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
        ax.set_title("Servers: hello req/s (native reference in purple)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)

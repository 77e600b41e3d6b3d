"""Ratios, targets, and the results as JSON, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

OVERHEAD_LIMIT_MS = 5.0
FLOOR_SHARE = 0.5
SLOT_P99_LIMIT_MS = 450.0


def phase(results: dict, kind: str, group: str, latency: int, loadgen: str = "wrk") -> dict:
    for p in results["phases"]:
        if (
            p["name"].split()[0] == kind
            and p["group"] == group
            and p["latency_ms"] == latency
            and p["loadgen"] == loadgen
        ):
            return p
    raise KeyError(f"no phase {kind} {group} {latency}ms {loadgen}")


def analyse(results: dict) -> None:
    """Add `ratios` and `targets` to the results."""
    tp = partial_phase(results, "throughput", 0)
    probe0 = partial_phase(results, "probe", 0)
    probe300 = partial_phase(results, "probe", 300)
    floor = tp("floor")
    cap = results["config"]["slot_capacity_rps_at_300ms"]
    closed = phase(results, "charge", "slots", 300)
    open_ = phase(results, "charge", "slots", 300, "openloop")
    snap300 = phase(results, "snap", "slots", 300)
    overhead = {
        "charge_vs_snap_create_0ms": probe0("charge")["p50_ms"] - probe0("snap")["p50_ms"],
        "status_vs_upstream_status_0ms": probe0("status")["p50_ms"]
        - probe0("upstream_status")["p50_ms"],
        "notification_vs_upstream_status_0ms": probe0("notification")["p50_ms"]
        - probe0("upstream_status")["p50_ms"],
        "charge_vs_snap_create_300ms": probe300("charge")["p50_ms"] - probe300("snap")["p50_ms"],
        "floor_0ms": probe0("floor")["p50_ms"],
    }
    ratios = {
        "rps_charge_over_floor": tp("charge")["rps"] / floor["rps"],
        "rps_status_over_floor": tp("status")["rps"] / floor["rps"],
        "rps_notification_over_floor": tp("notification")["rps"] / floor["rps"],
        "rps_charge_over_upstream_snap": tp("charge")["rps"] / tp("snap")["rps"],
        "rps_status_over_upstream_status": tp("status")["rps"] / tp("upstream_status")["rps"],
        "rps_notification_over_upstream_status": tp("notification")["rps"]
        / tp("upstream_status")["rps"],
        "cpu_charge_over_floor": tp("charge")["server_cpu_ms_per_req"]
        / floor["server_cpu_ms_per_req"],
        "cpu_status_over_floor": tp("status")["server_cpu_ms_per_req"]
        / floor["server_cpu_ms_per_req"],
        "cpu_notification_over_floor": tp("notification")["server_cpu_ms_per_req"]
        / floor["server_cpu_ms_per_req"],
        "charge_300ms_closed_over_slot_capacity": closed["rps"] / cap,
        "charge_300ms_open_over_slot_capacity": open_["rps"] / cap,
        "snap_300ms_closed_over_200_clients_capacity": snap300["rps"]
        / (snap300["connections"] / 0.3),
    }
    locked = results["log"]["sqlite_locked"]
    targets = [
        _target(
            f"gateway adds <= {OVERHEAD_LIMIT_MS:g} ms at p50 over the upstream ({name})",
            f"{value:+.1f} ms",
            value <= OVERHEAD_LIMIT_MS,
        )
        for name, value in overhead.items()
        if name != "floor_0ms"
    ]
    for kind in ("status", "notification"):
        share = tp(kind)["rps"] / floor["rps"]
        targets.append(
            _target(
                f"/{kind} req/s >= {FLOOR_SHARE:.0%} of the floor's",
                f"{tp(kind)['rps']:.0f} / {floor['rps']:.0f} = {share:.0%}",
                share >= FLOOR_SHARE,
            )
        )
    targets.append(
        _target(
            f"300 ms upstream, {open_['connections']} clients: /charge >= 80% of slots/latency "
            f"({cap:.0f} req/s), p99 < {SLOT_P99_LIMIT_MS:g} ms, no errors, no SQLite lock",
            f"{open_['rps']:.1f} req/s = {open_['rps'] / cap:.0%}, p99 {open_['p99_ms']:.0f} ms, "
            f"errors {open_['errors']}, locked {locked}",
            open_["rps"] >= 0.8 * cap - 1e-9
            and open_["p99_ms"] < SLOT_P99_LIMIT_MS
            and open_["errors"] == 0
            and locked == 0,
        )
    )
    results["overhead_p50_ms"] = overhead
    results["ratios"] = ratios
    results["targets"] = targets


def partial_phase(results: dict, group: str, latency: int):
    return lambda kind: phase(results, kind, group, latency)


def _target(name: str, value: str, met: bool) -> dict:
    return {"target": name, "value": value, "met": met}


def markdown(results: dict) -> str:
    m, c = results["machine"], results["config"]
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}. Gateway and floor: gunicorn.conf.py as shipped, {c['workers']} "
        f"workers x {c['threads']} threads = {c['slots']} slots. Load: {c['loadgen']}; it runs "
        f"on the same cores. Run took {results['elapsed_s']:.0f} s.",
        "",
        "| phase | endpoint | upstream | clients | req/s | p50 ms | p95 ms | p99 ms | max ms "
        "| errors | server CPU ms/req | simulator CPU ms/req | load gen CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in results["phases"]:
        loadgen = "open loop" if p["loadgen"] == "openloop" else "wrk"
        label = f"{p['target']} {p['group']} ({loadgen})"
        if p["offered_rps"]:
            label += f", offered {p['offered_rps']:g}/s"
        sim = "-" if p["target"] == "upstream" else f"{p['simulator_cpu_ms_per_req']:.2f}"
        lines.append(
            f"| {label} | {p['endpoint']} | {p['latency_ms']} ms | {p['connections']} "
            f"| {p['rps']:.1f} | {p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} "
            f"| {p['max_ms']:.0f} | {p['errors']} | {p['server_cpu_ms_per_req']:.2f} | {sim} "
            f"| {p['loadgen_cpu_pct']:.0f}% ({p['loadgen_cpu_ms_per_req']:.2f} ms/req) |"
        )
    lines += ["", "| ratio | value |", "|---|--:|"]
    for name, value in results["ratios"].items():
        lines.append(f"| {name} | {value:.2f} |")
    for name, value in results["overhead_p50_ms"].items():
        lines.append(f"| p50 overhead {name} (1 client) | {value:+.1f} ms |")
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    log = results["log"]
    lines += [
        "",
        f"Gateway log: {log['sqlite_locked']} 'database is locked', "
        f"{log['worker_timeouts']} worker timeouts, {log['tracebacks']} tracebacks.",
    ]
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    tp = [p for p in results["phases"] if p["group"] == "throughput"]
    colors = {"floor": "#999999", "upstream": "#4c72b0", "gateway": "#dd8452"}
    ax = axes[0]
    ax.bar(
        [p["endpoint"].replace(" ", "\n", 1) for p in tp],
        [p["rps"] for p in tp],
        color=[colors[p["target"]] for p in tp],
    )
    ax.set_title(f"Throughput, {tp[0]['connections']} clients, upstream 0 ms")
    ax.set_ylabel("requests/s")
    ax.tick_params(axis="x", labelsize=7)

    ax = axes[1]
    probes = [p for p in results["phases"] if p["group"] == "probe"]
    ax.bar(
        [f"{p['endpoint'].replace(' ', chr(10), 1)}\n{p['latency_ms']} ms" for p in probes],
        [p["p50_ms"] for p in probes],
        color=[colors[p["target"]] for p in probes],
    )
    ax.set_yscale("log")
    ax.set_title("p50 latency, 1 client (log scale)")
    ax.set_ylabel("ms")
    ax.tick_params(axis="x", labelsize=6)

    ax = axes[2]
    slots = [p for p in results["phases"] if p["group"] == "slots"]
    labels = [
        f"{p['endpoint'].replace(' ', chr(10), 1)}\n"
        f"{'open loop' if p['loadgen'] == 'openloop' else 'closed loop'}"
        for p in slots
    ]
    width = 0.25
    for i, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar(
            [x + (i - 1) * width for x in range(len(slots))],
            [p[key] for p in slots],
            width,
            label=key.removesuffix("_ms"),
        )
    ax.axhline(SLOT_P99_LIMIT_MS, color="red", linestyle="--", label="p99 target")
    ax.set_xticks(range(len(slots)), labels, fontsize=7)
    ax.set_title(f"Upstream 300 ms, {slots[0]['connections']} clients")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7)
    for x, p in enumerate(slots):
        ax.annotate(f"{p['rps']:.0f}/s", (x, 0), ha="center", va="bottom", fontsize=7)
    m = results["machine"]
    fig.suptitle(f"midtrans-gateway benchmark - {m['nproc']} cores, {m['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict, folder: Path, workdir: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = results["started_at"][:19].replace(":", "").replace("-", "")
    text = json.dumps(results, indent=2)
    (folder / f"bench-{stamp}.json").write_text(text)
    (folder / "latest.json").write_text(text)
    (folder / "latest.md").write_text(markdown(results))
    chart(results, folder / "latest.png")
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    for log in workdir.glob("*.log"):
        shutil.copy(log, logs / log.name)

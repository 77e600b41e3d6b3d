"""Ratios, targets, and the results as JSON, a Markdown table and a PNG chart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# The targets, against the realistic floor (bench/realistic.py) in the same run.
CPU_LIMITS = {"status": 1.3, "notification": 1.3, "charge": 1.5}  # x the floor's CPU/request
P50_MARGIN_MS = 1.0  # p50 (1 client) at most this much above the floor's
THROUGHPUT_SHARE = 0.8  # req/s at 50 clients at least this share of the floor's
SLOT_P99_LIMIT_MS = 450.0
NOTIFICATIONS_P99_LIMIT_MS = 1000.0
ENDPOINTS = ("status", "notification", "charge")


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


def floors(results: dict) -> dict:
    """Each gateway endpoint against both floors: server CPU ms/request and req/s at 50
    clients, p50 with 1 client (upstream at 0 ms)."""
    tp = partial_phase(results, "throughput", 0)
    probe = partial_phase(results, "probe", 0)
    base = {k: (tp(k), probe(k)) for k in ("floor", "realistic")}
    rows = {}
    for kind in ("floor", "realistic", *ENDPOINTS):
        load, one = tp(kind), probe(kind)
        row = {
            "cpu_ms": load["server_cpu_ms_per_req"],
            "p50_ms": one["p50_ms"],
            "rps": load["rps"],
        }
        for name, (f_load, f_one) in base.items():
            row[f"cpu_x_{name}"] = load["server_cpu_ms_per_req"] / f_load["server_cpu_ms_per_req"]
            row[f"p50_minus_{name}_ms"] = one["p50_ms"] - f_one["p50_ms"]
            row[f"rps_share_of_{name}"] = load["rps"] / f_load["rps"]
        rows[kind] = row
    return rows


def analyse(results: dict) -> None:
    """Add `floors`, `ratios`, `overhead_p50_ms` and `targets` to the results."""
    tp = partial_phase(results, "throughput", 0)
    probe0 = partial_phase(results, "probe", 0)
    probe300 = partial_phase(results, "probe", 300)
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
        "realistic_vs_upstream_status_0ms": probe0("realistic")["p50_ms"]
        - probe0("upstream_status")["p50_ms"],
    }
    ratios = {
        "rps_charge_over_upstream_snap": tp("charge")["rps"] / tp("snap")["rps"],
        "rps_status_over_upstream_status": tp("status")["rps"] / tp("upstream_status")["rps"],
        "rps_notification_over_upstream_status": tp("notification")["rps"]
        / tp("upstream_status")["rps"],
        "charge_300ms_closed_over_slot_capacity": closed["rps"] / cap,
        "charge_300ms_open_over_slot_capacity": open_["rps"] / cap,
        "snap_300ms_closed_over_200_clients_capacity": snap300["rps"]
        / (snap300["connections"] / 0.3),
    }
    table = floors(results)
    real = table["realistic"]
    targets = []
    for kind in ENDPOINTS:
        row, limit = table[kind], CPU_LIMITS[kind]
        targets.append(
            _target(
                f"/{kind} server CPU/request <= {limit:g}x the realistic floor's",
                f"{row['cpu_ms']:.2f} / {real['cpu_ms']:.2f} ms = {row['cpu_x_realistic']:.2f}x",
                row["cpu_x_realistic"] <= limit,
            )
        )
    for kind in ENDPOINTS:
        row = table[kind]
        targets.append(
            _target(
                f"/{kind} p50 (1 client) <= realistic floor + {P50_MARGIN_MS:g} ms",
                f"{row['p50_ms']:.1f} vs {real['p50_ms']:.1f} ms = "
                f"{row['p50_minus_realistic_ms']:+.1f} ms",
                row["p50_minus_realistic_ms"] <= P50_MARGIN_MS,
            )
        )
    for kind in ENDPOINTS:
        row = table[kind]
        targets.append(
            _target(
                f"/{kind} req/s at {tp(kind)['connections']} clients >= "
                f"{THROUGHPUT_SHARE:.0%} of the realistic floor's",
                f"{row['rps']:.0f} / {real['rps']:.0f} = {row['rps_share_of_realistic']:.0%}",
                row["rps_share_of_realistic"] >= THROUGHPUT_SHARE,
            )
        )
    targets.append(
        _target(
            f"300 ms upstream, open loop at 80% of slot capacity ({open_['offered_rps']:g} of "
            f"{cap:.0f} req/s), {open_['connections']} clients: /charge p99 < "
            f"{SLOT_P99_LIMIT_MS:g} ms, 0 errors",
            f"p99 {open_['p99_ms']:.0f} ms, errors {open_['errors']} "
            f"({open_['rps']:.1f} req/s served on schedule)",
            open_["p99_ms"] < SLOT_P99_LIMIT_MS and open_["errors"] == 0,
        )
    )
    for outcome in results.get("notifications", []):
        db = outcome["database"]
        sustained = next(
            p for p in results["phases"] if p["name"].startswith(f"notification sustained-{db}")
        )
        check = outcome["check"]
        plan = outcome["plan"]
        targets.append(
            _target(
                f"{plan['notifications']:,} notifications ({plan['duplicates']:,} duplicates, "
                f"{plan['reordered']:,} reordered + {plan['late_duplicates']:,} late duplicates), "
                f"{sustained['connections']} senders, {db}: "
                f"p99 < {NOTIFICATIONS_P99_LIMIT_MS:g} ms, 0 errors, every order's final "
                "state right",
                f"p99 {sustained['p99_ms']:.0f} ms, errors {sustained['errors']}, "
                f"{check['orders'] - check['wrong_final_state']}/{check['orders']} orders "
                f"right, {check['applied_twice']} applied twice, "
                f"{check['unprocessed_notifications']} unprocessed, "
                f"{check['lost_notifications']} lost",
                sustained["p99_ms"] < NOTIFICATIONS_P99_LIMIT_MS
                and sustained["errors"] == 0
                and check["ok"],
            )
        )
    results["floors"] = table
    results["overhead_p50_ms"] = overhead
    results["ratios"] = ratios
    results["targets"] = targets


def partial_phase(results: dict, group: str, latency: int):
    return lambda kind: phase(results, kind, group, latency)


def _target(name: str, value: str, met: bool) -> dict:
    return {"target": name, "value": value, "met": met}


FLOOR_NAMES = {
    "floor": "do-nothing floor (GET /floor)",
    "realistic": "realistic floor (GET /real/status/<id>)",
    "status": "gateway GET /status/<id>",
    "notification": "gateway POST /notification",
    "charge": "gateway POST /charge",
}


def markdown(results: dict) -> str:
    m, c = results["machine"], results["config"]
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}. Gateway and floors: gunicorn.conf.py as shipped, {c['workers']} "
        f"workers x {c['threads']} threads = {c['slots']} slots, SQLite. Load: {c['loadgen']}; "
        f"it runs on the same cores. Run took {results['elapsed_s']:.0f} s.",
        "",
        "Against both floors (upstream 0 ms; CPU and req/s at "
        f"{c['throughput_connections']} clients, p50 with 1 client):",
        "",
        "| server | CPU ms/req | x do-nothing | x realistic | p50 ms | - realistic "
        "| req/s | % do-nothing | % realistic |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind, row in results["floors"].items():
        lines.append(
            f"| {FLOOR_NAMES[kind]} | {row['cpu_ms']:.2f} | {row['cpu_x_floor']:.2f} "
            f"| {row['cpu_x_realistic']:.2f} | {row['p50_ms']:.1f} "
            f"| {row['p50_minus_realistic_ms']:+.1f} ms | {row['rps']:.0f} "
            f"| {row['rps_share_of_floor']:.0%} | {row['rps_share_of_realistic']:.0%} |"
        )
    lines += ["", "| target | value | met |", "|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    lines += [
        "",
        "| phase | endpoint | upstream | clients | req/s | p50 ms | p95 ms | p99 ms | max ms "
        "| errors | server CPU ms/req | simulator CPU ms/req | load gen CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for p in results["phases"]:
        loadgen = {"openloop": "open loop", "senders": "16 senders"}.get(p["loadgen"], "wrk")
        label = f"{p['target']} {p['group']} ({loadgen})"
        if p["group"] == "notifications":
            label = f"{p['name'].split()[1]} ({loadgen})"
        if p["offered_rps"]:
            label += f", offered {p['offered_rps']:g}/s"
        sim = "-" if p["target"] == "upstream" else f"{p['simulator_cpu_ms_per_req']:.2f}"
        lines.append(
            f"| {label} | {p['endpoint']} | {p['latency_ms']} ms | {p['connections']} "
            f"| {p['rps']:.1f} | {p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['p99_ms']:.1f} "
            f"| {p['max_ms']:.0f} | {p['errors']} | {p['server_cpu_ms_per_req']:.2f} | {sim} "
            f"| {p['loadgen_cpu_pct']:.0f}% ({p['loadgen_cpu_ms_per_req']:.2f} ms/req) |"
        )
    lines += ["", "| other ratio | value |", "|---|--:|"]
    for name, value in results["ratios"].items():
        lines.append(f"| {name} | {value:.2f} |")
    for name, value in results["overhead_p50_ms"].items():
        lines.append(f"| p50 overhead {name} (1 client) | {value:+.1f} ms |")
    for outcome in results.get("notifications", []):
        plan, check = outcome["plan"], outcome["check"]
        lines += [
            "",
            f"Notifications on {outcome['database']}: {plan['orders']:,} orders (finals "
            f"{plan['finals']}), {plan['notifications']:,} sent, {plan['duplicates']:,} "
            f"duplicates, {plan['reordered']:,} reordered (sent after a higher-ranked one of their "
            f"order) and {plan['late_duplicates']:,} late duplicates. "
            f"Check: {check['wrong_final_state']} wrong final states, {check['applied_twice']} "
            f"applied twice, {check['no_event']} without their event, "
            f"{check['unprocessed_notifications']} unprocessed, {check['lost_notifications']} "
            f"lost; outcomes {check['outcomes']}.",
        ]
    log = results["log"]
    lines += [
        "",
        f"SQLite gateway's log: {log['sqlite_locked']} 'database is locked', "
        f"{log['worker_timeouts']} worker timeouts, {log['tracebacks']} tracebacks.",
    ]
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(22, 5.5))
    tp = [p for p in results["phases"] if p["group"] == "throughput"]
    colors = {
        "floor": "#999999",
        "realistic": "#55a868",
        "upstream": "#4c72b0",
        "gateway": "#dd8452",
    }
    ax = axes[0]
    ax.bar(
        [_short(p) for p in tp],
        [p["rps"] for p in tp],
        color=[colors[p["target"]] for p in tp],
    )
    ax.set_title(f"Throughput, {tp[0]['connections']} clients, upstream 0 ms")
    ax.set_ylabel("requests/s")
    ax.tick_params(axis="x", labelsize=7)

    ax = axes[1]
    probes = [p for p in results["phases"] if p["group"] == "probe"]
    ax.bar(
        [f"{_short(p)}\n{p['latency_ms']} ms" for p in probes],
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
    _percentile_bars(ax, slots, labels, SLOT_P99_LIMIT_MS, fontsize=7)
    ax.set_title(f"Upstream 300 ms, {slots[0]['connections']} clients")
    sustained = [p for p in results["phases"] if p["group"] == "notifications"]
    names = [p["name"].split()[1].removeprefix("sustained-") for p in sustained]
    _percentile_bars(axes[3], sustained, names, NOTIFICATIONS_P99_LIMIT_MS, fontsize=8)
    axes[3].set_title("Notifications, sustained, 16 senders")
    m = results["machine"]
    fig.suptitle(f"midtrans-gateway benchmark - {m['nproc']} cores, {m['cpu']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _percentile_bars(ax, phases: list[dict], labels: list[str], p99_limit: float, fontsize: int):
    """p50, p95 and p99 of each phase side by side, the p99 target, each phase's req/s."""
    width = 0.25
    for i, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        ax.bar(
            [x + (i - 1) * width for x in range(len(phases))],
            [p[key] for p in phases],
            width,
            label=key.removesuffix("_ms"),
        )
    ax.axhline(p99_limit, color="red", linestyle="--", label="p99 target")
    ax.set_xticks(range(len(phases)), labels, fontsize=fontsize)
    ax.set_ylabel("ms")
    ax.legend(fontsize=7)
    for x, p in enumerate(phases):
        ax.annotate(f"{p['rps']:.0f}/s", (x, 0), ha="center", va="bottom", fontsize=7)


def _short(p: dict) -> str:
    """A chart label: what was loaded (floor, realistic, snap, upstream status, charge...)."""
    kind = p["name"].split()[0].replace("_", "\n")
    return f"{kind}\n({p['target']})" if p["target"] != kind else kind


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

"""Benchmark orch's full job against a simulated fleet, beside a bare asyncssh loop.

    python tests/bench/run_bench.py --sizes 200,1000,10000 [--delay-ms 25] [--route direct]

For each size N: capture the real probe output once per scenario (capture.py), start the fleet
(fleet.py, ``--fleet-procs`` processes, one loopback listener per device plus a proxy port),
then measure the bare asyncssh loop (baseline.py) and ``orch diagnose --inventory ...
--format json`` (SQLite in a temp dir) as subprocesses: wall time, CPU of the process tree
(``wait4`` rusage), peak RSS (``/proc`` sampled every 50 ms, and ``ru_maxrss``) and devices
completed. Everything runs in a private network namespace (``unshare -n``, loopback only) so
the proxy can listen on port 22 and nothing else on the machine is disturbed.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import asyncssh  # noqa: E402

from orchestrator.probes.script import new_nonce  # noqa: E402
from orchestrator.sim.model import make_fleet  # noqa: E402
from tests.bench.capture import capture_sync, probe_script  # noqa: E402

BASE_PORT = 20000
PROXY_PORT = 22
JUMP_GROUP = 10
"""Jump route: every tenth device is a gateway for the nine after it."""
ORCH = os.environ.get("ORCH_BENCH_PRELUDE", "") + "from orchestrator.console import main; main()"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,1000", help="comma list of fleet sizes")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay (sleeps)")
    parser.add_argument("--route", choices=("direct", "jump", "proxy"), default="direct")
    parser.add_argument("--concurrency", type=int, default=200, help="orch and baseline")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--fleet-procs", type=int, default=2)
    parser.add_argument("--profile", metavar="DIR", help="also run orch under py-spy into DIR")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also run orch once under valgrind (cachegrind) and report the instructions it "
        "executed: steady where CPU seconds are not (use a small --concurrency, e.g. 20)",
    )
    parser.add_argument("--json-out", help="write all measurements here")
    parser.add_argument("--no-netns", action="store_true", help="run in the current namespace")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--transport",
        action="store_true",
        help="also measure orch's SSH transport alone (the same route; no parsing or storage)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="measured client on CPU 0, fleet on the other CPUs (steadier CPU figures)",
    )
    args = parser.parse_args()
    if args.profile and Path(args.profile).exists() and not Path(args.profile).is_dir():
        parser.error(f"--profile {args.profile}: exists and is not a directory")
    return args


def reexec_in_netns() -> None:
    """Run this script again inside a new network namespace with only ``lo`` (up)."""
    inner = " ".join(_quote(a) for a in [sys.executable, *sys.argv, "--no-netns"])
    command = ["unshare", "-n", "--", "sh", "-c", f"ip link set lo up && exec {inner}"]
    os.execvp(command[0], command)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


class Measured(dict):
    """wall_s, cpu_s, peak_rss_mb, maxrss_mb, rc, stdout path of one measured process."""


CLIENT_CPUS: set[int] | None = None
"""With ``--pin``: the CPUs of measured clients (the fleet gets the rest)."""


def _pinned(cpus: set[int] | None):
    """A ``preexec_fn`` that restricts the child to ``cpus`` (None: no restriction)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def fleet_cpus() -> set[int] | None:
    """CPUs left to the fleet when clients are pinned."""
    if CLIENT_CPUS is None:
        return None
    rest = os.sched_getaffinity(0) - CLIENT_CPUS
    return rest or None


class PeakRss:
    """Samples the resident size of a set of processes every 50 ms; keeps the largest."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.peak_kb = pids, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except (OSError, ValueError):
                    pass
            self._stop.wait(0.05)


def measure(argv: list[str], out: Path, env: dict[str, str]) -> Measured:
    """Run ``argv`` to completion; wall, CPU (wait4 rusage of its tree) and peak RSS."""
    started = time.monotonic()
    with out.open("wb") as stdout, (out.with_suffix(".err")).open("wb") as stderr:
        proc = subprocess.Popen(
            argv, stdout=stdout, stderr=stderr, env=env, preexec_fn=_pinned(CLIENT_CPUS)
        )
        with PeakRss([proc.pid]) as rss:
            _pid, status, usage = os.wait4(proc.pid, 0)
            wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        wall_s=round(wall, 3),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 3),
        peak_rss_mb=round(rss.peak_kb / 1024, 1),
        maxrss_mb=round(usage.ru_maxrss / 1024, 1),
        rc=proc.returncode,
    )


def write_keys(work: Path) -> tuple[Path, Path, Path, asyncssh.SSHKey]:
    client = asyncssh.generate_private_key("ssh-ed25519")
    host = asyncssh.generate_private_key("ssh-ed25519")
    key_path, host_path = work / "id_ed25519", work / "host_key"
    client.write_private_key(str(key_path))
    client.write_public_key(str(key_path) + ".pub")
    host.write_private_key(str(host_path))
    key_path.chmod(0o600)
    return key_path, Path(str(key_path) + ".pub"), host_path, host


def build_fleet(n: int, route: str) -> list[dict]:
    """Inventory entries (plus scenario) for N devices on ports BASE_PORT + i."""
    devices = []
    for index, spec in enumerate(make_fleet(n)):
        entry = {
            "uuid": spec.uuid,
            "name": spec.name,
            "address": "127.0.0.1",
            "port": BASE_PORT + index,
            "user": "root",
            "site": spec.site,
            "public_address": spec.public_address,
            "scenario": spec.scenario,
        }
        if route == "jump" and index % JUMP_GROUP:
            entry["gateway"] = devices[index - index % JUMP_GROUP]["uuid"]
        devices.append(entry)
    return devices


def write_config(path: Path, route: str, concurrency: int, proxy_port: int = PROXY_PORT) -> None:
    lines = [
        "[run]",
        f"concurrency = {concurrency}",
        "[routes]",
        f'mode = "{"proxy" if route == "proxy" else "auto"}"',  # auto: gateways go direct
        f"max_proxy_sessions = {concurrency}",
        f"max_targets_per_gateway = {JUMP_GROUP - 1}",
        "[balena]",
        'ssh_host = "127.0.0.1"',
        f"ssh_port = {proxy_port}",
        'ssh_user = "bench"',
    ]
    path.write_text("\n".join(lines) + "\n")


def start_fleet(spec_path: Path, procs: int, work: Path) -> list[subprocess.Popen]:
    fleet = []
    for index in range(procs):
        log = (work / f"fleet-{index}.log").open("w")
        fleet.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(REPO / "tests/bench/fleet.py"),
                    str(spec_path),
                    str(index),
                    str(procs),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                preexec_fn=_pinned(fleet_cpus()),
            )
        )
    for proc in fleet:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            stop_fleet(fleet)
            raise SystemExit(f"bench fleet failed to start (see {work}/fleet-*.log)")
    return fleet


def stop_fleet(fleet: list[subprocess.Popen]) -> float:
    """Stop the fleet processes (by PID); returns their total CPU seconds."""
    cpu = 0.0
    for proc in fleet:
        proc.terminate()
    for proc in fleet:
        out, _ = proc.communicate(timeout=30)
        for word in (out or "").split():
            if word.startswith("cpu_s="):
                cpu += float(word[6:])
    return cpu


def orch_outcome(out: Path) -> dict:
    try:
        document = json.loads(out.read_text())
    except (OSError, ValueError):
        return {"completed": 0, "healthy": 0, "causes": {}}
    devices = document.get("devices", [])
    causes = Counter(cause for d in devices for cause in d.get("root_causes", []))
    return {
        "completed": sum(1 for d in devices if d.get("reachable")),
        "healthy": sum(1 for d in devices if d.get("reachable") and not d.get("root_causes")),
        "causes": dict(causes.most_common(8)),
    }


@dataclass(frozen=True)
class SizeFiles:
    """What one fleet size needs on disk: the fleet's spec, orch's inputs, the baseline's script."""

    size_dir: Path
    spec: Path
    config: Path
    script: Path
    nonce: str
    fleet_args: list[str]
    """``--inventory``, ``--key`` and ``--known-hosts`` arguments for orch and the baseline."""
    env: dict[str, str]


def prepare_size(
    n: int,
    args: argparse.Namespace,
    work: Path,
    keys: tuple,
    captures: dict,
    proxy_port: int = PROXY_PORT,
) -> SizeFiles:
    """Write the inventory, known_hosts, fleet spec, orch config and probe script for N devices."""
    key_path, pub_path, host_path, host_key = keys
    size_dir = work / f"n{n}"
    size_dir.mkdir()
    devices = build_fleet(n, args.route)
    public = host_key.export_public_key().decode().strip()
    known_hosts = size_dir / "known_hosts"
    known_hosts.write_text(
        f"127.0.0.1 {public}\n" + "".join(f"[127.0.0.1]:{d['port']} {public}\n" for d in devices)
    )
    inventory = size_dir / "inventory.json"
    inventory.write_text(
        json.dumps([{k: v for k, v in d.items() if k != "scenario"} for d in devices])
    )
    spec = size_dir / "fleet.json"
    spec.write_text(
        json.dumps(
            {
                "delay_ms": args.delay_ms,
                "captures": captures,
                "host_key": str(host_path),
                "client_pub": str(pub_path),
                "devices": [
                    {k: d[k] for k in ("uuid", "name", "scenario", "port")} for d in devices
                ],
                "proxy_port": proxy_port if args.route == "proxy" else None,
            }
        )
    )
    config = size_dir / "orch.toml"
    write_config(config, args.route, args.concurrency, proxy_port)
    nonce = new_nonce()
    script = size_dir / "probe.sh"
    script.write_bytes(probe_script(nonce))
    fleet_args = [
        "--inventory",
        str(inventory),
        "--key",
        str(key_path),
        "--known-hosts",
        str(known_hosts),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return SizeFiles(size_dir, spec, config, script, nonce, fleet_args, env)


def run_size(
    n: int, args: argparse.Namespace, work: Path, keys: tuple, captures: dict
) -> list[dict]:
    files = prepare_size(n, args, work, keys, captures)
    size_dir, spec, config, env, fleet_args = (
        files.size_dir,
        files.spec,
        files.config,
        files.env,
        files.fleet_args,
    )
    loop_argv = [
        sys.executable,
        str(REPO / "tests/bench/baseline.py"),
        *fleet_args,
        "--script",
        str(files.script),
        "--nonce",
        files.nonce,
        "--concurrency",
        str(args.concurrency),
    ]
    rows = []
    fleet = start_fleet(spec, args.fleet_procs, size_dir)
    fleet_started = time.monotonic()
    try:
        route_args = {"proxy": ["--proxy-port", str(PROXY_PORT)], "jump": ["--jump"]}.get(
            args.route, []
        )
        transport_argv = [*loop_argv, "--orch-transport", *route_args]
        for rep in range(args.reps):
            base = measure_loop(loop_argv, size_dir / f"baseline-{rep}.out", env)
            jump_base = None
            if args.route == "jump":
                jump_base = measure_loop(
                    [*loop_argv, "--jump"], size_dir / f"baseline-jump-{rep}.out", env
                )
            transport = None
            if args.transport:
                transport = measure_loop(transport_argv, size_dir / f"transport-{rep}.out", env)
            orch_argv = [
                sys.executable,
                "-c",
                ORCH,
                "--config",
                str(config),
                "diagnose",
                *fleet_args,
                "--db",
                f"sqlite:///{size_dir}/orch-{rep}.db",
                "--format",
                "json",
                "--concurrency",
                str(args.concurrency),
            ]
            orch = measure(orch_argv, size_dir / f"orch-{rep}.out", env)
            orch.update(orch_outcome(size_dir / f"orch-{rep}.out"))
            rows.append(row(n, rep, args, base, orch, transport, jump_base))
            print_row(rows[-1])
        if args.profile:
            profile(orch_argv, size_dir, Path(args.profile), n, args.route, env)
        if args.instructions:
            loop = count_instructions("bare loop", loop_argv, size_dir, n, env)
            jump_loop = None
            if args.route == "jump":
                jump_loop = count_instructions(
                    "bare loop through the gateways", [*loop_argv, "--jump"], size_dir, n, env
                )
            if args.transport:
                count_instructions("orch transport", transport_argv, size_dir, n, env)
            orch = count_instructions("orch", orch_argv, size_dir, n, env)
            if loop and orch:
                print(f"  orch / bare loop instructions: x{orch / loop:.2f}")
            if jump_loop and orch:
                print(f"  orch / bare loop through the gateways: x{orch / jump_loop:.2f}")
    finally:
        fleet_cpu = stop_fleet(fleet)
    for r in rows:
        r["fleet_cpu_s_all_reps"] = round(fleet_cpu, 2)
    print(
        f"  fleet CPU over {time.monotonic() - fleet_started:.1f}s: {fleet_cpu:.1f}s",
        file=sys.stderr,
    )
    return rows


def measure_loop(argv: list[str], out: Path, env: dict[str, str]) -> Measured:
    """Measure one run of baseline.py; ``completed`` from the count it prints."""
    measured = measure(argv, out, env)
    measured["completed"] = json.loads(out.read_text() or "{}").get("devices_ok", 0)
    return measured


def row(
    n: int,
    rep: int,
    args: argparse.Namespace,
    base: Measured,
    orch: Measured,
    transport: Measured | None = None,
    jump_base: Measured | None = None,
) -> dict:
    extra: dict = {}
    if transport is not None:
        extra["orch_transport"] = dict(
            transport, cpu_ms_per_device=round(transport["cpu_s"] * 1000 / n, 2)
        )
    if jump_base is not None:
        extra["baseline_jump"] = dict(
            jump_base, cpu_ms_per_device=round(jump_base["cpu_s"] * 1000 / n, 2)
        )
        if jump_base["wall_s"]:
            extra["wall_ratio_to_jump_loop"] = round(orch["wall_s"] / jump_base["wall_s"], 2)
    return {
        **extra,
        "n": n,
        "rep": rep,
        "route": args.route,
        "delay_ms": args.delay_ms,
        "concurrency": args.concurrency,
        "baseline": dict(base, cpu_ms_per_device=round(base["cpu_s"] * 1000 / n, 2)),
        "orch": dict(orch, cpu_ms_per_device=round(orch["cpu_s"] * 1000 / n, 2)),
        "wall_ratio": round(orch["wall_s"] / base["wall_s"], 2) if base["wall_s"] else None,
    }


def print_row(r: dict) -> None:
    b, o = r["baseline"], r["orch"]
    if "orch_transport" in r:
        t = r["orch_transport"]
        print(
            f"N={r['n']:>6} orch transport only: {t['wall_s']:7.2f}s "
            f"{t['cpu_ms_per_device']:6.2f} ms/dev {t['peak_rss_mb']:6.1f} MB ok={t['completed']}",
            flush=True,
        )
    if "baseline_jump" in r:
        j = r["baseline_jump"]
        print(
            f"N={r['n']:>6} bare loop through the gateways: {j['wall_s']:7.2f}s "
            f"{j['cpu_ms_per_device']:6.2f} ms/dev {j['peak_rss_mb']:6.1f} MB ok={j['completed']} "
            f"(orch wall x{r.get('wall_ratio_to_jump_loop')})",
            flush=True,
        )
    print(
        f"N={r['n']:>6} {r['route']:<6} delay={r['delay_ms']:g}ms | baseline {b['wall_s']:7.2f}s "
        f"{b['cpu_ms_per_device']:6.2f} ms/dev {b['peak_rss_mb']:6.1f} MB ok={b['completed']} | "
        f"orch {o['wall_s']:7.2f}s {o['cpu_ms_per_device']:6.2f} ms/dev {o['peak_rss_mb']:6.1f} MB "
        f"(maxrss {o['maxrss_mb']:.1f}) ok={o['completed']} healthy={o['healthy']} rc={o['rc']} | "
        f"wall x{r['wall_ratio']}",
        flush=True,
    )


def count_instructions(
    label: str, argv: list[str], size_dir: Path, n: int, env: dict
) -> int | None:
    """Run a client once more under cachegrind; print and return the instructions it executed.

    Instruction counts barely move between runs on a noisy machine, so two versions of orch
    compare at a glance, and orch against the bare loop gives a ratio the machine's speed does
    not move; run sizes 1 and N to split start-up from the per-device cost. (The client runs
    some 50x slower, so reads and batches grow: compare versions, not machines.) The counts per
    function stay in the work directory for ``cg_annotate`` (with ``--keep``).
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("  valgrind not installed: no instruction count", file=sys.stderr)
        return None
    log = size_dir / f"cachegrind-{label.replace(' ', '-')}.log"
    db_argv = [
        a if not a.startswith("sqlite:///") else f"sqlite:///{size_dir}/instructions.db"
        for a in argv
    ]
    subprocess.run(
        [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={log.with_suffix('.out')}",
            f"--log-file={log}",
            *db_argv,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**env, "PYTHONHASHSEED": "0"},
        check=False,
    )
    refs = [line for line in log.read_text().splitlines() if "I   refs:" in line]
    if not refs:
        print(f"  no instruction count (see {log})", file=sys.stderr)
        return None
    total = int(refs[-1].split(":")[-1].replace(",", ""))
    print(f"  {label} instructions: {total / 1e9:.3f} G ({total / 1e6 / n:.2f} M per device)")
    return total


def profile(argv: list[str], size_dir: Path, out_dir: Path, n: int, route: str, env: dict) -> None:
    """Run orch once more under py-spy (raw collapsed stacks) and print the top functions."""
    spy = shutil.which("py-spy")
    if spy is None:
        print("  py-spy not installed: no profile (pip install py-spy)", file=sys.stderr)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"orch-{route}-n{n}.txt"
    db_argv = [
        a if not a.startswith("sqlite:///") else f"sqlite:///{size_dir}/profile.db" for a in argv
    ]
    subprocess.run(
        [
            spy,
            "record",
            "--gil",
            "--format",
            "raw",
            "--rate",
            "200",
            "-o",
            str(raw),
            "--",
            *db_argv,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        check=False,
    )
    print(f"  profile: {raw}", file=sys.stderr)
    for line in top_functions(raw):
        print(f"    {line}", file=sys.stderr)


def top_functions(raw: Path, count: int = 15) -> list[str]:
    """Self-time and inclusive-time leaders of a py-spy raw (collapsed stacks) profile."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        samples += int(weight)
        own[frames[-1]] += int(weight)
        for frame in set(frames):
            total[frame] += int(weight)
    if not samples:
        return ["(no samples)"]
    lines = [f"self  {100 * c / samples:5.1f}%  {f}" for f, c in own.most_common(count)]
    lines += [f"total {100 * c / samples:5.1f}%  {f}" for f, c in total.most_common(count + 10)]
    return lines


def _frame(text: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``: one entry per function."""
    name, _, where = text.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rsplit('/', 1)[-1]})" if where else name


def capture_scenarios(size: int) -> dict:
    """The real probe output of one device per scenario of a ``size``-device fleet."""
    representatives = {}
    for spec in make_fleet(max(200, size)):
        representatives.setdefault(spec.scenario, spec)
    started = time.monotonic()
    captures = capture_sync(list(representatives.values()))
    print(
        f"captured {len(captures)} scenarios in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return captures


@contextmanager
def work_directory(prefix: str, keep: bool) -> Iterator[Path]:
    """A fresh temporary directory, removed afterwards unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield work
    finally:
        if keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def compile_orch() -> None:
    """Write orch's bytecode first, as installing it does: with stale or missing ``.pyc`` files
    (an edited checkout, or ``PYTHONDONTWRITEBYTECODE`` set) every measured run would compile
    orch's sources again, ~150 M instructions and tens of milliseconds of start-up."""
    if not compileall.compile_dir(str(REPO / "orchestrator"), quiet=1):
        print("  could not compile every orch module; start-up includes compiling", file=sys.stderr)


def main() -> None:
    args = parse_args()
    if not args.no_netns:
        reexec_in_netns()
    global CLIENT_CPUS
    if args.pin and len(os.sched_getaffinity(0)) > 1:
        CLIENT_CPUS = {min(os.sched_getaffinity(0))}
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    compile_orch()
    with work_directory("orch-bench-", args.keep) as work:
        keys = write_keys(work)
        captures = capture_scenarios(max(sizes))
        rows = []
        for n in sizes:
            rows += run_size(n, args, work, keys, captures)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

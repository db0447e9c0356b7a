#!/usr/bin/env python3
"""The measurements of ci/bench-cluster.sh (run that, not this): clusters of
this broker and of RMQTT on loopback, each node on its own 127.x.y.z
address, under loadgen.

  bench_cluster.py run --raw DIR --bin DIR --rmqttd PATH [--only NAMES] [--parts PARTS]
                       [--quick] [--no-search] [--search-budget S] [--repeat N]

Writes into DIR (emptied first):
  meta.json                   what ran and where (the shell script adds to it)
  runs/<id>.json              one record per point-to-point run: cluster, rates,
                              CPU samples of every node and loadgen process
                              from /proc, timings, outcome
  loadgen/<id>-{sub,pub}.json the two loadgen results of that run
  convergence/rep<k>.json     one record per route-convergence repetition:
                              admin API polls, events, CPU samples
  loadgen/conv-<k>-*.json     the loadgen results of the subscribing clients

Placement: every broker node on CPU 0, loadgen and this script on CPU 1
(taskset / sched_setaffinity); the machine has two cores.

Point-to-point ("p2p"): 500 subscribers (loadgen/scenarios/cluster-p2p-sub.toml)
and 500 publishers (cluster-p2p-pub.toml) at QoS 1, two loadgen processes so
that the two halves get different host lists: publisher i connects to node
i % n, subscriber i to node (i + 1) % n, so with 2 and 3 nodes every message
crosses exactly one peer link ("cross"); with 1 node both are on the one node.
A "local" run on 2 nodes puts subscriber i on publisher i's node (nothing
crosses a link): the reference for the CPU cost of forwarding. Each run (and
each step of the throughput search) starts a fresh cluster.

Convergence ("convergence", this broker only): node n3 starts alone and its
clients subscribe 100,000 filters (cluster-routes-100k.toml); then n1 and n2
start as a 2-node cluster and n3 joins them (n3's only seed is n2, announced
to every 2 s until it answers). The admin API of n1 and n2 is polled every
20 ms until both hold all of n3's routes. Then a fresh n4 joins the three
(its seed is n1) and is polled until it holds them. Then 100,000 more
subscriptions are made on n4, and from the moment the last SUBACK arrived n1
is polled until it holds them (route deltas on a live link).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cluster_report as rep  # noqa: E402  (metrics and verdicts shared with the report)
from bench_scenario import toml_dump  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "loadgen" / "scenarios"
PEER_CONFIGS = ROOT / "ci" / "peers"  # the peers' configurations, shared with ci/peers/lib.sh
CLK_TCK = os.sysconf("SC_CLK_TCK")
NODE_CPU = 0
LOADGEN_CPU = 1
# Addresses: this broker's p2p clusters on 127.61.0.k, RMQTT's on 127.62.0.k,
# the convergence cluster on 127.63.0.k; the same ports on each address.
SUBNET = {"broker": 61, "rmqtt": 62, "conv": 63}
MQTT_PORT = 1883
PEER_PORT = 4370
ADMIN_PORT = 18083
RMQTT_RPC_PORT = 5363
RMQTT_RAFT_PORT = 6003

P2P_PAIRS = 500
P2P_BASE_RATE = 5000          # msg/s of the fixed-rate runs
P99_MAX_MS = rep.P99_MAX_MS
QUIET_BUSY_MAX = 20           # percent of a core: "quiet" before a run
QUIET_WAIT_MAX_S = int(os.environ.get("BENCH_QUIET_WAIT_MAX", "20"))
ROUTES_100K = 100_000
CONV_POLL_S = 0.02            # seconds between admin API polls while routes are awaited
# cluster-routes-100k.toml: connect, then 100 subscribe phases (phases 2..101).
LAST_SUBSCRIBE_PHASE = 101
CONV_TIMEOUT_S = 120


def log(msg):
    print(msg, flush=True)


# ---- /proc -----------------------------------------------------------------------

def proc_ticks(pid):
    """(utime, stime) of a process in clock ticks, all threads; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]), int(rest[12])
    except (OSError, IndexError, ValueError):
        return None


def cores():
    """{cpu index: [busy, total, user+nice]} in clock ticks, busy = all but idle and iowait."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            p = line.split()
            v = [int(x) for x in p[1:9]]
            out[int(p[0][3:])] = [v[0] + v[1] + v[2] + v[5] + v[6] + v[7], sum(v), v[0] + v[1]]
    return out


class Sampler(threading.Thread):
    """CPU of named processes and of the cores, every `interval` seconds."""

    def __init__(self, interval=0.25):
        super().__init__(daemon=True)
        self.interval = interval
        self.pids = {}
        self.samples = []
        self.halt = threading.Event()
        self.lock = threading.Lock()

    def add(self, name, pid):
        with self.lock:
            self.pids[name] = pid

    def sample(self):
        with self.lock:
            pids = dict(self.pids)
        procs = {}
        for name, pid in pids.items():
            t = proc_ticks(pid)
            if t is not None:
                procs[name] = t
        c = cores()
        self.samples.append({"t": time.time(), "proc": procs, "cpu": {str(k): v for k, v in c.items()}})

    def run(self):
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join(timeout=5)
        self.sample()
        return {"interval_s": self.interval, "clk_tck": CLK_TCK, "pids": self.pids, "samples": self.samples}


def wait_quiet():
    """Until both cores were at most QUIET_BUSY_MAX % busy over half a second
    (at most QUIET_WAIT_MAX_S). Returns (seconds waited, last busy percentages)."""
    start = time.time()
    while True:
        a = cores()
        time.sleep(0.5)
        b = cores()
        busy = [round((b[k][0] - a[k][0]) * 100 / max(b[k][1] - a[k][1], 1)) for k in (NODE_CPU, LOADGEN_CPU)]
        waited = time.time() - start
        if max(busy) <= QUIET_BUSY_MAX or waited >= QUIET_WAIT_MAX_S:
            return round(waited, 1), busy
        time.sleep(1)


def wait_no_bench():
    """ci/bench.sh measures on this machine too: never at the same time."""
    start = time.time()
    told = False
    while subprocess.run(["pgrep", "-f", r"ci/bench\.sh"], capture_output=True).returncode == 0:
        if not told:
            log("      (ci/bench.sh is running: waiting until it ends)")
            told = True
        time.sleep(10)
    return round(time.time() - start)


# ---- processes ---------------------------------------------------------------------

class Proc:
    def __init__(self, name, args, cwd, log_path, cpu, env=None):
        self.name = name
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.logf.write(f"---- {time.strftime('%H:%M:%S')} {' '.join(map(str, args))}\n".encode())
        self.logf.flush()
        self.p = subprocess.Popen(["taskset", "-c", str(cpu)] + [str(a) for a in args], cwd=cwd,
                                  stdout=self.logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.pid = self.p.pid
        self.started = time.time()

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit status."""
        self.signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.p.wait(timeout=10)
        self.logf.close()
        return self.p.returncode

    def tail(self, n=5):
        """The first error line of the log if there is one, else its last lines."""
        try:
            lines = [re.sub(r"\x1b\[[0-9;]*m", "", line)
                     for line in Path(self.log_path).read_text(errors="replace").splitlines()]
        except OSError:
            return ""
        errors = [line for line in lines if re.search(r"ERROR|error:|panicked", line)]
        return (errors[0] if errors else " | ".join(lines[-n:]))[:500]


def port_open(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listening_sockets(pid):
    out = subprocess.run(["ss", "-Htulnp"], capture_output=True, text=True).stdout
    return [line.split()[4] for line in out.splitlines() if f"pid={pid}," in line]


def non_loopback(pid):
    bad = []
    for addr in listening_sockets(pid):
        host = addr.rsplit(":", 1)[0].strip("[]")
        if not (host.startswith("127.") or host in ("::1",) or host.startswith("::ffff:127.")):
            bad.append(addr)
    return bad


def admin_get(host, path="/api/v1/cluster", timeout=10.0):
    """GET on the admin API (what `broker ctl --json cluster status` asks): (status, parsed body or text)."""
    with socket.create_connection((host, ADMIN_PORT), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        buf = bytearray()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            buf += b
    head, _, body = bytes(buf).partition(b"\r\n\r\n")
    status = int(head.split()[1]) if len(head.split()) > 1 else 0
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def route_counts(st):
    return {origin: len(filters) for origin, filters in st.get("remote_routes", [])}


def render_peer_config(template, **values):
    """ci/peers/TEMPLATE with each @KEY@ replaced, as ci/peers/lib.sh's render does."""
    text = (PEER_CONFIGS / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


# ---- clusters -----------------------------------------------------------------------

class Cluster:
    """n nodes of one broker, each on 127.<subnet>.0.<k>, all on NODE_CPU."""

    def __init__(self, kind, n, work, bins, octet, subnet=None):
        self.kind, self.n, self.bins = kind, n, bins
        self.subnet = subnet or SUBNET[kind]
        # A new third octet for every cluster: no port of a previous run (TIME_WAIT,
        # RMQTT's raft listener binds without SO_REUSEADDR) is in the way.
        self.octet = octet
        self.forward = None  # this broker's cluster.forward, when not the default
        self.work = Path(work)
        self.nodes = {}
        self.error = ""

    def ip(self, k):
        return f"127.{self.subnet}.{self.octet}.{k}"

    def mqtt_hosts(self):
        return [f"{self.ip(k)}:{MQTT_PORT}" for k in range(1, self.n + 1)]

    def pids(self):
        return {f"n{k}": p.pid for k, p in self.nodes.items()}

    def free(self):
        """The addresses are free (a previous run's process is gone)."""
        for k in range(1, self.n + 1):
            if port_open(self.ip(k), MQTT_PORT):
                return False
        return True

    # this broker
    def broker_config(self, k, seeds, cluster=True, forward=None):
        ip = self.ip(k)
        text = (f'[node]\nname = "n{k}"\n[listeners.tcp]\nbind = "{ip}:{MQTT_PORT}"\n'
                f'[auth]\nallow_anonymous = true\n[admin]\nbind = "{ip}:{ADMIN_PORT}"\n')
        if cluster:
            text += (f'[cluster]\nname = "bench"\nbind = "{ip}:{PEER_PORT}"\n'
                     f'seeds = [{", ".join(json.dumps(s) for s in seeds)}]\n')
            if forward:
                text += f'forward = "{forward}"\n'
        return text

    def start_broker_node(self, k, seeds, cluster=True):
        d = self.work / f"n{k}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "broker.toml").write_text(self.broker_config(k, seeds, cluster, self.forward))
        env = dict(os.environ, RUST_LOG="warn")
        self.nodes[k] = Proc(f"n{k}", [self.bins["broker"], "--config", d / "broker.toml"], d, d / "log", NODE_CPU, env)
        return self.nodes[k]

    # RMQTT
    def rmqtt_config(self, k):
        """ci/peers/rmqtt.toml, the single-node reports' RMQTT configuration, for node k."""
        plugins = ["rmqtt-retainer", "rmqtt-shared-subscription"] + (["rmqtt-cluster-raft"] if self.n > 1 else [])
        return render_peer_config("rmqtt.toml", NODE_ID=k, ADDR=self.ip(k), PORT=MQTT_PORT,
                                  RPC_PORT=RMQTT_RPC_PORT, PLUGINS_DIR=f"{self.work / f'n{k}'}/plugins/",
                                  STARTUPS=json.dumps(plugins))

    def start_rmqtt_node(self, k):
        d = self.work / f"n{k}"
        (d / "plugins").mkdir(parents=True, exist_ok=True)
        (d / "rmqtt.toml").write_text(self.rmqtt_config(k))
        for plugin in ("rmqtt-retainer.toml", "rmqtt-shared-subscription.toml"):
            shutil.copyfile(PEER_CONFIGS / plugin, d / "plugins" / plugin)
        ids = range(1, self.n + 1)
        (d / "plugins" / "rmqtt-cluster-raft.toml").write_text(
            f"node_grpc_addrs = {json.dumps([f'{i}@{self.ip(i)}:{RMQTT_RPC_PORT}' for i in ids])}\n"
            f"raft_peer_addrs = {json.dumps([f'{i}@{self.ip(i)}:{RMQTT_RAFT_PORT}' for i in ids])}\n")
        # RMQTT also reads ./rmqtt.toml and /etc/rmqtt*: it runs in its own folder.
        self.nodes[k] = Proc(f"n{k}", [self.bins["rmqttd"], "-f", d / "rmqtt.toml"], d, d / "log", NODE_CPU)
        return self.nodes[k]

    def wait_listening(self, k, timeout=60):
        p = self.nodes[k]
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not p.alive():
                self.error = f"n{k} exited (status {p.p.returncode}): {p.tail()}"
                return False
            if port_open(self.ip(k), MQTT_PORT):
                time.sleep(0.3)  # its other sockets
                bad = non_loopback(p.pid)
                if bad:
                    self.error = f"n{k} listened on a non-loopback address ({' '.join(bad)}): stopped"
                    return False
                return True
            time.sleep(0.05)
        self.error = f"n{k} did not listen on {self.ip(k)}:{MQTT_PORT} within {timeout} s: {p.tail()}"
        return False

    def start(self):
        """Starts every node and waits until the cluster is formed. False (and .error) on failure."""
        t0 = time.time()
        if not self.free():
            self.error = f"127.{self.subnet}.{self.octet}.x:{MQTT_PORT} is already in use"
            return False
        if self.kind == "broker":
            seeds = [f"{self.ip(k)}:{PEER_PORT}" for k in range(1, self.n + 1)]
            for k in range(1, self.n + 1):
                self.start_broker_node(k, seeds, cluster=self.n > 1)
            if not all(self.wait_listening(k) for k in range(1, self.n + 1)):
                return False
            if self.n > 1 and not self.wait_formed():
                return False
        else:
            # Raft: the first node leads, the others find it and join, one at a time.
            for k in range(1, self.n + 1):
                self.start_rmqtt_node(k)
                if not self.wait_listening(k, timeout=90):
                    return False
            time.sleep(1.0)
        self.start_s = round(time.time() - t0, 2)
        return True

    def wait_formed(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ok = True
            for k in range(1, self.n + 1):
                try:
                    status, st = admin_get(self.ip(k), timeout=2)
                except OSError:
                    ok = False
                    break
                if status != 200 or sum(1 for p in st["peers"] if p[2]) != self.n - 1:
                    ok = False
                    break
            if ok:
                return True
            time.sleep(0.1)
        self.error = f"the {self.n} nodes did not see each other within {timeout} s"
        return False

    def routes_converged(self, expected_total):
        """This broker: every node holds, for every other node, that node's local routes,
        and the local routes add up to `expected_total`."""
        views = {}
        for k in range(1, self.n + 1):
            status, st = admin_get(self.ip(k), timeout=5)
            if status != 200:
                return False
            views[f"n{k}"] = st
        local = {name: len(st["local_routes"]) for name, st in views.items()}
        if sum(local.values()) != expected_total:
            return False
        for name, st in views.items():
            held = route_counts(st)
            if any(held.get(o, 0) != c for o, c in local.items() if o != name):
                return False
        return True

    def alive(self):
        return all(p.alive() for p in self.nodes.values())

    def dead(self):
        return [f"n{k} (status {p.p.returncode}): {p.tail()}" for k, p in self.nodes.items() if not p.alive()]

    def stop(self):
        for p in self.nodes.values():
            p.signal(signal.SIGTERM)
        for p in self.nodes.values():
            p.stop(grace=8)


# ---- scenarios ----------------------------------------------------------------------

def render(template, out, hosts, **changes):
    with open(SCENARIOS / template, "rb") as f:
        doc = tomllib.load(f)
    doc["target"]["hosts"] = hosts
    for p in doc["phase"]:
        if p["kind"] == "publish":
            if "rate" in changes:
                p["rate"] = float(changes["rate"])
            if "duration" in changes:
                p["duration"] = changes["duration"]
    if "drain" in changes:
        phases = doc["phase"]
        for i, p in enumerate(phases):
            if p["kind"] == "publish" and i + 1 < len(phases) and phases[i + 1]["kind"] == "hold":
                phases[i + 1]["duration"] = changes["drain"]
    if "group_start" in changes:
        for g in doc["group"]:
            g["start"] = changes["group_start"]
    with open(out, "w") as f:
        f.write(f"# Generated by ci/bench_cluster.py from loadgen/scenarios/{template}\n")
        f.write(toml_dump(doc))


def wait_for_line(path, text, proc, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if text in Path(path).read_text(errors="replace"):
                return True
        except OSError:
            pass
        if proc.p.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def interrupt(proc, timeout=60):
    """Ctrl-C for loadgen: it ends the current phase, disconnects and writes its result."""
    proc.signal(signal.SIGINT)
    try:
        proc.p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.stop(grace=1)
    return proc.p.returncode


# ---- point-to-point -----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.raw = Path(args.raw)
        self.work = Path(args.work)
        b = Path(args.bin).resolve()
        self.bins = {"broker": b / "broker", "loadgen": b / "loadgen", "rmqttd": Path(args.rmqttd).resolve()}
        self.versions = json.loads(args.versions) if args.versions else {}
        self.publish = "5s" if args.quick else "20s"
        self.drain = "2s" if args.quick else "3s"
        self.step_publish = "3s" if args.quick else "5s"
        self.step_drain = "2s"
        self.bisections = 1 if args.quick else 2
        self.octet = 0

    def next_octet(self):
        self.octet = self.octet % 250 + 1
        return self.octet

    def p2p(self, kind, n, topology, rate, publish, drain, run_id, attempt=1, step=None):
        waited_bench = wait_no_bench()
        waited, busy = wait_quiet()
        rec = {"id": run_id, "broker": kind, "nodes": n, "topology": topology, "rate": rate, "publish": publish,
               "drain": drain, "pairs": P2P_PAIRS, "attempt": attempt, "step": step, "outcome": "ok", "note": "",
               "waited_for_quiet_s": waited, "cores_busy_before": busy, "waited_for_bench_sh_s": waited_bench,
               "started_at": time.time()}
        work = self.work / run_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        cluster = Cluster(kind, n, work / "nodes", self.bins, self.next_octet())
        # "cross-async": the cross placement, this broker with cluster.forward = "async".
        cross = topology.startswith("cross")
        if topology.endswith("-async"):
            cluster.forward = "async"
        sampler = Sampler()
        sub = pub = None
        try:
            if not cluster.start():
                rec.update(outcome="failed-to-start", note=cluster.error)
                return rec
            rec["cluster_start_s"] = cluster.start_s
            rec["node_pids"] = cluster.pids()
            for name, pid in cluster.pids().items():
                sampler.add(name, pid)
            sampler.add("driver", os.getpid())
            sampler.start()
            hosts = cluster.mqtt_hosts()
            sub_hosts = [hosts[(j + 1) % n] for j in range(n)] if cross else hosts
            rec["pub_hosts"], rec["sub_hosts"] = hosts, sub_hosts
            render("cluster-p2p-sub.toml", work / "sub.toml", sub_hosts)
            render("cluster-p2p-pub.toml", work / "pub.toml", hosts, rate=rate, duration=publish, drain=drain)
            sub_json = self.raw / "loadgen" / f"{run_id}-sub.json"
            pub_json = self.raw / "loadgen" / f"{run_id}-pub.json"
            labels = ["--label", f"broker={kind}", "--label", f"nodes={n}", "--label", f"topology={topology}",
                      "--label", f"run={run_id}", "--label", f"broker_version={self.versions.get(kind, '')}"]
            first_pid = cluster.nodes[1].pid
            sub = Proc("loadgen-sub", [self.bins["loadgen"], "run", work / "sub.toml", "--json", sub_json,
                                       "--broker-pid", first_pid, "--label", "half=sub"] + labels,
                       work, work / "loadgen-sub.log", LOADGEN_CPU)
            sampler.add("loadgen-sub", sub.pid)
            if not wait_for_line(work / "loadgen-sub.log", "phase 2 subscribe", sub, 60):
                rec.update(outcome="loadgen-failed", note=f"the subscribers did not subscribe: {sub.tail()}")
                return rec
            t = time.time()
            if kind == "broker" and n > 1:
                deadline = time.time() + 20
                while time.time() < deadline and not cluster.routes_converged(P2P_PAIRS):
                    time.sleep(0.1)
                rec["routes_converged"] = cluster.routes_converged(P2P_PAIRS)
                time.sleep(0.5)
            else:
                # RMQTT has no route status here (its HTTP API plugin is off): a fixed wait,
                # longer than its raft proposal batching (200 ms).
                time.sleep(2.0 if n > 1 else 0.5)
            rec["settle_s"] = round(time.time() - t, 2)
            timeout = rep.seconds(publish) + rep.seconds(drain) + 90
            pub = Proc("loadgen-pub", [self.bins["loadgen"], "run", work / "pub.toml", "--json", pub_json,
                                       "--broker-pid", first_pid, "--label", "half=pub", "--quiet"] + labels,
                       work, work / "loadgen-pub.log", LOADGEN_CPU)
            sampler.add("loadgen-pub", pub.pid)
            try:
                rc = pub.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pub.stop(grace=2)
                rec.update(outcome="timeout", note=f"the publishers did not finish within {timeout} s")
                rc = None
            time.sleep(0.5)
            src = interrupt(sub)
            if kind == "broker" and n > 1 and cluster.alive():
                # The nodes' forwarding counters (forwarded, received, dropped) after the run.
                counters = {}
                for k in range(1, n + 1):
                    try:
                        status, st = admin_get(cluster.ip(k), timeout=5)
                        if status == 200:
                            counters[f"n{k}"] = dict(st["counters"], forwards_dropped=st["forwards_dropped"])
                    except OSError:
                        pass
                rec["cluster_counters"] = counters
            if rec["outcome"] == "ok":
                if not cluster.alive():
                    rec.update(outcome="broker-died", note="; ".join(cluster.dead()))
                elif rc != 0 or not pub_json.exists():
                    rec.update(outcome="loadgen-failed", note=f"publishers: status {rc}: {pub.tail()}")
                elif not sub_json.exists():
                    rec.update(outcome="loadgen-failed", note=f"subscribers: status {src}: {sub.tail()}")
            rec["sub_json"] = f"loadgen/{sub_json.name}"
            rec["pub_json"] = f"loadgen/{pub_json.name}"
            return rec
        finally:
            for p in (pub, sub):
                if p is not None and p.alive():
                    p.stop(grace=2)
            rec["cpu"] = sampler.stop() if sampler.is_alive() or sampler.samples else None
            if not cluster.alive() and rec["outcome"] == "ok":
                rec.update(outcome="broker-died", note="; ".join(cluster.dead()))
            cluster.stop()
            rec["ended_at"] = time.time()
            (self.raw / "runs" / f"{run_id}.json").write_text(json.dumps(rec))

    def p2p_all(self):
        started = time.time()
        # By cluster size first: a search budget spent runs out on the largest clusters of both brokers alike.
        combos = [(k, n) for n in (1, 2, 3) for k in ("broker", "rmqtt") if k in self.args.only]
        log(f"==> point-to-point, fixed rate {P2P_BASE_RATE} msg/s, {P2P_PAIRS} pairs, QoS 1, publish {self.publish}")
        for kind, n in combos:
            topologies = ["cross", "local"] + (["cross-async"] if kind == "broker" else []) if n == 2 else ["cross"]
            for topo in topologies:
                run_id = f"{kind}-{n}n-{topo}-fixed"
                t0 = time.time()
                rec = self.p2p(kind, n, topo, P2P_BASE_RATE, self.publish, self.drain, run_id)
                m = rep.p2p_metrics(rec, self.raw) if rec["outcome"] == "ok" else None
                # Other work on the machine during the run: once more.
                if m and m.get("others_pct") is not None and m["others_pct"] > rep.OTHERS_MAX_PCT:
                    log(f"    {run_id}: disturbed (others took {m['others_pct']:.0f}% of a core): once more")
                    rec = self.p2p(kind, n, topo, P2P_BASE_RATE, self.publish, self.drain, run_id, attempt=2)
                    m = rep.p2p_metrics(rec, self.raw) if rec["outcome"] == "ok" else None
                log(f"    {run_id}: {rec['outcome']} [{time.time() - t0:.0f} s] " + (rep.one_line(m) if m else rec["note"]))
        if self.args.no_search:
            return
        budget = self.args.search_budget
        log(f"==> throughput search (steps {self.step_publish} + {self.step_drain} drain on a fresh cluster; budget {budget} s)")
        search_started = time.time()
        for kind, n in combos:
            base = P2P_BASE_RATE
            rate, passed, failed, bisected, trail, step = base * 2, None, None, 0, [], 0
            while True:
                if time.time() - search_started >= budget:
                    trail.append("(time budget spent)")
                    (self.raw / "runs" / f"{kind}-{n}n-cross-search-budget.json").write_text(json.dumps(
                        {"id": f"{kind}-{n}n-cross-search-budget", "broker": kind, "nodes": n, "topology": "cross",
                         "step": step + 1, "rate": rate, "outcome": "skipped",
                         "note": f"the time budget of the searches ({budget} s) was spent"}))
                    break
                step += 1
                run_id = f"{kind}-{n}n-cross-search-{rate}"
                rec = self.p2p(kind, n, "cross", rate, self.step_publish, self.step_drain, run_id, step=step)
                if rec["outcome"] == "failed-to-start":
                    trail.append(f"{rate}:the cluster did not start ({rec['note'][:200]})")
                    break
                v = rep.verdict(rec, self.raw)
                if not v["pass"] and (v["marginal"] or (v.get("others_pct") or 0) > rep.OTHERS_MAX_PCT):
                    trail.append(f"{rate}:fail,again")
                    rec = self.p2p(kind, n, "cross", rate, self.step_publish, self.step_drain, run_id + "-again",
                                   attempt=2, step=step)
                    v = rep.verdict(rec, self.raw)
                trail.append(f"{rate}:{'pass' if v['pass'] else 'fail'}")
                if v["pass"]:
                    passed = rate
                else:
                    failed = rate
                if passed and failed:
                    if bisected >= self.bisections:
                        break
                    bisected += 1
                    rate = (passed + failed) // 2
                    if rate <= passed or rate >= failed:
                        break
                elif passed:
                    rate *= 2
                    if rate > base * 64:
                        break
                else:
                    rate //= 2
                    if rate < base // 4:
                        break
            log(f"    {kind} {n} node(s): {' '.join(trail)} -> {passed or 'none passed'}")

    # ---- route convergence ------------------------------------------------------------

    def poll_until(self, host, done, interval, timeout, trace, label):
        """Polls host's admin API every `interval` s until done(status) or timeout; appends
        (t, request seconds, peers, route counts) to trace. Returns the time done() first held."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = time.time()
            try:
                status, st = admin_get(host, timeout=10)
            except OSError as e:
                trace.append({"node": label, "t": t, "error": str(e)})
                time.sleep(interval)
                continue
            d = time.time() - t
            if status != 200:
                trace.append({"node": label, "t": t, "dt": d, "error": f"HTTP {status}"})
            else:
                trace.append({"node": label, "t": t, "dt": d, "peers": st["peers"], "routes": route_counts(st),
                              "local": len(st["local_routes"])})
                if done(st):
                    return t
            time.sleep(interval)
        return None

    def convergence(self, k):
        waited_bench = wait_no_bench()
        waited, busy = wait_quiet()
        run_id = f"conv-{k}"
        work = self.work / run_id
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        rec = {"id": run_id, "rep": k, "routes": ROUTES_100K, "outcome": "ok", "note": "", "events": {},
               "waited_for_quiet_s": waited, "cores_busy_before": busy, "waited_for_bench_sh_s": waited_bench,
               "poll_interval_s": CONV_POLL_S}
        ev = rec["events"]
        c = Cluster("broker", 4, work / "nodes", self.bins, self.next_octet(), subnet=SUBNET["conv"])  # node by node
        peer = lambda i: f"{c.ip(i)}:{PEER_PORT}"  # noqa: E731
        sampler = Sampler()
        sampler.add("driver", os.getpid())
        loads = []
        trace = []
        rec["trace"] = trace
        try:
            if not c.free():
                rec.update(outcome="failed-to-start", note=c.error or "its addresses are in use")
                return rec
            # A: n3 alone (its only seed, n2, is not up yet) takes 100,000 subscriptions.
            c.start_broker_node(3, [peer(2)])
            if not c.wait_listening(3):
                rec.update(outcome="failed-to-start", note=c.error)
                return rec
            sampler.add("n3", c.nodes[3].pid)
            sampler.start()
            render("cluster-routes-100k.toml", work / "routes-n3.toml", [f"{c.ip(3)}:{MQTT_PORT}"])
            j3 = self.raw / "loadgen" / f"{run_id}-routes-n3.json"
            ev["n3_subscribe_start"] = time.time()
            l3 = Proc("loadgen-n3", [self.bins["loadgen"], "run", work / "routes-n3.toml", "--json", j3,
                                     "--label", f"run={run_id}", "--label", "node=n3"],
                      work, work / "loadgen-n3.log", LOADGEN_CPU)
            loads.append((l3, j3))
            sampler.add("loadgen-n3", l3.pid)
            # The line is printed when the last SUBACK of the last subscribe phase arrived.
            if not wait_for_line(work / "loadgen-n3.log", f"phase {LAST_SUBSCRIBE_PHASE} subscribe", l3, 300):
                rec.update(outcome="failed", note=f"the clients of n3 did not subscribe: {l3.tail()}")
                return rec
            ev["n3_subscribed_seen"] = time.time()
            status, st = admin_get(c.ip(3))
            rec["n3_local_routes"] = len(st["local_routes"]) if status == 200 else None
            if rec["n3_local_routes"] != ROUTES_100K:
                rec.update(outcome="failed", note=f"n3 holds {rec['n3_local_routes']} local routes, not {ROUTES_100K}")
                return rec
            time.sleep(2.0)
            # n1 and n2 start as a 2-node cluster; n3 announces itself to n2 every 2 s and joins.
            # Only n1 and n2 are polled (every 20 ms: before n3's routes arrive their answer
            # is small); a poll of n3 would return its 100,000 routes each time.
            ev["n1_n2_start"] = time.time()
            c.start_broker_node(1, [peer(2)])
            c.start_broker_node(2, [peer(1)])
            sampler.add("n1", c.nodes[1].pid)
            sampler.add("n2", c.nodes[2].pid)
            has_n3 = lambda st: route_counts(st).get("n3", 0) == ROUTES_100K  # noqa: E731
            results = {}

            def watch(i):
                results[i] = self.poll_until(c.ip(i), has_n3, CONV_POLL_S, CONV_TIMEOUT_S, trace, f"n{i}")

            threads = [threading.Thread(target=watch, args=(i,)) for i in (1, 2)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            ev["n1_holds_n3"], ev["n2_holds_n3"] = results.get(1), results.get(2)
            if None in (results.get(1), results.get(2)):
                rec.update(outcome="failed", note="n1 or n2 did not get n3's routes within "
                           f"{CONV_TIMEOUT_S} s; dead: {c.dead()}")
                return rec
            time.sleep(2.0)
            # B: a fresh n4 joins the three (seed n1), which hold n3's 100,000 routes.
            ev["n4_start"] = time.time()
            c.start_broker_node(4, [peer(1)])
            sampler.add("n4", c.nodes[4].pid)
            t = self.poll_until(c.ip(4), has_n3, CONV_POLL_S, CONV_TIMEOUT_S, trace, "n4")
            ev["n4_holds_n3"] = t
            if t is None:
                rec.update(outcome="failed", note=f"n4 did not get n3's routes within {CONV_TIMEOUT_S} s")
                return rec
            time.sleep(2.0)
            # C: 100,000 new subscriptions on n4 while the links are up (route deltas). n1 is
            # polled from the moment the last SUBACK arrived (each answer then holds 200,000
            # routes: polling meanwhile would slow n1 down).
            render("cluster-routes-100k.toml", work / "routes-n4.toml", [f"{c.ip(4)}:{MQTT_PORT}"],
                   group_start=1000)
            j4 = self.raw / "loadgen" / f"{run_id}-routes-n4.json"
            ev["n4_subscribe_start"] = time.time()
            l4 = Proc("loadgen-n4", [self.bins["loadgen"], "run", work / "routes-n4.toml", "--json", j4,
                                     "--label", f"run={run_id}", "--label", "node=n4"],
                      work, work / "loadgen-n4.log", LOADGEN_CPU)
            loads.append((l4, j4))
            sampler.add("loadgen-n4", l4.pid)
            if not wait_for_line(work / "loadgen-n4.log", f"phase {LAST_SUBSCRIBE_PHASE} subscribe", l4, 300):
                rec.update(outcome="failed", note=f"the clients of n4 did not subscribe: {l4.tail()}")
                return rec
            ev["n4_subscribed_seen"] = time.time()
            has_n4 = lambda st: route_counts(st).get("n4", 0) == ROUTES_100K  # noqa: E731
            t = self.poll_until(c.ip(1), has_n4, CONV_POLL_S, CONV_TIMEOUT_S, trace, "n1")
            ev["n1_holds_n4"] = t
            if t is None:
                rec.update(outcome="failed", note=f"n1 did not get n4's routes within {CONV_TIMEOUT_S} s")
            if not c.alive():
                rec.update(outcome="broker-died", note="; ".join(c.dead()))
            return rec
        finally:
            for p, j in loads:
                interrupt(p, timeout=60)
            rec["loadgen_json"] = [f"loadgen/{j.name}" for _, j in loads if j.exists()]
            rec["cpu"] = sampler.stop() if sampler.is_alive() or sampler.samples else None
            rec["node_pids"] = c.pids()
            c.stop()
            (self.raw / "convergence" / f"{run_id}.json").write_text(json.dumps(rec))

    def convergence_all(self):
        log(f"==> route convergence, {ROUTES_100K:,} subscriptions, {self.args.repeat} repetitions (this broker)")
        for k in range(1, self.args.repeat + 1):
            t0 = time.time()
            self.convergence(k)
            rec = json.loads((self.raw / "convergence" / f"conv-{k}.json").read_text())
            m = rep.convergence_metrics(rec, self.raw)
            log(f"    repetition {k}: {rec['outcome']} [{time.time() - t0:.0f} s] {rep.conv_line(m) if m else rec['note']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--raw", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--bin", required=True, help="folder of broker and loadgen")
    r.add_argument("--rmqttd", default="")
    r.add_argument("--versions", default="", help="JSON {broker: version}")
    r.add_argument("--only", default="broker,rmqtt")
    r.add_argument("--parts", default="p2p,convergence")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--no-search", action="store_true")
    r.add_argument("--search-budget", type=int, default=780)
    r.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    # SIGTERM (ci/bench-cluster.sh interrupted): unwind, so that every cluster is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.only = [x for x in args.only.split(",") if x]
    parts = [x for x in args.parts.split(",") if x]
    try:
        os.sched_setaffinity(0, {LOADGEN_CPU})
    except OSError:
        pass
    raw = Path(args.raw)
    for d in ("runs", "loadgen", "convergence"):
        (raw / d).mkdir(parents=True, exist_ok=True)
    b = Bench(args)
    if "p2p" in parts:
        b.p2p_all()
    if "convergence" in parts and "broker" in args.only:
        b.convergence_all()


if __name__ == "__main__":
    main()

"""Loopback client and server for tests/port_range_real.rs, run in a private network
namespace: python3 client.py MODE DIR TEST_PID.

DIR holds params.json (what to do) and plan.json (what sysctune predicted, planned in the
same namespace); the outcome goes to DIR/out.json. Every connection closes gracefully,
the client first: shutdown(SHUT_WR), wait for the server's FIN, close. The client's port
then sits in TIME_WAIT, and no RST cuts it short (with tcp_rfc1337 = 1 a stray RST
would not either). Loops are bounded by the parameters; the whole run by `timeout`.
"""
import errno, json, os, socket, sys, threading, time

mode, run_dir, test_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
P = json.load(open(os.path.join(run_dir, "params.json")))
PLAN = json.load(open(os.path.join(run_dir, "plan.json")))
CAPACITY = PLAN["capacity"]
start = time.monotonic()


def watchdog():
    # The test that started us is gone (interrupted): stop rather than linger.
    while True:
        time.sleep(1)
        try:
            os.kill(test_pid, 0)
        except ProcessLookupError:
            os._exit(4)


threading.Thread(target=watchdog, daemon=True).start()


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(listener):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(10)
        try:
            while conn.recv(4096):  # until the client's FIN
                pass
        except OSError:
            pass
        conn.close()  # our FIN: the client, which closed first, goes to TIME_WAIT


for host, port in P["listen"]:
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family(host) == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(128)
    threading.Thread(target=serve, args=(s,), daemon=True).start()


def connect(dest, bind_first=False):
    """One short connection: (errno name or None, local port, t_shutdown, t_closed)."""
    host, port = dest
    c = socket.socket(family(host), socket.SOCK_STREAM)
    try:
        if bind_first:  # bind() to port 0 before connect(), no IP_BIND_ADDRESS_NO_PORT
            c.bind((host, 0))
        c.connect((host, port))
    except OSError as e:
        c.close()
        return errno.errorcode.get(e.errno, str(e.errno)), None, None, None
    local = c.getsockname()[1]
    t_shutdown = time.monotonic()
    c.shutdown(socket.SHUT_WR)
    c.settimeout(10)
    try:
        while c.recv(4096):  # until the server's FIN
            pass
    except OSError as e:
        c.close()
        return "recv " + errno.errorcode.get(e.errno, str(e.errno)), local, t_shutdown, None
    c.close()
    return None, local, t_shutdown, time.monotonic()


def netstat(name):
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, values in zip(lines[0::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            return dict(zip(head.split()[1:], map(int, values.split()[1:])))[name]


def sockstat_tw():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                w = line.split()
                return int(w[w.index("tw") + 1])


def time_wait_ports():
    """Local ports of the sockets in TIME_WAIT (state 06), IPv4 and IPv6."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            next(f)
            for line in f:
                w = line.split()
                if w[3] == "06":
                    ports.add(int(w[1].rsplit(":", 1)[1], 16))
    return ports


def paced(dest, rate, attempts, stop_on_failure):
    """`attempts` connections, at most `rate` per second and never faster: a late start
    is not caught up with a burst. The outcome of each, with its start time."""
    period = 1.0 / rate
    t0 = time.monotonic()
    nxt = t0
    results, late = [], 0.0
    for _ in range(attempts):
        now = time.monotonic()
        if nxt > now:
            time.sleep(nxt - now)
        begun = time.monotonic()
        late = max(late, begun - nxt)
        err, local, _, _ = connect(dest)
        results.append({"at": round(begun - t0, 3), "error": err, "port": local})
        if err and stop_on_failure:
            break
        nxt = max(nxt + period, time.monotonic())
    return {
        "rate": rate,
        "results": results,
        "max_late": round(late, 3),
        "elapsed": round(time.monotonic() - t0, 3),
    }


out = {"mode": mode}
if mode == "exhaust":
    # Connect to each destination until connect() fails: the count is its ports.
    out["destinations"] = []
    for dest in P["destinations"]:
        ports, error = [], None
        for _ in range(P["limit"]):
            err, local, _, _ = connect(tuple(dest))
            if err:
                error = err
                break
            ports.append(local)
        out["destinations"].append({"dest": dest, "ok": len(ports), "error": error, "ports": ports})
    out["tw"] = sockstat_tw()
elif mode == "rate":
    # Phases at a multiple of a predicted rate, for a time or up to ports + k attempts.
    out["phases"] = []
    for phase in P["phases"]:
        time.sleep(phase.get("pause", 0))
        rate = CAPACITY[phase["rate_of"]]["current"] * phase["factor"]
        if "seconds" in phase:
            attempts = int(phase["seconds"] * rate)
        else:
            attempts = CAPACITY["ports_available"]["current"] + phase["ports_plus"]
        out["phases"].append(paced(tuple(P["dest"]), rate, attempts, phase["stop_on_failure"]))
elif mode == "twtime":
    # Close N connections 0.1 s apart, then watch each port leave TIME_WAIT.
    socks = []
    for _ in range(P["connections"]):
        err, local, t_shutdown, t_closed = connect(tuple(P["dest"]))
        if err:
            raise SystemExit("connect: " + err)
        socks.append({"port": local, "shutdown": t_shutdown, "closed": t_closed})
        time.sleep(0.1)
    present = time_wait_ports()
    out["in_time_wait_at_start"] = sum(1 for s in socks if s["port"] in present)
    # Nothing leaves before 60 s: sleep until 59 s, then look every 10 ms.
    for s in socks:
        s["last_seen"] = time.monotonic()
    time.sleep(max(0.0, socks[0]["closed"] + 59.0 - time.monotonic()))
    deadline = socks[-1]["closed"] + CAPACITY["tw_seconds"]["current"] + 5.0
    pending = {s["port"]: s for s in socks}
    while pending and time.monotonic() < deadline:
        now = time.monotonic()
        present = time_wait_ports()
        for port in list(pending):
            if port in present:
                pending[port]["last_seen"] = now
            else:
                pending.pop(port)["gone"] = now
        time.sleep(0.01)
    # TIME_WAIT began after shutdown() and before close() returned, and ended after
    # last_seen and before gone: its true length is within [low, high].
    out["sockets"] = [
        {
            "port": s["port"],
            "low": round(s["last_seen"] - s["closed"], 3),
            "high": round(s["gone"] - s["shutdown"], 3) if "gone" in s else None,
        }
        for s in socks
    ]
elif mode == "bind":
    # bind() then connect() to one destination until bind() fails; then plain connect()s.
    ok, error = 0, None
    for _ in range(P["limit"]):
        err, _, _, _ = connect(tuple(P["dest"]), bind_first=True)
        if err:
            error = err
            break
        ok += 1
    out["bound"] = {"ok": ok, "error": error}
    out["plain"] = [{"dest": d, "error": connect(tuple(d))[0]} for d in P["others"]]
elif mode == "buckets":
    before = netstat("TCPTimeWaitOverflow")
    r = paced(tuple(P["dest"]), 1000.0, P["attempts"], False)
    out["attempts"] = len(r["results"])
    out["errors"] = sum(1 for x in r["results"] if x["error"])
    out["tw"] = sockstat_tw()
    out["overflow"] = netstat("TCPTimeWaitOverflow") - before
else:
    raise SystemExit("unknown mode " + mode)

out["wall"] = round(time.monotonic() - start, 3)
with open(os.path.join(run_dir, "out.json"), "w") as f:
    json.dump(out, f)

#!/usr/bin/env python3
"""Hold CONNECTIONS loopback TCP connections for bench/sockets.sh: both ends held, so
the tables hold 2 x CONNECTIONS sockets, half of them inbound.

  make-sockets.py CONNECTIONS READY_FILE

Workers of at most PER_WORKER connections each (both ends in the worker: the open-file
limit may not be raised past its hard limit, 20 000 on the development machine), each
with 10 listeners of its own on 127.0.0.1, ports 5001 and up (outside
ip_local_port_range). Clients connect() round-robin to their worker's listeners and take
their local ports from the range (outbound); each accepted socket's local port is the
listener's (inbound). Run it only inside a private network namespace (bench/sockets.sh
does). Writes READY_FILE with the count when every worker has made its connections, then
holds them until killed (SIGTERM ends the workers too).
"""
import os
import resource
import signal
import socket
import sys

conns, ready = int(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
PER_WORKER = max(1, (hard - 100) // 2)


def worker(index, n, done_w):
    ports = range(5001 + 10 * index, 5011 + 10 * index)
    listeners = []
    for port in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(4096)
        s.setblocking(False)
        listeners.append(s)
    held = []
    made = 0
    while made < n:
        batch = min(2000, n - made)
        for i in range(batch):
            c = socket.socket()
            c.connect(("127.0.0.1", ports[(made + i) % len(ports)]))
            held.append(c)
        made += batch
        for s in listeners:  # accept what the batch queued
            while True:
                try:
                    a, _ = s.accept()
                except BlockingIOError:
                    break
                held.append(a)
    if len(held) != 2 * n:
        os.write(done_w, b"x")
        sys.exit("worker %d: made %d connections but accepted %d" % (index, n, len(held) - n))
    os.write(done_w, b".")
    while True:
        signal.pause()


children = []
done_r, done_w = os.pipe()
left, index = conns, 0
while left > 0:
    n = min(PER_WORKER, left)
    pid = os.fork()
    if pid == 0:
        os.close(done_r)
        worker(index, n, done_w)
    children.append(pid)
    left -= n
    index += 1
os.close(done_w)


def stop(*_):
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
marks = b""
while len(marks) < len(children):
    got = os.read(done_r, 64)
    if not got or b"x" in got:
        stop()
    marks += got
with open(ready, "w") as f:
    f.write("%d\n" % conns)
while True:
    signal.pause()

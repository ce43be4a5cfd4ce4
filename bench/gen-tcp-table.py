#!/usr/bin/env python3
"""Write /proc/net/tcp and /proc/net/tcp6 into a fixture root, in the kernel's format.

Deterministic: the same arguments write the same bytes.

  gen-tcp-table.py ROOT [--lines 1000000] [--mix realistic|distinct] [--seed 1]
      A large table for the benchmark (bench/doctor.sh):
      realistic: 16 listeners; 60 % inbound connections to :443 from clients;
                 30 % outbound to 50 backends 10.1.0.1-50:8080 (~6 000 ports each, 21 %),
                 of which 26 000 to the hot backend 10.1.0.99:8080 (92 %, an error);
                 10 % to distinct destinations (a crawler). tcp6: a few lines.
      distinct:  every line a connection to a different destination (the worst case for
                 memory: one map entry per socket).

  gen-tcp-table.py ROOT --spec FILE
      Sockets listed in FILE, one "STATE LOCAL REMOTE [xCOUNT|rCOUNT]" per line, e.g.
          LISTEN       0.0.0.0:22          0.0.0.0:0
          TIME_WAIT    10.0.0.1:40000      10.0.0.5:8080     x85
          ESTABLISHED  [2001:db8::1]:40000 [2001:db8::5]:443 x50
          ESTABLISHED  10.0.0.1:443        192.0.2.10:51000  r3
      COUNT sockets: with xCOUNT the local port goes up by one for each (outbound), with
      rCOUNT the remote port (inbound, to one local port). IPv6 addresses go to tcp6,
      IPv4 to tcp. "#" starts a comment.

Addresses are written in x86's (little-endian) byte order, as the kernel prints them
there: IPv4 as the address read as a native u32 (127.0.0.1 -> 0100007F); IPv6 as four
native u32 words. IPv4 lines are padded to 149 characters, like the kernel's.
"""

import argparse
import ipaddress
import os
import random
import sys

STATES = {
    "ESTABLISHED": 0x01, "SYN_SENT": 0x02, "SYN_RECV": 0x03, "FIN_WAIT1": 0x04,
    "FIN_WAIT2": 0x05, "TIME_WAIT": 0x06, "CLOSE": 0x07, "CLOSE_WAIT": 0x08,
    "LAST_ACK": 0x09, "LISTEN": 0x0A, "CLOSING": 0x0B, "NEW_SYN_RECV": 0x0C,
}
HEADER4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
HEADER6 = ("  sl  local_address                         remote_address                        "
           "st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")


def hex4(packed):
    return "%08X" % int.from_bytes(packed, "little")


def hex6(packed):
    return "".join("%08X" % int.from_bytes(packed[i:i + 4], "little") for i in range(0, 16, 4))


def line4(sl, local, lport, remote, rport, state, inode):
    """local/remote: 4 packed bytes."""
    if state == 0x06:  # TIME_WAIT: the kernel's shorter form, no inode
        body = "%4d: %s:%04X %s:%04X %02X 00000000:00000000 03:000016F0 00000000     0        0 0 3 0000000000000000" % (
            sl, hex4(local), lport, hex4(remote), rport, state)
    else:
        body = "%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1" % (
            sl, hex4(local), lport, hex4(remote), rport, state, inode)
    return body.ljust(149) + "\n"


def line6(sl, local, lport, remote, rport, state, inode):
    if state == 0x06:
        return "%4d: %s:%04X %s:%04X %02X 00000000:00000000 03:000016F0 00000000     0        0 0 3 0000000000000000\n" % (
            sl, hex6(local), lport, hex6(remote), rport, state)
    return "%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000  1000        0 %d 1 0000000000000000 20 4 30 10 -1\n" % (
        sl, hex6(local), lport, hex6(remote), rport, state, inode)


def endpoint(text):
    """'10.0.0.1:80' or '[::1]:80' -> (family, packed, port)."""
    if text.startswith("["):
        addr, _, port = text[1:].partition("]:")
    else:
        addr, _, port = text.rpartition(":")
    ip = ipaddress.ip_address(addr)
    return ip.version, ip.packed, int(port)


def from_spec(path):
    tcp, tcp6 = [HEADER4.ljust(149) + "\n"], [HEADER6 + "\n"]
    inode = 20000
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            if (len(words) not in (3, 4) or words[0] not in STATES
                    or len(words) == 4 and not (words[3][:1] in ("x", "r") and words[3][1:].isdigit())):
                sys.exit("%s:%d: expected STATE LOCAL REMOTE [xCOUNT|rCOUNT], found %r" % (path, number, raw))
            count = int(words[3][1:]) if len(words) == 4 else 1
            remote_steps = len(words) == 4 and words[3][0] == "r"
            fam, local, lport = endpoint(words[1])
            fam2, remote, rport = endpoint(words[2])
            if fam != fam2:
                sys.exit("%s:%d: local and remote of different families" % (path, number))
            for i in range(count):
                inode += 1
                lp, rp = (lport, rport + i) if remote_steps else (lport + i, rport)
                if fam == 4:
                    tcp.append(line4(len(tcp) - 1, local, lp, remote, rp, STATES[words[0]], inode))
                else:
                    tcp6.append(line6(len(tcp6) - 1, local, lp, remote, rp, STATES[words[0]], inode))
    return tcp, tcp6


def v4(a, b, c, d):
    return bytes((a, b, c, d))


def bench(lines, mix, seed):
    rng = random.Random(seed)
    out = [HEADER4.ljust(149) + "\n"]
    host = v4(10, 0, 0, 1)
    any4 = v4(0, 0, 0, 0)
    listeners = [22, 80, 443, 8080, 8443, 9090, 9100, 3000, 5432, 6379, 11211, 25, 53, 111, 2049, 45000]
    for port in listeners:
        out.append(line4(len(out) - 1, any4, port, any4, 0, 0x0A, 1000 + port))
    n = lines - len(listeners)
    lo, hi = 32768, 60999
    if mix == "distinct":
        for i in range(n):
            dest = v4(11 + (i >> 24) % 200, (i >> 16) & 255, (i >> 8) & 255, i & 255)
            out.append(line4(len(out) - 1, host, lo + i % (hi - lo + 1), dest, 443, 0x01, 100000 + i))
        return out
    # realistic: category per socket, in a shuffled order (the established hash is not sorted)
    hot = 26000
    outbound = n * 30 // 100
    crawl = n * 10 // 100
    inbound = n - outbound - crawl
    cats = [0] * inbound + [1] * (outbound - hot) + [2] * hot + [3] * crawl
    rng.shuffle(cats)
    next_port = {}
    states = [0x06] * 70 + [0x01] * 25 + [0x02] * 2 + [0x05] * 2 + [0x08]
    backends = [v4(10, 1, 0, b) for b in range(1, 51)]
    hot_dest = v4(10, 1, 0, 99)
    for i, cat in enumerate(cats):
        inode = 100000 + i
        if cat == 0:  # a client of :443
            client = v4(100, 64 + rng.randrange(64), rng.randrange(256), rng.randrange(1, 255))
            out.append(line4(len(out) - 1, host, 443, client, rng.randrange(1024, 65536), 0x01, inode))
            continue
        if cat == 3:
            dest, dport = v4(11 + rng.randrange(200), rng.randrange(256), rng.randrange(256), rng.randrange(1, 255)), 443
        else:
            dest, dport = (hot_dest if cat == 2 else backends[rng.randrange(50)]), 8080
        key = (dest, dport)
        port = next_port.get(key, lo)
        next_port[key] = port + 1 if port < hi else lo
        if port == 45000:  # the listening port: connect() would skip it
            port = next_port[key]
            next_port[key] = port + 1
        out.append(line4(len(out) - 1, host, port, dest, dport, rng.choice(states), inode))
    return out


def bench6():
    any6 = bytes(16)
    me = ipaddress.ip_address("2001:db8::1").packed
    out = [HEADER6 + "\n", line6(0, any6, 443, any6, 0, 0x0A, 999)]
    for i in range(20):
        dest = ipaddress.ip_address("2001:db8::%x" % (0x100 + i % 4)).packed
        out.append(line6(len(out) - 1, me, 33000 + i, dest, 443, 0x06, 0))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root")
    ap.add_argument("--lines", type=int, default=1_000_000, help="socket lines in tcp (bench)")
    ap.add_argument("--mix", choices=["realistic", "distinct"], default="realistic")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--spec", help="write the sockets of this file instead")
    a = ap.parse_args()
    if a.spec:
        tcp, tcp6 = from_spec(a.spec)
    else:
        if a.lines < 100_000:
            sys.exit("--lines must be at least 100000 (the hot backend alone has 26000)")
        tcp, tcp6 = bench(a.lines, a.mix, a.seed), bench6()
    net = os.path.join(a.root, "proc", "net")
    os.makedirs(net, exist_ok=True)
    for name, rows in (("tcp", tcp), ("tcp6", tcp6)):
        with open(os.path.join(net, name), "w", buffering=1 << 20) as f:
            f.writelines(rows)


if __name__ == "__main__":
    main()

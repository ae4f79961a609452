#!/usr/bin/python3
"""hold.py: open COUNT TCP connections to a server and keep them open, silent.

One process of the concurrency benchmark (bench/run starts several, because a
process may hold at most `ulimit -Hn` descriptors). Connection i is bound to
source address 127.A.B.C, walking B.C over --addresses distinct addresses
starting at 127.<--net>.0.1, so the server sees many clients (and many /24s)
instead of one. The client never sends a byte: a tarpitted server holds the
banner back, so each connection is one parked session.

Protocol with the parent (line-oriented, stdout/stdin):
  prints  "ready OK FAILED"  once every connect has completed or failed
          (bounded by --timeout), then waits;
  exits   when stdin reaches EOF (the parent closes it), closing everything.
"""
import argparse
import errno
import os
import select
import socket
import sys
import time

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h: pick the port at connect(), per 4-tuple


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--net", type=int, required=True, help="second octet of the source addresses")
    p.add_argument("--addresses", type=int, default=1000, help="distinct source addresses")
    p.add_argument("--burst", type=int, default=250, help="connects per burst")
    p.add_argument("--pause", type=float, default=0.02, help="seconds between bursts")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()

    poller = select.epoll()
    socks = {}
    pending = set()
    failed = 0
    for i in range(a.count):
        n = i % a.addresses + 1
        src = f"127.{a.net}.{n >> 8}.{n & 255}"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((src, 0))
        s.setblocking(False)
        rc = s.connect_ex((a.host, a.port))
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        socks[s.fileno()] = s
        pending.add(s.fileno())
        poller.register(s.fileno(), select.EPOLLOUT)
        if (i + 1) % a.burst == 0:
            time.sleep(a.pause)
    deadline = time.monotonic() + a.timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(0.5):
            if fd not in pending:
                continue
            pending.discard(fd)
            poller.unregister(fd)
            if socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                failed += 1
                socks.pop(fd).close()
    failed += len(pending)
    for fd in pending:
        socks.pop(fd).close()
    sys.stdout.write(f"ready {len(socks)} {failed}\n")
    sys.stdout.flush()
    # Hold until the parent closes our stdin.
    while os.read(0, 4096):
        pass
    for s in socks.values():
        s.close()


if __name__ == "__main__":
    main()

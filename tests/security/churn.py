#!/usr/bin/python3
"""churn: many short SMTP connections, each claiming a distinct IPv6 client
through a PROXY v2 header, as fast as one Python process can.

Each connection sends "PROXY v2 TCP6 <src> ..." then "QUIT\\r\\n" in one
write, reads until the server closes, and closes (the server closes first,
so TIME_WAIT sits on the server side and client ports are not exhausted).
Up to `--inflight` connections run at once on one selector; every one has a
deadline. Source addresses are 2001:db8::/32 plus a bijective scramble of
the counter, so every address is distinct and they spread over the whole
/32 (many /48s, /64s...), which is the worst case for a prefix trie.

  churn.py --port P [--count N] [--inflight K] [--start I]
prints one line: count, errors, seconds, connections per second.
Also importable: churn(port, count, ...) -> dict.
"""
import argparse
import errno
import selectors
import socket
import struct
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
_MUL = 0x9E3779B97F4A7C15F39CC061  # odd: i -> i*_MUL mod 2^96 is a bijection
_MASK96 = (1 << 96) - 1


def src_addr(i):
    low = (i * _MUL) & _MASK96
    return ((0x20010DB8 << 96) | low).to_bytes(16, "big")


def header(i, dport):
    body = src_addr(i) + bytes(15) + b"\x01" + struct.pack(">HH", 40000 + i % 20000, dport)
    return SIG + bytes([0x21, 0x21]) + struct.pack(">H", len(body)) + body


def churn(port, count, inflight=64, start=0, host="127.0.0.1", timeout=10.0):
    sel = selectors.DefaultSelector()
    nxt, done, errors, active = start, 0, 0, 0
    end_i = start + count
    t0 = time.monotonic()
    last_err = None

    def open_one(i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((host, port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(rc, errno.errorcode.get(rc, "?"))
        sel.register(s, selectors.EVENT_WRITE, [i, "connect", time.monotonic() + timeout])

    while done + errors < count:
        while active < inflight and nxt < end_i:
            try:
                open_one(nxt)
                active += 1
            except OSError as e:
                errors += 1
                last_err = str(e)
            nxt += 1
        events = sel.select(timeout=1.0)
        now = time.monotonic()
        for key, _ in events:
            s, st = key.fileobj, key.data
            try:
                if st[1] == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, errno.errorcode.get(err, "?"))
                    s.send(header(st[0], port) + b"QUIT\r\n")
                    st[1] = "read"
                    sel.modify(s, selectors.EVENT_READ, st)
                else:
                    if s.recv(4096) == b"":
                        sel.unregister(s)
                        s.close()
                        active -= 1
                        done += 1
            except OSError as e:
                sel.unregister(s)
                s.close()
                active -= 1
                errors += 1
                last_err = str(e)
        # deadlines
        for key in list(sel.get_map().values()):
            if key.data[2] < now:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                active -= 1
                errors += 1
                last_err = "timeout"
    sel.close()
    secs = time.monotonic() - t0
    return {"count": count, "done": done, "errors": errors, "seconds": secs,
            "per_second": done / secs if secs else 0.0, "last_error": last_err}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--start", type=int, default=0)
    a = ap.parse_args()
    r = churn(a.port, a.count, a.inflight, a.start)
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()

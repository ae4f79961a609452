#!/usr/bin/python3
"""latency.py: open-loop SMTP load at a fixed offered rate; per-transaction latency.

Starts one transaction every 1/RATE seconds for DURATION seconds, whether or
not earlier ones have finished (open loop: a slow server cannot slow the
offered load down, so queueing shows in the latency instead of hiding in a
lower rate). Each transaction is a fresh connection:

    connect, 220, EHLO, MAIL, RCPT, DATA, body of SIZE bytes, "." -> 250, QUIT

and its latency is the time from the start of connect() to the 250 after the
data. The QUIT is sent but not timed. Prints one JSON object:
{"sent", "ok", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms", "offered_rate",
 "achieved_rate", "first_error"}.

Used by bench/run; standalone:
    bench/latency.py --port 36025 --rate 200 --duration 20 --size 4096
"""
import argparse
import asyncio
import json
import sys
import time


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list (p in 0..100)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


async def read_reply(reader):
    """One SMTP reply (possibly multi-line): returns its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4:
            raise ValueError(f"short reply line {line!r}")
        if line[3:4] != b"-":
            return int(line[:3])


async def expect(reader, writer, cmd, code):
    if cmd is not None:
        writer.write(cmd)
    got = await read_reply(reader)
    if got != code:
        raise ValueError(f"{cmd!r} -> {got}, expected {code}")


async def transaction(host, port, body, rcpt, timeout):
    t0 = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        async def dialogue():
            await expect(reader, writer, None, 220)
            await expect(reader, writer, b"EHLO latency.bench.test\r\n", 250)
            await expect(reader, writer, b"MAIL FROM:<lat@bench.test>\r\n", 250)
            await expect(reader, writer, b"RCPT TO:<" + rcpt + b">\r\n", 250)
            await expect(reader, writer, b"DATA\r\n", 354)
            await expect(reader, writer, body, 250)
            return time.monotonic() - t0
        elapsed = await asyncio.wait_for(dialogue(), timeout)
        writer.write(b"QUIT\r\n")
        try:
            await asyncio.wait_for(read_reply(reader), 2)
        except (asyncio.TimeoutError, OSError, ValueError, ConnectionError):
            pass
        return elapsed
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (asyncio.TimeoutError, OSError):
            pass


def make_body(size):
    """Headers plus SIZE bytes of 76-column text, CRLF, ending in CRLF.CRLF."""
    head = (b"From: <lat@bench.test>\r\nTo: <lat-rcpt@bench.test>\r\n"
            b"Subject: latency probe\r\nMessage-ID: <lat@bench.test>\r\n\r\n")
    line = b"x" * 76 + b"\r\n"
    lines = []
    n = 0
    while n < size:
        lines.append(line)
        n += len(line)
    return head + b"".join(lines) + b".\r\n"


async def main_async(a):
    body = make_body(a.size)
    rcpt = a.rcpt.encode()
    latencies, errors = [], []
    tasks = []
    total = int(a.rate * a.duration)
    start = time.monotonic() + 0.05
    sem = asyncio.Semaphore(a.max_inflight)

    async def one():
        async with sem:
            try:
                latencies.append(await transaction(a.host, a.port, body, rcpt, a.timeout))
            except Exception as e:  # every failure is counted, none stops the run
                errors.append(f"{type(e).__name__}: {e}")

    for i in range(total):
        delay = start + i / a.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    sent_end = time.monotonic()
    await asyncio.gather(*tasks)
    lat = sorted(x * 1000.0 for x in latencies)
    return {
        "sent": total, "ok": len(lat), "errors": len(errors),
        "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99), "max_ms": lat[-1] if lat else None,
        "offered_rate": a.rate, "achieved_rate": total / max(1e-9, sent_end - start),
        "first_error": errors[0] if errors else None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--rate", type=float, default=200.0, help="transactions started per second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of offered load")
    p.add_argument("--size", type=int, default=4096, help="body bytes")
    p.add_argument("--rcpt", default="lat@bench.test")
    p.add_argument("--timeout", type=float, default=30.0, help="per transaction")
    p.add_argument("--max-inflight", type=int, default=2000,
                   help="bound on open transactions (keeps the client under its fd limit)")
    a = p.parse_args()
    json.dump(asyncio.run(main_async(a)), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

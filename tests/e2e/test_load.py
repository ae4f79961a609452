"""Acceptance 4: load from Postfix's smtp-source, every message counted.

20,000 messages of 4 KiB over 50 concurrent sessions (several messages per
connection, -d), with Fsync on: afterwards exactly 20,000 files are in the
recipient's new/, each one complete.
"""
import shutil
import threading
import time

from mx import SLOW, parse_message, run_tool

MESSAGES = 20000
SESSIONS = 50


def test_smtp_source_20000_messages(mx_factory):
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0, "Idle_Time": 60},
                    listen_options={"Listener_Sessions": 0})
    # While the load runs, one more session sends NOOPs and times the
    # replies: disk work (fsync) must not stall the event loop.
    lat, stop = [], threading.Event()

    def prober():
        with mx.connect() as c:
            c.ehlo()
            while not stop.is_set() and len(lat) < 100000:
                t = time.monotonic()
                c.expect("NOOP", 250)
                lat.append(time.monotonic() - t)
                time.sleep(0.01)

    probe = threading.Thread(target=prober, daemon=True)
    probe.start()
    t0 = time.monotonic()
    r = run_tool(["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "4096",
                  "-d", "-f", "a@example.test", "-t", "load@example.test", "-M", "source.e2e.test",
                  f"127.0.0.1:{mx.port}"], timeout=110)
    elapsed = time.monotonic() - t0
    stop.set()
    probe.join(timeout=10)
    assert r.returncode == 0, (r.stdout.decode(errors="replace")[-2000:]
                               + r.stderr.decode(errors="replace")[-2000:])
    files = mx.new_files("load@example.test")
    # The 250 comes after the rename, so the count is exact right away.
    assert len(files) == MESSAGES, f"{len(files)} files in new/ for {MESSAGES} messages sent"
    assert mx.tmp_files() == [], f"leftovers in tmp/: {mx.tmp_files()[:5]}"
    assert len(mx.new_files()) == MESSAGES, "messages landed in other mailboxes"
    # Spot-check some files: complete, with our headers.
    for f in files[:: MESSAGES // 20]:
        raw = f.read_bytes()
        assert raw.startswith(b"Return-Path: <a@example.test>"), raw[:200]
        msg = parse_message(raw)
        assert msg.get_all("Received"), raw[:400]
        assert len(raw) > 4096, f"{f} is only {len(raw)} bytes"
    accepted = [e for e in mx.events() if e.get("event") in ("accept", "accepted", "message",
                                                            "queued", "delivered")]
    assert len(accepted) >= MESSAGES, f"only {len(accepted)} accepted-message log lines"
    lat.sort()
    assert len(lat) >= 20, f"only {len(lat)} NOOPs answered during the load"
    p50, p99, worst = lat[len(lat) // 2], lat[int(len(lat) * 0.99)], lat[-1]
    print(f"\nsmtp-source: {MESSAGES} messages / {SESSIONS} sessions in {elapsed:.1f}s "
          f"= {MESSAGES / elapsed:.0f} msg/s; NOOP latency during load: p50 {p50 * 1000:.1f} ms, "
          f"p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms over {len(lat)}")
    assert p99 < 0.25 * SLOW, f"event loop stalled under load: NOOP p99 {p99 * 1000:.0f} ms"
    mx.stop()
    shutil.rmtree(mx.maildir)  # 20,000 files: do not keep them in pytest's tmp
    assert elapsed < 100 * SLOW, f"too slow: {elapsed:.0f}s"

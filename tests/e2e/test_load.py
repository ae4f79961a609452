"""Acceptance 4: load from Postfix's smtp-source, every message counted.

20,000 messages of 4 KiB over 50 concurrent sessions (several messages per
connection, -d), with Fsync on: afterwards exactly 20,000 files are in the
recipient's new/, each one complete.
"""
import time

from mx import SLOW, parse_message, run_tool

MESSAGES = 20000
SESSIONS = 50


def test_smtp_source_20000_messages(mx_factory):
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0, "Idle_Time": 60},
                    listen_options={"Listener_Sessions": 0})
    t0 = time.monotonic()
    r = run_tool(["/usr/sbin/smtp-source", "-s", str(SESSIONS), "-m", str(MESSAGES), "-l", "4096",
                  "-d", "-f", "a@example.test", "-t", "load@example.test", "-M", "source.e2e.test",
                  f"127.0.0.1:{mx.port}"], timeout=110)
    elapsed = time.monotonic() - t0
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
    print(f"\nsmtp-source: {MESSAGES} messages / {SESSIONS} sessions in {elapsed:.1f}s "
          f"= {MESSAGES / elapsed:.0f} msg/s")
    assert elapsed < 100 * SLOW, f"too slow: {elapsed:.0f}s"

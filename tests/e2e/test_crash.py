"""Acceptance 5: SIGKILL during load loses nothing that was acknowledged.

Several client threads send messages, each with a unique Message-ID, and
record the ones answered 250. The server is killed with SIGKILL while they
run. Then every acknowledged Message-ID is in new/, every file in new/ is
complete (it ends with the body's last line naming its own Message-ID), and
after a restart the partial files left in tmp/ are removed.
"""
import re
import subprocess
import threading
import time

from mx import SLOW, make_message, parse_message

THREADS = 8
RCPT = "crash@example.test"


def sender(mx, index, acked, lock, stop):
    n = 0
    try:
        with mx.connect(timeout=10) as c:
            c.ehlo()
            while not stop.is_set() and n < 100000:
                n += 1
                # sizes from 1 KiB to ~300 KiB so the kill can land mid-write
                lines = ["%05d %s" % (i, "y" * 70) for i in range((n * 37 + index * 11) % 4000 + 10)]
                msgid, data = make_message(body_lines=lines)
                c.send_message("a@example.test", [RCPT], data)
                with lock:
                    acked.append(msgid)
    except Exception:
        pass  # the kill ends every session: expected


def test_sigkill_during_load(mx_factory):
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0})
    acked, lock, stop = [], threading.Lock(), threading.Event()
    threads = [threading.Thread(target=sender, args=(mx, i, acked, lock, stop), daemon=True)
               for i in range(THREADS)]
    # Background load from smtp-source (to another mailbox) so that the
    # delivery threads are busy with group commits when the kill lands.
    source = subprocess.Popen(["/usr/sbin/smtp-source", "-s", "20", "-m", "100000", "-l", "4096",
                               "-d", "-f", "a@example.test", "-t", "bulk@example.test",
                               f"127.0.0.1:{mx.port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= 1500:
                    break
            time.sleep(0.01)
        mx.kill()
    finally:
        if source.poll() is None:
            try:
                source.wait(timeout=10)
            except subprocess.TimeoutExpired:
                source.kill()
                source.wait(timeout=5)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    assert not any(t.is_alive() for t in threads), "client threads hung after the kill"
    with lock:
        acked_now = list(acked)
    assert len(acked_now) >= 100, f"only {len(acked_now)} messages acknowledged before the kill"

    found = {}
    for f in mx.new_files(RCPT):
        raw = f.read_bytes()
        msg = parse_message(raw)
        msgid = msg["Message-ID"]
        assert msgid, f"{f}: no Message-ID, file is partial: {raw[:200]!r}"
        m = re.search(rb"END-OF-BODY (<[^>]+>)\r?\n$", raw)
        assert m, f"{f} is partial (no final body line): tail {raw[-120:]!r}"
        assert m.group(1).decode() == msgid.strip(), f"{f}: body and header disagree"
        found[msgid.strip()] = f
    lost = [m for m in acked_now if m not in found]
    assert not lost, f"{len(lost)} of {len(acked_now)} acknowledged messages lost, e.g. {lost[:3]}"

    bulk = mx.new_files("bulk@example.test")
    assert bulk, "smtp-source delivered nothing: no load during the kill"
    for f in bulk:
        raw = f.read_bytes()
        assert raw.startswith(b"Return-Path: <a@example.test>") and len(raw) > 4096, \
            f"{f} is partial ({len(raw)} bytes)"

    # Plant a partial file, as a crash mid-write leaves it, then restart.
    tmpdir = mx.mailbox(RCPT) / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    (tmpdir / "1700000000.M1P1Q1.e2e-partial").write_bytes(b"Return-Path: <a@x>\r\nSubj")
    mx.start()
    deadline = time.monotonic() + 5 * SLOW
    while mx.tmp_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mx.tmp_files() == [], f"tmp/ not cleaned at start: {mx.tmp_files()[:5]}"
    cleaned = [e for e in mx.events() if "removed" in e and e.get("event", "").endswith("clean")]
    assert cleaned and int(cleaned[-1]["removed"]) >= 1, \
        f"the start-up clean-up of tmp/ is not logged with its count: {cleaned}"
    # Restart only adds: messages whose spool record was synced but whose
    # rename the kill interrupted are placed now (event=spool_replay); every
    # file is still complete and nothing that was there went away.
    after = mx.new_files(RCPT)
    assert set(found.values()) <= set(after), "restart removed a file from new/"
    replays = mx.events("spool_replay")
    written = sum(int(e["written"]) for e in replays)
    assert len(after) - len(found) <= written, \
        f"new/ grew by {len(after) - len(found)} at restart, the spool replay wrote {written}"
    for f in set(after) - set(found.values()):
        raw = f.read_bytes()
        m = re.search(rb"END-OF-BODY (<[^>]+>)\r?\n$", raw)
        assert m, f"{f}: a replayed file is partial: tail {raw[-120:]!r}"
    # and it serves again
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", [RCPT], data)
    print(f"\ncrash: {len(acked_now)} acknowledged, {len(found)} in new/ after SIGKILL, "
          f"{len(bulk)} from smtp-source")

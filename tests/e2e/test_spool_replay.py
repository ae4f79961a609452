"""The spool's replay (src/deliver/spool.h): what a power cut can do to the
Maildir after a 250, and what the next start puts back.

A SIGKILL keeps the page cache, so to see the replay work the test does what
a power cut would do to files whose checkpoint had not run yet: it empties,
shortens or removes them after killing the server, then starts it again and
checks that every acknowledged message is back in new/ byte for byte, that a
message a reader had moved to cur/ is not delivered twice, that a clean
stop or a checkpointed segment leaves nothing to replay, and that a record
that cannot be placed sets the spool aside (kept, named in the log) instead
of blocking the start.
"""
import time
import urllib.request

from mx import free_port, make_message


def send_many(mx, rcpts_list):
    """Send one message per entry (a list of recipients) on one connection;
    returns the Message-IDs in order."""
    ids = []
    with mx.connect() as c:
        c.ehlo()
        for i, rcpts in enumerate(rcpts_list):
            msgid, data = make_message(subject=f"spool {i}", body_lines=[f"line {i} " * 20] * (i + 1))
            c.send_message("a@example.test", rcpts, data)
            ids.append(msgid)
    return ids


def test_replay_restores_what_a_power_cut_lost(mx_factory):
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0})
    r1, r2 = "r1@example.test", "r2@example.test"
    t0 = time.monotonic()
    send_many(mx, [[r1]] * 12 + [[r1, r2]] * 4)
    mx.kill()  # well within the 1 s of quiet that would rotate the segment out
    assert time.monotonic() - t0 < 0.9, "too slow to catch the segment before its checkpoint"
    files = mx.new_files(r1) + mx.new_files(r2)
    assert len(files) == 20
    original = {f: f.read_bytes() for f in files}
    # what an interrupted writeback can leave: empty, short, or no entry at all
    files[0].write_bytes(b"")
    files[1].write_bytes(original[files[1]][:100])
    files[2].unlink()
    files[15].unlink()  # one of the two-recipient copies
    # its size on disk, not its bytes (the inode written back before the data)
    files[4].write_bytes(b"\0" * len(original[files[4]]))
    # a reader moved one message to cur/ before the cut: not to be delivered again
    moved = files[3]
    cur = moved.parent.parent / "cur"
    cur.mkdir(exist_ok=True)
    moved.rename(cur / (moved.name + ":2,S"))

    mx.start()
    ev = mx.wait_event("spool_replay")
    assert int(ev["records"]) == 16, ev
    assert int(ev["written"]) == 5, ev
    assert int(ev["moved_to_cur"]) == 1, ev
    assert int(ev["present"]) == 14, ev
    for f, data in original.items():
        if f == moved:
            assert not f.exists(), "a message moved to cur/ came back into new/"
            assert (cur / (moved.name + ":2,S")).read_bytes() == data
        else:
            assert f.read_bytes() == data, f"{f.name} not restored byte for byte"
    assert mx.tmp_files() == []

    # the replay reset the spool: a clean stop and a start replay nothing
    n = len(mx.events("spool_replay"))
    assert mx.stop() == 0
    files[0].unlink()
    mx.start()
    assert len(mx.events("spool_replay")) == n
    assert not files[0].exists()
    assert mx.stop() == 0


def test_replay_into_a_mailbox_called_new(mx_factory):
    """"new@" lives in DOMAIN/new/: its spool paths are DOMAIN/new/new/NAME.
    The replay's path check once took the first "/new/" for the folder and
    set the whole spool aside."""
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0})
    send_many(mx, [["new@example.test"]] * 2)
    mx.kill()
    files = mx.new_files("new@example.test")
    assert len(files) == 2
    original = files[0].read_bytes()
    files[0].unlink()
    mx.start()
    ev = mx.wait_event("spool_replay")
    assert int(ev["written"]) == 1, ev
    assert files[0].read_bytes() == original
    assert not mx.events("spool_replay_failed"), mx.log_text()[-2000:]
    assert mx.stop() == 0


def test_checkpointed_records_are_not_replayed(mx_factory):
    mx = mx_factory()
    send_many(mx, [["c@example.test"]] * 3)
    # after 1 s of quiet the segment is rotated out and synced by the checkpointer
    time.sleep(2.5)
    mx.kill()
    for f in mx.new_files("c@example.test"):
        f.unlink()  # a reader deleted them: they must stay deleted
    mx.start()
    assert mx.events("spool_replay") == []
    assert mx.new_files("c@example.test") == []
    assert mx.stop() == 0


def test_torn_tail_is_ignored(mx_factory):
    mx = mx_factory()
    send_many(mx, [["t@example.test"]] * 2)
    mx.kill()
    # a write torn by the cut after the last synced record: garbage follows it
    log = mx.maildir / ".spool" / "log.0"
    with open(log, "r+b") as fh:
        data = fh.read()
        end = data.rfind(b"spool 1")  # the second message's subject, inside its record
        assert end > 0
        fh.seek(end + 4096)
        fh.write(b"MXSR" + b"\xff" * 60)
    for f in mx.new_files("t@example.test"):
        f.write_bytes(b"")
    mx.start()
    ev = mx.wait_event("spool_replay")
    assert int(ev["records"]) == 2 and int(ev["written"]) == 2, ev
    assert all(f.stat().st_size > 0 for f in mx.new_files("t@example.test"))
    assert mx.stop() == 0


def test_unplaceable_record_sets_the_spool_aside(mx_factory):
    mx = mx_factory()
    send_many(mx, [["bad@example.test"]] * 2)
    mx.kill()
    box = mx.mailbox("bad@example.test")
    for f in sorted(box.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    box.rmdir()
    box.write_text("a file where the mailbox folder was\n")
    mx.start()
    ev = mx.wait_event("spool_replay_failed")
    assert "bad" in ev["error"], ev
    aside = list(mx.maildir.glob(".spool.failed-*"))
    assert len(aside) == 1 and (aside[0] / "log.0").stat().st_size > 0, aside
    # the server runs with a fresh spool and delivers
    box.unlink()
    send_many(mx, [["bad@example.test"]])
    assert len(mx.new_files("bad@example.test")) == 1
    assert mx.stop() == 0


def spool_metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    want = {"mxsieve_spool_pinned_segments": "pinned",
            "mxsieve_spool_checkpoints_total": "checkpoints",
            'mxsieve_spool_retries_total{result="ok"}': "ok",
            'mxsieve_spool_retries_total{result="failed"}': "failed"}
    out = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in want:
            out[want[name]] = int(value)
    return out


def test_a_message_answered_250_but_not_placed_arrives_when_the_mailbox_works(mx_factory):
    """The rename into new/ fails after the spool made the message durable
    (here new/ is a file, not a folder): the client keeps its 250, the
    segment is pinned, and the checkpointer places it again with a growing
    wait until the mailbox works, without a restart. Then the segment is
    clean again: a restart replays nothing."""
    mport = free_port(v6=False)
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0},
                    extra=f'Metrics_Listener {{ Listen "127.0.0.1:{mport}" {{ }} }}\n')
    assert spool_metrics(mport) == {"pinned": 0, "checkpoints": 0, "ok": 0, "failed": 0}
    box = mx.maildir / "example.test" / "stuck"
    for sub in ("tmp", "cur"):
        (box / sub).mkdir(parents=True)
    (box / "new").write_text("not a folder\n")
    _, data = make_message(subject="stuck")
    _, other = make_message(subject="read and deleted")
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["stuck@example.test"], data)  # 250
        c.send_message("a@example.test", ["reader@example.test"], other)
    # a POP3-style reader takes its message out of new/ before the retry:
    # placing the pinned segment again must not bring it back
    [taken] = mx.new_files("reader@example.test")
    taken.unlink()
    err = mx.wait_event("maildir_error")
    assert err.get("op") == "rename", err
    # after the idle rotation the checkpointer tries, fails, and says when again
    failed = mx.wait_event("spool_retry", lambda e: e.get("result") == "failed", timeout=10)
    assert int(failed["next_s"]) >= 1, failed
    m = spool_metrics(mport)  # what an alert on the endpoint sees
    assert m["pinned"] == 1 and m["failed"] >= 1 and m["ok"] == 0, m
    (box / "new").unlink()
    (box / "new").mkdir()
    ok = mx.wait_event("spool_retry", lambda e: e.get("result") == "ok", timeout=15)
    assert int(ok["written"]) == 1, ok
    m = spool_metrics(mport)
    assert m["pinned"] == 0 and m["ok"] == 1 and m["checkpoints"] >= 1, m
    raws = mx.messages("stuck@example.test")
    assert len(raws) == 1 and b"Subject: stuck" in raws[0]
    assert mx.new_files("reader@example.test") == [], "a message the reader took came back"
    # the spool works on both segments again, and nothing is left to replay
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["other@example.test"], data)
    mx.stop()
    mx.start()
    with mx.connect() as c:
        c.expect("NOOP", 250)
    assert mx.events("spool_replay") == [], "a clean segment was replayed"
    assert len(mx.messages("stuck@example.test")) == 1


def test_a_record_with_thousands_of_mailboxes_does_not_end_the_log(mx_factory):
    """A message to 600 mailboxes has more paths than a spool record may
    carry (the replay's bound): its round goes the direct way (files
    fsynced), and the records after it are still replayed. Before, it was
    written anyway and the replay stopped there, losing it and every
    later message of the segment."""
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0,
                             "Max_Recipients_Per_Message": 2000})
    many = [f"{'r' * 60}{i:04d}@example.test" for i in range(600)]
    _, big = make_message(subject="to many")
    _, small = make_message(subject="after it")
    t0 = time.monotonic()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", many, big)
        c.send_message("a@example.test", ["after@example.test"], small)
    mx.kill()
    assert time.monotonic() - t0 < 0.9, "too slow to catch the segment before its checkpoint"
    [f] = mx.new_files("after@example.test")
    kept = f.read_bytes()
    f.unlink()  # what a power cut before the checkpoint can do
    mx.start()
    ev = mx.wait_event("spool_replay")
    assert int(ev["written"]) == 1, ev
    [back] = mx.new_files("after@example.test")
    assert back.read_bytes() == kept
    assert len(mx.new_files(many[599])) == 1


def test_steady_traffic_still_checkpoints(mx_factory):
    """The idle rotation needs a second of quiet; under steady traffic a
    segment is rotated and checkpointed by age (10 s) as well, so a crash
    replays only the last seconds: a message a reader took from new/ long
    before does not come back."""
    mx = mx_factory(options={"Max_Receptions_Per_Connection": 0})
    _, data = make_message(subject="steady")
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["first@example.test"], data)
        [first] = mx.new_files("first@example.test")
        first.unlink()  # read and deleted
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline:  # never a second of quiet
            c.send_message("a@example.test", ["steady@example.test"], data)
            time.sleep(0.4)
    mx.kill()
    mx.start()
    with mx.connect() as c:
        c.expect("NOOP", 250)
    assert mx.new_files("first@example.test") == [], "a checkpointed message was replayed"

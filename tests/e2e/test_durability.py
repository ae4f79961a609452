"""Durability order, seen from the system calls (strace -y names each
descriptor's file), for both ways a Maildir message is made durable:

* with the spool (the default with Fsync on): between the 354 and the
  "250 ... queued" of a message, its record is written to the spool log
  (.spool/log.N) and that log is fdatasync()ed, and the file is renamed
  into new/ before the 250;
* without it (the spool cannot be opened: here .spool is a plain file), the
  file is fsynced before its rename into new/, and new/ is synced after the
  rename, before the 250.

SIGKILL (test_crash.py) shows that no partial file is ever in new/; it cannot
show the syncs, since the page cache survives a killed process. This test
does: a power cut after the 250 would find the message (in new/, or in the
spool for the replay that test_spool_replay.py exercises).
"""
import re

from mx import make_message, run_tool

SYNC = ("fsync", "fdatasync", "syncfs", "sync_file_range")


def traced(mx_factory, tmp_path, spool):
    trace = tmp_path / "strace.out"
    run_tool(["strace", "-V"], timeout=10)  # a clear failure when strace is missing
    mx = mx_factory(start=False)
    if not spool:
        mx.maildir.mkdir(parents=True, exist_ok=True)
        (mx.maildir / ".spool").write_text("not a directory\n")
    mx.wrapper = ["strace", "-f", "-qq", "-y", "-s", "200", "-o", str(trace), "-e",
                  "trace=fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2,"
                  "link,linkat,write,writev,pwrite64,pwritev,sendmsg,sendto"]
    # LeakSanitizer cannot run under ptrace: off for this run of a SAN build
    mx.env["ASAN_OPTIONS"] = "detect_leaks=0"
    mx.start(timeout=30)
    qids = []
    for i in range(3):
        _, data = make_message(subject=f"durable {i}")
        with mx.connect() as c:
            c.ehlo()
            text = c.send_message("a@example.test", ["durable@example.test"], data)
            qids.append(re.search(r"queued as (\S+)", text[0]).group(1))
    assert mx.stop() == 0
    return mx, qids, trace.read_text().splitlines()


def done(lines, i, name):
    """Line i completes syscall `name` successfully (whole or resumed)."""
    ln = lines[i]
    return (f"{name}(" in ln or f"<... {name} resumed>" in ln) and \
        "unfinished" not in ln and re.search(r"= \d+$", ln)


def renames_into_new(lines):
    r = [i for i, ln in enumerate(lines)
         if re.search(r"rename(at2?)?\(", ln) and "/new/" in ln and "unfinished" not in ln]
    r += [i for i, ln in enumerate(lines) if "rename" in ln and "resumed>" in ln]
    assert r, "no rename into new/ seen in the trace"
    return r


def window(lines, qid, renames):
    """(index of the 354 before the message's last rename, of the rename,
    of its 250)."""
    w = [i for i, ln in enumerate(lines) if "250 2.0.0" in ln and qid in ln]
    assert w, f"reply for {qid} not found in the trace"
    w = w[0]
    before = [r for r in renames if r < w]
    assert before, f"250 for {qid} written before any rename into new/"
    r = max(before)
    go = [i for i, ln in enumerate(lines[:r]) if '"354 ' in ln]
    assert go, f"{qid}: the 354 reply is not in the trace"
    return max(go), r, w


def test_spool_record_synced_before_250(mx_factory, tmp_path):
    mx, qids, lines = traced(mx_factory, tmp_path, spool=True)
    renames = renames_into_new(lines)
    log_write = re.compile(r"pwritev?6?4?\(\d+<[^>]*/\.spool/log\.[01]>")
    for qid in qids:
        go, r, w = window(lines, qid, renames)
        writes = [i for i in range(go, w) if log_write.search(lines[i]) or
                  ("resumed>" in lines[i] and "pwritev" in lines[i])]
        assert writes, f"{qid}: no write to the spool log between the 354 and the 250"
        syncs = [i for i in range(max(writes), w) if done(lines, i, "fdatasync") and
                 "/.spool/log." in lines[i]]
        if not syncs:  # strace may print "<... fdatasync resumed>" without the path
            syncs = [i for i in range(max(writes), w) if done(lines, i, "fdatasync")]
        assert syncs, f"{qid}: the spool log not fdatasync()ed between its write and the 250"
        assert r < w
    # the record names the file and the mailbox, under the Maildir root
    text = "\n".join(lines)
    assert "example.test/durable/new/" in text
    events = mx.events("spool_off")
    assert not events, events


def test_without_spool_fsync_before_rename_and_dir_sync_before_250(mx_factory, tmp_path):
    mx, qids, lines = traced(mx_factory, tmp_path, spool=False)
    assert mx.events("spool_off"), "the spool was not turned off by a .spool file"
    renames = renames_into_new(lines)
    for qid in qids:
        go, r, w = window(lines, qid, renames)
        synced_file = any(done(lines, i, n) for i in range(go, r) for n in SYNC)
        synced_dir = any(done(lines, i, n) for i in range(r, w) for n in SYNC)
        assert synced_file, f"{qid}: no fsync between the end of DATA and the rename into new/"
        assert synced_dir, f"{qid}: new/ not synced between the rename and the 250"
    assert not any(re.search(r"pwritev?\(\d+<[^>]*/\.spool/log", ln) for ln in lines)

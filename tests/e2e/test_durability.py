"""Durability order, seen from the system calls (strace): for each accepted
message the file is fsynced before its rename into new/, new/ is synced after
the rename, and only then does "250 ... queued" go to the client.

SIGKILL (test_crash.py) shows that no partial file is ever in new/; it cannot
show the fsyncs, since the page cache survives a killed process. This test
does: a power cut after the 250 would find the message.
"""
import re

from mx import make_message, run_tool

SYNC = ("fsync", "fdatasync", "syncfs", "sync_file_range")


def test_fsync_before_rename_and_dir_sync_before_250(mx_factory, tmp_path):
    trace = tmp_path / "strace.out"
    run_tool(["strace", "-V"], timeout=10)  # a clear failure when strace is missing
    mx = mx_factory(start=False)
    mx.wrapper = ["strace", "-f", "-qq", "-s", "120", "-o", str(trace), "-e",
                  "trace=fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2,"
                  "link,linkat,write,writev,sendmsg,sendto"]
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
    lines = trace.read_text().splitlines()

    def done(i, name):
        """Line i completes syscall `name` successfully (whole or resumed)."""
        ln = lines[i]
        return (f"{name}(" in ln or f"<... {name} resumed>" in ln) and \
            "unfinished" not in ln and re.search(r"= 0$", ln)

    renames = [i for i, ln in enumerate(lines)
               if re.search(r"rename(at2?)?\(", ln) and "/new/" in ln and "unfinished" not in ln]
    renames += [i for i, ln in enumerate(lines) if "rename" in ln and "resumed>" in ln]
    assert renames, "no rename into new/ seen in the trace"
    for qid in qids:
        w = [i for i, ln in enumerate(lines) if "250 2.0.0" in ln and qid in ln]
        assert w, f"reply for {qid} not found in the trace"
        w = w[0]
        before = [r for r in renames if r < w]
        assert before, f"250 for {qid} written before any rename into new/"
        r = max(before)
        go = [i for i, ln in enumerate(lines[:r]) if '"354 ' in ln]
        assert go, f"{qid}: the 354 reply is not in the trace"
        synced_file = any(done(i, n) for i in range(max(go), r) for n in SYNC)
        synced_dir = any(done(i, n) for i in range(r, w) for n in SYNC)
        assert synced_file, f"{qid}: no fsync between the end of DATA and the rename into new/"
        assert synced_dir, f"{qid}: new/ not synced between the rename and the 250"

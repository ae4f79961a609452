"""Min_Free_Space: an MX that is running out of disk says so at MAIL (452
4.3.1, "insufficient system storage", RFC 3463) instead of taking the whole
message and failing at the final dot; a SIZE= the space cannot hold is
refused the same way; a message that still meets a full filesystem gets 452
4.3.1 at end of data and leaves nothing behind in tmp/ or new/.
"""
import os
import signal
import subprocess
import time

import pytest

from mx import SLOW, make_message


def mail_reply(mx, params=""):
    with mx.connect() as c:
        c.ehlo()
        code, text = c.cmd(f"MAIL FROM:<sender@elsewhere.test>{params}")
        return code, text


def test_mail_refused_under_the_reserve_until_a_reload_lowers_it(mx_factory):
    # more than any disk here has: every MAIL must be refused
    mx = mx_factory(options={"Min_Free_Space": "1000000G", "Max_Errors": 3})
    with mx.connect() as c:
        c.ehlo()
        for _ in range(6):  # more than Max_Errors: the server's state, not the client's error
            code, text = c.cmd("MAIL FROM:<sender@elsewhere.test>")
            assert (code, text[0][:5]) == (452, "4.3.1"), (code, text)
        c.expect("NOOP", 250)
    low = mx.wait_event("storage_low")
    assert int(low["free_bytes"]) < 1000000 * 2**30 and low["reserve"] == str(1000000 * 2**30), low
    assert len(mx.events("storage_low")) == 1, "the low state was logged more than once"
    rejects = [e for e in mx.events("reject") if e.get("phase") == "mailfrom"]
    assert rejects and all(e.get("code") == "452" for e in rejects), rejects
    assert not (mx.maildir / "example.test").exists()
    mx.options["Min_Free_Space"] = "1M"
    mx.write_config()
    mx.signal(signal.SIGHUP)
    mx.wait_event("reload", lambda e: e.get("result") == "ok")
    _, data = make_message(subject="after the reload")
    with mx.connect() as c:
        c.ehlo()
        c.send_message("sender@elsewhere.test", ["someone@example.test"], data)
    mx.wait_messages("someone@example.test", 1)
    ok = mx.wait_event("storage_ok")
    assert ok["reserve"] == str(2**20), ok


def test_declared_size_must_fit_one_and_a_half_times(mx_factory):
    mx = mx_factory(options={"Min_Free_Space": 0, "Max_Message_Size": 0})
    # 10^18 bytes, and RFC 1870's longest value (20 digits, past 2^64): no disk here
    for size in ("1000000000000000000", "99999999999999999999"):
        code, text = mail_reply(mx, f" SIZE={size}")
        assert (code, text[0][:5]) == (452, "4.3.1"), (size, code, text)
    code, text = mail_reply(mx, " SIZE=100000000000000000000")  # 21 digits: not a size-value
    assert (code, text[0][:5]) == (501, "5.5.4"), (code, text)
    code, text = mail_reply(mx, " SIZE=100000")
    assert code == 250, (code, text)
    # without a reserve the low state is never entered: no storage_low event
    assert mx.events("storage_low") == []


@pytest.fixture
def small_fs(tmp_path):
    """A 96 MiB tmpfs (root only): room for the spool's two 32 MiB segments
    and a little more, so the test can fill it."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(path, leave):
    """Take all but `leave` bytes of the filesystem under path with one file."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    filler = path / "filler"
    with open(filler, "wb") as f:
        os.posix_fallocate(f.fileno(), 0, max(free - leave, 1))
    return filler


def test_full_filesystem_is_452_at_mail_and_at_end_of_data_and_leaves_nothing(
        mx_factory, small_fs):
    mx = mx_factory(start=False, options={"Min_Free_Space": 0})
    mx.maildir = small_fs / "maildir"
    mx.options["Maildir"] = str(mx.maildir)
    mx.write_config()
    mx.start()
    _, small = make_message(subject="fits")
    with mx.connect() as c:  # the mailbox exists, and so does the spool
        c.ehlo()
        c.send_message("sender@elsewhere.test", ["someone@example.test"], small)
    mx.wait_messages("someone@example.test", 1)

    filler = fill(small_fs, 64 * 1024)
    time.sleep(1.2)  # the server reads the free space at most once a second
    # a declared megabyte cannot fit in 64 KiB: refused before any data
    code, text = mail_reply(mx, " SIZE=1048576")
    assert (code, text[0][:5]) == (452, "4.3.1"), (code, text)

    # an undeclared megabyte is taken at MAIL and meets the full disk at the dot
    _, big = make_message(subject="too big for the disk",
                          body_lines=[("x" * 998) for _ in range(1100)])
    with mx.connect() as c:
        c.ehlo()
        c.send_message("sender@elsewhere.test", ["someone@example.test"], big,
                       expect_final=452)
    rej = mx.wait_event("reject", lambda e: e.get("phase") == "deliver")
    assert rej.get("code") == "452" and "No space left" in rej.get("reason", ""), rej
    assert len(mx.new_files("someone@example.test")) == 1, "a partial message reached new/"
    assert mx.tmp_files() == [], "the failed message was left in tmp/"

    filler.unlink()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("sender@elsewhere.test", ["someone@example.test"], big)
    mx.wait_messages("someone@example.test", 2, timeout=10 * SLOW)
    assert mx.stop() == 0

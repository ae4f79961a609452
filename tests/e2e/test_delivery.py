"""Delivery failures (issue 2, Delivery): a mailbox that cannot be written
answers 451 4.3.0 at end of data and loses nothing else.

Tests run as root in CI, so permissions cannot make a write fail; a regular
file where the mailbox folder should be (ENOTDIR) does.
"""
from mx import contains_data, make_message


def test_unwritable_mailbox_is_451_and_nothing_else_is_lost(mx):
    (mx.maildir / "example.test").mkdir(parents=True, exist_ok=True)
    (mx.maildir / "example.test" / "blocked").write_text("a file, not a Maildir\n")
    _, first = make_message(subject="first")
    _, data = make_message(subject="second")
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ["ok@example.test"], first)
        # one good and one broken mailbox: all-or-nothing, 451
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<fresh@example.test>", 250)
        c.expect("RCPT TO:<blocked@example.test>", 250)
        c.expect("DATA", 354)
        c.send(data + b".\r\n")
        code, text = c.reply(timeout=20)
        assert code == 451 and text[0].startswith("4.3.0"), (code, text)
        # the session goes on
        c.send_message("a@example.test", ["ok@example.test"], data)
    assert (mx.maildir / "example.test" / "blocked").read_text() == "a file, not a Maildir\n"
    assert mx.new_files("fresh@example.test") == [], "half of a refused message was delivered"
    raws = mx.messages("ok@example.test")
    assert len(raws) == 2 and contains_data(raws[0] if b"first" in raws[0] else raws[1], first)
    assert mx.tmp_files() == [], f"tmp/ leftovers after a failure: {mx.tmp_files()}"
    assert any(e.get("event") in ("reject", "refused", "tempfail", "deliver_fail", "message")
               and "451" in " ".join(e.values()) for e in mx.events()) or \
        "451" in mx.log_text(), "the failed delivery is not in the log"


def test_local_parts_cannot_leave_the_maildir_tree(mx):
    """Quoted local parts with '/', '..' or a leading dot stay inside
    MAILDIR/<domain>/ (escaped), and nothing is written anywhere else."""
    before = {p for p in mx.tmp.rglob("*")}
    _, data = make_message()
    evil = ['"../../../escape"', '".hidden"', '"a/b"', '".."', '"."', '"x/../../y"']
    with mx.connect() as c:
        c.ehlo()
        for local in evil:
            c.expect("MAIL FROM:<a@example.test>", 250)
            code, text = c.cmd(f"RCPT TO:<{local}@example.test>")
            if code != 250:
                assert 500 <= code < 600, (local, code, text)
                c.expect("RSET", 250)
                continue
            c.expect("DATA", 354)
            c.send(data + b".\r\n")
            assert c.reply()[0] == 250
    root = (mx.maildir / "example.test").resolve()
    for p in mx.tmp.rglob("*"):
        if p in before or p == mx.log_path:
            continue
        r = p.resolve()
        assert r == mx.maildir.resolve() or root == r or root in r.parents, \
            f"written outside MAILDIR/example.test/: {p}"
        rel = r.relative_to(root) if root in r.parents else None
        if rel is not None:
            assert not rel.parts[0].startswith("."), f"hidden mailbox folder {p}"
            assert len(rel.parts) <= 3, f"mailbox nested deeper than <local>/new/file: {p}"


def test_quoted_local_part_is_the_same_mailbox(mx):
    """RFC 5322 3.2.4 / RFC 5321 4.1.2: a quoted-string is semantically the
    same as the atom: "bob"@example.test is bob@example.test."""
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", ['"bob"@example.test'], data)
    assert len(mx.wait_messages("bob@example.test", 1)) == 1, \
        f"quoted local part delivered elsewhere: {mx.new_files()}"

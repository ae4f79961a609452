"""Valid_Recipients: an MX refuses mail for mailboxes it does not have at RCPT
(550 5.1.1), so a dictionary attack creates no Maildir folders and costs the
attacker its error budget; postmaster is always taken; a reload reads the
file again, and a broken file keeps the old set.
"""
import signal
import smtplib
import subprocess

from mx import BINARY, SLOW, make_message

RECIPIENTS = """# mailboxes of example.test
alice@example.test
Bob@Example.Test
@catchall.test
"""


def start(mx_factory, tmp_path, text=RECIPIENTS, **options):
    path = tmp_path / "recipients"
    path.write_text(text)
    opts = {"Valid_Recipients": str(path),
            "Relay_Domains": ["example.test", "catchall.test"]}
    opts.update(options)
    return mx_factory(options=opts), path


def rcpt_code(mx, rcpt):
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as s:
        s.ehlo("client.e2e.test")
        s.mail("sender@elsewhere.test")
        code, text = s.rcpt(rcpt)
        s.rset()
        return code, text.decode()


def test_listed_mailboxes_are_taken_and_others_refused_at_rcpt(mx_factory, tmp_path):
    mx, _ = start(mx_factory, tmp_path)
    for addr in ("alice@example.test", "ALICE@example.TEST", "bob@example.test",
                 "anyone@catchall.test", "postmaster@example.test", "postmaster",
                 "PostMaster@catchall.test"):
        code, text = rcpt_code(mx, addr)
        assert code == 250, (addr, code, text)
    for addr in ("carol@example.test", "alice2@example.test", "alic@example.test"):
        code, text = rcpt_code(mx, addr)
        assert code == 550 and text.startswith("5.1.1"), (addr, code, text)
    # not ours and the client may not relay: still "relaying denied", not "no such user"
    code, text = rcpt_code(mx, "alice@elsewhere.test")
    assert code == 550 and text.startswith("5.7.1"), (code, text)

    # one message with a known and an unknown recipient: the known one gets it
    _, data = make_message(subject="mixed")
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as s:
        refused = s.sendmail("sender@elsewhere.test", ["alice@example.test",
                                                       "nobody@example.test"], data)
    assert set(refused) == {"nobody@example.test"} and refused["nobody@example.test"][0] == 550
    mx.wait_messages("alice@example.test", 1)
    domain_dir = mx.maildir / "example.test"
    assert sorted(p.name for p in domain_dir.iterdir()) == ["alice"], \
        "a refused recipient got a Maildir folder"
    rejects = [e for e in mx.events("reject") if e.get("phase") == "rcptto"]
    assert any("unknown recipient <nobody@example.test>" in e.get("reason", "")
               for e in rejects), rejects


def test_dictionary_attack_runs_out_of_errors_and_creates_nothing(mx_factory, tmp_path):
    mx, _ = start(mx_factory, tmp_path, Max_Errors=5)
    with mx.connect() as c:
        c.ehlo()
        c.expect("MAIL FROM:<spam@elsewhere.test>", 250)
        codes = []
        for i in range(20):
            code, text = c.cmd(f"RCPT TO:<guess{i}@example.test>")
            codes.append(code)
            if code == 421:
                break
        assert codes[:5] == [550] * 5 and codes[-1] == 421, codes
        assert c.closed_within(5 * SLOW)
    assert not (mx.maildir / "example.test").exists() or \
        list((mx.maildir / "example.test").iterdir()) == []


def test_relay_clients_send_anywhere_unchecked(mx_factory, tmp_path):
    mx, _ = start(mx_factory, tmp_path, Relay_Hosts=["127.0.0.1"])
    # mail a relay client sends to another domain is the next hop's to judge
    code, text = rcpt_code(mx, "whoever@elsewhere.test")
    assert code == 250, (code, text)
    # mail for our own domain is checked whoever sends it
    code, text = rcpt_code(mx, "carol@example.test")
    assert code == 550 and text.startswith("5.1.1"), (code, text)


def test_reload_reads_the_file_again_and_a_bad_file_keeps_the_old_set(mx_factory, tmp_path):
    mx, path = start(mx_factory, tmp_path)
    assert rcpt_code(mx, "carol@example.test")[0] == 550
    path.write_text(RECIPIENTS + "carol@example.test\n")
    mx.signal(signal.SIGHUP)
    ev = mx.wait_event("reload", lambda e: e.get("result") == "ok")
    assert ev.get("recipients") == "4", ev  # alice, bob, @catchall.test, carol
    assert [e.get("recipients") for e in mx.events("start")] == ["3"]
    assert rcpt_code(mx, "carol@example.test")[0] == 250

    path.write_text(RECIPIENTS + "dave@example.test\nbroken line here\n")
    mx.signal(signal.SIGHUP)
    mx.wait_log_text(f"{path}:6:")
    assert mx.running()
    assert rcpt_code(mx, "carol@example.test")[0] == 250, "the old set was not kept"
    assert rcpt_code(mx, "dave@example.test")[0] == 550, "half of a bad file was taken"

    # mxsieve -t names the same line
    r = subprocess.run([str(BINARY), "-t", "-c", str(mx.conf_path)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and f"{path}:6: \"broken line here\" is not" in r.stderr, \
        (r.returncode, r.stderr)


def test_recipient_delimiter_takes_extensions_into_the_base_mailbox(mx_factory, tmp_path):
    mx, _ = start(mx_factory, tmp_path, Recipient_Delimiter="+")
    assert rcpt_code(mx, "alice+news@example.test")[0] == 250
    assert rcpt_code(mx, "carol+news@example.test")[0] == 550
    _, one = make_message(subject="extension")
    _, two = make_message(subject="two extensions")
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as s:
        assert s.sendmail("sender@elsewhere.test", ["Alice+News@example.test"], one) == {}
        assert s.sendmail("sender@elsewhere.test",
                          ["alice+a@example.test", "alice+b@example.test"], two) == {}
    raws = mx.wait_messages("alice@example.test", 2)
    assert len(raws) == 2, "one file a message for one mailbox, whatever the extensions"
    first = [r for r in raws if b"Subject: extension" in r]
    # the envelope address as sent stays in the Received header
    assert len(first) == 1 and b"for <Alice+News@example.test>" in first[0], raws
    assert sorted(p.name for p in (mx.maildir / "example.test").iterdir()) == ["alice"]


def test_without_a_delimiter_an_extension_is_another_address(mx_factory, tmp_path):
    mx, _ = start(mx_factory, tmp_path)
    code, text = rcpt_code(mx, "alice+news@example.test")
    assert code == 550 and text.startswith("5.1.1"), (code, text)


ALIASES = """alice@example.test
bob@example.test
postmaster@example.test   alice@example.test
team@example.test         alice@example.test, Bob@example.test
@catchall.test            bob@example.test
"""


def test_aliases_deliver_into_their_targets_mailboxes(mx_factory, tmp_path):
    mx, _ = start(mx_factory, tmp_path, text=ALIASES)
    _, to_pm = make_message(subject="for the postmaster")
    _, to_team = make_message(subject="for the team")
    _, to_any = make_message(subject="for anyone")
    with smtplib.SMTP("127.0.0.1", mx.port, timeout=10) as s:
        assert s.sendmail("sender@elsewhere.test", ["postmaster"], to_pm) == {}
        # the team and one of its members: each mailbox gets the message once
        assert s.sendmail("sender@elsewhere.test", ["team@example.test", "alice@example.test"],
                          to_team) == {}
        assert s.sendmail("sender@elsewhere.test", ["whoever@catchall.test"], to_any) == {}
    alice = mx.wait_messages("alice@example.test", 2)
    bob = mx.wait_messages("bob@example.test", 2)
    subjects = lambda raws: sorted(r.split(b"Subject: ")[1].split(b"\n")[0] for r in raws)
    assert subjects(alice) == [b"for the postmaster", b"for the team"], subjects(alice)
    assert subjects(bob) == [b"for anyone", b"for the team"], subjects(bob)
    # no folder for the aliases themselves; the envelope keeps the address as sent
    assert sorted(p.name for p in (mx.maildir / "example.test").iterdir()) == ["alice", "bob"]
    assert not (mx.maildir / "catchall.test").exists()
    pm = [r for r in alice if b"for the postmaster" in r][0]
    assert b"for <postmaster@example.test>" in pm, pm[:500]


QUOTED = r'''"bob"@example.test
"john\ doe"@example.test
"first.last"@example.test  "Carol"@example.test
'''


def test_quoted_entries_match_both_rcpt_forms(mx_factory, tmp_path):
    r"""An entry is compared as the SMTP side compares the RCPT: both are
    canonicalised by the same function, so "bob" is bob and "john\ doe" is
    "john doe", whichever way the file or the client writes them (a quoted
    entry used to load and never match)."""
    mx, _ = start(mx_factory, tmp_path, text=QUOTED)
    with mx.connect() as c:
        c.expect("EHLO client.e2e.test", 250)
        c.expect("MAIL FROM:<sender@elsewhere.test>", 250)
        for rcpt in ('bob@example.test', '"bob"@example.test', 'BOB@example.test',
                     '"john doe"@example.test', r'"john\ doe"@example.test',
                     'first.last@example.test', '"first.last"@example.test'):
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r[0] == 250, (rcpt, r)
        for rcpt in ('john@example.test', '"john  doe"@example.test', '"bob "@example.test'):
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            assert r[0] == 550 and r[1][0].startswith("5.1.1"), (rcpt, r)
        c.expect("QUIT", 221)
    # the quoted alias target is a canonical mailbox too: example.test/carol
    _, data = make_message(subject="alias")
    with mx.connect() as c:
        c.expect("EHLO client.e2e.test", 250)
        c.send_message("sender@elsewhere.test", ['"first.last"@example.test'], data)
    assert len(mx.wait_messages("carol@example.test", 1)) == 1

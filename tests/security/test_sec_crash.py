"""Issue 7.3: crash safety over many SIGKILLs.

SEC_CRASH_ROUNDS rounds (default 20) on one Maildir. In each round the
server is (re)started, several client threads send messages with unique
Message-IDs (sizes vary so that kills land mid-write, mid-fsync, mid-rename)
and record every one answered 250; the server is killed with SIGKILL after a
random delay drawn from a seeded generator (the seed is printed; rerun with
SEC_CRASH_SEED=N to replay the same kill times). After every kill:

  * every acknowledged Message-ID is in new/ (nothing acknowledged is lost);
  * every file in new/ is complete: it parses, its Message-ID is unique, and
    its body ends with the line naming that same Message-ID;
and at every restart the partial files left in tmp/ are gone before the
first client connects, with the log's event=maildir_clean counting them.

tests/e2e/test_crash.py does one kill under smtp-source load; this is the
repeated, seeded version. Budget: about 90 s at the default.
"""
import os
import random
import re
import threading
import time

from mx import SLOW, make_message, parse_message
from sec import env_int

THREADS = 4
RCPTS = ["crash1@example.test", "crash2@example.test"]


def sender(mx, index, rnd_seed, acked, lock, stop):
    rnd = random.Random(rnd_seed)
    try:
        with mx.connect(timeout=10) as c:
            c.ehlo()
            while not stop.is_set():
                nlines = rnd.choice([5, 40, 400, 1500])
                lines = ["%05d %s" % (i, "z" * 70) for i in range(nlines)]
                msgid, data = make_message(body_lines=lines)
                # one or two recipients: a hard-linked pair must be all-or-nothing
                rcpts = RCPTS[: 1 + (index + nlines) % 2]
                c.send_message("a@example.test", rcpts, data)
                with lock:
                    acked.append((msgid, tuple(rcpts)))
    except Exception:
        pass  # the kill ends every session


def check_new(mx, acked, seen):
    """Assert the invariants over new/; returns {mailbox: {msgid}}. `seen`
    caches the files checked in earlier rounds (a file in new/ never
    changes), so each round reads only what is new."""
    found = {}
    for rcpt in RCPTS:
        ids = found.setdefault(rcpt, set())
        for f in mx.new_files(rcpt):
            if f in seen:
                ids.add(seen[f])
                continue
            raw = f.read_bytes()
            msg = parse_message(raw)
            msgid = (msg["Message-ID"] or "").strip()
            assert msgid, f"{f}: no Message-ID, partial file: {raw[:200]!r}"
            m = re.search(rb"END-OF-BODY (<[^>]+>)\r?\n$", raw)
            assert m, f"{f}: partial (no final body line), tail {raw[-120:]!r}"
            assert m.group(1).decode() == msgid, f"{f}: body and header disagree"
            assert msgid not in ids, f"{msgid} delivered twice into {rcpt}"
            ids.add(msgid)
            seen[f] = msgid
    lost = [(m, r) for m, rs in acked for r in rs if m not in found[r]]
    assert not lost, f"{len(lost)} acknowledged deliveries lost, e.g. {lost[:3]}"
    return found


def test_repeated_sigkill_loses_nothing(mx_factory):
    rounds = env_int("SEC_CRASH_ROUNDS", 20)
    seed = env_int("SEC_CRASH_SEED", int.from_bytes(os.urandom(4), "big"))
    print(f"\ncrash rounds={rounds} seed={seed} (rerun: SEC_CRASH_SEED={seed})")
    rnd = random.Random(seed)
    mx = mx_factory(start=False, options={"Max_Receptions_Per_Connection": 0,
                                           "Log_Level": "info"})
    acked, lock = [], threading.Lock()
    leftovers_total = 0
    seen = {}
    t_start = time.monotonic()
    for rnd_i in range(rounds):
        before_tmp = len(mx.tmp_files())
        leftovers_total += before_tmp
        nclean = len(mx.events("maildir_clean"))
        mx.start()
        # tmp/ is cleaned before the listeners answer (no client has sent yet)
        assert mx.tmp_files() == [], f"round {rnd_i}: tmp/ not cleaned at start: " \
                                     f"{mx.tmp_files()[:3]}"
        cleans = mx.events("maildir_clean")
        assert len(cleans) > nclean, f"round {rnd_i}: no event=maildir_clean at start"
        assert int(cleans[-1]["removed"]) >= before_tmp, (cleans[-1], before_tmp)

        stop = threading.Event()
        threads = [threading.Thread(target=sender,
                                    args=(mx, i, rnd.getrandbits(32), acked, lock, stop),
                                    daemon=True)
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        delay = rnd.uniform(0.2, 1.2) * SLOW
        time.sleep(delay)
        mx.kill()
        stop.set()
        for t in threads:
            t.join(timeout=15 * SLOW)
        assert not any(t.is_alive() for t in threads), f"round {rnd_i}: client threads hung"
        with lock:
            snapshot = list(acked)
        found = check_new(mx, snapshot, seen)
        print(f"round {rnd_i}: kill after {delay:.2f}s, acked so far {len(snapshot)}, "
              f"in new/ {sum(len(v) for v in found.values())}, tmp/ leftovers "
              f"{len(mx.tmp_files())}")
    # the last round's leftovers are cleaned by one more start, which also serves
    before_tmp = len(mx.tmp_files())
    leftovers_total += before_tmp
    mx.start()
    assert mx.tmp_files() == []
    _, data = make_message()
    with mx.connect() as c:
        c.ehlo()
        c.send_message("a@example.test", [RCPTS[0]], data)
    mx.stop()
    elapsed = time.monotonic() - t_start
    assert len(acked) >= rounds * 5, f"only {len(acked)} messages acknowledged in {rounds} rounds"
    print(f"crash: {rounds} kills, {len(acked)} acknowledged, none lost, "
          f"{leftovers_total} tmp/ leftovers cleaned at restarts, {elapsed:.1f}s")

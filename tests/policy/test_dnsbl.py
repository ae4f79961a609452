"""Issue 5, case 5: DNSBL lookups from the policy, through a real DNS server.

dnsmasq (Debian dnsmasq-base) runs on a free loopback UDP port with one
listing (127.0.0.2 in zone.test) and forwards slow.test to a UDP socket the
test owns (pol.SlowUpstream), which answers "delay." names late and never
answers the others. DNS_Server points the server at dnsmasq.

Checked: a listed client is refused and another passes; while one session's
lookup is pending, another session is served at once (the lookup suspends
the script, not the server); a lookup that times out gives [""] (spec
section 6), no later than dns_timeout.
"""
import signal
import time

import pytest

import pol
from mx import SLOW, Smtp

DNS_TIMEOUT = 2
UPSTREAM_DELAY = 1.5

CONNECT = """\
($r) = ec_dns_lookup "%{ir}.zone.test" "a";
if not ec_test :is "${r}" "" {
  reject "listed in zone.test (${r})";
}
"""

EHLO = """\
if ec_test :matches "%{h}" "*.slow.test" {
  ($s) = ec_dns_lookup "%{h}" "a";
  reject "slow answered [${s}]";
}
"""


@pytest.fixture
def dns_world(pol_factory, procs, tmp_path):
    up = pol.SlowUpstream(delay=UPSTREAM_DELAY)
    up.start()
    try:
        _, port = pol.start_dnsmasq(tmp_path, [("2.0.0.127.zone.test", "127.0.0.2")],
                                    forward={"slow.test": up.port}, procs=procs)
        # the fixture itself: dnsmasq lists one address, not the others
        assert pol.dns_query(port, "2.0.0.127.zone.test") == (0, ["127.0.0.2"])
        assert pol.dns_query(port, "3.0.0.127.zone.test")[1] == []
        srv = pol_factory(scripts={"connect_phase1": CONNECT, "ehlo_phase1": EHLO},
                          options={"DNS_Server": f"127.0.0.1:{port}"},
                          sieve_opts={"dns_timeout": DNS_TIMEOUT, "max_dns_lookups": 4})
        yield srv, up
    finally:
        up.stop()


def test_listed_client_is_refused_and_another_passes(dns_world):
    srv, _ = dns_world
    with Smtp("127.0.0.1", srv.port, banner=False, source="127.0.0.2", timeout=10) as c:
        r = c.reply()
        assert r == (550, ["5.7.1 listed in zone.test (127.0.0.2)"]), r
    with Smtp("127.0.0.1", srv.port, banner=False, source="127.0.0.3", timeout=10) as c:
        r = c.reply()
        assert r[0] == 220, r
        c.ehlo()


def test_other_sessions_are_served_while_a_lookup_is_pending(dns_world):
    srv, up = dns_world
    with Smtp("127.0.0.1", srv.port, source="127.0.0.3", timeout=10) as slow:
        assert slow.banner[0] == 220
        slow.send("EHLO delay.slow.test\r\n")
        t0 = time.monotonic()
        # wait until the lookup really reached the slow upstream
        up.wait_query("delay.slow.test")
        # another session: banner (its own DNSBL lookup), EHLO, MAIL, all at once
        t1 = time.monotonic()
        with Smtp("127.0.0.1", srv.port, source="127.0.0.4", timeout=10) as other:
            assert other.banner[0] == 220
            other.ehlo()
            other.expect("MAIL FROM:<a@example.test>", 250)
            other.expect("RCPT TO:<bob@example.test>", 250)
        served = time.monotonic() - t1
        assert served < 0.5 * SLOW, f"another session took {served:.2f}s during a lookup"
        assert time.monotonic() - t0 < UPSTREAM_DELAY, "the slow answer came too early to tell"
        r = slow.reply()
        waited = time.monotonic() - t0
        assert r == (550, ["5.7.1 slow answered [127.0.0.9]"]), r
        assert UPSTREAM_DELAY - 0.3 <= waited <= UPSTREAM_DELAY + 1.0 * SLOW, waited


def test_lookup_that_times_out_answers_empty(dns_world):
    srv, up = dns_world
    with Smtp("127.0.0.1", srv.port, source="127.0.0.3", timeout=15) as c:
        assert c.banner[0] == 220
        t0 = time.monotonic()
        r = c.cmd("EHLO never.slow.test")
        waited = time.monotonic() - t0
        assert r == (550, ["5.7.1 slow answered []"]), r
        assert any(n == "never.slow.test" for _, n in up.queries), up.queries
        assert DNS_TIMEOUT - 0.5 <= waited <= DNS_TIMEOUT + 0.5 * SLOW, (
            f"a lookup with dns_timeout = {DNS_TIMEOUT} ended after {waited:.2f}s")
        # and the session goes on
        c.expect("NOOP", 250)


def test_client_gone_during_a_lookup_and_reload_during_a_lookup(dns_world):
    """A session that closes while its script waits for DNS, and a reload
    while another waits: the waiting run keeps the scripts it started with,
    the server neither crashes nor leaks a gauge entry."""
    srv, up = dns_world
    gone = Smtp("127.0.0.1", srv.port, source="127.0.0.5", timeout=10)
    assert gone.banner[0] == 220
    gone.send("EHLO never.slow.test\r\n")
    with Smtp("127.0.0.1", srv.port, source="127.0.0.6", timeout=10) as waiting:
        assert waiting.banner[0] == 220
        waiting.send("EHLO delay.slow.test\r\n")
        for _ in range(100):
            names = [n for _, n in up.queries]
            if "never.slow.test" in names and "delay.slow.test" in names:
                break
            time.sleep(0.02)
        gone.close()
        assert "reloaded" in srv.ctl("sieve", "reload")
        assert waiting.reply() == (550, ["5.7.1 slow answered [127.0.0.9]"])
        waiting.expect("NOOP", 250)
    # let the abandoned lookup time out inside the server
    time.sleep(DNS_TIMEOUT * 1.6)
    assert srv.wait_live("127.0.0.0/8", 0) == 0
    with Smtp("127.0.0.1", srv.port, source="127.0.0.3", timeout=10) as c:
        c.ehlo()
    assert srv.running()


def test_reload_to_another_dns_server(dns_world, procs, tmp_path):
    """DNS_Server changes at a reload, no restart: new lookups go to the new
    server while one in flight still gets its answer from the old."""
    srv, up = dns_world
    _, port2 = pol.start_dnsmasq(tmp_path, [("3.0.0.127.zone.test", "127.0.0.3")],
                                 procs=procs)
    with Smtp("127.0.0.1", srv.port, source="127.0.0.6", timeout=10) as waiting:
        assert waiting.banner[0] == 220
        waiting.send("EHLO delay.slow.test\r\n")
        up.wait_query("delay.slow.test")
        r = srv.reconfigure(options={"DNS_Server": f"127.0.0.1:{port2}"})
        assert r.strip() == "reloaded", r
        # the new server lists 127.0.0.3 and not 127.0.0.2
        with Smtp("127.0.0.1", srv.port, banner=False, source="127.0.0.3", timeout=10) as c:
            assert c.reply() == (550, ["5.7.1 listed in zone.test (127.0.0.3)"])
        with Smtp("127.0.0.1", srv.port, banner=False, source="127.0.0.2", timeout=10) as c:
            assert c.reply()[0] == 220
        # the lookup started before the reload is answered by the old path
        assert waiting.reply() == (550, ["5.7.1 slow answered [127.0.0.9]"])
        waiting.expect("NOOP", 250)
    assert srv.running()


def test_dead_dns_server_answers_empty_and_the_server_goes_on(pol_factory):
    """Nothing listens at DNS_Server: each lookup fails (c-ares may end it
    inside the call that starts it, once the port has refused a query) and
    the script sees "", session after session."""
    srv = pol_factory(scripts={"connect_phase1": CONNECT},
                      options={"DNS_Server": f"127.0.0.1:{pol.free_udp_port()}"},
                      sieve_opts={"dns_timeout": 1})
    for rnd in range(3):
        # sessions that start their lookups together: the later ones meet
        # the refusal the first one's query earned
        clients = [Smtp("127.0.0.1", srv.port, banner=False, source=f"127.0.0.{2 + i}",
                        timeout=10) for i in range(8)]
        try:
            for i, c in enumerate(clients):
                r = c.reply()
                assert r[0] == 220, (rnd, i, r)
                c.expect("NOOP", 250)
        finally:
            for c in clients:
                c.close()
    assert srv.running()


# docs/POLICY.md section 10.4, with the list's A records behind the slow
# upstream: the script waits there, then starts its second lookup (TXT) from
# inside the first one's answer.
DNSBL_TWO_LOOKUPS = """\
($hit) = ec_dns_lookup "%{ir}.bl.slow.test" "A";
if not ec_test :is "${hit}" "" {
  ($why) = ec_dns_lookup "%{ir}.zone.test" "TXT";
  ec_action 554 "5.7.1 %{i} is listed: ${why}" "dnsbl";
}
"""


@pytest.mark.parametrize("change", ["dns_timeout", "DNS_Server"])
def test_reload_while_a_two_lookup_script_waits(pol_factory, procs, tmp_path, change):
    """A reload that replaces the resolver (another dns_timeout or
    DNS_Server) while a script waits for its first lookup: the answer comes
    back on the old resolver and the script starts its second lookup on the
    new one from inside that answer. The old resolver must not be freed
    under c-ares' feet (it was: use-after-free, the script resumed twice,
    double free). The client gets exactly one reply, the right one."""
    delay = 2.0
    up = pol.SlowUpstream(delay=delay, delayed=lambda n: n.endswith(".bl.slow.test"))
    up.start()
    try:
        txt = [("2.0.0.127.zone.test", "spam source")]
        _, port = pol.start_dnsmasq(tmp_path, [], forward={"slow.test": up.port}, txt=txt,
                                    procs=procs)
        srv = pol_factory(scripts={"connect_phase1": DNSBL_TWO_LOOKUPS},
                          options={"DNS_Server": f"127.0.0.1:{port}"},
                          sieve_opts={"dns_timeout": 5})
        with Smtp("127.0.0.1", srv.port, banner=False, source="127.0.0.2", timeout=15) as c:
            up.wait_query("2.0.0.127.bl.slow.test")
            t0 = time.monotonic()
            if change == "dns_timeout":
                srv.sieve_opts["dns_timeout"] = 6
            else:
                _, port2 = pol.start_dnsmasq(tmp_path, [], forward={"slow.test": up.port},
                                             txt=txt, procs=procs)
                srv.options["DNS_Server"] = f"127.0.0.1:{port2}"
            srv.extra = srv._extra()
            srv.write_config()
            srv.signal(signal.SIGHUP)
            srv.wait_event("reload", lambda e: e.get("result") == "ok")
            assert time.monotonic() - t0 < delay / 2, "the reload came too late to tell"
            assert c.reply() == (554, ["5.7.1 127.0.0.2 is listed: spam source"])
            # one reply, not two (the script resumed once), then the close
            # that follows a refusal at connect
            assert c.closed_within(5 * SLOW)
            assert c.buf == b"", c.buf
        assert srv.running(), "the server died on the second lookup"
        # and again, both lookups on the new resolver
        with Smtp("127.0.0.1", srv.port, banner=False, source="127.0.0.2", timeout=15) as c:
            assert c.reply() == (554, ["5.7.1 127.0.0.2 is listed: spam source"])
        assert srv.running()
    finally:
        up.stop()


def test_dns_lookups_are_counted_over_both_slots_of_a_phase(pol_factory, procs, tmp_path):
    """max_dns_lookups bounds a phase (docs/CONFIGURATION.md): with 4,
    three lookups in mailfrom_phase1 leave one for phase2, whose second
    is a runtime error (each slot used to get four of its own)."""
    _, port = pol.start_dnsmasq(tmp_path, [("2.0.0.127.zone.test", "127.0.0.2")], procs=procs)
    p1 = "".join(f'($a{i}) = ec_dns_lookup "x{i}.zone.test" "a";\n' for i in range(3))
    p2 = ('($b0) = ec_dns_lookup "2.0.0.127.zone.test" "a";\n'
          '($b1) = ec_dns_lookup "y.zone.test" "a";\n'
          'reject "both ran (${b0})";\n')
    srv = pol_factory(scripts={"mailfrom_phase1": p1, "mailfrom_phase2": p2},
                      options={"DNS_Server": f"127.0.0.1:{port}"},
                      sieve_opts={"dns_timeout": DNS_TIMEOUT, "max_dns_lookups": 4})
    with Smtp("127.0.0.1", srv.port, timeout=10 * SLOW) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<a@example.test>")
        assert code == 451, (code, text)  # runtime_error = fail
    srv.wait_log_text("too many DNS lookups (limit max_dns_lookups = 4)")
    assert "both ran" not in srv.log_text()

"""The Prometheus endpoint (Metrics_Listener): GET /metrics over real HTTP.

The scrape is parsed strictly (exposition format 0.0.4: HELP and TYPE once
per family, before its samples; names, labels and values well formed;
histogram buckets cumulative with +Inf equal to _count), and the numbers
are checked against what the test did: sessions, accepted messages,
deliveries, a policy refusal and its Sieve counter.
"""
import os
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

import pol
from mx import SLOW, Smtp, free_port, make_message

SCRIPT = """\
if envelope :localpart :is "from" "spammer" {
  ec_inc_counter "spammer seen";
  reject "go away";
}
"""

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"'
SAMPLE = re.compile(rf"^({NAME})(\{{{LABEL}(?:,{LABEL})*\}})? (\S+)$")


def parse(text):
    """{(name, labels): value}, and {family: type}; asserts the format."""
    assert text.endswith("\n"), "the text must end with a newline"
    types, helps, samples = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            fam = line.split(" ", 3)[2]
            assert fam not in helps, f"HELP twice for {fam}"
            helps.add(fam)
            continue
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ")
            assert fam not in types, f"TYPE twice for {fam}"
            assert typ in ("counter", "gauge", "histogram"), line
            types[fam] = typ
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert fam in types, f"sample {name} before its TYPE"
        float(value)
        key = (name, labels)
        assert key not in samples, f"sample twice: {key}"
        samples[key] = float(value)
    return samples, types


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10 * SLOW) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


@pytest.fixture
def msrv(pol_factory, tmp_path):
    port = free_port(v6=False)
    rcpts = tmp_path / "recipients"
    rcpts.write_text("bob@example.test\n")
    srv = pol_factory(scripts={"mailfrom_phase1": SCRIPT},
                      extra=f'Metrics_Listener {{ Listen "127.0.0.1:{port}" {{ }} }}\n',
                      options={"Fsync": True, "Valid_Recipients": str(rcpts)})
    srv.metrics_port = port
    return srv


def test_metrics_count_what_happened(msrv):
    before, types = parse(scrape(msrv.metrics_port))
    assert before[("mxsieve_connections_total", "")] == 0
    assert types["mxsieve_delivery_seconds"] == "histogram"
    with Smtp("127.0.0.1", msrv.port, timeout=10) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<spammer@example.test>")[0] == 550
        c.expect("MAIL FROM:<a@example.test>", 250)
        assert c.cmd("RCPT TO:<x@elsewhere.test>")[0] == 550      # relaying denied
        assert c.cmd("RCPT TO:<nobody@example.test>")[0] == 550   # not a mailbox here
        c.expect("RCPT TO:<bob@example.test>", 250)
        c.expect("DATA", 354)
        c.send(make_message()[1] + b".\r\n")
        assert c.reply()[0] == 250
        during, _ = parse(scrape(msrv.metrics_port))
        assert during[("mxsieve_sessions", "")] == 1
    after, _ = parse(scrape(msrv.metrics_port))
    assert after[("mxsieve_connections_total", "")] == 1
    assert after[("mxsieve_messages_accepted_total", "")] == 1
    assert after[("mxsieve_recipients_refused_total", '{reason="relay"}')] == 1
    assert after[("mxsieve_recipients_refused_total", '{reason="unknown"}')] == 1
    assert after[("mxsieve_storage_refused_total", "")] == 0
    assert after[("mxsieve_next_hop_refused_total", "")] == 0
    # read by the MAILs above: this filesystem's free space, as statvfs says
    st = os.statvfs(msrv.maildir)
    assert abs(after[("mxsieve_maildir_free_bytes", "")] - st.f_bavail * st.f_frsize) < 2**30
    assert after[("mxsieve_maildir_free_inodes", "")] > 0
    assert after[("mxsieve_policy_runs_total", "")] == 2
    assert after[("mxsieve_delivery_jobs_total", '{result="ok"}')] == 1
    assert after[("mxsieve_delivery_jobs_total", '{result="tempfail"}')] == 0
    assert after[("mxsieve_delivery_queue", "")] == 0
    assert after[("mxsieve_delivery_rounds_total", "")] == 1
    assert after[("mxsieve_sieve_counter_total",
                  '{phase="mailfrom",name="spammer seen",class="informational"}')] == 1
    buckets = sorted(((float(l.split('"')[1]), v) for (n, l), v in after.items()
                      if n == "mxsieve_delivery_seconds_bucket"), key=lambda x: x[0])
    values = [v for _, v in buckets]
    assert values == sorted(values), f"buckets not cumulative: {buckets}"
    assert buckets[-1][0] == float("inf") and buckets[-1][1] == 1
    assert after[("mxsieve_delivery_seconds_count", "")] == 1
    assert 0 < after[("mxsieve_delivery_seconds_sum", "")] < 10


def test_storage_refusals_are_counted(pol_factory):
    port = free_port(v6=False)
    srv = pol_factory(extra=f'Metrics_Listener {{ Listen "127.0.0.1:{port}" {{ }} }}\n',
                      options={"Min_Free_Space": "1000000G"})
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.ehlo()
        for _ in range(2):
            code, text = c.cmd("MAIL FROM:<a@example.test>")
            assert (code, text[0][:5]) == (452, "4.3.1"), (code, text)
    m, _ = parse(scrape(port))
    assert m[("mxsieve_storage_refused_total", "")] == 2
    assert m[("mxsieve_maildir_free_bytes", "")] < 1000000 * 2**30
    assert pol.summary(srv.ctl("summary"))["storage_refused"] == 2


def test_next_hop_refusals_are_counted(pol_factory):
    """Delivery = relay to a next hop that refuses connections: the first
    message finds it down at its final dot; during the 5 s hold that
    follows, MAIL itself is refused (451 4.4.1), so no client sends data
    that could only get a 451."""
    port = free_port(v6=False)
    srv = pol_factory(extra=f'Metrics_Listener {{ Listen "127.0.0.1:{port}" {{ }} }}\n',
                      options={"Delivery": "relay",
                               "Relay_Target": f"127.0.0.1:{free_port(v6=False)}"})
    with Smtp("127.0.0.1", srv.port, timeout=30) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<bob@example.test>", 250)
        c.expect("DATA", 354)
        c.send(make_message()[1] + b".\r\n")
        code, text = c.reply()
        assert (code, text[0][:5]) == (451, "4.3.0"), (code, text)
        for _ in range(2):
            code, text = c.cmd("MAIL FROM:<a@example.test>")
            assert (code, text[0][:5]) == (451, "4.4.1"), (code, text)
        c.expect("NOOP", 250)  # not counted as the client's errors
    m, _ = parse(scrape(port))
    assert m[("mxsieve_next_hop_refused_total", "")] == 2
    assert m[("mxsieve_delivery_jobs_total", '{result="tempfail"}')] == 1
    assert pol.summary(srv.ctl("summary"))["next_hop_refused"] == 2


def test_metrics_other_paths_and_methods(msrv):
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(msrv.metrics_port, "/")
    assert e.value.code == 404
    url = f"http://127.0.0.1:{msrv.metrics_port}/metrics"
    for data, method, code in ((b"", "POST", 501), (b"x", "GET", 413), (b"x", "POST", 413)):
        req = urllib.request.Request(url, data=data, method=method)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10 * SLOW)
        assert e.value.code == code, (method, data, e.value.code)
    # still serving, and the SMTP side did not notice
    parse(scrape(msrv.metrics_port))
    with Smtp("127.0.0.1", msrv.port, timeout=10) as c:
        c.expect("NOOP", 250)


def test_counter_labels_stay_utf8(pol_factory, tmp_path):
    """A counter named after the client's EHLO: 256 bytes of it at most,
    cut between characters (a cut through a two-byte character made
    Prometheus refuse the whole scrape); a byte that is not UTF-8 is shown
    as the text \\xHH."""
    port = free_port(v6=False)
    raw = tmp_path / "raw.sieve"  # a name that is not UTF-8 at all
    raw.write_bytes(b'ec_inc_counter "bad\xff\xfe name";\n')
    srv = pol_factory(scripts={"ehlo_phase1": 'ec_inc_counter "helo %{h}";\n',
                               "connect_phase1": raw},
                      extra=f'Metrics_Listener {{ Listen "127.0.0.1:{port}" {{ }} }}\n')
    name = "xx" + "\u00e9" * 126  # 254 bytes: with "helo " the cut falls inside an é
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.send(b"EHLO " + name.encode() + b"\r\n")
        assert c.reply()[0] == 250
        c.expect("QUIT", 221)
    text = scrape(port)  # decodes as strict UTF-8
    samples, _ = parse(text)
    names = [lab for (n, lab) in samples if n == "mxsieve_sieve_counter_total"]
    cut = [lab for lab in names if "helo xx" in lab]
    assert cut and len(re.search(r'name="([^"]*)"', cut[0]).group(1).encode()) == 255, cut
    assert any('name="bad\\\\xFF\\\\xFE name"' in lab for lab in names), names


def test_a_data_phase_refusal_is_a_refused_message(pol_factory):
    """mxsieve_messages_refused_total counts a message a data-phase script
    refused at its end, like one the server's own checks refuse (it
    counted only the latter)."""
    port = free_port(v6=False)
    srv = pol_factory(scripts={"data_phase1": 'if header :contains "subject" "spam" { reject "no"; }\n'},
                      extra=f'Metrics_Listener {{ Listen "127.0.0.1:{port}" {{ }} }}\n')
    with Smtp("127.0.0.1", srv.port, timeout=10) as c:
        c.ehlo()
        c.expect("MAIL FROM:<a@example.test>", 250)
        c.expect("RCPT TO:<bob@example.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: spam\r\n\r\nx\r\n.\r\n")
        assert c.reply()[0] == 550
    samples, _ = parse(scrape(port))
    assert samples[("mxsieve_messages_refused_total", "")] == 1
    assert samples[("mxsieve_messages_accepted_total", "")] == 0


def test_head_gets_the_headers_and_no_content(msrv):
    """HEAD: a GET's headers, no content (RFC 9110 9.3.2). The whole text
    used to follow, and on a kept-alive connection the next response read
    it as its status line."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", msrv.metrics_port, timeout=10 * SLOW)
    try:
        for path, code in (("/metrics", 200), ("/", 404)):
            conn.request("HEAD", path)
            r = conn.getresponse()
            assert r.status == code
            assert int(r.headers["Content-Length"]) > 0
            assert r.read() == b""
        conn.request("GET", "/metrics")  # the same connection
        r = conn.getresponse()
        assert r.status == 200
        parse(r.read().decode())
    finally:
        conn.close()


def scrape_again(port, why, timeout=15):
    """Scrape until the endpoint answers (a paused listener comes back)."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        try:
            return parse(scrape(port))
        except OSError:
            assert time.monotonic() < deadline, why
            time.sleep(0.2)


def fd_count(pid):
    """Descriptors the process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_a_connection_flood_holds_few_descriptors_and_scrapes_go_on(msrv):
    """evhttp has no connection cap: the endpoint takes at most 20 new
    connections a second and leaves the rest in the kernel's backlog, so 80
    silent connections cost the server 20-40 descriptors, not 150."""
    base = fd_count(msrv.proc.pid)
    socks = []
    try:
        for _ in range(80):
            socks.append(socket.create_connection(("127.0.0.1", msrv.metrics_port), timeout=5))
        time.sleep(0.3)
        # 20 a window of one second; the 80 connections may straddle two
        held = fd_count(msrv.proc.pid) - base
        assert 15 <= held <= 45, f"{held} descriptors for 80 connections in under a second"
        # the SMTP side is untouched meanwhile
        with Smtp("127.0.0.1", msrv.port, timeout=10) as c:
            c.expect("NOOP", 250)
    finally:
        for s in socks:
            s.close()
    # the paused listener comes back: a scrape is answered within a few seconds
    scrape_again(msrv.metrics_port, "no scrape answered after the flood")


def test_a_slow_drip_client_is_cut_at_the_deadline(msrv):
    """evhttp's timeout is an idle timeout that every byte resets: a client
    sending a header byte every second held its connection for as long as
    it liked. A connection now lives at most 10 s from its accept."""
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100
    s = socket.create_connection(("127.0.0.1", msrv.metrics_port), timeout=5)
    t0 = time.monotonic()
    closed_after = None
    try:
        for byte in request:
            try:
                s.sendall(bytes([byte]))
                s.settimeout(1.0)
                if s.recv(4096) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except OSError:
                closed_after = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 20 * SLOW:
                break
    finally:
        s.close()
    assert closed_after is not None, "a client dripping one byte a second was never cut off"
    assert 9.0 <= closed_after <= 12.0 * SLOW, f"cut after {closed_after:.1f}s, not at 10 s"
    parse(scrape(msrv.metrics_port))


def test_metrics_connections_are_capped(msrv):
    """At most 64 connections at once: past that the listener waits for one
    to close (the kernel's backlog holds the others), whatever the rate."""
    base = fd_count(msrv.proc.pid)
    socks = []
    try:
        # 18 a second stays under the accept rate; 90 in 5 s would all be
        # taken without the cap
        for _ in range(5):
            t = time.monotonic()
            for _ in range(18):
                socks.append(socket.create_connection(("127.0.0.1", msrv.metrics_port),
                                                      timeout=5))
            time.sleep(max(0.0, 1.05 - (time.monotonic() - t)))
        time.sleep(0.3)
        held = fd_count(msrv.proc.pid) - base
        assert 50 <= held <= 66, f"{held} descriptors for 90 connections"
    finally:
        for s in socks:
            s.close()
    scrape_again(msrv.metrics_port, "no scrape answered after the connections closed")

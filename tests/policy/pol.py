"""pol: helpers for the policy end-to-end tests (issue 5), on top of the e2e
harness (tests/e2e/mx.py), which is used as it is.

What it adds:
  * policy_server(): an MxServer whose configuration carries a `sieve`
    stanza (scripts written into the test's folder), a Control_Listener on a
    short path (sun_path holds 107 bytes, pytest's tmp paths can be longer),
    Service_Sessions high enough for the mass tests, and extra options.
  * ctl(): `mxsieve ctl -s SOCKET COMMAND...`, bounded by a timeout.
  * open_many(): opens thousands of sessions at once with non-blocking
    sockets and one selector, sending an optional PROXY header at connect
    and timing each banner; keeps a bounded number of handshakes in flight
    so the listen backlog never overflows (an overflow would show up as a
    1 s SYN retransmit, i.e. a false "slow banner").
  * timed_banner(): one more session, and the seconds until its banner.
  * Dnsmasq and SlowUpstream: a real DNS server on a loopback UDP port, and
    a UDP "upstream" the test owns that answers late or never.
  * try_run() / compile_run(): `mxsieve try` and `mxsieve --compile`.

Invariants: every socket operation has a timeout or a deadline, every loop
is bounded, every process is stopped by its PID, every socket is closed in a
finally block by the caller (open_many closes what it opened when it fails).
"""
import os
import pathlib
import random
import resource
import selectors
import socket
import struct
import subprocess
import tempfile
import threading
import time

import mx as harness
from mx import BINARY, SLOW, MxServer

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEED_SCRIPT = ROOT / "examples" / "policy" / "connect.sieve"


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# A server with a policy and a console


def sieve_stanza(scripts, sieve_opts=None):
    """`sieve "e2e" { script PHASE_phaseN { source = "PATH" } ... }`;
    scripts maps a slot name to a path."""
    lines = ['sieve "e2e" {']
    for slot, path in scripts.items():
        lines.append(f'  script {slot} {{ source = {harness.conf_value(str(path))} }}')
    for k, v in (sieve_opts or {}).items():
        lines.append(f"  {k} = {harness.conf_value(v)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


class PolicyServer(MxServer):
    """An MxServer with scripts, a console socket and policy options."""

    def __init__(self, tmp, scripts=None, sieve_opts=None, monitors=None, options=None,
                 extra="", **kw):
        tmp = pathlib.Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        self.script_dir = tmp / "policy"
        self.script_dir.mkdir(exist_ok=True)
        self.ctl_dir = pathlib.Path(tempfile.mkdtemp(prefix="mxpol-"))
        self.ctl_path = self.ctl_dir / "ctl.sock"
        self.scripts = {}
        for slot, body in (scripts or {}).items():
            self.scripts[slot] = self.write_script(slot, body)
        self.sieve_opts = dict(sieve_opts or {})
        opts = {"Service_Sessions": 30000, "Fsync": False}
        opts.update(options or {})
        self.monitors = monitors
        self.user_extra = extra
        super().__init__(tmp, options=opts, extra=self._extra(), **kw)

    def _extra(self):
        ctl = f'Control_Listener {{ Listen {harness.conf_value(str(self.ctl_path))} {{ }} }}\n'
        audit = ""
        if self.monitors:
            audit = f"inbound_audit {{ monitors = {harness.conf_value(list(self.monitors))} }}\n"
        stanza = sieve_stanza(self.scripts, self.sieve_opts) if self.scripts else ""
        return ctl + audit + self.user_extra + stanza

    def reconfigure(self, options=None, monitors=None, sieve_opts=None):
        """Rewrite the config with these changes and reload it through the
        console; returns the console's answer."""
        self.options.update(options or {})
        if monitors is not None:
            self.monitors = monitors
        self.sieve_opts.update(sieve_opts or {})
        self.extra = self._extra()
        self.write_config()
        return self.ctl("reload")

    def wait_ready(self, timeout):
        """Ready when the log says event=start (after every Listen is bound).
        The harness's own check wants a 220 banner from 127.0.0.1 and ::1,
        which a connect-phase policy may refuse or delay on purpose; and its
        probe sessions would show up in the counts the tests read."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise harness.HarnessError(f"mxsieve exited with {self.proc.returncode} at "
                                           f"start; log:\n{self.log_text()[-4000:]}")
            if "event=start " in self.log_text():
                return
            if time.monotonic() > deadline:
                raise harness.HarnessError(f"mxsieve did not log event=start within "
                                           f"{timeout:.0f}s; log:\n{self.log_text()[-4000:]}")
            time.sleep(0.02)

    def write_script(self, slot, body, name=None):
        """Write a script file (a Path is used as it is); returns its path."""
        if isinstance(body, pathlib.Path):
            return body
        path = self.script_dir / (name or f"{slot}.sieve")
        path.write_text(body)
        return path

    def ctl(self, *words, timeout=10, check=True):
        return ctl(self.ctl_path, *words, timeout=timeout, check=check)

    def live(self, block):
        """The 'Live connections: N' value of `inbound_audit show ip BLOCK`."""
        return live_count(self.ctl("inbound_audit", "show", "ip", block))

    def wait_live(self, block, want, timeout=15.0):
        """Poll the console until BLOCK has `want` live sessions; returns the
        last value seen (the caller asserts)."""
        deadline = time.monotonic() + timeout * SLOW
        n = None
        while time.monotonic() < deadline:
            n = self.live(block)
            if n == want:
                return n
            time.sleep(0.1)
        return n

    def cleanup_ctl_dir(self):
        try:
            if self.ctl_path.exists():
                self.ctl_path.unlink()
            self.ctl_dir.rmdir()
        except OSError:
            pass


def live_count(text):
    for line in text.splitlines():
        if line.startswith("Live connections:"):
            return int(line.split(":", 1)[1])
    raise AssertionError(f"no 'Live connections:' line in:\n{text}")


def ctl(sock, *words, timeout=10, check=True):
    """Run `mxsieve ctl -s SOCK WORDS...`; returns stdout (asserting exit 0
    when check)."""
    r = subprocess.run([str(BINARY), "ctl", "-s", str(sock), *words], capture_output=True,
                       text=True, timeout=timeout * SLOW)
    if check:
        assert r.returncode == 0, (f"mxsieve ctl {' '.join(words)}: exit {r.returncode}\n"
                                   f"stdout: {r.stdout}\nstderr: {r.stderr}")
    return r.stdout if check else r


def stats(text):
    """`sieve stats` text -> {"PHASE:NAME (class)": N}."""
    out = {}
    for line in text.splitlines():
        if " = " in line:
            k, v = line.rsplit(" = ", 1)
            out[k.strip()] = int(v)
    return out


def summary(text):
    """`summary` text -> {key: int}."""
    out = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            try:
                out[k.strip()] = int(v)
            except ValueError:
                pass
    return out


# --------------------------------------------------------------------------
# Many sessions at once


class MassOpenError(AssertionError):
    pass


def open_many(host, port, n, header=None, source=None, inflight=200, timeout=60.0):
    """Open n sessions to host:port and read each banner's first line.

    header: None, or a function i -> bytes sent right after connecting (a
    PROXY header). Returns (socks, seconds) where seconds[i] is the time from
    the connect() of session i to its complete banner line. The sockets stay
    open: the caller closes them (close_all) in a finally block. On failure
    everything opened here is closed and MassOpenError raised."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = [None] * n
    started = [0.0] * n
    seconds = [None] * n
    bufs = {}
    nxt = 0
    pending = 0
    done = 0
    deadline = time.monotonic() + timeout * SLOW
    try:
        while done < n:
            while nxt < n and pending < inflight:
                s = socket.socket(fam, socket.SOCK_STREAM)
                socks[nxt] = s
                s.setblocking(False)
                if source is not None:
                    s.bind((source, 0))
                started[nxt] = time.monotonic()
                err = s.connect_ex((host, port))
                if err not in (0, 115):  # EINPROGRESS
                    raise MassOpenError(f"connect #{nxt}: {os.strerror(err)}")
                sel.register(s, selectors.EVENT_WRITE, ("conn", nxt))
                nxt += 1
                pending += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise MassOpenError(f"only {done} of {n} banners within {timeout * SLOW:.0f}s")
            for key, ev in sel.select(timeout=min(left, 1.0)):
                s = key.fileobj
                what, i = key.data
                if what == "conn":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise MassOpenError(f"connect #{i}: {os.strerror(err)}")
                    if header is not None:
                        h = header(i)
                        if s.send(h) != len(h):
                            raise MassOpenError(f"short send of the PROXY header #{i}")
                    sel.modify(s, selectors.EVENT_READ, ("banner", i))
                    bufs[i] = b""
                else:
                    try:
                        chunk = s.recv(4096)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise MassOpenError(f"session #{i} closed before its banner "
                                            f"({bufs[i]!r})")
                    bufs[i] += chunk
                    if b"\r\n" in bufs[i]:
                        seconds[i] = time.monotonic() - started[i]
                        if not bufs[i].startswith(b"220"):
                            raise MassOpenError(f"session #{i}: banner {bufs[i]!r}")
                        sel.unregister(s)
                        del bufs[i]
                        pending -= 1
                        done += 1
        return socks, seconds
    except BaseException:
        close_all(socks)
        raise
    finally:
        sel.close()


def close_all(socks):
    for s in socks:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def timed_banner(host, port, header=None, source=None, timeout=30.0):
    """Open one session; returns (socket, seconds to the banner line, line).
    The caller closes the socket."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source is not None:
            s.bind((source, 0))
        t0 = time.monotonic()
        s.connect((host, port))
        if header:
            s.sendall(header)
        buf = b""
        while b"\r\n" not in buf:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise AssertionError(f"no banner within {timeout}s")
            s.settimeout(left)
            chunk = s.recv(4096)
            if not chunk:
                raise AssertionError(f"closed before the banner: {buf!r}")
            buf += chunk
        return s, time.monotonic() - t0, buf.split(b"\r\n", 1)[0].decode()
    except BaseException:
        s.close()
        raise


class BannerTimer(threading.Thread):
    """timed_banner() in a thread, so two delays can be measured at once."""

    def __init__(self, *a, **kw):
        super().__init__(daemon=True)
        self.a, self.kw = a, kw
        self.sock = self.seconds = self.line = self.error = None

    def run(self):
        try:
            self.sock, self.seconds, self.line = timed_banner(*self.a, **self.kw)
        except BaseException as e:  # reported by the test
            self.error = e

    def result(self, timeout):
        self.join(timeout)
        assert not self.is_alive(), "banner timer thread did not finish"
        if self.error:
            raise self.error
        return self.seconds, self.line


# --------------------------------------------------------------------------
# mxsieve try / --compile


def try_run(*args, timeout=20):
    """`mxsieve try ARGS...` -> CompletedProcess (text)."""
    return subprocess.run([str(BINARY), "try", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout * SLOW, cwd=str(ROOT))


def try_value(out, key):
    """The value of a 'key: value' line of `mxsieve try` output."""
    for line in out.splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no '{key}:' line in:\n{out}")


def compile_run(path, phase, timeout=20):
    return subprocess.run([str(BINARY), "--compile", str(path), "--phase", phase],
                          capture_output=True, text=True, timeout=timeout * SLOW)


# --------------------------------------------------------------------------
# DNS: dnsmasq on loopback, and an upstream that is slow on purpose

DNSMASQ = "/usr/sbin/dnsmasq"


def free_udp_port():
    """A port free for UDP and TCP on 127.0.0.1 (dnsmasq binds both), below
    the kernel's ephemeral range so that no client connection takes it
    between this check and dnsmasq's bind."""
    rnd = random.Random()
    for _ in range(200):
        port = rnd.randrange(21000, 30000)
        if port in harness._handed_out:
            continue
        ok = True
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            harness._handed_out.add(port)
            return port
    raise harness.HarnessError("no free UDP+TCP port in 200 tries")


def dns_query(port, name, qtype=1, timeout=2.0):
    """A minimal A query over UDP; returns the rcode and the IPv4 answers."""
    qid = 0x4d58
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(
        ">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
    finally:
        s.close()
    rcode = data[3] & 0x0F
    an = struct.unpack(">H", data[6:8])[0]
    off = 12 + len(encode_name(name)) + 4
    out = []
    for _ in range(an):
        off = skip_name(data, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(data[off:off + 4]))
        off += rdlen
    return rcode, out


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def skip_name(data, off):
    for _ in range(128):
        n = data[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n
    raise ValueError("name too long")


class SlowUpstream(threading.Thread):
    """A UDP DNS server the test owns. A query for a name `delayed` accepts
    (by default those starting with "delay.") is answered after `delay`
    seconds with A 127.0.0.9; any other query is never answered (the lookup
    must time out). Bounded: it stops when stop() is called, and never runs
    longer than `lifetime`."""

    def __init__(self, delay=1.0, lifetime=120.0, delayed=None):
        super().__init__(daemon=True)
        self.delay = delay
        self.lifetime = lifetime
        self.delayed = delayed or (lambda name: name.startswith("delay."))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self._halt = threading.Event()
        self._due = []  # (time, reply, addr)

    def wait_query(self, name, timeout=4.0):
        """Wait until a query for `name` has arrived (asserted)."""
        deadline = time.monotonic() + timeout * SLOW
        while not any(n == name for _, n in self.queries):
            assert time.monotonic() < deadline, f"no query for {name}: {self.queries}"
            time.sleep(0.02)

    def run(self):
        end = time.monotonic() + self.lifetime
        try:
            while not self._halt.is_set() and time.monotonic() < end:
                self.sock.settimeout(0.05)
                try:
                    data, addr = self.sock.recvfrom(4096)
                except (socket.timeout, TimeoutError):
                    data = None
                if data:
                    name = self._qname(data)
                    self.queries.append((time.monotonic(), name))
                    if self.delayed(name):
                        self._due.append((time.monotonic() + self.delay, self._answer(data),
                                          addr))
                now = time.monotonic()
                for item in [d for d in self._due if d[0] <= now]:
                    self._due.remove(item)
                    self.sock.sendto(item[1], item[2])
        finally:
            self.sock.close()

    @staticmethod
    def _qname(data):
        labels, off = [], 12
        for _ in range(128):
            n = data[off]
            if n == 0:
                break
            labels.append(data[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n
        return ".".join(labels).lower()

    @staticmethod
    def _answer(q):
        qid = q[:2]
        flags = struct.pack(">H", 0x8180)  # response, RD, RA, NOERROR
        qend = skip_name(q, 12) + 4
        question = q[12:qend]
        qtype = struct.unpack(">H", q[qend - 4:qend - 2])[0]
        if qtype != 1:
            return qid + flags + struct.pack(">HHHH", 1, 0, 0, 0) + question
        ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.9")
        return qid + flags + struct.pack(">HHHH", 1, 1, 0, 0) + question + ans

    def stop(self):
        self._halt.set()
        self.join(5)


def start_dnsmasq(tmp, records, forward=None, procs=None, timeout=5.0, txt=()):
    """dnsmasq on a free loopback UDP port, with --address=/NAME/IP records,
    --txt-record=NAME,TEXT records from `txt` ((name, text) pairs) and an
    optional {domain: port} map forwarded to 127.0.0.1#port. Returns
    (Popen, port); the Popen is appended to `procs` (stopped by PID at
    teardown). Waits, bounded, until it answers."""
    if not os.access(DNSMASQ, os.X_OK):
        raise harness.HarnessError(f"{DNSMASQ} is not installed (Debian: dnsmasq-base)")
    tmp = pathlib.Path(tmp)
    for attempt in range(3):
        port = free_udp_port()
        args = [DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
                f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
                f"--pid-file={tmp / f'dnsmasq{port}.pid'}",
                "--log-facility=-", "--log-queries", "--cache-size=0"]
        if os.geteuid() == 0:
            args.append("--user=root")
        for name, ip in records:
            args.append(f"--address=/{name}/{ip}")
        for name, text in txt:
            args.append(f"--txt-record={name},{text}")
        for domain, uport in (forward or {}).items():
            args.append(f"--server=/{domain}/127.0.0.1#{uport}")
        log = open(tmp / f"dnsmasq{port}.log", "wb")
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if procs is not None:
            procs.append(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and p.poll() is None:
            try:
                dns_query(port, "probe.invalid", timeout=0.3)
                return p, port
            except OSError:
                time.sleep(0.05)
        if p.poll() is None:
            p.terminate()
            p.wait(5)
    raise harness.HarnessError(f"dnsmasq did not start; log: {(tmp / f'dnsmasq{port}.log').read_text()}")

"""mx: the end-to-end harness that drives a real mxsieve over loopback.

What it gives a test:
  * MxServer: writes a configuration file (ecelerity.conf syntax) into a tmp
    directory, with a Maildir root, a TLS_Dir and listeners on free loopback
    ports (IPv4, [::1], and an IPv4 PROXY-protocol listener); starts
    `mxsieve -c FILE` in the foreground with stdout+stderr captured to a file;
    waits (bounded) until every plain listener answers with a banner; stops it
    with SIGTERM, a bounded wait, then SIGKILL, always by PID.
  * Log access: every line holding "event=" parsed into a dict of key=value
    (double-quoted values unescaped), so tests assert on events, not text.
  * Maildir access: the files in MAILDIR/<domain>/<local-part>/new/, parsed.
  * Smtp: a raw SMTP client over a socket (optional PROXY header, STARTTLS)
    whose every read has a timeout, for the dialogues smtplib cannot speak
    (pipelined batches, BDAT split across writes, smuggling attempts).

Invariants: every network operation has a timeout, every wait loop has a
deadline, and no process is ever stopped by name.
"""
import email.parser
import email.policy
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
BUILD = pathlib.Path(os.environ.get("MXSIEVE_BUILD", str(ROOT / "build"))).resolve()
BINARY = BUILD / "mxsieve"
HOSTNAME = "mx.e2e.test"
DOMAIN = "example.test"

# Slow builds (ASan) need more time for everything.
SLOW = 3.0 if "san" in BUILD.name else 1.0


class HarnessError(AssertionError):
    """The harness could not do its job (binary missing, server died...)."""


# --------------------------------------------------------------------------
# Ports

_handed_out = set()


def free_port(v6=True):
    """A TCP port free on 127.0.0.1 (and on ::1 when v6), never returned twice
    in one run. Bounded: 200 tries."""
    for _ in range(200):
        s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            if port in _handed_out:
                continue
            if v6:
                s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                try:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::1", port))
                except OSError:
                    continue
                finally:
                    s6.close()
            _handed_out.add(port)
            return port
        finally:
            s4.close()
    raise HarnessError("no free loopback port found in 200 tries")


# --------------------------------------------------------------------------
# Configuration rendering


def conf_value(v):
    """Render a Python value in ecelerity.conf syntax."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "( " + " ".join(conf_value(x) for x in v) + " )"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def conf_options(opts, indent=""):
    out = []
    for k, v in opts.items():
        if v is None:
            continue
        out.append(f"{indent}{k} = {conf_value(v)}")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Log lines

_KV = re.compile(r'([A-Za-z_][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|\S*)')


def _unquote(v):
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        body = v[1:-1]
        return re.sub(r"\\(x[0-9a-fA-F]{2}|.)",
                      lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1).startswith("x")
                      and len(m.group(1)) == 3 else m.group(1), body)
    return v


def parse_log_line(line):
    """'... event=connect client=1.2.3.4 x="a b"' -> {'event': 'connect', ...}
    (None when the line holds no event=)."""
    if "event=" not in line:
        return None
    d = {}
    for m in _KV.finditer(line[line.index("event="):]):
        d[m.group(1).lower()] = _unquote(m.group(2))
    return d


# --------------------------------------------------------------------------
# Delivered messages


def parse_message(raw):
    """A delivered Maildir file (bytes) -> email.message.Message (compat32,
    so headers come back as written)."""
    return email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw)


def make_message(msgid=None, subject="e2e", body_lines=None, sender="a@example.test",
                 to="b@example.test"):
    """A small RFC 5322 message with CRLF line ends and a unique Message-ID.
    Returns (msgid, bytes). The body ends with a line 'END-OF-BODY <msgid>' so a
    complete file can be told from a truncated one."""
    msgid = msgid or f"<{uuid.uuid4().hex}@e2e.test>"
    if body_lines is None:
        body_lines = [f"line {i} of the body, some text to make it longer." for i in range(20)]
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: {msgid}",
             "Date: Tue, 24 Nov 2026 10:00:00 +0000", ""]
    lines += body_lines
    lines.append(f"END-OF-BODY {msgid}")
    return msgid, ("\r\n".join(lines) + "\r\n").encode()


def contains_data(delivered, sent):
    """Whether a delivered file ends with the sent data byte for byte (allowing
    one consistent CRLF -> LF translation, the Maildir convention)."""
    return delivered.endswith(sent) or delivered.endswith(sent.replace(b"\r\n", b"\n"))


def dot_stuff(data):
    out = []
    for line in data.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


# --------------------------------------------------------------------------
# The server


class MxServer:
    """One mxsieve process with its own config, Maildir and log in `tmp`."""

    def __init__(self, tmp, options=None, listener_options=None, listen_options=None,
                 proxy_options=None, extra="", v6=True, proxy=True, name="mx"):
        self.tmp = pathlib.Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.maildir = self.tmp / "maildir"
        self.tls_dir = self.tmp / "tls"
        self.conf_path = self.tmp / f"{name}.conf"
        self.log_path = self.tmp / f"{name}.log"
        self.port = free_port()
        self.port6 = self.port if v6 else None  # same number on ::1
        self.proxy_port = free_port(v6=False) if proxy else None
        self.options = {
            "Hostname": HOSTNAME,
            "Maildir": str(self.maildir),
            "TLS_Dir": str(self.tls_dir),
            "Relay_Domains": [DOMAIN],
            "Shutdown_Grace": 3,
            "Fsync": True,
        }
        self.options.update(options or {})
        self.listener_options = dict(listener_options or {})
        self.listen_options = dict(listen_options or {})
        self.proxy_options = {"Proxy_Protocol": True, "Proxy_Timeout": 2}
        self.proxy_options.update(proxy_options or {})
        self.extra = extra
        self.v6 = v6
        self.proxy = proxy
        self.proc = None
        self._logf = None
        self.killed = False       # SIGKILLed on purpose: no exit status to check
        self.wrapper = []         # a command prefix, e.g. ["strace", "-f", ...]
        self.env = {}             # extra environment for the server
        self.exit_statuses = []   # one per process started, when it ended
        self.write_config()

    def repick_ports(self):
        """New free ports (after another process took one between our probe and
        the server's bind); rewrites the generated config."""
        self.port = free_port()
        self.port6 = self.port if self.v6 else None
        self.proxy_port = free_port(v6=False) if self.proxy else None
        self.write_config()

    # -- configuration ------------------------------------------------------
    def config_text(self):
        listens = [f'  Listen "127.0.0.1:{self.port}" {{\n'
                   f'{conf_options(self.listen_options, "    ")}\n  }}']
        if self.v6:
            listens.append(f'  Listen "[::1]:{self.port6}" {{\n'
                           f'{conf_options(self.listen_options, "    ")}\n  }}')
        if self.proxy:
            listens.append(f'  Listen "127.0.0.1:{self.proxy_port}" {{\n'
                           f'{conf_options(self.proxy_options, "    ")}\n  }}')
        return ("# written by tests/e2e/mx.py\n"
                + conf_options(self.options) + "\n"
                + "ESMTP_Listener {\n"
                + (conf_options(self.listener_options, "  ") + "\n" if self.listener_options else "")
                + "\n".join(listens) + "\n}\n"
                + self.extra + "\n")

    def write_config(self, text=None):
        self.conf_path.write_text(text if text is not None else self.config_text())

    # -- process ------------------------------------------------------------
    def start(self, timeout=10.0):
        if not BINARY.exists():
            raise HarnessError(f"{BINARY} not found: build it first (make B=... ) "
                               "or set MXSIEVE_BUILD")
        self._logf = open(self.log_path, "ab")
        self._server_pid = None
        self.proc = subprocess.Popen(self.wrapper + [str(BINARY), "-c", str(self.conf_path)],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, cwd=str(self.tmp),
                                     env={**os.environ, **self.env})
        self.wait_ready(timeout * SLOW)
        return self

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        targets = [("127.0.0.1", self.port)]
        if self.v6:
            targets.append(("::1", self.port6))
        for host, port in targets:
            while True:
                if self.proc.poll() is not None:
                    raise HarnessError(f"mxsieve exited with {self.proc.returncode} at start; "
                                       f"log:\n{self.log_text()[-4000:]}")
                try:
                    with socket.create_connection((host, port), timeout=1) as s:
                        s.settimeout(1.0)
                        banner = s.recv(512)
                        if banner.startswith(b"220"):
                            try:
                                s.sendall(b"QUIT\r\n")
                                s.recv(512)
                            except OSError:
                                pass
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise HarnessError(f"mxsieve did not answer on {host}:{port} within "
                                       f"{timeout:.0f}s; log:\n{self.log_text()[-4000:]}")
                time.sleep(0.05)

    @property
    def pid(self):
        """The server's PID (the wrapper's child when there is a wrapper)."""
        if not self.wrapper:
            return self.proc.pid
        if self._server_pid is None:
            deadline = time.monotonic() + 5
            while self._server_pid is None and time.monotonic() < deadline:
                try:
                    kids = pathlib.Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
                    ids = kids.read_text().split()
                    self._server_pid = int(ids[0]) if ids else None
                except (OSError, ValueError):
                    pass
                time.sleep(0.02)
            if self._server_pid is None:
                raise HarnessError("cannot find the server under its wrapper")
        return self._server_pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def wait_exit(self, timeout):
        """The exit status, or None if still running after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, a bounded wait, then SIGKILL. Returns the exit status."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            os.kill(self.pid, signal.SIGTERM)
            rc = self.wait_exit(timeout * SLOW)
            if rc is None:
                if self.wrapper:
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.kill()
                rc = self.proc.wait(timeout=10)
                rc = f"SIGKILLed after not stopping within {timeout * SLOW:.0f}s of SIGTERM"
        if self.proc not in [p for p, _ in self.exit_statuses]:
            self.exit_statuses.append((self.proc, rc))
        if self._logf:
            self._logf.close()
            self._logf = None
        return rc

    def kill(self):
        """SIGKILL now (the crash test)."""
        if self.running():
            if self.wrapper:
                os.kill(self.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.exit_statuses.append((self.proc, "killed"))
        if self._logf:
            self._logf.close()
            self._logf = None

    def problems(self):
        """What went wrong with this server beyond the test's own asserts: an
        exit status other than 0 after SIGTERM (or a SIGINT/SIGTERM the test
        sent), a sanitizer report or a crash in the log."""
        out = []
        for _, rc in self.exit_statuses:
            if rc not in (0, "killed"):
                out.append(f"{self.name}: exit status {rc}")
        text = self.log_text()
        for marker in (r"ERROR: AddressSanitizer", r"ERROR: LeakSanitizer",
                       r"\.[ch]:\d+:\d+: runtime error:", r"AddressSanitizer:DEADLYSIGNAL",
                       r"ThreadSanitizer", r"Segmentation fault"):
            m = re.search(marker, text)
            if m:
                i = m.start()
                out.append(f"{self.name}: {m.group(0)} in the log:\n"
                           f"{text[max(0, i - 200):i + 3000]}")
        return out

    # -- log ----------------------------------------------------------------
    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, name=None):
        out = []
        for line in self.log_text().splitlines():
            d = parse_log_line(line)
            if d is not None and (name is None or d.get("event") == name):
                out.append(d)
        return out

    def wait_log_text(self, text, timeout=5.0):
        """Wait until `text` appears anywhere in the log (a message, not an
        event: e.g. the FILE:LINE of a failed reload)."""
        deadline = time.monotonic() + timeout * SLOW
        while text not in self.log_text():
            if time.monotonic() > deadline:
                raise HarnessError(f"the log does not name {text!r}:\n"
                                   f"{self.log_text()[-2000:]}")
            time.sleep(0.05)

    def wait_event(self, name, pred=lambda e: True, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            for e in self.events(name):
                if pred(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no event={name} matching within {timeout}s; log tail:\n"
                                     + self.log_text()[-3000:])
            time.sleep(0.05)

    # -- maildir ------------------------------------------------------------
    def mailbox(self, addr):
        local, domain = addr.rsplit("@", 1)
        # docs/CONFIGURATION.md: domain and local part are ASCII-lower-cased
        return self.maildir / domain.lower() / local.lower()

    def new_files(self, addr=None):
        """Files in new/ of one mailbox, or of every mailbox when addr is None."""
        if addr is not None:
            d = self.mailbox(addr) / "new"
            return sorted(d.iterdir()) if d.is_dir() else []
        return sorted(self.maildir.glob("*/*/new/*")) if self.maildir.is_dir() else []

    def tmp_files(self):
        return sorted(self.maildir.glob("*/*/tmp/*")) if self.maildir.is_dir() else []

    def messages(self, addr=None):
        return [f.read_bytes() for f in self.new_files(addr)]

    def wait_messages(self, addr, count, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while True:
            files = self.new_files(addr)
            if len(files) >= count or time.monotonic() > deadline:
                return [f.read_bytes() for f in files]
            time.sleep(0.05)

    # -- clients ------------------------------------------------------------
    def connect(self, v6=False, port=None, **kw):
        host = "::1" if v6 else "127.0.0.1"
        return Smtp(host, port or (self.port6 if v6 else self.port), **kw)

    def connect_proxy(self, header, **kw):
        return Smtp("127.0.0.1", self.proxy_port, proxy_header=header, **kw)


# --------------------------------------------------------------------------
# A raw SMTP client


class Closed(Exception):
    """The server closed the connection."""


class Smtp:
    """A minimal SMTP client over a socket. Every read has a timeout."""

    def __init__(self, host, port, timeout=10.0, proxy_header=None, banner=True, source=None):
        self.timeout = timeout * SLOW
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""
        self.banner = None
        if proxy_header is not None:
            self.sock.sendall(proxy_header)
        if banner:
            self.banner = self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError) as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def line(self, timeout=None):
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete line")
            self._fill(left)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self, timeout=None):
        """One (possibly multi-line) reply -> (code, [text lines])."""
        lines = []
        for _ in range(1000):
            ln = self.line(timeout)
            if len(ln) < 3 or not ln[:3].isdigit():
                raise AssertionError(f"malformed reply line {ln!r}")
            lines.append(ln)
            if len(ln) == 3 or ln[3] == " ":
                break
            if ln[3] != "-":
                raise AssertionError(f"malformed reply line {ln!r}")
        codes = {ln[:3] for ln in lines}
        assert len(codes) == 1, f"mixed codes in one reply: {lines}"
        return int(lines[0][:3]), [ln[4:] for ln in lines]

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n")
        return self.reply(timeout)

    def expect(self, line, code, timeout=None):
        c, text = self.cmd(line, timeout) if line is not None else self.reply(timeout)
        assert c == code, f"{line!r}: expected {code}, got {c} {text}"
        return text

    def ehlo(self, name="client.e2e.test"):
        code, lines = self.cmd(f"EHLO {name}")
        assert code == 250, (code, lines)
        return [ln.split(" ")[0].upper() for ln in lines[1:]], lines

    def closed_within(self, timeout):
        """True when the server closes the connection within `timeout` (any
        pending bytes are kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(max(0.01, deadline - time.monotonic()))
            except Closed:
                return True
            except (socket.timeout, TimeoutError):
                return False
            except OSError:
                return True
        return False

    def nothing_within(self, timeout):
        """True when no byte arrives within `timeout` (EOF counts as nothing)."""
        if self.buf:
            return False
        try:
            self._fill(timeout)
        except (socket.timeout, TimeoutError):
            return True
        except (Closed, OSError):
            return not self.buf
        return False

    def starttls(self):
        code, text = self.cmd("STARTTLS")
        assert code == 220, (code, text)
        assert not self.buf, f"bytes after 220 to STARTTLS: {self.buf!r}"
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock)
        return self.sock

    def send_message(self, sender, rcpts, data, expect_final=250, mail_params="",
                     timeout=None):
        """A whole transaction, one command at a time. `data` is the raw
        message (CRLF), dot-stuffed here; `mail_params` (" SMTPUTF8") go on
        MAIL; `timeout` is for the final reply. Returns its text."""
        self.expect(f"MAIL FROM:<{sender}>{mail_params}", 250)
        for r in rcpts:
            self.expect(f"RCPT TO:<{r}>", 250)
        self.expect("DATA", 354)
        self.send(dot_stuff(data) + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        code, text = self.reply(timeout)
        assert code == expect_final, f"end of data: expected {expect_final}, got {code} {text}"
        return text


def proxy_v1(src, dst, sport=40000, dport=25, proto=None):
    proto = proto or ("TCP6" if ":" in src else "TCP4")
    return f"PROXY {proto} {src} {dst} {sport} {dport}\r\n".encode()


PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src=None, dst=None, sport=40000, dport=25, local=False, tlvs=b""):
    """A PROXY protocol v2 header: PROXY TCP4/TCP6, or LOCAL."""
    if local:
        return PROXY_V2_SIG + bytes([0x20, 0x00]) + len(tlvs).to_bytes(2, "big") + tlvs
    if ":" in src:
        fam = 0x21
        addrs = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst))
    else:
        fam = 0x11
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
    addrs += sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + tlvs
    return PROXY_V2_SIG + bytes([0x21, fam]) + len(addrs).to_bytes(2, "big") + addrs


def run_tool(args, timeout=60, **kw):
    """Run a helper program (swaks, smtp-source...) with a timeout; a missing
    tool fails with a clear message."""
    exe = args[0]
    if not (os.path.isabs(exe) and os.access(exe, os.X_OK)) and not _which(exe):
        raise HarnessError(f"{exe} is not installed (scripts/install-deps.sh installs it)")
    return subprocess.run(args, capture_output=True, timeout=timeout * SLOW, **kw)


def _which(exe):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":") + ["/usr/sbin", "/sbin"]:
        if os.access(os.path.join(d, exe), os.X_OK):
            return True
    return False

"""Issue 7.2: an end-to-end smoke run under valgrind (memcheck).

mxsieve (the plain build: valgrind and ASan do not mix) runs under
`valgrind --leak-check=full --errors-for-leak-kinds=definite`; the test sends
a plain message, one over STARTTLS, one through a PROXY v2 header, a few
refused commands, a session with a connect-phase tarpit policy, a client
that vanishes mid-DATA, then SIGTERM. It asserts a clean exit, "ERROR
SUMMARY: 0 errors" and no definitely lost block. A pre-made certificate
avoids generating an RSA key under valgrind (slow).
Skipped (not failed) when valgrind is not installed or the build is a
sanitizer build.
"""
import os
import shutil
import signal
import subprocess
import time

import pytest

from mx import BINARY, MxServer, make_message, proxy_v2

VALGRIND = shutil.which("valgrind")

pytestmark = [
    pytest.mark.skipif(VALGRIND is None, reason="valgrind not installed"),
    pytest.mark.skipif("san" in BINARY.parent.name, reason="valgrind needs a non-ASan build"),
]

class ValgrindServer(MxServer):
    """MxServer whose process is valgrind running mxsieve."""

    def start(self, timeout=60.0):
        self.vg_log = self.tmp / "valgrind.log"
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [VALGRIND, "--tool=memcheck", "--leak-check=full",
             "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
             "--error-exitcode=99", "--num-callers=30", f"--log-file={self.vg_log}",
             str(BINARY), "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL, stdout=self._logf, stderr=self._logf, cwd=str(self.tmp))
        self.wait_ready(timeout)
        return self


def make_cert(d):
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=mx.e2e.test",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def test_valgrind_smoke(tmp_path):
    cert, key = make_cert(tmp_path / "pki")
    policy = tmp_path / "connect.sieve"
    policy.write_text("ec_tarpit 1;\nkeep;\n")
    srv = ValgrindServer(
        tmp_path / "vg",
        options={"TLS_Certificate": str(cert), "TLS_Key": str(key), "Log_Level": "info",
                 "Shutdown_Grace": 5},
        extra=f'sieve "default" {{ script connect_phase1 {{ source = "{policy}" }} '
              f'max_tarpit = 2 }}')
    try:
        srv.start()
        # plain (the tarpit delays each banner by about 1 s if the policy runs)
        msgid, data = make_message(subject="plain")
        t0 = time.monotonic()
        with srv.connect(timeout=30) as c:
            banner_wait = time.monotonic() - t0
            assert banner_wait >= 0.9, f"banner after {banner_wait:.2f}s: the tarpit did not run"
            c.ehlo()
            c.send_message("a@example.test", ["vg@example.test"], data)
            code, _ = c.cmd("VRFY root")
            assert code >= 250
            code, _ = c.cmd("RCPT TO:<x@other.test>")
            assert code >= 500
            c.cmd("QUIT")
        # STARTTLS
        _, data = make_message(subject="tls")
        with srv.connect(timeout=30) as c:
            c.ehlo()
            c.starttls()
            c.ehlo()
            c.send_message("a@example.test", ["vg@example.test"], data)
        # PROXY v2
        _, data = make_message(subject="proxy")
        with srv.connect_proxy(proxy_v2("2001:db8::5", "2001:db8::1"), timeout=30) as c:
            c.ehlo()
            c.send_message("a@example.test", ["vg@example.test"], data)
        # BDAT and a client that vanishes in the middle of DATA
        with srv.connect(timeout=30) as c:
            c.ehlo()
            c.expect("MAIL FROM:<a@example.test>", 250)
            c.expect("RCPT TO:<vg@example.test>", 250)
            c.send(b"BDAT 10 LAST\r\nSubject: b")
            assert c.reply()[0] == 250
            c.expect("MAIL FROM:<a@example.test>", 250)
            c.expect("RCPT TO:<vg@example.test>", 250)
            c.expect("DATA", 354)
            c.send(b"Subject: cut\r\n\r\nhalf a mess")
        # a bad PROXY header
        try:
            with srv.connect_proxy(b"PROXY GARBAGE\r\n", banner=False, timeout=30) as c:
                c.closed_within(10)
        except OSError:
            pass
        assert len(srv.wait_messages("vg@example.test", 4, timeout=30)) >= 4
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGTERM)
            try:
                rc = srv.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                srv.proc.kill()
                srv.proc.wait(timeout=10)
                rc = "killed after 120 s"
        else:
            rc = srv.proc.returncode if srv.proc else None
        if srv._logf:
            srv._logf.close()
    report = srv.vg_log.read_text(errors="replace") if srv.vg_log.exists() else ""
    summary = [ln for ln in report.splitlines() if "ERROR SUMMARY" in ln or "definitely lost" in ln
               or "indirectly lost" in ln or "possibly lost" in ln]
    print("\nvalgrind: " + " | ".join(ln.split("== ", 1)[-1] for ln in summary))
    assert rc == 0, f"exit status {rc} (99 = valgrind errors); report:\n{report[-6000:]}"
    assert "ERROR SUMMARY: 0 errors" in report, report[-6000:]
    for ln in report.splitlines():
        if "definitely lost:" in ln:
            assert " 0 bytes in 0 blocks" in ln, report[-6000:]
    assert os.path.getsize(srv.vg_log) > 0

"""Acceptance 7: the command line: -V, -t on good and bad files, a bad start."""
import re
import shutil
import subprocess

import pytest

from mx import BINARY, HarnessError, MxServer


def run(*args, timeout=20):
    if not BINARY.exists():
        raise HarnessError(f"{BINARY} not found: build it first")
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout)


def test_version():
    r = run("-V")
    assert r.returncode == 0, r
    assert re.search(r"mxsieve\S* \d+\.\d+\.\d+", r.stdout + r.stderr), r


def test_check_good_file(tmp_path):
    srv = MxServer(tmp_path)
    r = run("-t", "-c", str(srv.conf_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not srv.maildir.exists() or not any(srv.maildir.iterdir())


def bad_config(tmp_path, inserts):
    """The harness's good config with `inserts` {line_number: text} placed so
    that each text ends up on exactly that line."""
    srv = MxServer(tmp_path)
    lines = srv.conf_path.read_text().splitlines()
    for n in sorted(inserts):
        lines.insert(n - 1, inserts[n])
    srv.conf_path.write_text("\n".join(lines) + "\n")
    return srv.conf_path


def test_check_bad_file_names_each_error(tmp_path):
    path = bad_config(tmp_path, {2: "Unknown_Option_Here = 1",
                                 5: "Max_Message_Size = lots",
                                 7: 'Bare_LF = "sometimes"'})
    r = run("-t", "-c", str(path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    for line in (2, 5, 7):
        assert re.search(rf"^{re.escape(str(path))}:{line}: \S", out, re.M), \
            f"no '{path}:{line}: message' in:\n{out}"


def test_check_bad_listener(tmp_path):
    srv = MxServer(tmp_path)
    text = srv.conf_path.read_text().replace('Listen "[::1]:', 'Listen "::1:')
    srv.conf_path.write_text(text)
    lineno = [i + 1 for i, ln in enumerate(text.splitlines()) if 'Listen "::1:' in ln][0]
    r = run("-t", "-c", str(srv.conf_path))
    assert r.returncode != 0
    assert f"{srv.conf_path}:{lineno}:" in r.stdout + r.stderr, r.stdout + r.stderr


def test_check_unbalanced_braces(tmp_path):
    srv = MxServer(tmp_path)
    srv.conf_path.write_text(srv.conf_path.read_text() + "Sieve \"x\" {\n")
    r = run("-t", "-c", str(srv.conf_path))
    assert r.returncode != 0
    assert re.search(rf"{re.escape(str(srv.conf_path))}:\d+: ", r.stdout + r.stderr), r


def test_check_missing_file(tmp_path):
    r = run("-t", "-c", str(tmp_path / "nope.conf"))
    assert r.returncode != 0
    assert "nope.conf" in r.stdout + r.stderr


def test_start_with_bad_file_fails_and_names_line(tmp_path):
    path = bad_config(tmp_path, {3: "Idle_Time = -5"})
    r = run("-c", str(path), timeout=20)
    assert r.returncode != 0
    assert f"{path}:3:" in r.stdout + r.stderr, r.stdout + r.stderr


def test_check_embedded_default_config():
    """The README's run command uses examples/mxsieve.conf: it must check clean."""
    from mx import ROOT
    conf = ROOT / "examples" / "mxsieve.conf"
    assert conf.exists(), "examples/mxsieve.conf is missing"
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_missing_policy_script(tmp_path):
    srv = MxServer(tmp_path, extra='sieve "p" {\n  script connect_phase1 {\n'
                                   f'    source = "{tmp_path}/no-such.sieve"\n  }}\n}}\n')
    text = srv.conf_path.read_text()
    lineno = [i + 1 for i, ln in enumerate(text.splitlines()) if "no-such.sieve" in ln][0]
    r = run("-t", "-c", str(srv.conf_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(rf"{re.escape(str(srv.conf_path))}:({lineno}|{lineno - 1}): ", out), out


def test_start_with_port_in_use_names_the_listen_line(tmp_path):
    """A startup error names FILE:LINE: a Listen that cannot bind points at
    the line of that Listen."""
    import socket
    srv = MxServer(tmp_path)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", srv.port))
    blocker.listen()
    try:
        text = srv.conf_path.read_text()
        lineno = [i + 1 for i, ln in enumerate(text.splitlines())
                  if f'Listen "127.0.0.1:{srv.port}"' in ln][0]
        r = run("-c", str(srv.conf_path), timeout=20)
    finally:
        blocker.close()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"{srv.conf_path}:{lineno}:" in out, f"no {srv.conf_path}:{lineno}: in {out!r}"


def test_check_broken_policy_script(tmp_path):
    """-t compiles every policy script: an error names SCRIPT:LINE."""
    script = tmp_path / "bad.sieve"
    script.write_text('if true {\n  keep;\n}\nif exists "x" {\n')
    srv = MxServer(tmp_path, extra='sieve "p" {\n  script connect_phase1 {\n'
                                   f'    source = "{script}"\n  }}\n}}\n')
    r = run("-t", "-c", str(srv.conf_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(rf"{re.escape(str(script))}:[45]:", out), out


def test_make_install_stages_daemon_man_unit_examples(tmp_path):
    """`make install DESTDIR=... PREFIX=/usr`: every file where the unit and
    the man path expect it, the unit pointing at the installed daemon."""
    from mx import BUILD, ROOT
    dest = tmp_path / "stage"
    r = subprocess.run(["make", "-s", "-C", str(ROOT), "install", f"B={BUILD}",
                        f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    daemon = dest / "usr/sbin/mxsieve"
    assert daemon.exists() and daemon.stat().st_mode & 0o777 == 0o755
    v = subprocess.run([str(daemon), "-V"], capture_output=True, text=True, timeout=20)
    assert v.returncode == 0 and "mxsieve" in v.stdout + v.stderr
    assert (dest / "usr/share/man/man8/mxsieve.8").read_text().startswith(".")
    unit = (dest / "usr/lib/systemd/system/mxsieve.service").read_text()
    assert "@" not in unit.replace("$MAINPID", ""), unit
    assert "ExecStart=/usr/sbin/mxsieve -c /etc/mxsieve/mxsieve.conf" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    for name in ("mxsieve.conf", "recipients", "policy/connect.sieve"):
        assert (dest / "usr/share/doc/mxsieve/examples" / name).exists(), name

    # systemd's own checks of the unit (no systemd needs to run): every key
    # known and every value parsed, with the daemon path made to exist
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    copy = tmp_path / "mxsieve.service"
    copy.write_text(unit.replace("/usr/sbin/mxsieve", str(daemon)))
    r = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr
    # and its sandboxing: "OK" or better on systemd's exposure scale (under 5.0)
    r = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(copy)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    assert m and float(m.group(1)) < 5.0, r.stdout[-2000:] + r.stderr


def test_contrib_production_config_checks_clean(world_tmp):
    """contrib/mxsieve.conf, with /etc/mxsieve and /var/lib/mxsieve moved
    under tmp, its certificate and script supplied and an account that
    exists here, passes -t (as root, -t also wants User to read what a
    reload reads: the key is the group's, as README's steps say)."""
    import grp
    import os
    from mx import ROOT
    tmp_path = world_tmp
    etc, var = tmp_path / "etc", tmp_path / "var"
    (etc / "tls").mkdir(parents=True)
    (etc / "policy").mkdir()
    (etc / "policy" / "connect.sieve").write_text(
        (ROOT / "examples/policy/connect.sieve").read_text())
    key, crt = etc / "tls/privkey.pem", etc / "tls/fullchain.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        "/CN=mx.example.org", "-keyout", str(key), "-out", str(crt)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (etc / "recipients").write_text((ROOT / "contrib/recipients").read_text())
    text = (ROOT / "contrib/mxsieve.conf").read_text()
    assert 'Valid_Recipients = "/etc/mxsieve/recipients"' in text
    text = text.replace("/etc/mxsieve", str(etc)).replace("/var/lib/mxsieve", str(var))
    text = text.replace("/run/mxsieve", str(tmp_path))
    text = text.replace('User = "mxsieve"', 'User = "nobody"')  # no such account here
    assert 'User = "nobody"' in text
    conf = etc / "mxsieve.conf"
    conf.write_text(text)
    for d in (etc, etc / "tls", etc / "policy"):
        os.chmod(d, 0o755)
    for f in (conf, crt, etc / "recipients", etc / "policy" / "connect.sieve"):
        os.chmod(f, 0o644)
    if os.geteuid() == 0:
        os.chown(key, 0, grp.getgrnam("nogroup").gr_gid)
        os.chmod(key, 0o640)
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0, r.stdout + r.stderr


def line_of(text, needle):
    return [i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln][0]


def test_check_refuses_a_metrics_address_the_start_cannot_bind(tmp_path):
    """-t used to pass a Metrics_Listener the start then refused (without a
    line): an address that is not one fails at -t, at its line."""
    srv = MxServer(tmp_path)
    text = srv.conf_path.read_text() + 'Metrics_Listener {\n  Listen "999.1.1.1:9000" { }\n}\n'
    srv.conf_path.write_text(text)
    r = run("-t", "-c", str(srv.conf_path))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"{srv.conf_path}:{line_of(text, '999.1.1.1')}: " in out, out


def make_pair(d, name):
    """A self-signed certificate and its key: (cert, key)."""
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                        f"/CN={name}.example.org", "-keyout", str(key), "-out", str(crt)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return crt, key


@pytest.mark.parametrize("case", ["metrics_port_taken", "control_folder_missing",
                                  "tls_certificate_garbage", "tls_key_mismatch"])
def test_start_refusals_name_the_line(tmp_path, case):
    """What the start refuses after the config loaded (a bind, a socket, a
    certificate) names FILE:LINE of the entry, like every config error;
    the TLS files are loaded by -t already."""
    import socket
    from mx import free_port
    srv = MxServer(tmp_path)
    text = srv.conf_path.read_text()
    blocker = None
    if case == "metrics_port_taken":
        port = free_port(v6=False)
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        text += f'Metrics_Listener {{\n  Listen "127.0.0.1:{port}" {{ }}\n}}\n'
        needle, checked = f"127.0.0.1:{port}", False
    elif case == "control_folder_missing":
        text += f'Control_Listener {{\n  Listen "{tmp_path}/no-such-dir/ctl.sock" {{ }}\n}}\n'
        needle, checked = "no-such-dir", False
    elif case == "tls_certificate_garbage":
        (tmp_path / "garbage.pem").write_text("not a certificate\n")
        text += f'TLS_Certificate = "{tmp_path}/garbage.pem"\n'
        needle, checked = "garbage.pem", True
    else:
        crt, _ = make_pair(tmp_path, "one")
        _, other_key = make_pair(tmp_path, "two")
        text += f'TLS_Certificate = "{crt}"\nTLS_Key = "{other_key}"\n'
        needle, checked = "TLS_Key", True
    srv.conf_path.write_text(text)
    want = f"{srv.conf_path}:{line_of(text, needle)}: "
    try:
        r = run("-t", "-c", str(srv.conf_path))
        out = r.stdout + r.stderr
        if checked:
            assert r.returncode != 0 and want in out, f"-t: want {want!r} in {out!r}"
        else:
            assert r.returncode == 0, out
        try:
            r = run("-c", str(srv.conf_path), timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail("the server started")
    finally:
        if blocker:
            blocker.close()
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert want in out, f"start: want {want!r} in {out!r}"


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="needs root")
def test_check_names_files_a_reload_as_user_cannot_read(world_tmp):
    """With User set, a reload reads the TLS key (and the config, scripts,
    recipients) as that user: a root-only key made every SIGHUP fail while
    `-t`, which the systemd unit runs as root before the SIGHUP, passed.
    `-t` now names such a file; a key the user's group may read is fine."""
    import os
    import grp
    tmp_path = world_tmp
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=t"], check=True, capture_output=True, timeout=30)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    srv = MxServer(tmp_path, options={"User": "nobody", "TLS_Certificate": str(cert),
                                      "TLS_Key": str(key)})
    os.chmod(srv.conf_path, 0o644)
    r = run("-t", "-c", str(srv.conf_path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f'{key}: not readable by User "nobody" (Permission denied)' in out, out
    os.chown(key, 0, grp.getgrnam("nogroup").gr_gid)
    os.chmod(key, 0o640)
    r = run("-t", "-c", str(srv.conf_path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_usage_errors_exit_2_and_help_exits_0(tmp_path):
    """man page: 2 on bad usage. `ctl -s` without its value and `ctl -x`
    used to be sent to the server as commands; --help was an invalid
    option; usage errors of --compile and --sieve-eval exited 1; a
    directory given to --sieve-eval ran as an empty script."""
    for args in (["ctl", "-s"], ["ctl", "-x", "summary"], ["--compile"],
                 ["--compile", "x.sieve", "--phase", "nosuch"], ["--sieve-eval"]):
        r = run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
    for args in (["--help"], ["-h"], ["ctl", "--help"]):
        r = run(*args)
        assert r.returncode == 0 and "usage: mxsieve" in r.stdout, (args, r)
    r = run("--sieve-eval", str(tmp_path), "--phase", "connect")
    assert r.returncode == 1 and "Is a directory" in r.stderr, r


def test_compile_a_file_it_cannot_read_names_the_file_without_a_position(tmp_path):
    """`--compile /nonexistent` said `/nonexistent:0:0: cannot open`: a line and
    column of 0 that no editor can jump to; a directory got "cannot read the
    file" without the reason. Now as the configuration's own errors: FILE: what."""
    missing = tmp_path / "nosuch.sieve"
    r = run("--compile", str(missing))
    assert r.returncode == 1, r
    # --compile reports on stdout, as for a script with errors
    assert r.stdout.strip() == f"{missing}: cannot open: No such file or directory", r
    r = run("--compile", str(tmp_path))
    assert r.returncode == 1 and r.stdout.strip() == f"{tmp_path}: cannot read: Is a directory", r

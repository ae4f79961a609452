"""sec: small helpers shared by the security tests (process status, RSS,
environment knobs). The SMTP harness itself is tests/e2e/mx.py."""
import os


def proc_status(pid):
    """/proc/PID/status as a dict of str -> str."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default

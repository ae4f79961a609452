"""docs/POLICY.md section 8 lists every limit of the Sieve engine.

Read from the sources, so a new limit cannot be left out of the table:
every field of struct sieve_limits (src/sieve/sieve_limits.h) has a row
naming it, and every diagnostic in src/sieve/*.c that names a limit, as
"(limit NAME = N)" for a configurable one or "(limit N)" for a fixed one,
has a row naming it or giving that value.
"""
import re

import pol

SIEVE = pol.ROOT / "src" / "sieve"
DOC = pol.ROOT / "docs" / "POLICY.md"


def limits_table():
    text = DOC.read_text()
    m = re.search(r"^## 8\. Limits.*?$(?P<body>.*?)^## ", text, re.S | re.M)
    assert m, "docs/POLICY.md has no '## 8. Limits' section"
    rows = [line for line in m.group("body").splitlines() if line.startswith("| ")]
    assert rows, "no table in POLICY.md section 8"
    return rows


def test_every_sieve_limits_field_has_a_row():
    header = (SIEVE / "sieve_limits.h").read_text()
    struct = re.search(r"struct sieve_limits \{(.*?)\};", header, re.S).group(1)
    fields = re.findall(r"^\s*[a-z_0-9 ]+?\s(\w+);", struct, re.M)
    fields = [f for f in fields if f != "on_error"]  # runtime_error: a policy, not a bound
    assert len(fields) >= 10, fields
    rows = "\n".join(limits_table())
    missing = [f for f in fields if f"`{f}`" not in rows]
    assert not missing, f"limits without a row in POLICY.md section 8: {missing}"


def test_every_limit_a_diagnostic_names_has_a_row():
    rows = limits_table()
    text = "\n".join(rows)
    missing = []
    for src in sorted(SIEVE.glob("*.c")):
        for name in re.findall(r"\(limit ([a-z_0-9]+) =", src.read_text()):
            if f"`{name}`" not in text:
                missing.append(f"{src.name}: {name}")
        for m in re.finditer(r'"([^"\n]*)\(limit (\d+)\)', src.read_text()):
            what, value = m.group(1).strip(), m.group(2)
            if not any(re.search(rf"\b{value}\b", row) for row in rows):
                missing.append(f"{src.name}: {what} ({value})")
    assert not missing, f"limits named by diagnostics but not in POLICY.md section 8: {missing}"

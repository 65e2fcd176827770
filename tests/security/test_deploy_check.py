"""Audits run as tests: Django's deployment check with production settings, bandit over studio/ and algorithms/
(every ``# nosec`` justified in SECURITY.md), and pip-audit, which needs the online vulnerability service and is
therefore opt-in (STUDIO_PIP_AUDIT=1): nothing in `make test` may need the internet."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MD = ROOT / "SECURITY.md"


def _manage_check(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py check --deploy`` in a process of its own, configured only by ``env`` (as production is)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DJANGO_", "STUDIO_"))
            and k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "BEHIND_TLS_PROXY")}
    full = {**base, "STUDIO_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
            "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "studio.settings", **env}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=120, check=False)


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(64),
    "ALLOWED_HOSTS": "studio.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://studio.example.com",
    "SECURE_COOKIES": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "BEHIND_TLS_PROXY": "true",
}


def test_the_deployment_check_is_clean_with_production_settings(tmp_path):
    result = _manage_check(tmp_path, PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deployment_check_notices_what_production_must_set(tmp_path):
    """The same check on the laptop defaults: proof that the clean run above means something."""
    result = _manage_check(tmp_path, {"DEBUG": "true"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016", "security.W018"):
        assert warning in output, f"{warning} missing from:\n{output}"


# --- bandit ----------------------------------------------------------------------------------------------------


def _bandit() -> list[str]:
    exe = shutil.which("bandit", path=str(Path(sys.executable).parent)) or shutil.which("bandit")
    if exe is None:
        pytest.skip("bandit is not installed (it is in the dev extra: pip install -e '.[dev]')")
    return [exe]


def test_bandit_finds_nothing_of_medium_or_high_severity():
    result = subprocess.run([*_bandit(), "-ll", "-r", "studio", "algorithms", "-f", "json", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(result.stdout)
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]]
    assert not findings, "bandit findings (fix them, or add '# nosec BXXX' and justify it in SECURITY.md):\n" + \
        "\n".join(findings)
    assert not report["errors"], report["errors"]


def test_every_nosec_is_justified_in_security_md():
    justified = SECURITY_MD.read_text()
    missing = []
    for path in [*ROOT.joinpath("studio").rglob("*.py"), *ROOT.joinpath("algorithms").rglob("*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for test_id in re.findall(r"#\s*nosec\s+(B\d{3})", line):
                relative = str(path.relative_to(ROOT))
                # SECURITY.md names the file and the test id on one table row.
                if not re.search(rf"^\|.*`{re.escape(relative)}`.*\b{test_id}\b", justified, re.MULTILINE):
                    missing.append(f"{relative}:{n} {test_id}")
            if re.search(r"#\s*nosec\s*$", line):
                missing.append(f"{path.relative_to(ROOT)}:{n} bare '# nosec' (name the test id)")
    assert not missing, "unjustified nosec comments:\n" + "\n".join(missing)


# --- pip-audit ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.environ.get("STUDIO_PIP_AUDIT") != "1", reason=(
    "pip-audit needs the online vulnerability service (PyPI/OSV) and cannot run offline; set STUDIO_PIP_AUDIT=1 on "
    "a machine with internet access to run it (see SECURITY.md)"))
def test_pip_audit_finds_no_known_vulnerability():
    exe = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if exe is None:
        pytest.skip("pip-audit is not installed (it is in the dev extra)")
    ignored = re.findall(r"^\| `((?:PYSEC|GHSA|CVE)-[\w-]+)` \|", SECURITY_MD.read_text(), re.MULTILINE)
    command = [exe, "--progress-spinner", "off", "--skip-editable", "-f", "json"]
    for vuln in ignored:
        command += ["--ignore-vuln", vuln]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(result.stdout or "{}")
    found = [f"{d['name']} {d['version']}: {v['id']}"
             for d in report.get("dependencies", []) for v in d.get("vulns", [])]
    assert not found, "known vulnerabilities (upgrade, or justify the exception in SECURITY.md):\n" + "\n".join(found)

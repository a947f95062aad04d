"""What a new user meets in a fresh shell: `npx cdk …` without activating anything, and `make help`."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

from config import AppConfig, load_config, read_context


ROOT = Path(__file__).resolve().parents[2]
# A login shell's PATH: no venv, no node_modules/.bin unless a test adds it.
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def plain_env(**extra: str) -> dict[str, str]:
    keep = {k: os.environ[k] for k in ("HOME", "LANG", "TMPDIR") if k in os.environ}
    return {**keep, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{PLAIN_PATH}", "CDK_DISABLE_VERSION_CHECK": "1", **extra}


def npx() -> list[str]:
    # The machine's npx (Node 20 here) runs the pinned CLI, as a user's shell would; the app itself then runs
    # on the venv's Python and Node 24 through scripts/cdk-app.
    found = shutil.which("npx", path=PLAIN_PATH)
    assert found, f"no npx on {PLAIN_PATH}: the README asks for Node >= 20"
    return [found]


def configured() -> AppConfig:
    """cdk.json's configuration (a fork's own): project and environment names come from it."""
    return load_config(read_context(ROOT / "cdk.json"), {})


def run(command: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_the_app_command_is_the_venv_wrapper():
    assert json.loads((ROOT / "cdk.json").read_text())["app"] == "sh scripts/cdk-app"


def test_npx_cdk_synth_works_from_a_plain_shell(tmp_path):
    # Before: `python3 app.py` with the system Python ended in "ModuleNotFoundError: No module named 'aws_cdk'".
    # The wrapper and PATH are under test, not cdk-nag (the build's validated synth runs that once).
    result = run([*npx(), "cdk", "synth", "--quiet", "--no-notices", "-o", str(tmp_path / "out")],
                 plain_env(DELIVERY_VALIDATE="0"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "ModuleNotFoundError" not in output
    # Every feature flag is set in cdk.json: no "feature flags are not configured" notice.
    assert "feature flag" not in output.lower()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert f"{configured().project}-{configured().service_name}-pipeline" in manifest["artifacts"]


def test_npx_cdk_with_a_bad_override_prints_one_config_error(tmp_path):
    # The last environment's network with a host bit set (10.30.0.1/16 for the example's prod).
    env = configured().environments[-1]
    network = ipaddress.IPv4Network(env.network.cidr)
    bad = f"{network.network_address + 1}/{network.prefixlen}"
    override = f"delivery.environments.{env.name}.network.cidr={bad}"
    result = run([*npx(), "cdk", "synth", "--no-notices", "-o", str(tmp_path / "out"), "-c", override], plain_env())
    assert result.returncode != 0
    assert (
        f"ConfigError: invalid configuration:\n  environments.{env.name}.network.cidr: has host bits set: the network "
        f"is {network} (write that, or pick another range) (got '{bad}')"
    ) in result.stderr
    assert "Traceback" not in result.stderr and "ModuleNotFoundError" not in result.stderr


def test_the_wrapper_says_what_to_run_when_there_is_no_venv(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "cdk-app", tmp_path / "scripts" / "cdk-app")
    result = subprocess.run(
        ["sh", "scripts/cdk-app"], cwd=tmp_path, env={"PATH": PLAIN_PATH}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert f"cdk-app: no Python environment at {tmp_path}/.venv: run `make install` (or `make synth`) once" in result.stderr


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["make", "--no-print-directory", *args], {**os.environ}, timeout=60)


def test_make_help_shows_text_not_make_syntax():
    result = make("help")
    assert result.returncode == 0, result.stderr
    assert "$$" not in result.stdout and "${" not in result.stdout
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "127.0.0.1:8080 (PORT=n make run for another port)" in lines["run"]
    assert "make smoke URL=http://127.0.0.1:8080" in lines["smoke"]
    assert {"install", "synth", "check", "deploy", "compliance"} <= set(lines)


def test_make_smoke_runs_the_smoke_test_against_the_given_url():
    dry = make("-n", "smoke", "URL=http://127.0.0.1:9999")
    assert dry.returncode == 0, dry.stderr
    assert 'smoke/smoke_test.py --base-url "http://127.0.0.1:9999"' in dry.stdout
    missing = make("smoke")
    assert missing.returncode != 0
    assert "smoke: give the service's address: make smoke URL=http://127.0.0.1:8080" in missing.stderr

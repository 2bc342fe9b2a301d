"""Fixtures of the deployment-file checks (Sources/examhub/Deploy): the files, parsed, and one real hub whose
/metrics the dashboard and the alert rules are held to."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "Sources" / "examhub" / "Deploy"
K8S = DEPLOY / "kubernetes"
sys.path.insert(0, str(ROOT / "Tests" / "Integration"))
sys.path.insert(0, str(ROOT / "Tests" / "Contract"))

# Exported by the outbox workers (by `examhub serve` when it runs them in-process, and by `examhub worker`).
OUTBOX_METRICS = {"examhub_outbox_pending", "examhub_outbox_lag_seconds", "examhub_outbox_delivered_total",
                  "examhub_outbox_dead"}
# Series that Prometheus itself (`up`) and kube-state-metrics make: the alert on readiness needs them.
EXTERNAL_METRICS = {"up", "kube_deployment_status_replicas_available"}


def load_yaml_docs(path: Path) -> list[dict]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path} holds no YAML document"
    return docs


@pytest.fixture(scope="session")
def k8s_objects() -> dict[tuple[str, str], dict]:
    """Every object of kubernetes/ by (kind, name)."""
    out: dict[tuple[str, str], dict] = {}
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_yaml_docs(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} defined twice"
            doc["__file__"] = str(path.relative_to(K8S))
            out[key] = doc
    return out


@pytest.fixture(scope="session")
def config_settings() -> set[str]:
    """The EXAMHUB_* settings the hub knows (Sources/examhub/ConfigFile.swift's list)."""
    text = (ROOT / "Sources" / "examhub" / "ConfigFile.swift").read_text()
    names = set(re.findall(r'\.init\(name: "(EXAMHUB_[A-Z0-9_]+)"', text))
    assert len(names) > 30, names
    return names


@pytest.fixture(scope="session")
def scrape(tmp_path_factory) -> str:
    """A real hub's /metrics text after some traffic: a ping, an exam joined and an answer saved, a proctor
    watching."""
    from hubclient import Hub
    from examkit import create_exam, join, save_ok

    hub = Hub(tmp_path_factory.mktemp("metrics-hub"))
    try:
        exam = create_exam(hub, qs=[{"id": "q1", "type": "text", "prompt": "Explain"}])
        with hub.client("candidate", "c-metrics") as c:
            c.ping()
            attempt = join(c, exam["id"])["attemptId"]
            save_ok(c, attempt, "q1", "an answer")
        with hub.client("proctor", "p-metrics", exams=[exam["id"]]) as p:
            p.ok("proctor.watch", examId=exam["id"])
        status, _, body = hub.http("GET", "/metrics")
        assert status == 200
    finally:
        assert hub.stop() == 0, hub.stderr_tail()
    return body.decode()


@pytest.fixture(scope="session")
def scraped_metrics(scrape) -> dict[str, str]:
    """Sample names on the hub's /metrics with their # TYPE (histogram samples keep their _bucket/_sum/_count
    suffix and the type of their family)."""
    types: dict[str, str] = {}
    names: dict[str, str] = {}
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            types[family] = kind
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            names[name] = types.get(family, types.get(name, "untyped"))
    return names


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample (`labels` as written, e.g. 'le="+Inf"'), summed over the other labels."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
            found = True
    assert found, f"no sample {name}{{{labels}}}"
    return total


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "examhub-dashboard.json").read_text())


def env_of(container: dict, objects: dict) -> dict[str, str]:
    """The variables a container gets: its ConfigMaps and Secrets (envFrom), then its own env entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(objects[("ConfigMap", source["configMapRef"]["name"])]["data"])
        if "secretRef" in source:
            env.update(objects[("Secret", source["secretRef"]["name"])]["stringData"])
    for entry in container.get("env", []):
        env[entry["name"]] = entry["value"]
    return env

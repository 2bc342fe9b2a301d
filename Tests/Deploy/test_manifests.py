"""The Kubernetes manifests (Sources/examhub/Deploy/kubernetes): every file parses, every built-in object validates
against Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: an unknown or misspelt field fails), and
the fields that decide how the hub behaves in a cluster agree with each other and with the hub."""
from __future__ import annotations

import re
import shlex

import kubernetes_validate
import pytest
import yaml

from deploykit import DEPLOY, K8S, ROOT, env_of, load_yaml_docs

# The oldest Kubernetes the manifests promise to work on, and the newest the schemas know.
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
HUB = ("Deployment", "examhub")
WORKER = ("Deployment", "examhub-worker")
CRD_KINDS = {"ServiceMonitor", "PodMonitor"}


def test_every_yaml_file_of_deploy_parses():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 10, files
    for path in files:
        load_yaml_docs(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_built_in_objects_validate_against_the_kubernetes_schemas(k8s_objects, version):
    checked = 0
    for (kind, name), doc in k8s_objects.items():
        if kind in CRD_KINDS:
            continue
        body = {k: v for k, v in doc.items() if k != "__file__"}
        try:
            kubernetes_validate.validate(body, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['__file__']}: {kind}/{name} is not valid Kubernetes {version}: {e.message} "
                        f"at {'/'.join(map(str, e.path))}")
        checked += 1
    assert checked >= 8


def test_the_schema_check_catches_a_misspelt_field(k8s_objects):
    pdb = {k: v for k, v in k8s_objects[("PodDisruptionBudget", "examhub")].items() if k != "__file__"}
    pdb = yaml.safe_load(yaml.safe_dump(pdb))
    pdb["spec"]["maxUnavaliable"] = pdb["spec"].pop("maxUnavailable")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pdb, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_and_only_existing_files(k8s_objects):
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kust["kind"] == "Kustomization" and kust["namespace"] == "examhub"
    listed = set(kust["resources"])
    for entry in listed:
        assert (K8S / entry).is_file(), f"kustomization lists {entry}, which does not exist"
    # The example Secret stays out (secrets are made outside git); the Operator's monitors are optional.
    expected = {doc["__file__"] for doc in k8s_objects.values()
                if doc["__file__"] != "secret.example.yaml" and not doc["__file__"].startswith("monitoring/")}
    assert listed == expected
    assert [i["name"] for i in kust["images"]] == ["examhub"]


def _container(objects, key, name=None) -> dict:
    containers = objects[key]["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def _seconds(duration: str) -> float:
    return float(duration)


def test_hub_probes_hit_the_right_paths_on_the_hub_port(k8s_objects):
    c = _container(k8s_objects, HUB)
    env = env_of(c, k8s_objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": int(env["EXAMHUB_PORT"])}
    assert env["EXAMHUB_HOST"] == "0.0.0.0", "a pod must listen beyond loopback"
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # Liveness must not kill a node that is only busy: it tolerates at least 20 s of silence.
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 20
    assert c["command"] == ["examhub"] and c["args"] == ["serve"]


def test_hub_runs_non_root_with_a_read_only_root_filesystem(k8s_objects):
    for key in (HUB, WORKER):
        pod = k8s_objects[key]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == _dockerfile_uid() != 0
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{c['name']}: a read-only root needs a writable /tmp"


def test_grace_period_covers_prestop_spread_drain_and_the_last_commits(k8s_objects):
    pod = k8s_objects[HUB]["spec"]["template"]["spec"]
    c = _container(k8s_objects, HUB)
    env = env_of(c, k8s_objects)
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep = _seconds(pre_stop[1])
    spread = _seconds(env["EXAMHUB_DRAIN_SPREAD_SEC"])
    drain = _seconds(env["EXAMHUB_DRAIN_SEC"])
    assert spread > 0, "the manifests should spread the closes"
    margin = 5  # queued saves commit, the store closes
    need = sleep + spread + drain + margin
    assert pod["terminationGracePeriodSeconds"] >= need, (pod["terminationGracePeriodSeconds"], need)
    # ...and not absurdly more: a stuck pod should not hold a rolling update for minutes.
    assert pod["terminationGracePeriodSeconds"] <= need * 2


def test_rolling_update_never_removes_a_pod_before_its_replacement_is_up(k8s_objects):
    strategy = k8s_objects[HUB]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0 and strategy["rollingUpdate"]["maxSurge"] >= 1


def test_resources_are_sized_and_threads_match_the_cpu_limit(k8s_objects):
    c = _container(k8s_objects, HUB)
    env = env_of(c, k8s_objects)
    res = c["resources"]

    def cpu(v):
        return float(v[:-1]) / 1000 if str(v).endswith("m") else float(v)

    def mem(v):
        units = {"Mi": 2**20, "Gi": 2**30}
        return float(v[:-2]) * units[v[-2:]]

    # README: 10,000 proctored candidates used about 0.9 core; the HPA keeps about 8,000 sockets per pod.
    assert 0.75 <= cpu(res["requests"]["cpu"]) <= cpu(res["limits"]["cpu"])
    assert int(env["EXAMHUB_THREADS"]) == int(cpu(res["limits"]["cpu"]))
    # 5.6 KiB per idle socket: 10,000 sockets are 55 MiB; attempts, history and the process itself fit in 512 MiB.
    assert mem(res["requests"]["memory"]) >= 10_000 * 5.6 * 1024 + 2**28
    assert mem(res["requests"]["memory"]) <= mem(res["limits"]["memory"])
    hpa_target = float(k8s_objects[("HorizontalPodAutoscaler", "examhub")]["spec"]["metrics"][0]["pods"]["target"]
                       ["averageValue"])
    assert hpa_target < int(env["EXAMHUB_MAX_CONNECTIONS"]), "the HPA must scale out before pods refuse sockets"


def test_service_pdb_and_hpa_point_at_the_hub_pods(k8s_objects):
    dep = k8s_objects[HUB]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()

    svc = k8s_objects[("Service", "examhub")]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["selector"] == selector
    port_names = {p["name"] for p in _container(k8s_objects, HUB)["ports"]}
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names

    pdb = k8s_objects[("PodDisruptionBudget", "examhub")]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["maxUnavailable"] == 1

    # The worker pods must not be caught by the hub's selectors (they carry other labels).
    worker_labels = k8s_objects[WORKER]["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= worker_labels.items()

    hpa = k8s_objects[("HorizontalPodAutoscaler", "examhub")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "examhub"}
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert hpa["minReplicas"] <= dep["spec"]["replicas"] <= hpa["maxReplicas"]
    pods = [m for m in hpa["metrics"] if m["type"] == "Pods"]
    assert [m["pods"]["metric"]["name"] for m in pods] == ["examhub_connections_open"]
    # Scaling down drains a pod: one at a time, after a long look.
    down = hpa["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert all(p["type"] == "Pods" and p["value"] == 1 for p in down["policies"])


def test_the_hpa_metric_is_a_gauge_the_hub_exports(k8s_objects, scraped_metrics):
    hpa = k8s_objects[("HorizontalPodAutoscaler", "examhub")]["spec"]
    name = next(m["pods"]["metric"]["name"] for m in hpa["metrics"] if m["type"] == "Pods")
    assert scraped_metrics.get(name) == "gauge", (name, scraped_metrics.get(name))


def test_worker_deployment_runs_both_workers_from_the_same_image(k8s_objects):
    pod = k8s_objects[WORKER]["spec"]["template"]["spec"]
    hub_image = _container(k8s_objects, HUB)["image"]
    commands = {}
    ports = set()
    for c in pod["containers"]:
        assert c["image"] == hub_image
        commands[c["name"]] = c["command"] + c["args"]
        env = env_of(c, k8s_objects)
        assert "EXAMHUB_DATABASE_URL" in env, f"{c['name']} needs the shared database"
        (port,) = [p["containerPort"] for p in c["ports"]]
        assert int(env["EXAMHUB_WORKER_METRICS_PORT"]) == port
        assert env["EXAMHUB_HOST"] == "0.0.0.0", "the probe and Prometheus reach the pod's address"
        assert c["livenessProbe"]["httpGet"]["port"] == c["ports"][0]["name"]
        ports.add(port)
    assert env_of(_container(k8s_objects, HUB), k8s_objects)["EXAMHUB_WORKERS"] == "none", "workers run apart"
    assert commands == {"notifications": ["examhub", "worker", "notifications"],
                        "analytics": ["examhub", "worker", "analytics"]}
    assert len(ports) == 2, "two containers of one pod need two ports"
    annotated = int(k8s_objects[WORKER]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"])
    assert annotated in ports


def test_settings_are_real_hub_settings_and_secrets_are_not_in_the_configmap(k8s_objects, config_settings):
    config = k8s_objects[("ConfigMap", "examhub-config")]["data"]
    unknown = set(config) - config_settings
    assert not unknown, f"the ConfigMap sets variables the hub does not read: {unknown}"
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values must be strings"
    for secret in ("EXAMHUB_JWT_SECRET", "EXAMHUB_DATABASE_URL", "EXAMHUB_LLM_API_KEY"):
        assert secret not in config
    example = k8s_objects[("Secret", "examhub-secrets")]["stringData"]
    assert {"EXAMHUB_JWT_SECRET", "EXAMHUB_DATABASE_URL"} <= set(example)
    assert len(example["EXAMHUB_JWT_SECRET"].encode()) >= 32
    assert example["EXAMHUB_DATABASE_URL"].startswith("postgres://"), "several hub pods need PostgreSQL"
    assert config["EXAMHUB_DEV"] == "0" and "*" not in config["EXAMHUB_ALLOWED_ORIGINS"]
    refs = set()
    for key in (HUB, WORKER):
        for c in k8s_objects[key]["spec"]["template"]["spec"]["containers"]:
            refs |= {(k, v["name"]) for s in c["envFrom"] for k, v in s.items()}
    assert refs == {("configMapRef", "examhub-config"), ("secretRef", "examhub-secrets")}


def test_the_configmap_is_accepted_by_examhub_config_check(k8s_objects, tmp_path):
    """The hub itself reads the ConfigMap's values (as a configuration file) without a problem."""
    from hubclient import run_cli

    config = dict(k8s_objects[("ConfigMap", "examhub-config")]["data"])
    config["EXAMHUB_INTENTS_DIR"] = str(ROOT / "Intents")  # /opt/examhub/Intents exists only in the image
    path = tmp_path / "examhub.yaml"
    path.write_text(yaml.safe_dump({k[len("EXAMHUB_"):].lower(): v for k, v in config.items()}))
    out = run_cli("config", "check", "--config", str(path),
                  env={"EXAMHUB_JWT_SECRET": "x" * 40, "EXAMHUB_DATABASE_URL": f"sqlite://{tmp_path}/db.sqlite"},
                  cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_prometheus_operator_monitors_select_the_right_pods(k8s_objects):
    sm = k8s_objects[("ServiceMonitor", "examhub")]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    svc = k8s_objects[("Service", "examhub")]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert {e["port"] for e in sm["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}
    assert all(e["path"] == "/metrics" for e in sm["spec"]["endpoints"])
    # job="examhub": what the alert rules and the dashboard select on.
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "examhub"
    pm = k8s_objects[("PodMonitor", "examhub-worker")]
    worker = k8s_objects[WORKER]["spec"]["template"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= worker["metadata"]["labels"].items()
    worker_ports = {p["name"] for c in worker["spec"]["containers"] for p in c["ports"]}
    assert {e["port"] for e in pm["spec"]["podMetricsEndpoints"]} == worker_ports


def _dockerfile_uid() -> int:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the Dockerfile sets no USER"
    return int(shlex.split(users[-1])[0].split(":")[0])

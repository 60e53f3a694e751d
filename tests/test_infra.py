"""infra/ and the README's local head: valid YAML, Ray's token authentication on everywhere,
MLflow behind its basic-auth app, NetworkPolicies, and nothing exposed outside the cluster."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"


def docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((INFRA / name).read_text()) if d]


@pytest.fixture(scope="module")
def kuberay() -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for d in docs("kuberay-rayjob.yaml"):
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def ray_pod_templates(job: dict) -> list[dict]:
    spec = job["spec"]["rayClusterSpec"]
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


def test_every_infra_yaml_parses():
    for path in sorted(INFRA.glob("*.yaml")):
        assert docs(path.name), path


def test_mlflow_requires_a_login_from_secret(kuberay):
    (mlflow,) = [d for d in kuberay["Deployment"] if d["metadata"]["name"] == "mlflow"]
    (container,) = mlflow["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["mlflow", "server"]
    assert command[command.index("--app-name") + 1] == "basic-auth"
    env = {e["name"]: e for e in container["env"]}
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-admin", name
    # The job's driver (on the Ray head) logs in with the same Secret.
    head = kuberay["RayJob"][0]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    head_env = {e["name"]: e for e in head["spec"]["containers"][0]["env"]}
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert head_env[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-admin", name


def test_network_policies_admit_only_the_ray_pods(kuberay):
    (job,) = kuberay["RayJob"]
    ray_labels = [t["metadata"]["labels"] for t in ray_pod_templates(job)]
    assert ray_labels and all(labels == ray_labels[0] for labels in ray_labels)
    policies = {p["spec"]["podSelector"]["matchLabels"]["app"]: p["spec"] for p in kuberay["NetworkPolicy"]}
    # MLflow: only Ray pods, only its port.
    mlflow = policies["mlflow"]
    assert mlflow["policyTypes"] == ["Ingress"]
    (rule,) = mlflow["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": ray_labels[0]}}]
    assert rule["ports"] == [{"port": 5000, "protocol": "TCP"}]
    # Ray pods: all ports from Ray pods; from anything else only the dashboard / job API.
    ray = policies[ray_labels[0]["app"]]
    assert ray["podSelector"]["matchLabels"] == ray_labels[0]
    for rule in ray["ingress"]:
        if rule["from"] != [{"podSelector": {"matchLabels": ray_labels[0]}}]:
            assert rule["ports"] == [{"port": 8265, "protocol": "TCP"}], rule
            assert all("ipBlock" not in peer for peer in rule["from"])  # no outside addresses


def test_ray_token_auth_comes_from_a_secret(kuberay):
    (job,) = kuberay["RayJob"]
    auth = job["spec"]["rayClusterSpec"]["authOptions"]
    assert auth == {"mode": "token", "secretName": "robust-edit-ray-token"}
    for template in ray_pod_templates(job):
        for container in template["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            # The operator injects both from the Secret; nothing here may override them.
            assert "RAY_AUTH_MODE" not in env and "RAY_AUTH_TOKEN" not in env, container["name"]


def test_nothing_is_exposed_outside_the_cluster(kuberay):
    assert "Ingress" not in kuberay
    for service in kuberay["Service"]:
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
    head = kuberay["RayJob"][0]["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert head["serviceType"] == "ClusterIP"
    assert not head.get("enableIngress")


def test_cluster_launcher_keeps_token_auth_and_mlflow_login():
    (cluster,) = docs("ray-cluster.yaml")
    assert "--env RAY_AUTH_MODE=token" in cluster["docker"]["run_options"]
    assert cluster["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    head = " ".join(cluster["head_start_ray_commands"])
    assert "mlflow server --app-name basic-auth --host 127.0.0.1" in head
    assert "--dashboard-host=127.0.0.1" in head
    assert "RAY_AUTH_MODE=disabled" not in (INFRA / "ray-cluster.yaml").read_text()


def test_readme_local_head_keeps_token_auth_on():
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    (head,) = [b for b in blocks if "ray start --head" in b]
    assert "RAY_AUTH_MODE=token" in head and "disabled" not in head
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address=127.0.0.1" in head
    assert "--dashboard-host=127.0.0.1" in head

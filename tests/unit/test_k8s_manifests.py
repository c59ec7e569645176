"""deploy/k8s: the objects validate, and fit together and with the app (no cluster needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from api.settings import Settings
from tests.k8s_manifests import (
    K8S_DIR,
    KSERVE_DIR,
    Manifest,
    container,
    find,
    load_kustomization,
    secret_keys,
)

# The schema the objects must satisfy: a release every supported cluster serves.
KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ServiceMonitor", "InferenceService"}

OBJECTS = load_kustomization(K8S_DIR)
KSERVE_OBJECTS = load_kustomization(KSERVE_DIR)
DEPLOYMENT = find(OBJECTS, "Deployment")
POD = DEPLOYMENT["spec"]["template"]
API = container(POD["spec"], "api")
CONFIG = find(OBJECTS, "ConfigMap")["data"]
INFERENCE_SERVICE = find(KSERVE_OBJECTS, "InferenceService")
PREDICTOR = INFERENCE_SERVICE["spec"]["predictor"]
KSERVE_CONTAINER = container(PREDICTOR, "kserve-container")
# Fields of KServe's PredictorSpec beside the pod spec it embeds.
KSERVE_PREDICTOR_FIELDS = {"minReplicas", "maxReplicas", "scaleMetric", "scaleTarget"}


def _name(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def _core(objects: list[Manifest]) -> list[Manifest]:
    return [manifest for manifest in objects if manifest["kind"] not in CRD_KINDS]


@pytest.mark.parametrize("manifest", _core(OBJECTS + KSERVE_OBJECTS), ids=_name)
def test_core_objects_validate_against_the_kubernetes_schema(manifest: Manifest) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_the_kserve_predictor_is_a_valid_pod_spec() -> None:
    pod_spec = {
        key: value for key, value in PREDICTOR.items() if key not in KSERVE_PREDICTOR_FIELDS
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": pod_spec}
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize(
    ("directory", "objects"), [(K8S_DIR, OBJECTS), (KSERVE_DIR, KSERVE_OBJECTS)]
)
def test_kubectl_kustomize_renders_the_same_objects(
    directory: Path, objects: list[Manifest]
) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    assert sorted(map(_name, yaml.safe_load_all(rendered))) == sorted(map(_name, objects))


def test_every_configmap_key_is_a_setting_and_no_secret_is_in_it() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    assert set(CONFIG) <= settings
    assert not set(CONFIG) & set(secret_keys())


def test_the_secret_holds_the_secrets_and_postgresql_for_every_pod() -> None:
    keys = secret_keys()
    assert set(keys) == {"SECRET_KEY", "ADMIN_PASSWORD", "METRICS_TOKEN", "DATABASE_URL"}
    assert keys["DATABASE_URL"].startswith("postgresql://")
    for pod_spec in (POD["spec"], PREDICTOR):
        for item in pod_spec["initContainers"] + pod_spec["containers"]:
            sources = [source.get("secretRef", {}).get("name") for source in item["envFrom"]]
            assert "mldeploy-secrets" in sources, item["name"]


def test_the_pod_runs_the_api_alone_on_the_configured_port() -> None:
    assert API["command"] == ["python", "-m", "api"]  # not the image's CMD (nginx, dashboard)
    (port,) = API["ports"]
    assert port["containerPort"] == int(CONFIG["PORT"])
    assert CONFIG["HOST"] == "0.0.0.0"
    probes = [API[probe] for probe in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert {probe["httpGet"]["port"] for probe in probes} == {port["name"]}
    assert [probe["httpGet"]["path"] for probe in probes] == ["/health", "/health", "/ready"]


def test_the_migrations_run_before_the_api_and_refuse_sqlite() -> None:
    (migrate,) = POD["spec"]["initContainers"]
    assert migrate["image"] == API["image"]
    assert migrate["command"][-1].rstrip().endswith("exec python -m api.manage migrate")
    assert "sqlite*)" in migrate["command"][-1]


def test_sigterm_drain_outlasts_the_prestop_sleep() -> None:
    (sleep_seconds,) = API["lifecycle"]["preStop"]["exec"]["command"][1:]
    grace = POD["spec"]["terminationGracePeriodSeconds"]
    # After preStop, uvicorn may need a whole body-read deadline for the last request.
    assert grace >= int(sleep_seconds) + Settings.model_fields["body_read_timeout_seconds"].default


def test_the_service_routes_to_the_pods_container_port() -> None:
    service = find(OBJECTS, "Service")
    assert service["spec"]["selector"].items() <= POD["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == API["ports"][0]["name"]


def test_the_autoscaler_scales_the_deployment() -> None:
    target = find(OBJECTS, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mldeploy-api"}
    assert DEPLOYMENT["metadata"]["name"] == target["name"]


def test_the_disruption_budget_selects_the_pods() -> None:
    selector = find(OBJECTS, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert selector == DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert selector.items() <= POD["metadata"]["labels"].items()


def test_the_service_monitor_has_the_fields_prometheus_operator_requires() -> None:
    monitor = find(OBJECTS, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"]
    service = find(OBJECTS, "Service")
    # spec.selector and spec.endpoints are required; they must reach the Service's port.
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    authorization = endpoint["authorization"]
    assert authorization["type"] == "Bearer"
    assert authorization["credentials"]["name"] == "mldeploy-secrets"
    assert authorization["credentials"]["key"] in secret_keys()


def test_the_inference_service_has_the_fields_kserve_documents() -> None:
    assert INFERENCE_SERVICE["apiVersion"] == "serving.kserve.io/v1beta1"
    annotations = INFERENCE_SERVICE["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert annotations["prometheus.kserve.io/path"] == "/metrics"
    env = {item["name"]: item["value"] for item in KSERVE_CONTAINER["env"]}
    assert annotations["prometheus.kserve.io/port"] == env["PORT"] == "8080"
    assert KSERVE_CONTAINER["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    # The storage initializer downloads STORAGE_URI to /mnt/models, a fixed path.
    assert env["STORAGE_URI"]
    assert env["MODELS_DIR"] == "/mnt/models"
    # KServe's scrape carries no bearer token.
    assert env["METRICS_TOKEN"] == ""
    assert KSERVE_CONTAINER["command"] == API["command"]
    paths = [
        KSERVE_CONTAINER[probe]["httpGet"]["path"] for probe in ("livenessProbe", "readinessProbe")
    ]
    assert paths == ["/v2/health/live", "/v2/health/ready"]
    assert PREDICTOR["initContainers"][0]["command"] == POD["spec"]["initContainers"][0]["command"]

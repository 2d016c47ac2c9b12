"""The Kubernetes deployment: Helm charts, Strimzi resources, rules, images.

Each chart is linted and rendered with its default and production values;
every rendered manifest, the Strimzi resources and the examples are validated
strictly by kubeconform against schemas kept on disk (deploy/tools/install.sh
puts the tools and schemas in the cache once; nothing is fetched here). Then
the manifests are read for what a platform team relies on: non-root pods,
resources, probes, least-privilege RBAC, and settings that the services
actually read.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventbus.topics import TOPIC_SPECS

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
CACHE = Path(os.environ.get("RECOPS_CACHE_DIR", Path.home() / ".cache" / "recops"))
BIN = CACHE / "bin"
SCHEMAS = CACHE / "schemas"

CHARTS = ("ingest", "trainer", "inference", "monitor", "drill")
DEPLOYMENTS = ("ingest", "inference", "monitor", "drill")
NAMESPACE = "recops"
DRILL_VERBS = {"get", "list", "watch", "delete", "patch", "update"}
DRILL_RESOURCES = {
    "pods",
    "deployments",
    "statefulsets",
    "deployments/scale",
    "statefulsets/scale",
}


def versions() -> dict[str, str]:
    """The tool versions deploy/tools/install.sh installed."""
    text = (DEPLOY / "tools" / "versions.env").read_text()
    pairs = re.findall(r"^([A-Z0-9_]+)=\"?([^\"\n]*)\"?$", text, re.MULTILINE)
    return dict(pairs)


KUBERNETES_VERSIONS = versions()["KUBERNETES_SCHEMA_VERSIONS"].split()


def tool(name: str) -> str:
    path = BIN / name
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{name} is missing from {BIN}: run deploy/tools/install.sh "
            "(make setup does) to install the deploy tools and schemas",
            pytrace=False,
        )
    return str(path)


def run(*args: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@dataclasses.dataclass(frozen=True)
class Render:
    """One chart rendered with one set of values."""

    chart: str
    variant: str
    manifests: tuple[dict[str, Any], ...]
    path: Path

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.manifests if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"{self}: {len(found)} {kind}, wanted one"
        return found[0]

    def __str__(self) -> str:
        return f"{self.chart} ({self.variant} values)"


VARIANTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "production": ("-f", "{chart}/values-production.yaml"),
}
EXTRA_VARIANTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("inference", "triton"): ("--set", "triton.enabled=true"),
}
RENDER_KEYS = [(chart, variant) for chart in CHARTS for variant in VARIANTS] + list(
    EXTRA_VARIANTS
)


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Helm with its own empty home, so no user's repositories get in."""
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


@pytest.fixture(scope="session")
def charts(tmp_path_factory: pytest.TempPathFactory, helm_env: dict[str, str]) -> Path:
    """A copy of deploy/helm with each chart's library dependency built."""
    copy = tmp_path_factory.mktemp("deploy")
    shutil.copytree(DEPLOY / "prometheus", copy / "prometheus")
    shutil.copytree(
        DEPLOY / "helm",
        copy / "helm",
        symlinks=True,
        ignore=shutil.ignore_patterns("charts", "Chart.lock"),
    )
    helm = tool("helm")
    for chart in CHARTS:
        run(helm, "dependency", "build", str(copy / "helm" / chart), env=helm_env)
    return copy / "helm"


@pytest.fixture(scope="session")
def renders(charts: Path, helm_env: dict[str, str]) -> dict[tuple[str, str], Render]:
    """Every chart rendered once per set of values, kept for all the tests."""
    helm = tool("helm")
    out = charts.parent / "rendered"
    out.mkdir()
    rendered = {}
    for chart, variant in RENDER_KEYS:
        flags = VARIANTS.get(variant, EXTRA_VARIANTS.get((chart, variant), ()))
        flags = tuple(flag.format(chart=charts / chart) for flag in flags)
        text = run(
            helm, "template", "recops", str(charts / chart), "--namespace", NAMESPACE,
            *flags, env=helm_env,
        )  # fmt: skip
        path = out / f"{chart}-{variant}.yaml"
        path.write_text(text)
        manifests = tuple(doc for doc in yaml.safe_load_all(text) if doc)
        rendered[(chart, variant)] = Render(chart, variant, manifests, path)
    return rendered


def pod_specs(render: Render) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod spec of every workload in a render, named by kind and name."""
    for doc in render.manifests:
        name = f"{doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "Job", "StatefulSet"):
            yield name, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def service_container(render: Render) -> dict[str, Any]:
    """The container of the chart's own service (not Triton's, not an init one)."""
    for _, spec in pod_specs(render):
        for container in spec["containers"]:
            if container["name"] == render.chart:
                return container
    raise AssertionError(f"{render}: no {render.chart} container")


# helm lint and kubeconform


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("chart", CHARTS)
def test_every_chart_passes_helm_lint(
    chart: str, variant: str, charts: Path, helm_env: dict[str, str]
) -> None:
    flags = tuple(flag.format(chart=charts / chart) for flag in VARIANTS[variant])

    output = run(
        tool("helm"), "lint", "--strict", str(charts / chart), *flags, env=helm_env
    )

    assert "0 chart(s) failed" in output


def kubeconform(
    kubernetes_version: str, *paths: Path
) -> subprocess.CompletedProcess[str]:
    kubernetes = SCHEMAS / "kubernetes" / kubernetes_version
    crds = SCHEMAS / "crds"
    for needed in (
        kubernetes,
        crds / "monitoring.coreos.com",
        crds / "kafka.strimzi.io",
    ):
        if not needed.is_dir():
            pytest.fail(
                f"no schemas in {needed}: run deploy/tools/install.sh", pytrace=False
            )
    kind_file = "{{.ResourceKind}}{{.KindSuffix}}.json"
    crd_file = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
    return subprocess.run(
        [
            tool("kubeconform"),
            "-strict",
            "-summary",
            "-output", "json",
            "-schema-location", f"{kubernetes}/{kind_file}",
            "-schema-location", f"{crds}/{crd_file}",
            *map(str, paths),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_kubernetes_and_crd_schemas(
    kubernetes_version: str, renders: dict[tuple[str, str], Render]
) -> None:
    files = [render.path for render in renders.values()]
    files += sorted((DEPLOY / "strimzi").glob("*.yaml"))
    files += sorted((DEPLOY / "helm" / "examples").glob("*.yaml"))
    expected = sum(len(render.manifests) for render in renders.values())

    result = kubeconform(kubernetes_version, *files)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["invalid"] == summary["errors"] == summary["skipped"] == 0
    assert summary["valid"] > expected, "the Strimzi and example files were not read"


def test_kubeconform_refuses_a_field_the_schema_does_not_know(
    renders: dict[tuple[str, str], Render], tmp_path: Path
) -> None:
    deployment = renders[("monitor", "default")].one("Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container["readinessProbe"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))

    result = kubeconform(KUBERNETES_VERSIONS[-1], broken)

    assert result.returncode != 0
    assert "readinesProbe" in result.stdout


# What every pod promises


@pytest.mark.parametrize(("chart", "variant"), RENDER_KEYS)
def test_every_container_runs_as_non_root_with_limits(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    specs = list(pod_specs(renders[(chart, variant)]))
    assert specs, "no workload rendered"

    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where


@pytest.mark.parametrize(("chart", "variant"), RENDER_KEYS)
def test_every_container_is_probed(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    for name, spec in pod_specs(renders[(chart, variant)]):
        for container in spec["containers"]:
            where = f"{name} container {container['name']}"
            assert "livenessProbe" in container, where
            if not name.startswith(("Job", "CronJob")):
                assert "readinessProbe" in container, where


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inference_readiness_asks_the_grpc_health_service_for_the_storefront(
    variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    container = service_container(renders[("inference", variant)])
    grpc_port = next(p for p in container["ports"] if p["name"] == "grpc")

    readiness = container["readinessProbe"]["grpc"]

    assert readiness == {
        "port": grpc_port["containerPort"],
        "service": "recops.v1.Storefront",
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inference_waiting_for_its_first_model_is_not_restarted(
    variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    container = service_container(renders[("inference", variant)])

    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "grpc"}


@pytest.mark.parametrize("chart", ["monitor", "drill"])
def test_other_services_are_probed_over_http_on_their_metrics_port(
    chart: str, renders: dict[tuple[str, str], Render]
) -> None:
    container = service_container(renders[(chart, "default")])

    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_ingest_is_probed_on_its_health_paths_beside_its_metrics(
    renders: dict[tuple[str, str], Render],
) -> None:
    container = service_container(renders[("ingest", "default")])

    for probe, path in (
        ("startupProbe", "/livez"),
        ("livenessProbe", "/livez"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}


# What each chart carries


@pytest.mark.parametrize(("chart", "variant"), RENDER_KEYS)
def test_each_chart_is_scraped_and_ships_its_alert_rules(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[(chart, variant)]
    scrape = "PodMonitor" if chart == "trainer" else "ServiceMonitor"

    assert render.one(scrape)["spec"]
    groups = render.one("PrometheusRule")["spec"]["groups"]

    assert [group["name"] for group in groups] == [f"recops-{chart}"]
    assert all(group["rules"] for group in groups)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("chart", DEPLOYMENTS)
def test_long_running_services_have_a_service_and_a_disruption_budget(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[(chart, variant)]
    selector = {
        "app.kubernetes.io/name": chart,
        "app.kubernetes.io/instance": "recops",
    }

    assert render.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == (
        selector
    )
    services = [
        s for s in render.of_kind("Service") if s["spec"]["selector"] == selector
    ]
    assert len(services) == 1


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("chart", ["ingest", "inference"])
def test_ingest_and_inference_scale_with_a_horizontal_pod_autoscaler(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[(chart, variant)]
    autoscaler = render.one("HorizontalPodAutoscaler")["spec"]
    (workload,) = [
        doc for doc in render.of_kind(autoscaler["scaleTargetRef"]["kind"])
        if doc["metadata"]["name"] == autoscaler["scaleTargetRef"]["name"]
    ]  # fmt: skip

    assert (
        workload["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == chart
    )
    assert 1 <= autoscaler["minReplicas"] <= autoscaler["maxReplicas"]
    assert "replicas" not in workload["spec"]


def test_ingest_scales_no_further_than_its_topic_has_partitions(
    renders: dict[tuple[str, str], Render],
) -> None:
    partitions = {spec.topic.value: spec.partitions for spec in TOPIC_SPECS}

    for variant in VARIANTS:
        autoscaler = renders[("ingest", variant)].one("HorizontalPodAutoscaler")
        assert autoscaler["spec"]["maxReplicas"] <= partitions["behaviour-events"]


def test_each_ingest_replica_keeps_its_own_instance_id_across_restarts(
    renders: dict[tuple[str, str], Render],
) -> None:
    render = renders[("ingest", "default")]
    env = service_container(render)["env"]

    instance_id = next(e for e in env if e["name"] == "RECOPS_INGEST_INSTANCE_ID")

    assert render.of_kind("StatefulSet"), "pod names must survive a restart"
    assert instance_id["value"] == "recops.$(POD_NAME)"
    assert [e["name"] for e in env].index("POD_NAME") < env.index(instance_id)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_trainer_runs_as_a_job_and_a_cron_job_after_a_fresh_snapshot(
    variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[("trainer", variant)]

    assert render.one("Job")["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert render.one("CronJob")["spec"]["concurrencyPolicy"] == "Forbid"
    for _, spec in pod_specs(render):
        (snapshot,) = spec["initContainers"]
        assert snapshot["command"] == ["python", "-m", "ingest", "snapshot"]


def test_inference_on_gpus_requests_them_and_runs_the_cuda_image(
    renders: dict[tuple[str, str], Render],
) -> None:
    gpu = service_container(renders[("inference", "production")])
    cpu = service_container(renders[("inference", "default")])

    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"].endswith("-cuda")
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert cpu["image"].endswith("-cpu")


def test_the_triton_option_deploys_a_triton_server_that_inference_is_told_about(
    renders: dict[tuple[str, str], Render],
) -> None:
    render = renders[("inference", "triton")]
    triton = next(
        d
        for d in render.of_kind("Deployment")
        if d["metadata"]["name"].endswith("triton")
    )
    service = next(
        s for s in render.of_kind("Service") if s["metadata"]["name"].endswith("triton")
    )
    settings = render.one("ConfigMap")["data"]

    (container,) = triton["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert settings["RECOPS_INFERENCE_TRITON_URL"] == (
        f"{service['metadata']['name']}:8001"
    )
    labels = triton["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] != "inference"


# Drill RBAC


@pytest.mark.parametrize(("chart", "variant"), RENDER_KEYS)
def test_no_chart_asks_for_cluster_wide_permissions(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    kinds = {doc["kind"] for doc in renders[(chart, variant)].manifests}

    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_drill_may_only_do_what_its_faults_need_in_named_namespaces(
    variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[("drill", variant)]
    roles = render.of_kind("Role")
    bindings = render.of_kind("RoleBinding")
    account = render.one("ServiceAccount")["metadata"]["name"]

    assert NAMESPACE in {role["metadata"]["namespace"] for role in roles}
    for role in roles:
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= DRILL_VERBS
            assert set(rule["resources"]) <= DRILL_RESOURCES
            assert "*" not in rule["apiGroups"]
    assert {b["metadata"]["namespace"] for b in bindings} == {
        r["metadata"]["namespace"] for r in roles
    }
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]


def test_only_the_drill_mounts_a_service_account_token(
    renders: dict[tuple[str, str], Render],
) -> None:
    for (chart, _), render in renders.items():
        for name, spec in pod_specs(render):
            expected = chart == "drill"
            assert spec.get("automountServiceAccountToken") is expected, name


# Settings the services read


class RecordingEnvironment(Mapping[str, str]):
    """An environment that remembers which variables were asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self._values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def container_environment(render: Render) -> dict[str, str]:
    """The RECOPS_* variables the service's container starts with."""
    env = dict(render.one("ConfigMap")["data"])
    for variable in service_container(render).get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"].replace("$(POD_NAME)", "pod-0")
    return {name: value for name, value in env.items() if name.startswith("RECOPS_")}


def service_settings_class(chart: str) -> Any:
    """The service's settings class: <Service>Settings in <service>.settings."""
    module = importlib.import_module(f"{chart}.settings")
    name = f"{chart.capitalize()}Settings"
    assert hasattr(module, name), f"{module.__name__} has no {name} to check against"
    return getattr(module, name)


CHARTS_WITH_SETTINGS = [
    chart for chart in CHARTS if (REPO / "services" / chart / "settings.py").exists()
]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("chart", CHARTS_WITH_SETTINGS)
def test_every_setting_a_chart_renders_is_read_by_its_service(
    chart: str, variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[(chart, variant)]
    environment = RecordingEnvironment(container_environment(render))
    settings_class = service_settings_class(chart)

    settings = settings_class.from_env(environment)

    own = {name for name in environment if name.startswith(f"RECOPS_{chart.upper()}_")}
    unread = own - environment.asked
    assert not unread, f"{render} sets variables {chart} never reads: {unread}"
    assert settings.metrics_port == int(
        environment[f"RECOPS_{chart.upper()}_METRICS_PORT"]
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_drill_writes_its_ledger_and_reports_to_the_state_volume(
    variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    render = renders[("drill", variant)]
    mount = Path(render.one("ConfigMap")["data"]["RECOPS_STATE_DIR"])

    settings = service_settings_class("drill").from_env(container_environment(render))

    assert settings.ledger_path.is_relative_to(mount)
    assert settings.reports_dir.is_relative_to(mount)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inference_listens_where_its_probes_and_service_look(
    variant: str, renders: dict[tuple[str, str], Render]
) -> None:
    from inference.settings import InferenceSettings

    render = renders[("inference", variant)]
    settings = InferenceSettings.from_env(container_environment(render))
    ports = {p["name"]: p["containerPort"] for p in service_container(render)["ports"]}

    assert settings.grpc_host == settings.metrics_host == "0.0.0.0"
    assert (settings.grpc_port, settings.metrics_port) == (
        ports["grpc"],
        ports["metrics"],
    )


# Prometheus rules


def test_the_rule_files_pass_promtool() -> None:
    files = sorted(str(path) for path in (DEPLOY / "prometheus").glob("*.yml"))
    assert files

    output = run(tool("promtool"), "check", "rules", *files)

    assert "SUCCESS" in output


def test_rendered_rules_are_the_rule_files_unchanged(
    renders: dict[tuple[str, str], Render],
) -> None:
    in_files = {
        group["name"]: group
        for path in (DEPLOY / "prometheus").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
    }

    for render in renders.values():
        for group in render.one("PrometheusRule")["spec"]["groups"]:
            assert group == in_files[group["name"]], render


# Strimzi


def strimzi(kind: str) -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((DEPLOY / "strimzi").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == kind
    ]


def test_strimzi_topics_keep_three_replicas_and_two_in_sync() -> None:
    topics = strimzi("KafkaTopic")

    assert topics
    for topic in topics:
        assert topic["spec"]["replicas"] == 3, topic["metadata"]["name"]
        assert topic["spec"]["config"]["min.insync.replicas"] == 2


def test_strimzi_topics_are_the_ones_eventbus_creates() -> None:
    topics = {t["metadata"]["name"]: t["spec"] for t in strimzi("KafkaTopic")}

    expected = {"recops." + spec.topic.value: spec for spec in TOPIC_SPECS}

    assert set(topics) == set(expected)
    for name, spec in expected.items():
        assert topics[name]["partitions"] == spec.partitions, name
        assert topics[name]["replicas"] == spec.replication_factor, name
        for key, value in spec.config:
            assert topics[name]["config"][key] == value, name


def test_strimzi_cluster_is_three_kraft_nodes_that_need_two_in_sync() -> None:
    (cluster,) = strimzi("Kafka")
    pools = strimzi("KafkaNodePool")
    name = cluster["metadata"]["name"]

    brokers = sum(
        p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]
    )
    controllers = sum(
        p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]
    )

    assert (brokers, controllers) == (3, 3)
    assert {p["metadata"]["labels"]["strimzi.io/cluster"] for p in pools} == {name}
    config = cluster["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] == 2
    assert config["default.replication.factor"] == 3
    assert config["auto.create.topics.enable"] is False


def test_charts_point_at_the_strimzi_bootstrap_service() -> None:
    (cluster,) = strimzi("Kafka")
    listener = next(
        entry
        for entry in cluster["spec"]["kafka"]["listeners"]
        if entry["tls"] is False
    )
    address = (
        f"{cluster['metadata']['name']}-kafka-bootstrap."
        f"{cluster['metadata']['namespace']}.svc:{listener['port']}"
    )

    for chart in CHARTS:
        for values in ("values.yaml", "values-production.yaml"):
            text = (DEPLOY / "helm" / chart / values).read_text()
            assert yaml.safe_load(text)["kafka"]["bootstrap"] == address


# Dockerfiles


def dockerfiles() -> list[Path]:
    return sorted((DEPLOY / "docker").glob("*.Dockerfile"))


def test_every_service_has_a_dockerfile() -> None:
    names = {path.name.removesuffix(".Dockerfile") for path in dockerfiles()}

    assert names == set(CHARTS)


def test_the_dockerfiles_pass_hadolint() -> None:
    run(tool("hadolint"), *map(str, dockerfiles()))


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda path: path.stem)
def test_each_image_is_multi_stage_on_a_pinned_base_and_runs_as_non_root(
    path: Path,
) -> None:
    text = path.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)

    assert base and re.fullmatch(
        r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:\w+)?", base[1]
    )
    assert len(stages) >= 2
    final_stage = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER 10001:10001$", final_stage, re.MULTILINE)
    assert "COPY --from=" in final_stage


def test_inference_has_cpu_and_cuda_images() -> None:
    text = (DEPLOY / "docker" / "inference.Dockerfile").read_text()

    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)

    assert {"cpu", "cuda"} <= set(stages)

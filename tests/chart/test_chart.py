"""The Helm chart (charts/blobseal), tested without a cluster.

helm-python-sdk (the Helm v4 SDK) lints the chart strictly against Kubernetes 1.30 and renders it offline;
kubernetes-validate checks every rendered manifest strictly (unknown fields are errors) against the Kubernetes
1.30 schemas. The ServiceMonitor is a custom resource without a bundled schema: its structure is checked by
hand. Run by tests/run in its own venv (helm-python-sdk, kubernetes-validate, pytest, PyYAML).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from helm_python import _native

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "blobseal"
KUBE = "1.30.0"
SERVICE_MONITOR_API = "monitoring.coreos.com/v1/ServiceMonitor"
SECRETS_DIR = "/run/secrets/blobseal"
TLS_DIR = "/run/secrets/blobseal-tls"
DATA_DIR = "/var/lib/blobseal"


# --- rendering ---------------------------------------------------------------------------------------------------

class Rendered:
    """The manifests of one render, by kind and name, plus NOTES.txt."""

    def __init__(self, files: dict[str, str]):
        self.notes = ""
        self.docs: list[dict] = []
        for path, text in files.items():
            if path.endswith("NOTES.txt"):
                self.notes = text
                continue
            self.docs.extend(d for d in yaml.safe_load_all(text) if d)

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
        return found[0]

    def config(self) -> dict:
        """blobseal's config file from the ConfigMap, parsed."""
        return yaml.safe_load(self.one("ConfigMap")["data"]["config.yaml"])


def render(values: dict | None = None, *, api_versions: tuple[str, ...] = (), chart: Path = CHART,
           kube_version: str = KUBE) -> Rendered:
    """`helm template rel --namespace blobseal --kube-version ... --api-versions ...`, then strict validation.

    helm-python-sdk's Chart.render has no option for the cluster's API versions; the library's render call it
    wraps takes them (and the Kubernetes version) as render options, the same as `helm template
    --api-versions --kube-version`. Unknown option names are refused by the library, so a rename cannot make
    this silently render without them.
    """
    opts = {"name": "rel", "namespace": "blobseal", "kube_version": f"v{kube_version}",
            "api_versions": list(api_versions)}
    with helm.Chart.load(chart) as loaded:
        files = json.loads(_native.call_string("helm_render", loaded._raw(), json.dumps(values or {}),
                                               json.dumps(opts)))
    rendered = Rendered(files)
    validate(rendered)
    return rendered


def validate(rendered: Rendered) -> None:
    """Every manifest against the Kubernetes 1.30 schemas, strictly; the ServiceMonitor by hand."""
    assert rendered.docs, "nothing rendered"
    for doc in rendered.docs:
        meta = doc["metadata"]
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63, meta
        assert meta["namespace"] == "blobseal", meta
        assert meta["labels"]["app.kubernetes.io/instance"] == "rel", meta
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc)
            continue
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']} {meta['name']} is not valid Kubernetes {KUBE}: {e}")


def check_service_monitor(sm: dict) -> None:
    """The fields of a monitoring.coreos.com/v1 ServiceMonitor the chart uses, and nothing else."""
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) == {"apiVersion", "kind", "metadata", "spec"}
    spec = sm["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    assert set(spec["selector"]) == {"matchLabels"} and spec["selector"]["matchLabels"]
    assert spec["namespaceSelector"] == {"matchNames": [sm["metadata"]["namespace"]]}
    assert len(spec["endpoints"]) == 1
    endpoint = spec["endpoints"][0]
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
    for key in ("interval", "scrapeTimeout"):
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint[key]), endpoint


def render_error(values: dict, *, api_versions: tuple[str, ...] = ()) -> str:
    """The message of a render that must fail."""
    with pytest.raises(helm.HelmError) as caught:
        render(values, api_versions=api_versions)
    return str(caught.value)


def merged(*layers: dict) -> dict:
    """Values layered like several -f files (maps merge, everything else is replaced)."""
    out: dict = {}
    for layer in layers:
        _merge(out, copy.deepcopy(layer))
    return out


def _merge(into: dict, layer: dict) -> None:
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def container(pod_spec: dict, name: str, *, init: bool = False) -> dict:
    found = [c for c in pod_spec.get("initContainers" if init else "containers", []) if c["name"] == name]
    assert len(found) == 1, pod_spec
    return found[0]


def env_map(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c.get("env", [])}


def mounts(c: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in c["volumeMounts"]}


def volumes(pod_spec: dict) -> dict[str, dict]:
    return {v["name"]: v for v in pod_spec["volumes"]}


def assert_hardened(pod_spec: dict, c: dict) -> None:
    """The pod and container security settings every blobseal container gets."""
    psc = pod_spec["securityContext"]
    assert psc["runAsNonRoot"] is True
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert psc["fsGroupChangePolicy"] == "OnRootMismatch"
    assert pod_spec["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0 and sc["runAsGroup"] > 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert mounts(c)["/tmp"]["name"] in volumes(pod_spec)
    assert "emptyDir" in volumes(pod_spec)[mounts(c)["/tmp"]["name"]]


def assert_probes(c: dict) -> None:
    """Startup, liveness and readiness probes on the admin port: /readyz, /livez, /readyz."""
    admin = [p for p in c["ports"] if p["name"] == "admin"]
    assert len(admin) == 1
    for probe, path in (("startupProbe", "/readyz"), ("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "admin", "scheme": "HTTP"}, (probe, c[probe])


def assert_config_files_mounted(r: Rendered, pod_spec: dict, c: dict) -> None:
    """Every *_file path in the config is inside a directory the container mounts, and each file named in
    the chart-made Secret's directory is a key of that Secret."""
    cfg = r.config()
    paths: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith("_file") and isinstance(v, str):
                    paths.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(cfg)
    assert paths, cfg
    mounted = mounts(c)
    for path in paths:
        assert any(path.startswith(m + "/") for m in mounted), (path, list(mounted))
    secrets = r.all("Secret")
    if secrets:
        keys = set(secrets[0]["data"])
        for path in paths:
            if path.startswith(SECRETS_DIR + "/"):
                assert path.removeprefix(SECRETS_DIR + "/") in keys, (path, keys)


def checksums(r: Rendered) -> tuple[str, str]:
    ann = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    return ann["checksum/config"], ann["checksum/secret"]


# Values shared by several scenarios.
KMS_S3_CONFIG = {
    "key_provider": {"kind": "aws-kms", "region": "eu-central-1",
                     "credentials": {"access_key_id_env": "KMS_KEY_ID",
                                     "secret_access_key_file": f"{SECRETS_DIR}/kms-secret"}},
    "backends": [{"name": "eu", "kind": "s3", "region": "eu-central-1",
                  "credentials": {"access_key_id_env": "STORE_KEY_ID",
                                  "secret_access_key_file": f"{SECRETS_DIR}/store-secret"}}],
    "tenants": [{"name": "acme", "default_backend": "eu", "bucket_prefix": "acme-",
                 "access_keys": [{"id": "ACMEKEY1", "secret_file": f"{SECRETS_DIR}/acme-secret"}],
                 "azure_account": {"name": "acmeaccount", "keys": [{"key_file": f"{SECRETS_DIR}/acme-azure-key"}]}}],
}
SHARED_RWX = {"keyring": {"sharedStorage": True},
              "persistence": {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs"}}


# --- the chart itself --------------------------------------------------------------------------------------------

def test_chart_metadata_matches_cargo():
    with helm.Chart.load(CHART) as chart:
        meta = chart.metadata
        schema = chart.schema
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == cargo["package"]["version"]
    assert meta["kubeVersion"] == ">=1.29.0-0"
    # additionalProperties: false on every object the schema defines (Kubernetes passthrough objects such as
    # affinity and blobseal's own nested config are typed "object" without "properties").
    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")
    walk(schema, "$")


def test_lint_strict_against_kubernetes_1_30():
    scenarios = [
        {},
        merged(SHARED_RWX, {"replicas": 3, "sweeper": {"enabled": True, "shards": 3}}),
        {"mode": "sidecar", "sidecar": {"app": {"name": "web", "image": "registry.example.com/web:1"}}},
        {"mode": "sidecar-template"},
    ]
    for values in scenarios:
        report = helm.lint(CHART, values, strict=True, kube_version=f"v{KUBE}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert report["errors"] == [] and problems == [], (values, report)
        assert report["total_charts_linted"] == 1


# --- gateway mode ------------------------------------------------------------------------------------------------

def test_default_values_render_a_working_gateway():
    r = render()
    assert r.kinds() == sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim",
                                "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"])

    dep = r.one("Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    bs = container(pod, "blobseal")
    assert spec["replicas"] == 1
    # A ReadWriteOnce volume cannot be mounted by an old and a new pod on two nodes.
    assert spec["strategy"] == {"type": "Recreate"}
    assert bs["image"].endswith(":0.1.0")
    assert bs["args"] == ["serve", "--config", "/etc/blobseal/config.yaml"]
    assert_hardened(pod, bs)
    assert_probes(bs)
    assert bs["resources"]["requests"]["cpu"] and bs["resources"]["requests"]["memory"]
    assert bs["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] >= 5 + 30 + 5
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    # The config the pod reads: listeners on every interface, the admin port, the fs backend and the local
    # keyring on the data volume, the tenant's secret from the chart-made Secret.
    cfg = r.config()
    assert cfg["listen"] == "0.0.0.0:9000"
    assert cfg["admin_listen"] == "0.0.0.0:9901"
    assert "azure_listen" not in cfg and "tls" not in cfg
    assert cfg["log_format"] == "json"
    assert cfg["shutdown"] == {"drain_delay_seconds": 5, "timeout_seconds": 30}
    assert cfg["key_provider"]["kind"] == "local"
    assert cfg["key_provider"]["keyring"].startswith(DATA_DIR + "/")
    assert cfg["backends"] == [{"name": "data", "kind": "fs", "path": f"{DATA_DIR}/objects"}]
    assert_config_files_mounted(r, pod, bs)
    assert mounts(bs)["/etc/blobseal"]["readOnly"] is True
    assert mounts(bs)[SECRETS_DIR]["readOnly"] is True
    data_volume = volumes(pod)[mounts(bs)[DATA_DIR]["name"]]
    pvc = r.one("PersistentVolumeClaim")
    assert data_volume == {"name": "blobseal-data", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}}
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert volumes(pod)["blobseal-config"]["configMap"]["name"] == r.one("ConfigMap")["metadata"]["name"]
    # The generated tenant secret: 40 characters.
    secret = r.one("Secret")
    import base64
    assert len(base64.b64decode(secret["data"]["default-secret-access-key"])) == 40

    svc = r.one("Service")
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("s3", 9000, "s3"), ("admin", 9901, "admin")]
    assert svc["spec"]["selector"] == spec["selector"]["matchLabels"]

    sa = r.one("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == sa["metadata"]["name"]

    pdb = r.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]

    netpol = r.one("NetworkPolicy")
    assert netpol["spec"]["podSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    assert netpol["spec"]["policyTypes"] == ["Ingress"]
    clients, metrics = netpol["spec"]["ingress"]
    assert [p["port"] for p in clients["ports"]] == ["s3"] and "from" not in clients
    assert [p["port"] for p in metrics["ports"]] == ["admin"]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    assert "kubectl -n blobseal get secret rel-blobseal" in r.notes


def test_gateway_with_azure_tls_servicemonitor_and_existing_secret():
    values = {
        "replicas": 3,
        "azure": {"enabled": True},
        "tls": {"enabled": True, "secretName": "blobseal-tls", "clientAuth": True},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "secrets": {"existingSecret": "blobseal-prod", "generate": [],
                    "env": {"KMS_KEY_ID": "kms-key-id", "STORE_KEY_ID": "store-key-id"}},
        "persistence": {"enabled": False},
        "config": KMS_S3_CONFIG,
        "networkPolicy": {"clients": [{"namespaceSelector": {"matchLabels": {"team": "payments"}}}],
                          "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]},
        "terminationGracePeriodSeconds": 40,
    }
    r = render(values, api_versions=(SERVICE_MONITOR_API,))
    assert r.kinds() == sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "Service",
                                "ServiceAccount", "ServiceMonitor"])  # no Secret, no PVC
    dep = r.one("Deployment")
    pod = dep["spec"]["template"]["spec"]
    bs = container(pod, "blobseal")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    assert pod["terminationGracePeriodSeconds"] == 40
    assert_hardened(pod, bs)
    assert_probes(bs)
    assert [p["name"] for p in bs["ports"]] == ["s3", "azure", "admin"]

    cfg = r.config()
    assert cfg["listen"] == "0.0.0.0:9000" and cfg["azure_listen"] == "0.0.0.0:10000"
    assert cfg["tls"] == {"cert_file": f"{TLS_DIR}/tls.crt", "key_file": f"{TLS_DIR}/tls.key",
                          "client_ca_file": f"{TLS_DIR}/ca.crt"}
    assert cfg["tenants"] == KMS_S3_CONFIG["tenants"]
    assert_config_files_mounted(r, pod, bs)
    vols = volumes(pod)
    assert vols["blobseal-secrets"]["secret"]["secretName"] == "blobseal-prod"
    assert vols["blobseal-tls"]["secret"]["secretName"] == "blobseal-tls"
    assert "blobseal-data" not in vols
    env = env_map(bs)
    assert env["KMS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "blobseal-prod", "key": "kms-key-id"}

    svc = r.one("Service")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["s3", "azure", "admin"]
    sm = r.one("ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0] == {"port": "admin", "path": "/metrics", "scheme": "http",
                                          "interval": "30s", "scrapeTimeout": "10s"}

    netpol = r.one("NetworkPolicy")
    assert netpol["spec"]["policyTypes"] == ["Ingress", "Egress"]
    clients = netpol["spec"]["ingress"][0]
    assert [p["port"] for p in clients["ports"]] == ["s3", "azure"]
    assert clients["from"] == values["networkPolicy"]["clients"]
    dns, https = netpol["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert https == {"ports": [{"port": 443, "protocol": "TCP"}]}


def test_existing_claim_and_image_digest():
    digest = "sha256:" + "ab" * 32
    r = render({"persistence": {"existingClaim": "blobseal-data-old"},
                "image": {"repository": "registry.example.com/blobseal", "tag": "0.1.0", "digest": digest}})
    assert "PersistentVolumeClaim" not in r.kinds()
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    assert volumes(pod)["blobseal-data"]["persistentVolumeClaim"] == {"claimName": "blobseal-data-old"}
    assert container(pod, "blobseal")["image"] == f"registry.example.com/blobseal:0.1.0@{digest}"


def test_service_monitor_needs_the_crd():
    r = render({"serviceMonitor": {"enabled": True}})
    assert "ServiceMonitor" not in r.kinds()
    assert "no monitoring.coreos.com/v1 ServiceMonitor CRD" in r.notes
    assert "ServiceMonitor" not in render({}, api_versions=(SERVICE_MONITOR_API,)).kinds()


def test_checksum_annotations_roll_pods_on_change():
    base = render()
    base_config, base_secret = checksums(base)
    # The default config given explicitly renders the same file; one more field changes it.
    owned = {"listen", "admin_listen", "azure_listen", "log_format", "tls", "shutdown"}
    default_config = {k: v for k, v in base.config().items() if k not in owned}
    assert checksums(render({"config": default_config}))[0] == base_config
    config_changed = render({"config": {**default_config, "key_cache": {"ttl_seconds": 30}}})
    assert checksums(config_changed)[0] != base_config
    assert checksums(config_changed)[1] == base_secret
    # A value the chart puts into the config file changes the config checksum too.
    assert checksums(render({"shutdown": {"drainDelaySeconds": 10, "timeoutSeconds": 30}}))[0] != base_config
    secret_changed = render({"secrets": {"data": {"extra": "value"}}})
    assert checksums(secret_changed) == (base_config, checksums(secret_changed)[1])
    assert checksums(secret_changed)[1] != base_secret
    # Neither moves for an unrelated value, and both are stable across renders (the generated secret value
    # itself is random offline, but it is not what the checksum covers).
    assert checksums(render({"podAnnotations": {"team": "storage"}})) == (base_config, base_secret)


# --- sidecar mode ------------------------------------------------------------------------------------------------

SIDECAR = {
    "mode": "sidecar",
    "sidecar": {"app": {"name": "web", "image": "registry.example.com/web:1.2.3",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": [{"name": "BUCKET", "value": "uploads"}],
                        "credentials": {"accessKeyId": "BLOBSEALDEFAULT", "secretKey": "default-secret-access-key"}}},
}


def test_sidecar_mode_renders_the_app_with_a_native_sidecar():
    r = render(SIDECAR)
    assert r.kinds() == sorted(["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service",
                                "ServiceAccount"])
    dep = r.one("Deployment")
    assert dep["metadata"]["name"] == "web"
    pod = dep["spec"]["template"]["spec"]
    side = container(pod, "blobseal", init=True)
    assert side["restartPolicy"] == "Always"
    assert_hardened(pod, side)
    assert_probes(side)
    assert "startupProbe" in side and "readinessProbe" in side
    # Only the admin port is declared: the S3 listener binds loopback.
    assert [p["name"] for p in side["ports"]] == ["admin"]
    cfg = r.config()
    assert cfg["listen"] == "127.0.0.1:9000"
    assert cfg["admin_listen"] == "0.0.0.0:9901"
    assert_config_files_mounted(r, pod, side)

    app = container(pod, "web")
    assert app["image"] == "registry.example.com/web:1.2.3"
    env = env_map(app)
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://127.0.0.1:9000"
    assert env["AWS_ACCESS_KEY_ID"]["value"] == "BLOBSEALDEFAULT"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": r.one("Secret")["metadata"]["name"], "key": "default-secret-access-key"}
    assert env["BUCKET"]["value"] == "uploads"
    assert "AZURE_STORAGE_CONNECTION_STRING" not in env
    assert pod["terminationGracePeriodSeconds"] >= 5 + 30 + 5
    assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    svc = r.one("Service")
    assert svc["metadata"]["name"] == "web"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP"}]


def test_sidecar_mode_with_azure_gives_the_app_a_connection_string():
    values = merged(SIDECAR, {"azure": {"enabled": True},
                              "secrets": {"data": {"azure-key": "a2V5a2V5a2V5a2V5a2V5a2V5"}},
                              "sidecar": {"app": {"azureAccount": {"name": "webacct", "keySecretKey": "azure-key"}}}})
    r = render(values)
    assert r.config()["azure_listen"] == "127.0.0.1:10000"
    app = container(r.one("Deployment")["spec"]["template"]["spec"], "web")
    names = [e["name"] for e in app["env"]]
    conn = env_map(app)["AZURE_STORAGE_CONNECTION_STRING"]["value"]
    assert conn == ("DefaultEndpointsProtocol=http;AccountName=webacct;AccountKey=$(BLOBSEAL_AZURE_ACCOUNT_KEY);"
                    "BlobEndpoint=http://127.0.0.1:10000/webacct;")
    # $(VAR) expands only from variables defined before it.
    assert names.index("BLOBSEAL_AZURE_ACCOUNT_KEY") < names.index("AZURE_STORAGE_CONNECTION_STRING")


def test_named_sidecar_template_in_a_parent_chart(tmp_path):
    """A user's own chart depends on blobseal (mode: sidecar-template) and includes the sidecar."""
    parent = tmp_path / "shop"
    (parent / "templates").mkdir(parents=True)
    shutil.copytree(CHART, parent / "charts" / "blobseal")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: shop\nversion: 1.0.0\nkubeVersion: '>=1.29.0-0'\n"
        "dependencies:\n  - name: blobseal\n    version: 0.1.0\n")
    (parent / "values.yaml").write_text("blobseal:\n  mode: sidecar-template\n")
    (parent / "templates" / "deployment.yaml").write_text("""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  selector:
    matchLabels: {app: shop}
  template:
    metadata:
      labels: {app: shop}
      annotations:
        {{- include "blobseal.sidecar.annotations" .Subcharts.blobseal | nindent 8 }}
    spec:
      automountServiceAccountToken: false
      initContainers:
        {{- include "blobseal.sidecar" .Subcharts.blobseal | nindent 8 }}
      containers:
        - name: shop
          image: registry.example.com/shop:1
          env:
            {{- include "blobseal.sidecar.appEnv" .Subcharts.blobseal | nindent 12 }}
      volumes:
        {{- include "blobseal.sidecar.volumes" .Subcharts.blobseal | nindent 8 }}
""")
    r = render({}, chart=parent)
    # The subchart made only blobseal's config, secret and volume.
    assert r.kinds() == sorted(["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret"])
    dep = r.one("Deployment")
    pod = dep["spec"]["template"]["spec"]
    side = container(pod, "blobseal", init=True)
    assert side["restartPolicy"] == "Always"
    assert_probes(side)
    assert r.config()["listen"] == "127.0.0.1:9000"
    assert volumes(pod)["blobseal-config"]["configMap"]["name"] == r.one("ConfigMap")["metadata"]["name"]
    assert volumes(pod)["blobseal-data"]["persistentVolumeClaim"]["claimName"] == \
        r.one("PersistentVolumeClaim")["metadata"]["name"]
    assert env_map(container(pod, "shop"))["AWS_ENDPOINT_URL"]["value"] == "http://127.0.0.1:9000"
    assert set(dep["spec"]["template"]["metadata"]["annotations"]) == {"checksum/config", "checksum/secret"}


# --- the sweeper CronJob -----------------------------------------------------------------------------------------

def test_sweeper_runs_as_an_indexed_job_with_one_completion_per_shard():
    r = render(merged(SHARED_RWX, {"replicas": 2, "sweeper": {"enabled": True, "shards": 3,
                                                               "timeZone": "Europe/Berlin"}}))
    cron = r.one("CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["timeZone"] == "Europe/Berlin"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == 3 and job["parallelism"] == 3
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    sweeper = container(pod, "sweeper")
    assert sweeper["args"][:5] == ["sweep", "--config", "/etc/blobseal/config.yaml", "--shard",
                                   "$(JOB_COMPLETION_INDEX)/3"]
    assert env_map(sweeper)["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = sweeper["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    # The same ConfigMap, Secret and data volume as the gateway.
    gateway_pod = r.one("Deployment")["spec"]["template"]["spec"]
    assert volumes(pod) == volumes(gateway_pod)
    assert sweeper["volumeMounts"] == container(gateway_pod, "blobseal")["volumeMounts"]
    # The sweeper's pods are not the gateway's: no Service endpoints, not counted by the PDB.
    pod_labels = job["template"]["metadata"]["labels"]
    for selector in (r.one("Service")["spec"]["selector"],
                     r.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                     r.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"]):
        assert not selector.items() <= pod_labels.items(), (selector, pod_labels)
    # Two gateway pods on a ReadWriteMany volume roll one at a time.
    assert r.one("Deployment")["spec"]["strategy"]["type"] == "RollingUpdate"
    assert r.one("PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_sweeper_parallelism_and_extra_args():
    r = render(merged(SHARED_RWX, {"sweeper": {"enabled": True, "shards": 8, "parallelism": 2,
                                               "extraArgs": ["--dry-run"]}}))
    job = r.one("CronJob")["spec"]["jobTemplate"]["spec"]
    assert (job["completions"], job["parallelism"]) == (8, 2)
    assert container(job["template"]["spec"], "sweeper")["args"][-2:] == ["$(JOB_COMPLETION_INDEX)/8", "--dry-run"]


# --- refusals ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values, where", [
    ({"replica": 2}, "replica"),
    ({"persistence": {"sizee": "1Gi"}}, "sizee"),
    ({"sidecar": {"app": {"imagee": "x"}}}, "imagee"),
    # listen belongs to the chart (ports.s3), so it is refused inside config.
    ({"config": {"listen": "0.0.0.0:80"}}, "listen"),
    ({"mode": "daemonset"}, "mode"),
    ({"sweeper": {"shards": 0}}, "shards"),
    # blobseal's own bounds (src/config/operations.rs).
    ({"shutdown": {"drainDelaySeconds": 301, "timeoutSeconds": 30}}, "drainDelaySeconds"),
    # Metrics left the S3 port for the admin listener: the old field is refused before blobseal sees it.
    ({"config": {"metrics_on_s3_port": "anyone", "backends": [{}], "tenants": [{}]}}, "metrics_on_s3_port"),
])
def test_schema_refuses_unknown_or_invalid_values(values, where):
    message = render_error(values)
    assert "schema" in message.lower() and where in message, message
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError):
            chart.validate_schema(values)
        chart.validate_schema({})


@pytest.mark.parametrize("values, message", [
    ({"replicas": 2},
     "replicas is 2 but a key provider of kind local keeps its keyring in a file each pod must share"),
    ({"replicas": 2, "config": {**{k: v for k, v in KMS_S3_CONFIG.items() if k != "key_provider"},
                                "key_providers": [{"name": "kms", "kind": "aws-kms", "region": "eu-west-1"},
                                                  {"name": "ring", "kind": "local", "keyring": "/x"}]}},
     "key provider of kind local"),
    ({"config": {"key_cache": {"ttl_seconds": 30}}}, "schema"),
    ({"terminationGracePeriodSeconds": 30},
     "terminationGracePeriodSeconds (30) must be at least shutdown.drainDelaySeconds + shutdown.timeoutSeconds + 5 = 40"),
    ({"shutdown": {"drainDelaySeconds": 20, "timeoutSeconds": 60}, "terminationGracePeriodSeconds": 60},
     "must be at least shutdown.drainDelaySeconds + shutdown.timeoutSeconds + 5 = 85"),
    ({"mode": "sidecar"}, "mode: sidecar renders your application's Deployment: set sidecar.app.name and sidecar.app.image"),
    ({"mode": "sidecar", "sidecar": {"app": {"name": "web"}}}, "set sidecar.app.name and sidecar.app.image"),
    ({"replicas": 2, "keyring": {"sharedStorage": True}},
     "keyring.sharedStorage: true needs a volume every pod can mount"),
    ({"sweeper": {"enabled": True}}, "sweeper.enabled with a key provider of kind local"),
    ({"tls": {"enabled": True}}, "tls.enabled: set tls.secretName"),
    ({"secrets": {"existingSecret": "mine"}}, "secrets.existingSecret is set: secrets.data and secrets.generate must be empty"),
    ({"podDisruptionBudget": {"minAvailable": 1}}, "give minAvailable or maxUnavailable, not both"),
])
def test_fail_guards(values, message):
    assert message in render_error(values)


def test_guards_allow_what_they_should():
    # Several replicas on a shared RWX keyring; any replica count with a KMS key provider.
    assert render(merged(SHARED_RWX, {"replicas": 3})).one("Deployment")["spec"]["replicas"] == 3
    kms = render({"replicas": 4, "persistence": {"enabled": False}, "config": KMS_S3_CONFIG,
                  "secrets": {"generate": [], "data": {"kms-secret": "x", "store-secret": "y", "acme-secret": "z",
                                                       "acme-azure-key": "k"}}})
    assert kms.one("Deployment")["spec"]["replicas"] == 4
    assert "PersistentVolumeClaim" not in kms.kinds()
    # Exactly the minimum grace period.
    assert render({"terminationGracePeriodSeconds": 40}).one("Deployment")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"] == 40


# --- the config file against blobseal itself --------------------------------------------------------------------

def test_rendered_configs_pass_blobseal_check_config(tmp_path):
    """Every mode's config file is accepted by the built binary's `check-config --offline` (no secrets)."""
    binary = os.environ.get("BLOBSEAL_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("BLOBSEAL_BIN must name the built blobseal binary (tests/run sets it)")
    scenarios = {
        "default": {},
        "azure-tls-kms": {"azure": {"enabled": True}, "persistence": {"enabled": False}, "config": KMS_S3_CONFIG,
                          "tls": {"enabled": True, "secretName": "blobseal-tls", "clientAuth": True},
                          "secrets": {"existingSecret": "blobseal-prod", "generate": []}},
        "sidecar": SIDECAR,
        "sweeper": merged(SHARED_RWX, {"replicas": 2, "logFormat": "text", "sweeper": {"enabled": True}}),
    }
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for name, values in scenarios.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(render(values).one("ConfigMap")["data"]["config.yaml"])
        done = subprocess.run([binary, "check-config", "--offline", str(path)], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0 and "OK" in done.stdout, (name, done.stdout[-2000:], done.stderr[-2000:])


# --- the image the chart names -----------------------------------------------------------------------------------

def test_containerfile_matches_the_chart():
    text = (ROOT / "Containerfile").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", text, re.M))
    stages = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
              for image in re.findall(r"^FROM\s+(\S+)", text, re.M)]
    assert len(stages) == 2, stages
    assert stages[0].startswith("docker.io/library/rust:1") and "bookworm" in stages[0]
    assert re.fullmatch(r"gcr\.io/distroless/cc-debian12:nonroot", stages[1]), stages
    assert "cargo build --release --locked" in text
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/blobseal"\]$', text, re.M)
    assert re.search(r'^CMD \["serve"\]$', text, re.M)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)[-1]
    with helm.Chart.load(CHART) as chart:
        defaults = chart.values
    assert user == f"{defaults['podSecurityContext']['runAsUser']}:{defaults['podSecurityContext']['runAsGroup']}"
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}
    assert exposed == set(defaults["ports"].values())
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "target" in [i.strip("/") for i in ignored]

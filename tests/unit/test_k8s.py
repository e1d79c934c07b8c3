"""infra/k8s: plain manifests, linted (no cluster here): every workload has probes, resources,
a non-root security context, a pinned image, and takes its secrets from a Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
REQUIRED = {"apiVersion", "kind", "metadata"}


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def workloads() -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] in ("Deployment", "Job")]


def test_every_document_has_kind_api_version_and_a_name() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "Job", "ConfigMap"}
    for d in docs:
        assert d.keys() >= REQUIRED, d
        assert d["metadata"].get("name"), d


@pytest.mark.parametrize("doc", workloads(), ids=lambda d: d["metadata"]["name"])
def test_every_container_is_non_root_bounded_pinned_and_secret_free(doc: dict[str, Any]) -> None:
    pod = doc["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    if doc["kind"] == "Deployment":
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
    mounts_needed = {v["name"] for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        tag = c["image"].rpartition(":")[2]
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), c["image"]
        res = c["resources"]
        assert res["requests"]["cpu"] and res["requests"]["memory"]
        assert res["limits"]["cpu"] and res["limits"]["memory"]
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        # the data dir and /tmp are writable volumes, since the root file system is not
        mounted = {m["name"] for m in c.get("volumeMounts", [])}
        assert mounted == mounts_needed
        assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])
        assert "env" not in c or all("value" not in e or "KEY" not in e["name"] for e in c["env"])
        assert {"secretRef": {"name": "cleanday"}} in c["envFrom"]
        if doc["kind"] == "Deployment":
            for probe in ("livenessProbe", "readinessProbe"):
                assert c[probe]["httpGet"]["path"], (c["name"], probe)


def test_the_ledger_is_ready_only_when_readyz_says_so_and_its_service_selects_it() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents()}
    ledger = docs[("Deployment", "cleanday-ledger")]
    (c,) = ledger["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    service = docs[("Service", "cleanday-ledger")]
    assert (
        service["spec"]["selector"].items()
        <= ledger["spec"]["template"]["metadata"]["labels"].items()
    )
    config = docs[("ConfigMap", "cleanday")]["data"]
    assert config["CLEANDAY_URL"].startswith("http://cleanday-ledger:")
    assert not any(k for k in config if "TOKEN" in k or "PASSWORD" in k or "DATABASE" in k)


def test_every_pod_shares_one_read_write_many_data_dir() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in documents()}
    claim = docs[("PersistentVolumeClaim", "cleanday-data")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for doc in workloads():
        volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "cleanday-data"

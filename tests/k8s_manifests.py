"""The Kubernetes manifests of deploy/k8s, read as kustomize would gather them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.live_server import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
KSERVE_DIR = K8S_DIR / "kserve"

Manifest = dict[str, Any]


def load_kustomization(directory: Path) -> list[Manifest]:
    """Every object of ``directory``'s kustomization.yaml, its resource folders followed.

    The kustomizations only list resources and set the image's tag (no patch, no
    generator), so the files are what ``kubectl kustomize`` renders, tag aside.
    """
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[Manifest] = []
    for resource in kustomization["resources"]:
        path = directory / resource
        if path.is_dir():
            objects += load_kustomization(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def find(objects: list[Manifest], kind: str) -> Manifest:
    """The one object of ``kind``."""
    (found,) = [manifest for manifest in objects if manifest["kind"] == kind]
    return found


def container(pod_spec: Manifest, name: str) -> Manifest:
    (found,) = [item for item in pod_spec["containers"] if item["name"] == name]
    return found


def secret_keys() -> dict[str, str]:
    """The Secret's keys and example values, from deploy/k8s/secret.env.example."""
    lines = (K8S_DIR / "secret.env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: value for key, value in pairs}

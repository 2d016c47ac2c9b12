"""deploy/tools/schemas.py: CRDs and Kubernetes schemas made ready for kubeconform."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from types import ModuleType

import yaml

SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "tools" / "schemas.py"


def schemas() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_schemas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def crd(version_schema: dict[str, object], served: bool = True) -> dict[str, object]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "example.recops.io",
            "names": {"kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": served,
                    "schema": {"openAPIV3Schema": version_schema},
                }
            ],
        },
    }


def test_a_crd_schema_refuses_unknown_fields_unless_it_keeps_them(
    tmp_path: Path,
) -> None:
    source = tmp_path / "crd.yaml"
    source.write_text(
        yaml.safe_dump(
            crd(
                {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "properties": {
                                "size": {"type": "integer", "nullable": True}
                            },
                        },
                        "config": {
                            "type": "object",
                            "properties": {"known": {"type": "string"}},
                            "x-kubernetes-preserve-unknown-fields": True,
                        },
                    },
                }
            )
        )
    )

    (written,) = schemas().convert_crds([source], tmp_path / "out")

    assert written == tmp_path / "out" / "example.recops.io" / "widget_v1.json"
    schema = json.loads(written.read_text())
    assert schema["additionalProperties"] is False
    assert schema["properties"]["spec"]["additionalProperties"] is False
    assert "additionalProperties" not in schema["properties"]["config"]
    size = schema["properties"]["spec"]["properties"]["size"]
    assert size == {"type": ["integer", "null"]}


def test_a_version_no_longer_served_gets_no_schema(tmp_path: Path) -> None:
    source = tmp_path / "crd.yaml"
    source.write_text(yaml.safe_dump(crd({"type": "object"}, served=False)))

    assert schemas().convert_crds([source], tmp_path / "out") == []


def test_kubernetes_schemas_point_at_the_definitions_beside_them(
    tmp_path: Path,
) -> None:
    prefix = "kubernetes_validate/kubernetes-json-schema/v1.99.0-local-strict/"
    wheel = tmp_path / "kubernetes_validate.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            prefix + "widget-v1.json",
            json.dumps(
                {
                    "$id": "https://kubernetes.io/api/widget/v1",
                    "properties": {
                        "spec": {"$ref": "/api/_definitions.json#/$defs/WidgetSpec"},
                        "$ref": {"type": "string"},
                    },
                }
            ),
        )
        archive.writestr(prefix + "notes.txt", "not a schema")

    count = schemas().extract_kubernetes(wheel, "v1.99.0", tmp_path / "out")

    assert count == 1
    schema = json.loads((tmp_path / "out" / "widget-v1.json").read_text())
    assert "$id" not in schema
    assert schema["properties"]["spec"] == {
        "$ref": "_definitions.json#/$defs/WidgetSpec"
    }
    assert schema["properties"]["$ref"] == {"type": "string"}

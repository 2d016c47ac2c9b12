"""Lay out the JSON schemas kubeconform validates the deploy manifests against.

Two sources, both obtained by deploy/tools/install.sh from package registries
and converted here, never written by hand:

``kubernetes``
    The built-in API schemas shipped in the PyPI package kubernetes-validate.
    They point at a shared ``_definitions.json`` through an absolute web
    address; the copy made here points at the file beside it instead, so
    kubeconform resolves every reference on disk.

``crd``
    CustomResourceDefinitions (prometheus-operator's, and Strimzi's as its own
    generator writes them). Each served version's ``openAPIV3Schema`` becomes
    ``<group>/<kind>_<version>.json``, strict the way kubeconform's
    openapi2jsonschema makes it: an object that lists its properties refuses
    others unless the CRD keeps unknown fields, and ``nullable`` admits null.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

DEFINITIONS = "_definitions.json"
_ABSOLUTE_DEFINITIONS = "/api/" + DEFINITIONS


def extract_kubernetes(wheel: Path, version: str, destination: Path) -> int:
    """Copy one Kubernetes version's strict schemas out of the wheel.

    Returns the number of schema files written.
    """
    prefix = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
    destination.mkdir(parents=True, exist_ok=True)
    written = 0
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(prefix) or not name.endswith(".json"):
                continue
            schema = json.loads(archive.read(name))
            target = destination / name.removeprefix(prefix)
            target.write_text(json.dumps(_local_references(schema)))
            written += 1
    if written == 0:
        raise SystemExit(f"{wheel} has no schemas for Kubernetes {version}")
    return written


def _local_references(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _relative_ref(value)
            if _is_ref(key, value)
            else _local_references(value)
            for key, value in node.items()
            if key != "$id"
        }
    if isinstance(node, list):
        return [_local_references(item) for item in node]
    return node


def _is_ref(key: str, value: Any) -> bool:
    return key == "$ref" and isinstance(value, str)


def _relative_ref(ref: str) -> str:
    if ref.startswith(_ABSOLUTE_DEFINITIONS):
        return DEFINITIONS + ref.removeprefix(_ABSOLUTE_DEFINITIONS)
    return ref


def convert_crds(sources: list[Path], destination: Path) -> list[Path]:
    """Write one strict JSON schema per served version of every CRD given."""
    written = []
    for source in sources:
        for crd in _crds(source):
            spec = crd["spec"]
            group = spec["group"]
            kind = spec["names"]["kind"].lower()
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = _strict(version["schema"]["openAPIV3Schema"])
                target = destination / group / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1))
                written.append(target)
    return written


def _crds(source: Path) -> Iterator[dict[str, Any]]:
    with source.open() as stream:
        for document in yaml.safe_load_all(stream):
            if document and document.get("kind") == "CustomResourceDefinition":
                yield document


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {key: _strict(value) for key, value in node.items()}
    keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields") is True
    lists_properties = "properties" in schema and "additionalProperties" not in schema
    if lists_properties and not keeps_unknown:
        schema["additionalProperties"] = False
    if schema.pop("nullable", False) and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    return schema


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    kubernetes = commands.add_parser("kubernetes", help="built-in API schemas")
    kubernetes.add_argument("--wheel", type=Path, required=True)
    kubernetes.add_argument("--version", required=True, help="e.g. v1.33.0")
    kubernetes.add_argument("--out", type=Path, required=True)
    crd = commands.add_parser("crd", help="CustomResourceDefinition YAML files")
    crd.add_argument("--out", type=Path, required=True)
    crd.add_argument("sources", type=Path, nargs="+")
    args = parser.parse_args(argv)

    if args.command == "kubernetes":
        count = extract_kubernetes(args.wheel, args.version, args.out)
        print(f"{count} Kubernetes {args.version} schemas in {args.out}")
    else:
        targets = convert_crds(args.sources, args.out)
        if not targets:
            sys.exit(f"no CustomResourceDefinition in {args.sources}")
        print(f"{len(targets)} CRD schemas in {args.out}")


if __name__ == "__main__":
    main()

"""The JSON schemas kubeconform validates infra/k8s with, made from what registries ship.

``python schemas.py k8s K8S_SCHEMA_DIR``: kubernetes-validate's schemas name their shared definitions by
URL (``$id`` https://kubernetes.io/api/..., ``$ref`` /api/_definitions.json), which a validator would try
to download; this rewrites them in place to refer to the ``_definitions.json`` beside them.

``python schemas.py crds OUT_DIR K8S_SCHEMA_DIR CRD.yaml...`` turns CustomResourceDefinitions into
schemas for custom resources: it writes ``OUT_DIR/<group>/<kind>_<version>.json``
(kubeconform's ``{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json``) for every served version of
every CRD in the files, from its ``openAPIV3Schema``, the way kubeconform's own openapi2jsonschema does in
strict mode:

- an object with ``properties`` and no ``additionalProperties`` gets ``additionalProperties: false`` (a
  misspelt field fails), unless it is marked ``x-kubernetes-preserve-unknown-fields``;
- ``x-kubernetes-int-or-string`` becomes "integer or string"; ``nullable: true`` adds ``null`` to the type;
- ``metadata`` is checked against Kubernetes' own strict ObjectMeta (by ``$ref`` into K8S_SCHEMA_DIR's
  ``_definitions.json``), and ``apiVersion`` / ``kind`` must be the CRD's.

Run by infra/k8s/install-tools.sh; needs PyYAML.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if k != "description"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert(crd: dict[str, Any], k8s_definitions: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    schemas = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        props["metadata"] = {"$ref": f"{k8s_definitions}#/$defs/{OBJECT_META}"}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        schema["additionalProperties"] = False
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schemas[(group, kind.lower(), version["name"])] = schema
    return schemas


def localize(k8s_dir: Path) -> int:
    """Point every schema of ``k8s_dir`` at the ``_definitions.json`` beside it; the number rewritten."""
    n = 0
    for path in sorted(k8s_dir.glob("*.json")):
        schema = json.loads(path.read_text())
        schema.pop("$id", None)
        text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        if "https://kubernetes.io/" in text.replace("https://kubernetes.io/docs", ""):
            raise SystemExit(f"schemas.py: {path} still refers to kubernetes.io")
        path.write_text(text)
        n += 1
    return n


def main(argv: list[str]) -> None:
    if argv[:1] == ["k8s"]:
        print(f"schemas.py: {localize(Path(argv[1]))} Kubernetes schemas point at their local definitions")
        return
    if argv[:1] != ["crds"]:
        raise SystemExit("usage: schemas.py k8s K8S_SCHEMA_DIR | crds OUT_DIR K8S_SCHEMA_DIR CRD.yaml...")
    out_dir, k8s_dir, *files = argv[1:]
    written = 0
    for path in files:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for (group, kind, version), schema in convert(doc, "").items():
                target = Path(out_dir) / group / f"{kind}_{version}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                definitions = os.path.relpath(Path(k8s_dir) / "_definitions.json", target.parent)
                schema["properties"]["metadata"] = {"$ref": f"{definitions}#/$defs/{OBJECT_META}"}
                target.write_text(json.dumps(schema, indent=1, sort_keys=True))
                written += 1
    if not written:
        raise SystemExit(f"schemas.py: no CustomResourceDefinition in {files}")
    print(f"schemas.py: {written} schemas into {out_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])

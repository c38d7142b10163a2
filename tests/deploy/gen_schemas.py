#!/usr/bin/python3
"""Writes strict JSON schemas of the Kubernetes kinds deploy/kubernetes uses,
generated from the models of Debian's python3-kubernetes (the API client
generated from Kubernetes' OpenAPI spec): every field with its type, the
fields the API requires, no field the API does not know. The output is
vendored in tests/deploy/schemas/ (run again after a python3-kubernetes
upgrade):
  python3 tests/deploy/gen_schemas.py tests/deploy/schemas
"""
import inspect
import json
import re
import sys

import kubernetes.client.models as models

KINDS = {  # kind: (apiVersion, model)
    "Namespace": ("v1", "V1Namespace"),
    "ConfigMap": ("v1", "V1ConfigMap"),
    "DaemonSet": ("apps/v1", "V1DaemonSet"),
}


def required(cls, attr):
    setter = getattr(cls, attr).fset
    return "must not be `None`" in inspect.getsource(setter)


def schema_of(type_name, defs):
    if type_name in ("str", "datetime", "date"):
        return {"type": "string"}
    if type_name == "int":
        return {"type": "integer"}
    if type_name == "float":
        return {"type": "number"}
    if type_name == "bool":
        return {"type": "boolean"}
    if type_name == "object":  # IntOrString, RawExtension: anything
        return {}
    m = re.fullmatch(r"list\[(.+)\]", type_name)
    if m:
        return {"type": "array", "items": schema_of(m.group(1), defs)}
    m = re.fullmatch(r"dict\(str, (.+)\)", type_name)
    if m:
        return {"type": "object", "additionalProperties": schema_of(m.group(1), defs)}
    if type_name not in defs:
        defs[type_name] = None  # (recursion guard)
        cls = getattr(models, type_name)
        props, req = {}, []
        for attr, t in cls.openapi_types.items():
            name = cls.attribute_map[attr]
            props[name] = schema_of(t, defs)
            if required(cls, attr):
                req.append(name)
        defs[type_name] = {"type": "object", "properties": props,
                           "additionalProperties": False}
        if req:
            defs[type_name]["required"] = sorted(req)
    return {"$ref": "#/definitions/" + type_name}


def main(out_dir):
    for kind, (api, model) in KINDS.items():
        defs = {}
        top = schema_of(model, defs)
        schema = {"$schema": "http://json-schema.org/draft-07/schema#",
                  "description": f"{api} {kind}, from python3-kubernetes {models.__name__}",
                  "allOf": [top, {"properties": {"apiVersion": {"const": api},
                                                 "kind": {"const": kind}},
                                  "required": ["apiVersion", "kind", "metadata"]}],
                  "definitions": defs}
        with open(f"{out_dir}/{kind.lower()}.json", "w") as f:
            json.dump(schema, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])

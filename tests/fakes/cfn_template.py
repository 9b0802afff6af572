"""infra/template.yaml as data: parsed with cfn-lint's loader (it understands !Ref, !Sub, ...) and resolved
just enough for tests to read what an alarm watches or what the state machine is given.

``evaluate`` computes values as a deployed stack would have them (ARNs, URIs, names), and ``allows`` is a small
IAM evaluator over a role's statements (Allow/Deny, wildcards, String/Arn conditions), so tests can ask whether
a role may make a given call rather than compare policy text."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"


@functools.cache
def load(path: Path = TEMPLATE) -> dict[str, Any]:
    from cfnlint.decode import decode

    template, problems = decode(str(path))
    if problems:
        raise ValueError(f"{path} does not parse: {problems}")
    return template


def resources(kind: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every resource of type ``kind``."""
    template = template or load()
    return {
        name: res.get("Properties", {}) for name, res in template["Resources"].items() if res["Type"] == kind
    }


def resolve(value: Any, template: dict[str, Any] | None = None) -> Any:
    """Fn::FindInMap and literal values resolved; a Ref or GetAtt becomes ``("Ref", name)``/``("GetAtt", name)``."""
    template = template or load()
    if isinstance(value, dict) and len(value) == 1:
        (fn, args), *_ = value.items()
        if fn == "Fn::FindInMap":
            top, second, third = args
            return template["Mappings"][top][second][third]
        if fn == "Ref":
            return ("Ref", args)
        if fn == "Fn::GetAtt":
            return ("GetAtt", args[0] if isinstance(args, list) else args.split(".")[0])
    if isinstance(value, dict):
        return {k: resolve(v, template) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, template) for v in value]
    return value


def alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its Namespace/MetricName/Dimensions, or each MetricStat of its Metrics."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": resolve(alarm["Namespace"]),
                "MetricName": alarm["MetricName"],
                "Dimensions": resolve(alarm.get("Dimensions", [])),
            }
        ]
    found = []
    for query in alarm.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append(
                {
                    "Namespace": resolve(metric["Namespace"]),
                    "MetricName": metric["MetricName"],
                    "Dimensions": resolve(metric.get("Dimensions", [])),
                }
            )
    return found


# What a deployment fills in that the template does not say: the pseudo parameters and the parameters without a
# default. Enough for evaluate() to turn the template's ARNs and URIs into the strings AWS would see.
DEPLOYED: dict[str, Any] = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "online-retail",
    "ArtifactBucket": "artifacts",
    "GlueScriptKey": "glue/abc/retail_transform.py",
    "GlueExtraPyFilesKey": "glue/abc/retail_transform_libs.zip",
}
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")
# The physical name a Ref (or an ARN) of these resources gives, where the template names them.
_NAME_PATHS = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Table": ("TableInput", "Name"),
}


def evaluate(
    value: Any, template: dict[str, Any] | None = None, context: dict[str, Any] | None = None
) -> Any:
    """``value`` with its intrinsic functions computed as a stack deployed with ``context`` (default DEPLOYED).

    Ref gives a context value, a parameter's default, or a named resource's name (``_NAME_PATHS``); GetAtt Arn of
    a bucket its ARN. Any other resource reference becomes ``<Name>``/``<Name.Attr>``: a placeholder no real
    name can equal. A function not handled here raises, so no test reads a half-evaluated value."""
    template = template or load()
    context = DEPLOYED if context is None else context
    if isinstance(value, list):
        return [evaluate(v, template, context) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (fn, args), *_ = value.items()
        if fn == "Ref":
            return _ref(args, template, context)
        if fn == "Fn::GetAtt":
            name, attr = args if isinstance(args, list) else args.split(".", 1)
            return _get_att(name, attr, template, context)
        if fn == "Fn::Sub":
            text, variables = (args, {}) if isinstance(args, str) else args
            return _sub(text, variables, template, context)
        if fn == "Fn::Join":
            delimiter, items = args
            return delimiter.join(str(i) for i in evaluate(items, template, context))
        if fn == "Fn::Split":
            delimiter, text = args
            return evaluate(text, template, context).split(delimiter)
        if fn == "Fn::FindInMap":
            top, second, third = evaluate(args, template, context)
            return template["Mappings"][top][second][third]
        if fn.startswith("Fn::") or fn == "Condition":
            raise NotImplementedError(f"evaluate() does not handle {fn}")
    return {k: evaluate(v, template, context) for k, v in value.items()}


def _ref(name: str, template: dict[str, Any], context: dict[str, Any]) -> Any:
    if name in context:
        return context[name]
    parameter = template.get("Parameters", {}).get(name)
    if parameter is not None:
        if "Default" not in parameter:
            raise KeyError(f"parameter {name} has no default: put a value in the context")
        return parameter["Default"]
    resource = template["Resources"][name]
    path = _NAME_PATHS.get(resource["Type"])
    if path is None:
        return f"<{name}>"
    node = resource["Properties"]
    for key in path:
        node = node[key]
    return evaluate(node, template, context)


def _get_att(name: str, attr: str, template: dict[str, Any], context: dict[str, Any]) -> Any:
    if f"{name}.{attr}" in context:
        return context[f"{name}.{attr}"]
    if template["Resources"][name]["Type"] == "AWS::S3::Bucket" and attr == "Arn":
        return f"arn:{context['AWS::Partition']}:s3:::{_ref(name, template, context)}"
    return f"<{name}.{attr}>"


def _sub(text: str, variables: dict[str, Any], template: dict[str, Any], context: dict[str, Any]) -> str:
    def fill(match: re.Match[str]) -> str:
        literal, name = match.groups()
        if literal:  # ${!x} is the text ${x}
            return "${" + name + "}"
        if name in variables:
            return str(evaluate(variables[name], template, context))
        if "." in name and not name.startswith("AWS::"):
            resource, attr = name.split(".", 1)
            return str(_get_att(resource, attr, template, context))
        return str(_ref(name, template, context))

    return _SUB_VARIABLE.sub(fill, text)


def role_statements(role: str, template: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies, evaluated (see ``evaluate``)."""
    template = template or load()
    properties = template["Resources"][role]["Properties"]
    if properties.get("ManagedPolicyArns"):
        raise NotImplementedError(f"{role} has managed policies: role_statements() sees inline ones only")
    return [
        evaluate(statement, template)
        for policy in properties.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_match(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcards: ``*`` any run of characters (``/`` included), ``?`` exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE if ignore_case else 0) is not None


@dataclass(frozen=True)
class Request:
    """One API call as IAM evaluates it: action, resource ARN and the condition keys the call carries."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        keys = "".join(f" ({key}={value!r})" for key, value in self.context)
        return f"{self.action} on {self.resource}{keys}"


# Condition operators the evaluator knows; any other one raises rather than being taken as met.
_CONDITIONS = {
    "StringEquals": lambda pattern, value: pattern == value,
    "StringLike": wildcard_match,
    "ArnEquals": lambda pattern, value: pattern == value,
    "ArnLike": wildcard_match,
}


def statement_matches(statement: dict[str, Any], request: Request) -> bool:
    """Whether a statement of an identity policy applies to ``request`` (its Effect aside)."""
    if {"NotAction", "NotResource", "Principal", "NotPrincipal"} & set(statement):
        raise NotImplementedError(f"statement_matches() handles Action/Resource/Condition only: {statement}")
    if not any(wildcard_match(a, request.action, ignore_case=True) for a in as_list(statement["Action"])):
        return False
    if not any(wildcard_match(r, request.resource) for r in as_list(statement["Resource"])):
        return False
    keys = dict(request.context)
    for operator, tests in statement.get("Condition", {}).items():
        if operator not in _CONDITIONS:
            raise NotImplementedError(f"condition operator {operator} is not evaluated here")
        for key, patterns in tests.items():
            # A key the request does not carry fails the condition (no ...IfExists operators here).
            if key not in keys or not any(_CONDITIONS[operator](p, keys[key]) for p in as_list(patterns)):
                return False
    return True


def allows(statements: list[dict[str, Any]], request: Request) -> bool:
    """IAM's decision for one request under one identity policy: an explicit Deny wins, else an Allow must match."""
    matching = [s for s in statements if statement_matches(s, request)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)

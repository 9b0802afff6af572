"""infra/template.yaml as data: parsed with cfn-lint's loader (it understands !Ref, !Sub, ...) and resolved
just enough for tests to read what an alarm watches or what the state machine is given.

``evaluate`` computes values as a deployed stack would have them (ARNs, URIs, names, the template's Conditions
and Fn::If for given parameter values), and ``allows`` is a small IAM evaluator over a role's statements (Allow
and Deny, Action/NotAction, Resource/NotResource, wildcards, and the condition operators IAM documents: String*,
Arn*, Bool, Null, Numeric*, each with ...IfExists, and ForAnyValue:/ForAllValues: over multi-valued keys), so
tests can ask whether a role may make a given call rather than compare policy text. ``s3_requests`` says which
IAM requests S3 authorizes for one API call (and ``kms_requests`` what SSE-KMS adds), so a recorded S3 call can
be put to a role."""

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
    "GlueWheelhouseKeyPrefix": "glue/wheelhouse/cccc",
    "GluePythonModules": ",".join(
        f"s3://artifacts/glue/wheelhouse/cccc/{name}"
        for name in (
            "great_expectations-1.24.1-py3-none-any.whl",
            "scipy-1.17.1-cp311-cp311-manylinux_2_27_x86_64.whl",
        )
    ),
    "VpcId": "vpc-0123456789abcdef0",
    "PrivateSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2", "subnet-0ccccccccccccccc3"],
    "ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/online-retail-pipeline:abc123",
}
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")
# The physical name a Ref (or an ARN) of these resources gives, where the template names them.
_NAME_PATHS = {
    "AWS::S3::Bucket": ("BucketName",),
    "AWS::Glue::Database": ("DatabaseInput", "Name"),
    "AWS::Glue::Table": ("TableInput", "Name"),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::RedshiftServerless::Workgroup": ("WorkgroupName",),
    "AWS::IAM::Role": ("RoleName",),  # where the template names the role; else CloudFormation makes one up
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
        if fn == "Fn::If":
            name, when_true, when_false = args
            chosen = when_true if condition(name, template, context) else when_false
            return evaluate(chosen, template, context)
        if fn.startswith("Fn::") or fn == "Condition":
            raise NotImplementedError(f"evaluate() does not handle {fn}")
    return {k: evaluate(v, template, context) for k, v in value.items()}


def task_environment(task_definition: str, template: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment of ``task_definition``'s one container, as the deployed task definition gives it."""
    template = template or load()
    [container] = template["Resources"][task_definition]["Properties"]["ContainerDefinitions"]
    return {e["Name"]: str(evaluate(e["Value"], template)) for e in container["Environment"]}


def condition(
    name: str, template: dict[str, Any] | None = None, context: dict[str, Any] | None = None
) -> bool:
    """Whether the template's Condition ``name`` holds for a stack deployed with ``context`` (parameters not in
    it take their defaults)."""
    template = template or load()
    context = DEPLOYED if context is None else context
    return _condition_value(template["Conditions"][name], template, context)


def _condition_value(value: Any, template: dict[str, Any], context: dict[str, Any]) -> bool:
    (fn, args), *_ = value.items()
    if fn == "Condition":
        return condition(args, template, context)
    if fn == "Fn::Equals":
        left, right = (evaluate(a, template, context) for a in args)
        return str(left) == str(right)
    if fn == "Fn::Not":
        [inner] = args
        return not _condition_value(inner, template, context)
    if fn == "Fn::And":
        return all(_condition_value(a, template, context) for a in args)
    if fn == "Fn::Or":
        return any(_condition_value(a, template, context) for a in args)
    raise NotImplementedError(f"condition() does not handle {fn}")


def exists(
    logical_id: str, template: dict[str, Any] | None = None, context: dict[str, Any] | None = None
) -> bool:
    """Whether a stack deployed with ``context`` has the resource (its Condition, if any, holds)."""
    template = template or load()
    name = template["Resources"][logical_id].get("Condition")
    return name is None or condition(name, template, context)


def _ref(name: str, template: dict[str, Any], context: dict[str, Any]) -> Any:
    if name in context:
        return context[name]
    parameter = template.get("Parameters", {}).get(name)
    if parameter is not None:
        if "Default" not in parameter:
            raise KeyError(f"parameter {name} has no default: put a value in the context")
        if parameter["Type"] == "CommaDelimitedList" or parameter["Type"].startswith("List<"):
            return str(parameter["Default"]).split(",")
        return parameter["Default"]
    resource = template["Resources"][name]
    path = _NAME_PATHS.get(resource["Type"])
    if path is None:
        return f"<{name}>"
    node = resource["Properties"]
    for key in path:
        if key not in node:
            return f"<{name}>"
        node = node[key]
    return evaluate(node, template, context)


def _get_att(name: str, attr: str, template: dict[str, Any], context: dict[str, Any]) -> Any:
    if f"{name}.{attr}" in context:
        return context[f"{name}.{attr}"]
    kind = template["Resources"][name]["Type"]
    if kind == "AWS::S3::Bucket" and attr == "Arn":
        return f"arn:{context['AWS::Partition']}:s3:::{_ref(name, template, context)}"
    if kind == "AWS::Logs::LogGroup" and attr == "Arn":  # CloudFormation's Arn of a log group ends with :*
        where = f"{context['AWS::Partition']}:logs:{context['AWS::Region']}:{context['AWS::AccountId']}"
        return f"arn:{where}:log-group:{_ref(name, template, context)}:*"
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
    """One API call as IAM evaluates it: action, resource ARN and the condition keys the call carries (a key's
    value is a string, or a tuple of strings for a multi-valued key such as aws:TagKeys)."""

    action: str
    resource: str
    context: tuple[tuple[str, str | tuple[str, ...]], ...] = ()

    def __str__(self) -> str:
        keys = "".join(f" ({key}={value!r})" for key, value in self.context)
        return f"{self.action} on {self.resource}{keys}"


def _number(text: Any) -> float:
    return float(text)


def _boolean(text: Any) -> str:
    return str(text).lower()


# One test per operator family: (pattern from the policy, value from the request) -> bool. The negated operators
# (StringNotEquals, ...) are these, negated in _operator_matches.
_OPERATORS = {
    "StringEquals": lambda pattern, value: str(pattern) == value,
    "StringEqualsIgnoreCase": lambda pattern, value: str(pattern).lower() == value.lower(),
    "StringLike": lambda pattern, value: wildcard_match(str(pattern), value),
    "ArnEquals": lambda pattern, value: str(pattern) == value,
    "ArnLike": lambda pattern, value: wildcard_match(str(pattern), value),
    "NumericEquals": lambda pattern, value: _number(pattern) == _number(value),
    "NumericLessThan": lambda pattern, value: _number(value) < _number(pattern),
    "NumericLessThanEquals": lambda pattern, value: _number(value) <= _number(pattern),
    "NumericGreaterThan": lambda pattern, value: _number(value) > _number(pattern),
    "NumericGreaterThanEquals": lambda pattern, value: _number(value) >= _number(pattern),
    "Bool": lambda pattern, value: _boolean(pattern) == _boolean(value),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def _operator_matches(operator: str, key: str, patterns: Any, context: dict[str, Any]) -> bool:
    """One condition operator's test of one key, as IAM evaluates it (the policy's values are ORed)."""
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    present = key in context
    if operator == "Null":  # "true": the key must be absent; "false": present
        [wanted] = as_list(patterns)
        return (not present) == (_boolean(wanted) == "true")
    if not present and if_exists:
        return True
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if base not in _OPERATORS:
        raise NotImplementedError(f"condition operator {operator} is not evaluated here")
    test = _OPERATORS[base]
    values = context.get(key)
    many = values if isinstance(values, tuple) else (values,) if present else ()
    if qualifier == "ForAllValues":  # every value of the request's matches some pattern (true when none)
        result = all(any(test(p, v) for p in as_list(patterns)) for v in many)
        return not result if negated else result
    if qualifier == "ForAnyValue":
        result = any(any(test(p, v) for p in as_list(patterns)) for v in many)
        return not result if negated else result
    if qualifier:
        raise NotImplementedError(f"condition set operator {qualifier} is not evaluated here")
    if not present:  # a key the request does not carry: the positive operators fail, the negated ones hold
        return negated
    if isinstance(values, tuple):
        raise ValueError(f"{key} is multi-valued: use ForAnyValue: or ForAllValues:")
    matched = any(test(p, values) for p in as_list(patterns))
    return not matched if negated else matched


def statement_matches(statement: dict[str, Any], request: Request) -> bool:
    """Whether a statement of an identity policy applies to ``request`` (its Effect aside)."""
    if {"Principal", "NotPrincipal"} & set(statement):
        raise NotImplementedError(f"statement_matches() evaluates identity policies only: {statement}")
    if "Action" in statement:
        acts = any(wildcard_match(a, request.action, ignore_case=True) for a in as_list(statement["Action"]))
    else:
        acts = not any(
            wildcard_match(a, request.action, ignore_case=True) for a in as_list(statement["NotAction"])
        )
    if not acts:
        return False
    if "Resource" in statement:
        on = any(wildcard_match(r, request.resource) for r in as_list(statement["Resource"]))
    else:
        on = not any(wildcard_match(r, request.resource) for r in as_list(statement["NotResource"]))
    if not on:
        return False
    keys = dict(request.context)
    # Every operator of the block must hold, and within one, every key (the values of one key are ORed).
    return all(
        _operator_matches(operator, key, patterns, keys)
        for operator, tests in statement.get("Condition", {}).items()
        for key, patterns in tests.items()
    )


def allows(statements: list[dict[str, Any]], request: Request) -> bool:
    """IAM's decision for one request under one identity policy: an explicit Deny wins, else an Allow must match."""
    matching = [s for s in statements if statement_matches(s, request)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def for_service(statements: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    """A resource policy's statements that apply to an AWS service principal (``events.amazonaws.com``), without
    their Principal: what ``allows`` then evaluates for that service."""
    found = []
    for statement in statements:
        if "NotPrincipal" in statement:
            raise NotImplementedError(f"for_service() does not evaluate NotPrincipal: {statement}")
        principal = statement["Principal"]
        services = [] if principal == "*" else as_list(principal.get("Service", []))
        if principal == "*" or service in services:
            found.append({k: v for k, v in statement.items() if k != "Principal"})
    return found


# --- S3 API calls as IAM requests ---------------------------------------------------------------------------------
# Which action S3 authorizes for each call on one object (Amazon S3's "Actions, resources and condition keys": the
# multipart calls are all s3:PutObject but Abort; a HEAD is s3:GetObject).
S3_OBJECT_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
}


def s3_requests(operation: str, params: dict[str, Any], partition: str = "aws") -> list[Request]:
    """The IAM requests S3 authorizes for one call of ``operation`` with boto3's ``params``.

    A listing carries its Prefix as ``s3:prefix`` (no key at all without one); DeleteObjects is s3:DeleteObject on
    each key it names; CopyObject is s3:GetObject on the source and s3:PutObject on the target. A HEAD or GET of a
    key that does not exist needs one more decision, which S3 makes on the bucket: see ``s3_missing_key_answer``."""
    bucket_arn = f"arn:{partition}:s3:::{params['Bucket']}"
    if operation in ("ListObjectsV2", "ListObjects"):
        context = (("s3:prefix", params["Prefix"]),) if "Prefix" in params else ()
        return [Request("s3:ListBucket", bucket_arn, context)]
    if operation in S3_OBJECT_ACTIONS:
        return [Request(S3_OBJECT_ACTIONS[operation], f"{bucket_arn}/{params['Key']}")]
    if operation == "DeleteObjects":
        return [Request("s3:DeleteObject", f"{bucket_arn}/{o['Key']}") for o in params["Delete"]["Objects"]]
    if operation == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, str):
            source_bucket, _, source_key = source.lstrip("/").partition("/")
        else:
            source_bucket, source_key = source["Bucket"], source["Key"]
        return [
            Request("s3:GetObject", f"arn:{partition}:s3:::{source_bucket}/{source_key}"),
            Request("s3:PutObject", f"{bucket_arn}/{params['Key']}"),
        ]
    raise NotImplementedError(f"s3_requests() does not model {operation}")


def s3_missing_key_answer(statements: list[dict[str, Any]], bucket: str, partition: str = "aws") -> int:
    """What S3 answers a HEAD or GET of a key that does not exist: 404 only to a caller allowed s3:ListBucket on
    the bucket, asked without a prefix (the call carries none), else 403 so as not to say the key is absent."""
    may_list = allows(statements, Request("s3:ListBucket", f"arn:{partition}:s3:::{bucket}"))
    return 404 if may_list else 403


def via(service: str, context: dict[str, Any] | None = None) -> tuple[tuple[str, str], ...]:
    """The condition key a KMS request carries when ``service`` (s3, secretsmanager, sns) calls KMS on the
    caller's behalf, in the deployed stack's region."""
    region = (DEPLOYED if context is None else context)["AWS::Region"]
    return (("kms:ViaService", f"{service}.{region}.amazonaws.com"),)


def kms_requests(operation: str, key_arn: str) -> list[Request]:
    """What an S3 call on an SSE-KMS bucket asks KMS for, on the caller's behalf (so through S3: kms:ViaService):
    a new object needs a data key, reading one (a multipart upload's later parts and a copy's source too)
    decrypts it. A HEAD reads no data."""
    generate = Request("kms:GenerateDataKey", key_arn, via("s3"))
    decrypt = Request("kms:Decrypt", key_arn, via("s3"))
    return {
        "GetObject": [decrypt],
        "PutObject": [generate],
        "CreateMultipartUpload": [generate],
        "UploadPart": [decrypt],
        "CompleteMultipartUpload": [decrypt],
        "CopyObject": [decrypt, generate],
    }.get(operation, [])

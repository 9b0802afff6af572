"""infra/template.yaml as data: parsed with cfn-lint's loader (it understands !Ref, !Sub, ...) and resolved
just enough for tests to read what an alarm watches or what the state machine is given."""

from __future__ import annotations

import functools
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

"""What template.yaml grants and watches, as JSON, for tests/it/deploy.rs.

{"functions": {binary: {"logical": id, "grants": [[action, resource]], "scheduled": bool}},
 "alarms": [{"name", "namespace", "metric", "dimensions": {name: value}, "statistic",
             "threshold", "comparison"}],
 "parameters": the template's Parameters,
 "environment": {variable: value or {"ref": parameter}} of every function}

A reference is written as its target: !Ref X -> "X", !GetAtt X.Attr -> "X",
!Sub "${X.Arn}/*" -> "X". A policy this script does not know is reported as
["UNKNOWN", <policy>] so that no grant goes unchecked.
"""
import json
import re
import sys

import yaml


class Loader(yaml.SafeLoader):
    pass


def tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"!" + suffix: value}


Loader.add_multi_constructor("!", tagged)


def target(value):
    if isinstance(value, dict):
        if "!Ref" in value:
            return value["!Ref"]
        if "!GetAtt" in value:
            v = value["!GetAtt"]
            return (v if isinstance(v, str) else v[0]).split(".")[0]
        if "!Sub" in value:
            m = re.fullmatch(r"\$\{([A-Za-z0-9]+)(\.[A-Za-z]+)?\}(/\*)?", value["!Sub"])
            return m.group(1) if m else "UNKNOWN:" + value["!Sub"]
    return "UNKNOWN:" + json.dumps(value)


def grants(policies):
    out = []
    for p in policies or []:
        if not isinstance(p, dict) or len(p) != 1:
            out.append(["UNKNOWN", json.dumps(p)])
            continue
        (name, body), = p.items()
        if name == "VPCAccessPolicy":
            continue  # network interfaces for the VPC, not a call of the code
        if name == "AWSSecretsManagerGetSecretValuePolicy":
            out.append(["secretsmanager:GetSecretValue", target(body["SecretArn"])])
        elif name == "SQSSendMessagePolicy":
            out.append(["sqs:SendMessage", target(body["QueueName"])])
        elif name == "Statement":
            for s in body:
                actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                if s.get("Effect") != "Allow":
                    out.append(["UNKNOWN", json.dumps(s)])
                for a in actions:
                    for r in resources:
                        out.append([a, target(r)])
        else:
            out.append(["UNKNOWN", name])
    return out


def main(path):
    t = yaml.load(open(path), Loader=Loader)
    functions, alarms = {}, []
    for logical, r in t["Resources"].items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::Serverless::Function":
            binary = r["Metadata"]["BuildProperties"]["Binary"]
            events = (props.get("Events") or {}).values()
            functions[binary] = {
                "logical": logical,
                "grants": grants(props.get("Policies")),
                "scheduled": any(e["Type"] in ("Schedule", "ScheduleV2") for e in events),
            }
        elif r["Type"] == "AWS::CloudWatch::Alarm":
            alarms.append({
                "name": logical,
                "namespace": props.get("Namespace"),
                "metric": props.get("MetricName"),
                "dimensions": {d["Name"]: target(d["Value"]) if isinstance(d["Value"], dict)
                               else d["Value"] for d in props.get("Dimensions", [])},
                "statistic": props.get("Statistic"),
                "threshold": props.get("Threshold"),
                "comparison": props.get("ComparisonOperator"),
            })
    env = t["Globals"]["Function"]["Environment"]["Variables"]
    print(json.dumps({
        "functions": functions,
        "alarms": alarms,
        "parameters": t["Parameters"],
        "environment": {k: ({"ref": target(v)} if isinstance(v, dict) else v)
                        for k, v in env.items()},
    }))


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/env python3
"""Checks template.yaml offline: cfn-lint on the SAM template and on the template expanded
by the SAM transform (plain cfn-lint does not look inside SAM functions and events; the
expanded template shows e.g. a queue visibility shorter than its function's timeout).

Usage: lint_template.py [template.yaml]; exit code 0 when both are clean."""

import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402


class OfflinePolicyLoader:
    """The transform asks for AWS managed policy ARNs only for policies named by their
    managed name; answer from a fixed table instead of calling IAM."""

    def load(self):
        return {
            "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
            "AWSLambdaVPCAccessExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        }


def lint(path):
    runner = "import sys, cfnlint.runner; sys.argv = ['cfn-lint', sys.argv[1]]; sys.exit(cfnlint.runner.main())"
    return subprocess.run([sys.executable, "-c", runner, path]).returncode


def as_packaged(template):
    """What `sam package` does first: local CodeUri -> an S3 location."""
    globals_fn = template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_fn:
        globals_fn["CodeUri"] = "s3://tidemark-artifacts/code.zip"
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://tidemark-artifacts/code.zip"
    return template


def main():
    template_path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    rc = lint(template_path)
    template, matches = decode(template_path)
    if matches:
        for m in matches:
            print(m)
        return 1
    expanded = transform(as_packaged(template), {}, OfflinePolicyLoader())
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(expanded, out, indent=1, default=str)
    print(f"expanded template: {out.name} ({len(expanded.get('Resources', {}))} resources)")
    rc_expanded = lint(out.name)
    return 1 if rc or rc_expanded else 0


if __name__ == "__main__":
    sys.exit(main())

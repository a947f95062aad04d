"""The floor of CDK start-up: a Python CDK app with one empty stack (`cdk synth -a "python3 bench/minimal_app.py"`)."""

from __future__ import annotations

import aws_cdk as cdk


def main() -> None:
    app = cdk.App()
    cdk.Stack(app, "Empty")
    app.synth()


if __name__ == "__main__":
    main()

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import Construct

from config import EnvironmentConfig


class EnvironmentStack(Stack):
    """A stack of one environment; AZs come from config so nothing ever triggers a context lookup."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        self._azs = list(config.network.availability_zones)
        super().__init__(scope, id_, **kwargs)

    @property
    def availability_zones(self) -> list[str]:
        return self._azs

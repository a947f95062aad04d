"""Standard tags for the functions and roles of CDK's cross-region references.

CDK creates their providers (Custom::CrossRegionExportWriter in the producing stack, ...Reader in the consuming one)
while preparing synthesis, after every aspect ran, so neither Tags.of() nor stages/tagging.py ever sees them. A
construct validation runs after that preparation and before the templates are written: the last hook there is.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, Stack, TagManager
from constructs import IValidation

from stages.tagging import RAW_TAGGABLE

PROVIDER_IDS = ("Custom::CrossRegionExportWriterCustomResourceProvider", "Custom::CrossRegionExportReaderCustomResourceProvider")


@jsii.implements(IValidation)
class _TagProviders:
    def __init__(self, stack: Stack, tags: dict[str, str]) -> None:
        self._stack = stack
        self._tags = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def validate(self) -> list[str]:
        for provider_id in PROVIDER_IDS:
            provider = self._stack.node.try_find_child(provider_id)
            for node in provider.node.find_all() if provider else []:
                if (
                    isinstance(node, CfnResource)
                    and node.cfn_resource_type in RAW_TAGGABLE
                    and not TagManager.is_taggable(node)
                ):
                    node.add_property_override("Tags", self._tags)
        return []


def tag_cross_region_providers(stack: Stack, tags: dict[str, str]) -> None:
    stack.node.add_validation(_TagProviders(stack, tags))

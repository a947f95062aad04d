from __future__ import annotations

import jsii
from aws_cdk import Aspects, CfnResource, IAspect, Tags, TagManager
from constructs import IConstruct

# Raw CfnResources (custom-resource providers) are not ITaggable, so Tags.of() skips them.
RAW_TAGGABLE = {"AWS::IAM::Role", "AWS::Lambda::Function"}


@jsii.implements(IAspect)
class _RawResourceTags:
    def __init__(self, tags: dict[str, str]) -> None:
        self._tags = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, CfnResource) and node.cfn_resource_type in RAW_TAGGABLE and not TagManager.is_taggable(node):
            node.add_property_override("Tags", self._tags)


def apply_standard_tags(scope: IConstruct, tags: dict[str, str]) -> None:
    """The one mechanism that tags every taggable resource under scope."""
    for key, value in tags.items():
        Tags.of(scope).add(key, value)
    Aspects.of(scope).add(_RawResourceTags(tags))

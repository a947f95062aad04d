from __future__ import annotations

from aws_cdk import CfnResource, Tags, TagManager
from constructs import IConstruct

# Raw CfnResources (custom-resource providers) are not ITaggable, so Tags.of() skips them.
RAW_TAGGABLE = {"AWS::IAM::Role", "AWS::Lambda::Function"}


def apply_standard_tags(scope: IConstruct, tags: dict[str, str]) -> None:
    """The one mechanism that tags every taggable resource under scope. Call it once scope's constructs exist:
    Tags.of() works at synthesis, but the raw resources are found now."""
    for key, value in tags.items():
        Tags.of(scope).add(key, value)
    raw = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    # One walk instead of a Python Aspect: an Aspect is a node → Python call for each of ~1,000 constructs.
    # `type(...) is CfnResource` (not a subclass such as CfnRole) picks the raw ones without asking node.
    for node in scope.node.find_all():
        if type(node) is CfnResource and node.cfn_resource_type in RAW_TAGGABLE and not TagManager.is_taggable(node):
            node.add_property_override("Tags", raw)

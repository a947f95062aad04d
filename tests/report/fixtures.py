"""Small hand-made templates shared by the report tests."""

from __future__ import annotations


def action(name, provider, run_order=1, category="Build", **config):
    return {"Name": name, "RunOrder": run_order, "Configuration": config,
            "ActionTypeId": {"Category": category, "Owner": "AWS", "Provider": provider, "Version": "1"}}


def pipeline_template() -> dict:
    stages = [
        {"Name": "Source", "Actions": [action("Checkout", "CodeStarSourceConnection", category="Source")]},
        {"Name": "Build", "Actions": [action("Build", "CodeBuild")]},
        {"Name": "Assets", "Actions": [action("DockerAssets", "CodeBuild"), action("FileAssets", "CodeBuild")]},
        {"Name": "Dev", "Actions": [
            action("app-dev-stateless.Deploy", "CloudFormation", 1, "Deploy", StackName="app-dev-stateless"),
            action("Verify-dev", "CodeBuild", 2),
        ]},
        {"Name": "Prod", "Actions": [
            action("Promote-to-prod", "Manual", 1, "Approval"),
            action("app-prod-stateless.Deploy", "CloudFormation", 2, "Deploy", StackName="app-prod-stateless"),
        ]},
    ]
    return {"Resources": {"Pipeline": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"Stages": stages}}}}


def alarm(name, *, period=None, evaluation=3, datapoints=None, metrics=None):
    props = {"AlarmName": name, "EvaluationPeriods": evaluation, "Threshold": 1}
    if period is not None:
        props["Period"] = period
    if datapoints is not None:
        props["DatapointsToAlarm"] = datapoints
    if metrics is not None:
        props["Metrics"] = metrics
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": props}


def service_template(*, strategy="ROLLING", tasks=(4, 8), min_percent=50, max_percent=100, bake=0) -> dict:
    dc = {"Strategy": strategy, "MinimumHealthyPercent": min_percent, "MaximumPercent": max_percent,
          "Alarms": {"AlarmNames": ["fast", "math"], "Enable": True, "Rollback": True}}
    if bake:
        dc["BakeTimeInMinutes"] = bake
    if strategy == "CANARY":
        dc["CanaryConfiguration"] = {"CanaryPercent": 10, "CanaryBakeTimeInMinutes": 2}
    return {"Resources": {
        "Service": {"Type": "AWS::ECS::Service", "Properties": {
            "DeploymentConfiguration": dc, "HealthCheckGracePeriodSeconds": 20}},
        "Group": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {
            "HealthCheckIntervalSeconds": 10, "HealthyThresholdCount": 3,
            "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "20"}]}},
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Cpu": "512", "Memory": "1024", "ContainerDefinitions": [{"Name": "web", "StopTimeout": 10}]}},
        "Scaling": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
            "MinCapacity": tasks[0], "MaxCapacity": tasks[1]}},
        "Fast": alarm("fast", period=10, evaluation=3, datapoints=2),
        "Math": alarm("math", evaluation=4, metrics=[
            {"Id": "e", "Expression": "m * 100"},
            {"Id": "m", "MetricStat": {"Metric": {"MetricName": "X"}, "Period": 60, "Stat": "Sum"}}]),
        "Other": alarm("other", period=300, evaluation=1),
        "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {}},
    }}


def stateful_template(*, db_class="db.t4g.micro", multi_az=False) -> dict:
    return {"Resources": {
        "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}},
        "Eip": {"Type": "AWS::EC2::EIP", "Properties": {}},
        "Ecr": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Interface",
                                                                 "SubnetIds": ["a", "b"]}},
        "S3": {"Type": "AWS::EC2::VPCEndpoint", "Properties": {"VpcEndpointType": "Gateway"}},
        "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
        "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {}},
        "Db": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "DBInstanceClass": db_class, "MultiAZ": multi_az, "AllocatedStorage": "20"}},
    }}

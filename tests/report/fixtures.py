"""Small hand-made templates shared by the report tests."""

from __future__ import annotations


def action(name, provider, run_order=1, category="Build", **config):
    return {"Name": name, "RunOrder": run_order, "Configuration": config,
            "ActionTypeId": {"Category": category, "Owner": "AWS", "Provider": provider, "Version": "1"}}


def project(compute_type, image="aws/codebuild/standard:7.0"):
    return {"Type": "AWS::CodeBuild::Project",
            "Properties": {"Environment": {"ComputeType": compute_type, "Image": image, "Type": "LINUX_CONTAINER"}}}


def codebuild(name, project_id, run_order=1):
    return action(name, "CodeBuild", run_order, ProjectName={"Ref": project_id})


def rule(name, provider, **config):
    return {"Name": name, "Configuration": config,
            "RuleTypeId": {"Category": "Rule", "Owner": "AWS", "Provider": provider, "Version": "1"}}


def pipeline_template(*, gate_seconds="300") -> dict:
    """Build and Docker on standard compute, file assets and Verify-dev on Lambda compute; a promotion gate after
    Dev (OnSuccess LambdaInvoke) and a deployment window before Prod (BeforeEntry)."""
    stages = [
        {"Name": "Source", "Actions": [action("Checkout", "CodeStarSourceConnection", category="Source")]},
        {"Name": "Build", "Actions": [codebuild("Build", "BuildProject")]},
        {"Name": "Assets", "Actions": [codebuild("DockerAssets", "DockerProject"),
                                       codebuild("FileAssets", "FileProject")]},
        {"Name": "Dev", "Actions": [
            action("app-dev-stateless.Deploy", "CloudFormation", 1, "Deploy", StackName="app-dev-stateless"),
            codebuild("Verify-dev", "VerifyProject", 2),
        ], "OnSuccess": {"Conditions": [{"Result": "ROLLBACK", "Rules": [
            rule("HealthyForBakeTime", "LambdaInvoke", FunctionName={"Ref": "GateFunction"})]}]}},
        {"Name": "Prod", "Actions": [
            action("Promote-to-prod", "Manual", 1, "Approval"),
            action("app-prod-stateless.Deploy", "CloudFormation", 2, "Deploy", StackName="app-prod-stateless"),
        ], "BeforeEntry": {"Conditions": [{"Result": "FAIL", "Rules": [
            rule("DeploymentWindow", "DeploymentWindow", Cron="* * 9-15 ? * MON-THU *", TimeZone="UTC")]}]}},
    ]
    variables = {"ALARM_NAME": "dev-unhealthy"} | ({"BAKE_SECONDS": gate_seconds} if gate_seconds else {})
    return {"Resources": {
        "Pipeline": {"Type": "AWS::CodePipeline::Pipeline", "Properties": {"Stages": stages}},
        "BuildProject": project("BUILD_GENERAL1_MEDIUM"),
        "DockerProject": project("BUILD_GENERAL1_MEDIUM"),
        "FileProject": project("BUILD_LAMBDA_1GB", "aws/codebuild/amazonlinux-x86_64-lambda-standard:nodejs20"),
        "VerifyProject": project("BUILD_LAMBDA_1GB", "aws/codebuild/amazonlinux-x86_64-lambda-standard:python3.12"),
        "GateFunction": {"Type": "AWS::Lambda::Function",
                         "Properties": {"Environment": {"Variables": variables}}},
    }}


def alarm(name, *, period=None, evaluation=3, datapoints=None, metrics=None):
    props = {"AlarmName": name, "EvaluationPeriods": evaluation, "Threshold": 1}
    if period is not None:
        props["Period"] = period
    if datapoints is not None:
        props["DatapointsToAlarm"] = datapoints
    if metrics is not None:
        props["Metrics"] = metrics
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": props}


def rate_alarm(name, *, per_group, threshold=1):
    """A 5xx-per-requests alarm like the service's: per target group, or for the whole load balancer."""
    dims = [{"Name": "LoadBalancer", "Value": "app/alb/1"}]
    if per_group:
        dims.append({"Name": "TargetGroup", "Value": "targetgroup/green/2"})
    metrics = [{"Id": "e", "Expression": "100 * FILL(t, 0) / IF(FILL(r, 0) > 0, r, 1)", "ReturnData": True}] + [
        {"Id": id_, "MetricStat": {"Metric": {"MetricName": metric, "Dimensions": dims}, "Period": 60, "Stat": "Sum"},
         "ReturnData": False}
        for id_, metric in (("t", "HTTPCode_Target_5XX_Count"), ("r", "RequestCount"))]
    props = alarm(name, evaluation=2, metrics=metrics)
    props["Properties"]["Threshold"] = threshold
    return props


def service_template(*, strategy="ROLLING", tasks=(4, 8), min_percent=50, max_percent=100, bake=0, rates=False,
                     canary_bake=2) -> dict:
    names = ["fast", "math"] + (["lb-rate", "tg-rate"] if rates else [])
    dc = {"Strategy": strategy, "MinimumHealthyPercent": min_percent, "MaximumPercent": max_percent,
          "Alarms": {"AlarmNames": names, "Enable": True, "Rollback": True}}
    if bake:
        dc["BakeTimeInMinutes"] = bake
    if strategy == "CANARY":
        dc["CanaryConfiguration"] = {"CanaryPercent": 10, "CanaryBakeTimeInMinutes": canary_bake}
    rate_alarms = {"LbRate": rate_alarm("lb-rate", per_group=False),
                   "TgRate": rate_alarm("tg-rate", per_group=True)} if rates else {}
    return {"Resources": {
        **rate_alarms,
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

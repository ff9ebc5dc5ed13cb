#!/usr/bin/env python3
"""A moto server (AWS emulator) for the ECS end-to-end tests, with IAM auth on.

Usage: moto_server.py DIR
Listens on 127.0.0.1 on a free port. Within the calls moto serves unauthenticated
(INITIAL_NO_AUTH_ACTION_COUNT, set here before moto is imported) it creates an IAM user
with an allow-all policy and an access key; every later request must be signed with that
key (a wrong secret gets 403 SignatureDoesNotMatch). Then, signed: an ECS cluster, and
the default VPC's subnet and security group. Writes DIR/env (KEY=VALUE lines) and last
DIR/port, then serves until killed.

moto's ECS runs no containers: tasks are metadata. They start RUNNING; here they stay
RUNNING (a time-based transition of a day) until StopTask, instead of moto's default of
advancing one status per DescribeTasks.
"""
import json
import os
import sys
import threading

NO_AUTH_CALLS = 3  # create_user, put_user_policy, create_access_key
os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_CALLS)

import boto3  # noqa: E402
from moto.moto_api import state_manager  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402

REGION = "us-east-1"
CLUSTER = "culvert-e2e"


def main() -> int:
    out = sys.argv[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://127.0.0.1:{port}"

    iam = boto3.client("iam", endpoint_url=url, region_name=REGION,
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="culvert-agent")
    iam.put_user_policy(UserName="culvert-agent", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="culvert-agent")["AccessKey"]

    signed = dict(endpoint_url=url, region_name=REGION, aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"])
    boto3.client("ecs", **signed).create_cluster(clusterName=CLUSTER)
    ec2 = boto3.client("ec2", **signed)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"][0]["GroupId"]
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "time", "seconds": 86400})

    with open(os.path.join(out, "env"), "w", encoding="utf-8") as f:
        f.write(f"MOTO_URL={url}\nAWS_ACCESS_KEY_ID={key['AccessKeyId']}\n"
                f"AWS_SECRET_ACCESS_KEY={key['SecretAccessKey']}\nAWS_REGION={REGION}\n"
                f"ECS_CLUSTER={CLUSTER}\nECS_SUBNET={subnet}\nECS_SECURITY_GROUP={group}\n")
    with open(os.path.join(out, "port.tmp"), "w", encoding="utf-8") as f:
        f.write(f"{port}\n")
    os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
    print(f"moto on {url}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())

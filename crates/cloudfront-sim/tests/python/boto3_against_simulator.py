"""Drives the CloudFront simulator with an unmodified boto3 client and prints what it saw as JSON.

Run by tests/moto_crosscheck.rs (boto3_accepts_the_simulator) with the venv of scripts/python-env:
    python boto3_against_simulator.py ENDPOINT_URL DISTRIBUTION_ID
The simulator must complete invalidations within a few real seconds (the waiter polls every 1 s).
"""

import json
import sys

import boto3
import botocore.config


def main() -> None:
    endpoint, dist = sys.argv[1], sys.argv[2]
    cf = boto3.client(
        "cloudfront",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDSIMULATORTEST",
        aws_secret_access_key="simulator-secret",
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    out = {}

    created = cf.create_invalidation(
        DistributionId=dist,
        InvalidationBatch={"Paths": {"Quantity": 2, "Items": ["/index.html", "/assets/*"]}, "CallerReference": "boto3-1"},
    )
    inv = created["Invalidation"]
    out["create_http_status"] = created["ResponseMetadata"]["HTTPStatusCode"]
    out["location"] = created["Location"]
    out["id"] = inv["Id"]
    out["status"] = inv["Status"]
    out["create_time"] = inv["CreateTime"].isoformat()
    out["paths"] = inv["InvalidationBatch"]["Paths"]["Items"]
    out["caller_reference"] = inv["InvalidationBatch"]["CallerReference"]

    # The real waiter: its acceptor matches Invalidation.Status == "Completed".
    cf.get_waiter("invalidation_completed").wait(
        DistributionId=dist, Id=inv["Id"], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    out["status_after_wait"] = cf.get_invalidation(DistributionId=dist, Id=inv["Id"])["Invalidation"]["Status"]

    replay = cf.create_invalidation(
        DistributionId=dist,
        InvalidationBatch={"Paths": {"Quantity": 2, "Items": ["/index.html", "/assets/*"]}, "CallerReference": "boto3-1"},
    )
    out["replay_id"] = replay["Invalidation"]["Id"]

    for i in range(4):
        cf.create_invalidation(
            DistributionId=dist,
            InvalidationBatch={"Paths": {"Quantity": 1, "Items": [f"/page-{i}.html"]}, "CallerReference": f"boto3-p{i}"},
        )
    pages = list(
        cf.get_paginator("list_invalidations").paginate(DistributionId=dist, PaginationConfig={"PageSize": 2})
    )
    out["pages"] = len(pages)
    out["listed_ids"] = [s["Id"] for p in pages for s in p["InvalidationList"].get("Items", [])]

    errors = {}
    try:
        cf.get_distribution(Id="ENOSUCHDIST")
    except cf.exceptions.NoSuchDistribution as e:
        errors["get_distribution_unknown"] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    try:
        cf.create_invalidation(
            DistributionId=dist,
            InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/app.*.js"]}, "CallerReference": "boto3-bad"},
        )
    except cf.exceptions.InvalidArgument as e:
        errors["invalid_path"] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    try:
        cf.create_invalidation(
            DistributionId=dist,
            InvalidationBatch={"Paths": {"Quantity": 3001, "Items": [f"/{i}" for i in range(3001)]}, "CallerReference": "boto3-big"},
        )
    except cf.exceptions.BatchTooLarge as e:
        errors["batch_too_large"] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    try:
        cf.get_invalidation(DistributionId=dist, Id="INOSUCHINVALID")
    except cf.exceptions.NoSuchInvalidation as e:
        errors["no_such_invalidation"] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    out["errors"] = errors

    dist_out = cf.get_distribution(Id=dist)
    out["etag"] = dist_out["ETag"]
    out["distribution_status"] = dist_out["Distribution"]["Status"]

    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Drives the simulator's distribution tenant operations and tag items with unmodified boto3.

Run by tests/moto_crosscheck.rs (boto3_uses_the_tenant_operations_and_tags) with the venv of
scripts/python-env:
    python boto3_tenants_and_tags.py ENDPOINT_URL DISTRIBUTION_ID TENANT_ID
Tag-only invalidations must complete within a few real seconds (the waiter polls every 1 s).
"""

import json
import sys

import boto3
import botocore.config
import botocore.exceptions


def error(call):
    try:
        call()
    except botocore.exceptions.ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
    return None


def main() -> None:
    endpoint, dist, tenant = sys.argv[1], sys.argv[2], sys.argv[3]
    cf = boto3.client(
        "cloudfront",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDSIMULATORTEST",
        aws_secret_access_key="simulator-secret",
        config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    out = {}
    batch = {"Paths": {"Quantity": 1, "Items": ["#product:electronics"]}, "CallerReference": "tenant-1"}
    created = cf.create_invalidation_for_distribution_tenant(Id=tenant, InvalidationBatch=batch)
    inv = created["Invalidation"]
    out["create_http_status"] = created["ResponseMetadata"]["HTTPStatusCode"]
    out["location"] = created["Location"]
    out["id"] = inv["Id"]
    out["status"] = inv["Status"]
    out["paths"] = inv["InvalidationBatch"]["Paths"]["Items"]

    # botocore's own waiter for tenants: GetInvalidationForDistributionTenant until Completed.
    cf.get_waiter("invalidation_for_distribution_tenant_completed").wait(
        DistributionTenantId=tenant, Id=inv["Id"], WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    got = cf.get_invalidation_for_distribution_tenant(DistributionTenantId=tenant, Id=inv["Id"])
    out["status_after_wait"] = got["Invalidation"]["Status"]
    replay = cf.create_invalidation_for_distribution_tenant(Id=tenant, InvalidationBatch=batch)
    out["replay_id"] = replay["Invalidation"]["Id"]

    listed = cf.list_invalidations_for_distribution_tenant(Id=tenant, MaxItems=10)
    out["tenant_listed"] = [s["Id"] for s in listed["InvalidationList"].get("Items", [])]
    own = cf.list_invalidations(DistributionId=dist)
    out["distribution_listed"] = [s["Id"] for s in own["InvalidationList"].get("Items", [])]

    errors = {}
    unknown = "dt_0000000000000000000000000"
    errors["create_unknown_tenant"] = error(
        lambda: cf.create_invalidation_for_distribution_tenant(Id=unknown, InvalidationBatch=batch)
    )
    errors["get_unknown_tenant"] = error(
        lambda: cf.get_invalidation_for_distribution_tenant(DistributionTenantId=unknown, Id=inv["Id"])
    )
    errors["list_unknown_tenant"] = error(lambda: cf.list_invalidations_for_distribution_tenant(Id=unknown))
    errors["tenant_invalidation_via_distribution"] = error(
        lambda: cf.get_invalidation(DistributionId=dist, Id=inv["Id"])
    )
    errors["malformed_tag"] = error(
        lambda: cf.create_invalidation(
            DistributionId=dist,
            InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["#a,b"]}, "CallerReference": "bad-tag"},
        )
    )
    try:
        cf.create_invalidation_for_distribution_tenant(Id=unknown, InvalidationBatch=batch)
    except cf.exceptions.EntityNotFound:
        errors["modelled_exception"] = "EntityNotFound"
    out["errors"] = errors
    print(json.dumps(out))


if __name__ == "__main__":
    main()

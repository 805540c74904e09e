"""The Dagster resource that opens flow locations: local folders, or S3 through dagster-aws."""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from glueflow_dagster.core.storage import Storage, open_storage


class StorageResource(ConfigurableResource):
    """Opens a location URI as a `Storage`; S3 clients come from dagster-aws's S3Resource.

    boto3 honours AWS_ENDPOINT_URL, so any S3-compatible server works without code changes;
    `s3.max_attempts` sets botocore's retries for transient S3 errors.
    """

    s3: S3Resource = Field(default_factory=lambda: S3Resource(max_attempts=5))

    def open(self, uri: str) -> Storage:
        return open_storage(uri, s3_client_factory=self.s3.get_client)

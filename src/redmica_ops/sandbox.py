"""An embedded AWS endpoint (moto's server) for demos and tests: no AWS account needed.

It serves the AWS APIs on 127.0.0.1 from this process's memory; everything is gone when it
stops. The credentials it exports are moto's fixed fakes, not secrets.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

from redmica_ops.errors import UsageError

DEFAULT_BUCKET = "redmica-config"
DEFAULT_REGION = "us-east-1"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@dataclass
class Sandbox:
    server: Any
    endpoint_url: str
    bucket: str
    region: str

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "REDMICA_BUCKET": self.bucket,
        }

    def export_lines(self) -> list[str]:
        return [f"export {name}={value}" for name, value in self.environment().items()]

    def stop(self) -> None:
        self.server.stop()


def start_sandbox(
    host: str = "127.0.0.1",
    port: int = 0,
    bucket: str = DEFAULT_BUCKET,
    region: str = DEFAULT_REGION,
) -> Sandbox:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise UsageError(
            "the sandbox needs moto's server",
            "install the extra: pip install 'redmica-ops[sandbox]'",
        ) from None
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    # moto announces itself on stdout; stdout is for the export lines only.
    with contextlib.redirect_stdout(sys.stderr):
        server.start()
    bound_host, bound_port = server.get_host_and_port()
    endpoint = f"http://{bound_host}:{bound_port}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return Sandbox(server, endpoint, bucket, region)

"""Connecting to BigQuery: endpoints, credentials, bounded retries, and errors a person can act on.

One small picklable :class:`BigQueryConnection` says *where* BigQuery is; clients are built from it
where they are used (the driver at pipeline edges, ``DoFn.setup()`` on workers), never pickled.

* Production: Application Default Credentials (``gcloud auth application-default login``, a
  service account on Dataflow, or ``GOOGLE_APPLICATION_CREDENTIALS``).
* An emulator (``bqemulator``) or any other endpoint: ``endpoint`` (REST, e.g.
  ``http://127.0.0.1:9050``) and ``storage_endpoint`` (Storage Read gRPC, ``127.0.0.1:9060``),
  from flags or ``TOUCHLINE_BIGQUERY_ENDPOINT`` / ``TOUCHLINE_BIGQUERY_STORAGE_ENDPOINT``. Anonymous
  credentials are used only then, and the gRPC channel is plain text only then.

Every anticipated failure (endpoint unreachable, no credentials, permission denied, missing
dataset or table) becomes a :class:`BigQueryError` whose message names the problem and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .warehouse import WarehouseError

ENDPOINT_ENV = "TOUCHLINE_BIGQUERY_ENDPOINT"
STORAGE_ENDPOINT_ENV = "TOUCHLINE_BIGQUERY_STORAGE_ENDPOINT"
LOCATION_ENV = "TOUCHLINE_BIGQUERY_LOCATION"
SCOPES = ("https://www.googleapis.com/auth/bigquery", "https://www.googleapis.com/auth/cloud-platform")

#: Seconds one metadata call (get a dataset/table) may take before it is reported, not retried forever.
PROBE_TIMEOUT = 10.0
#: Overall deadline for retrying transient server errors (5xx, 429) of metadata calls.
PROBE_DEADLINE = 30.0


class BigQueryError(WarehouseError):
    """A BigQuery problem a person can fix; the message says what and how."""


@dataclass(frozen=True)
class BigQueryConnection:
    """Where BigQuery is and how to reach it. Small and picklable: no client inside."""

    project: str
    location: str | None = None
    endpoint: str | None = None
    storage_endpoint: str | None = None

    @classmethod
    def resolve(cls, project: str, location: str | None = None, endpoint: str | None = None,
                storage_endpoint: str | None = None) -> "BigQueryConnection":
        """Fill what was not given from the environment (TOUCHLINE_BIGQUERY_*). Call at the driver:
        the resolved values travel to workers inside the (pickled) connection."""
        return cls(
            project=project,
            location=location or os.environ.get(LOCATION_ENV) or None,
            endpoint=(endpoint or os.environ.get(ENDPOINT_ENV) or "").rstrip("/") or None,
            storage_endpoint=storage_endpoint or os.environ.get(STORAGE_ENDPOINT_ENV) or None,
        )

    # -- description ---------------------------------------------------------------------------
    @property
    def emulated(self) -> bool:
        return self.endpoint is not None

    def where(self) -> str:
        return f"the BigQuery endpoint {self.endpoint}" if self.endpoint else f"BigQuery (project {self.project})"

    # -- clients ---------------------------------------------------------------------------------
    def credentials(self):
        if self.endpoint:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError, GoogleAuthError

        try:
            credentials, _ = google.auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError as exc:
            path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            problem = (f"GOOGLE_APPLICATION_CREDENTIALS points to {path}, which cannot be used ({exc})" if path
                       else "no Google credentials found for BigQuery")
            raise BigQueryError(
                f"{problem}\n  fix: run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
                f"to a service-account key file; for a local emulator pass --bigquery_endpoint http://HOST:PORT"
            ) from None
        except GoogleAuthError as exc:
            raise BigQueryError(f"Google credentials cannot be loaded: {exc}\n  fix: refresh them with "
                                f"`gcloud auth application-default login`") from None
        return credentials

    def client(self):
        """A ``google.cloud.bigquery.Client`` (create in setup()/at the driver; never pickle it)."""
        from google.cloud import bigquery

        options = {"api_endpoint": self.endpoint} if self.endpoint else None
        return bigquery.Client(project=self.project, credentials=self.credentials(), location=self.location,
                               client_options=options)

    def read_client(self):
        """A Storage Read API client (``BigQueryReadClient``)."""
        from google.cloud import bigquery_storage_v1

        if self.endpoint:
            if not self.storage_endpoint:
                raise BigQueryError(
                    f"reading from {self.where()} needs its Storage Read (gRPC) endpoint\n"
                    f"  fix: pass --bigquery_storage_endpoint HOST:PORT (or set {STORAGE_ENDPOINT_ENV})"
                )
            import grpc
            from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

            target = self.storage_endpoint.removeprefix("http://").removeprefix("grpc://")
            channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 256 << 20)])
            return bigquery_storage_v1.BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
        if self.storage_endpoint:
            return bigquery_storage_v1.BigQueryReadClient(
                credentials=self.credentials(), client_options={"api_endpoint": self.storage_endpoint})
        return bigquery_storage_v1.BigQueryReadClient(credentials=self.credentials())


def probe_retry():
    """Retry transient server errors (5xx, 429) of metadata calls for a bounded time; a refused
    connection or a DNS failure is reported at once (retrying it only delays the message)."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry

    transient = (gexc.InternalServerError, gexc.BadGateway, gexc.ServiceUnavailable, gexc.GatewayTimeout,
                 gexc.TooManyRequests)
    return Retry(predicate=lambda exc: isinstance(exc, transient), initial=0.5, maximum=5.0, timeout=PROBE_DEADLINE)


def describe(exc: BaseException, conn: BigQueryConnection, what: str, fix_not_found: str = "") -> BigQueryError:
    """Turn a client exception into a BigQueryError naming the problem and the fix."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, BigQueryError):
        return exc
    try:
        import requests

        network = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover -- requests comes with google-cloud-bigquery
        network = ()
    if isinstance(exc, network) or isinstance(exc, (ConnectionError, TimeoutError)):
        cause = "connection refused" if "refused" in str(exc).lower() else ("timed out" if "timeout" in str(exc).lower() or "timed out" in str(exc).lower() else type(exc).__name__)
        fix = ("start the emulator or correct --bigquery_endpoint" if conn.endpoint
               else "check the network (proxy, VPC egress) and that bigquery.googleapis.com is reachable")
        return BigQueryError(f"cannot reach {conn.where()} while trying to {what} ({cause})\n  fix: {fix}")
    if isinstance(exc, gexc.NotFound):
        return BigQueryError(f"{what}: not found ({_message(exc)})" + (f"\n  fix: {fix_not_found}" if fix_not_found else ""))
    if isinstance(exc, (gexc.Forbidden, gexc.Unauthorized)):
        return BigQueryError(
            f"{what}: permission denied ({_message(exc)})\n  fix: grant the account running Touchline "
            f"roles/bigquery.dataEditor on the dataset and roles/bigquery.jobUser on project {conn.project}")
    if isinstance(exc, gexc.GoogleAPICallError):
        return BigQueryError(f"{what} failed: {_message(exc)}")
    from google.auth.exceptions import GoogleAuthError

    if isinstance(exc, GoogleAuthError):
        return BigQueryError(f"{what}: Google credentials were refused ({exc})\n  fix: refresh them with "
                             f"`gcloud auth application-default login` or use a valid service-account key")
    return BigQueryError(f"{what} failed: {type(exc).__name__}: {exc}")


def _message(exc: Any) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.split("\n", 1)[0]


def parse_table(ref: str) -> tuple[str, str, str]:
    """``PROJECT.DATASET.TABLE`` (or ``PROJECT:DATASET.TABLE``) -> its three parts."""
    parts = ref.replace(":", ".", 1).split(".")
    if len(parts) != 3 or not all(parts):
        raise BigQueryError(f"{ref!r} is not a BigQuery table\n  fix: write it as PROJECT.DATASET.TABLE")
    return parts[0], parts[1], parts[2]

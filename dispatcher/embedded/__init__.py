"""Redis and Postgres servers started on demand under the data directory, private to their user."""

from dispatcher.embedded.postgres import EmbeddedPostgres
from dispatcher.embedded.valkey import EmbeddedRedis

__all__ = ["EmbeddedPostgres", "EmbeddedRedis"]

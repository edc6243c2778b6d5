#!/bin/sh
# The warehouse lives in its own database (WAREHOUSE_DB) beside the Dagster instance's.
# Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d).
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${WAREHOUSE_DB:-warehouse}\""

#!/usr/bin/env bash
# The dagster CLI on a throwaway instance: exit 0 on clean data, non-zero when a blocking check
# fails. 2026-11-10 carries a synthetic incident (orders' unit prices tripled) that the blocking
# anomaly check of orders_clean catches once it has 8 days of history.
set -uo pipefail
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export DAGSTER_HOME="$WORK/home"
mkdir -p "$DAGSTER_HOME"
export DATA_PLATFORM_WAREHOUSE_URL="sqlite:///$WORK/warehouse.db"
export DATA_PLATFORM_MODEL_DIR="$WORK/models"
export DATA_PLATFORM_RECOMMENDER_BUDGET_S=1
ORDERS="orders_raw,orders_rejected,orders_clean,orders_quarantine"

data-platform demo --days 8 --end 2026-11-09 > "$WORK/history.log" || { cat "$WORK/history.log"; exit 1; }

dagster job execute -m data_platform.definitions -j dimensions_job > "$WORK/job.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { tail -40 "$WORK/job.log"; echo "dagster job execute on clean data exited $rc"; exit 1; }

dagster asset materialize -m data_platform.definitions --select "$ORDERS" --partition 2026-11-09 > "$WORK/clean.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] || { tail -40 "$WORK/clean.log"; echo "materialize of a clean partition exited $rc"; exit 1; }

dagster asset materialize -m data_platform.definitions --select "$ORDERS" --partition 2026-11-10 > "$WORK/incident.log" 2>&1
rc=$?
[ "$rc" -ne 0 ] || { tail -40 "$WORK/incident.log"; echo "materialize of the incident partition exited 0"; exit 1; }
grep -q "blocking asset check failed" "$WORK/incident.log" || { tail -40 "$WORK/incident.log"; echo "the failure was not the blocking check"; exit 1; }
echo "dagster CLI exit codes ok: clean 0, blocking check failure $rc"

#!/usr/bin/env bash
# Create the study once, then start one worker per GPU as a Slurm array.
#
#   GPUS=64 DATA=/shared/chest.npz STUDY=chest \
#   AUTOMED_DB=postgresql://automed@dbhost/automed [USE_PROXY=1] ./submit.sh [automed search options]
#
# USE_PROXY=1 (advised past ~30 GPUs) first starts proxy.sbatch and routes the workers through it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${GPUS:?set GPUS: how many workers (one GPU each)}"
: "${DATA:?set DATA: the dataset path, readable from every node}"
: "${STUDY:?set STUDY: the study name}"
: "${AUTOMED_DB:?set AUTOMED_DB: the PostgreSQL URL of the study database}"
automed="${AUTOMED:-automed}"

storage="$AUTOMED_DB"
if [[ "${USE_PROXY:-0}" == 1 ]]; then
  export AUTOMED_PROXY_FILE="${AUTOMED_PROXY_FILE:-$PWD/automed-proxy-$STUDY.url}"
  rm -f "$AUTOMED_PROXY_FILE"
  sbatch --parsable --export=ALL "$here/proxy.sbatch" >/dev/null
  for _ in $(seq 1 "${PROXY_WAIT:-600}"); do
    [[ -s "$AUTOMED_PROXY_FILE" ]] && break
    sleep 1
  done
  [[ -s "$AUTOMED_PROXY_FILE" ]] || { echo "the proxy job did not start; see squeue" >&2; exit 1; }
  storage="$(cat "$AUTOMED_PROXY_FILE")"
fi

# 1. Created once: schema, dataset, search and Optuna study, before any worker starts.
# The heartbeat is the study's (every worker beats and judges staleness alike); busy GPU nodes
# want a longer one than the 10 s default.
# (AUTOMED_RESULTS_DB is the workers' alone: automed refuses it without a grpc:// storage)
env -u AUTOMED_RESULTS_DB "$automed" search "$DATA" --workers 0 --study "$STUDY" --storage "$AUTOMED_DB" \
  --heartbeat "${AUTOMED_HEARTBEAT:-30}" "$@"
# 2. Joined by many: one array task per GPU.
exec sbatch --array="0-$((GPUS - 1))" \
  --export="ALL,STUDY=$STUDY,AUTOMED_STORAGE=$storage" \
  "$here/worker.sbatch"

#!/usr/bin/env bash
# Webhook → rollback PATCH latency, one webhook at a time, against the fake
# API server (fakekube, in the harness's process). Each webhook carries one
# critical alert (rule service-down: immediate rollback, no hold) for a
# Deployment of its own; the namespace and cluster rate limits are raised
# (bench/rules) so hundreds of rollbacks pass.
#
#   bash bench/patch-latency.sh [SAMPLES] [WARMUP]
. "$(dirname "$0")/lib.sh"
bench patch-latency --samples "${1:-500}" --warmup "${2:-50}" --rules bench/rules

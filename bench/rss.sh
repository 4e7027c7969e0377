#!/usr/bin/env bash
# Resident memory of `rollbackd serve` (release) idle, then during a storm of
# WEBHOOKS × ALERTS alerts posted CONCURRENCY at a time, with the shipped
# rules and guard, against 200 Deployments in the fake API server.
#
#   bash bench/rss.sh [WEBHOOKS] [ALERTS] [CONCURRENCY] [--ignored]
#
# --ignored: every alert at severity warning, which no shipped rule matches
# (no cluster call): the memory of intake, journal and worker batches alone.
. "$(dirname "$0")/lib.sh"
bench rss --webhooks "${1:-1000}" --alerts "${2:-10}" --concurrency "${3:-32}" --rules rules "${@:4}"

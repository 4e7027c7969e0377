#!/usr/bin/env bash
# Start to ready: spawn of `rollbackd serve` (release) to the first 200 from
# GET /readyz, RUNS times with a fresh journal, then RUNS times with a journal
# already holding JOURNAL_WEBHOOKS processed webhooks.
#
#   bash bench/start.sh [RUNS] [JOURNAL_WEBHOOKS]
. "$(dirname "$0")/lib.sh"
bench start --runs "${1:-20}" --journal-webhooks "${2:-10000}" --rules rules

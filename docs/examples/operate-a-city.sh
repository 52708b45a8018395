#!/usr/bin/env bash
# Onboard a new city on a running server, from the repo root, after the quick start:
#   bash docs/examples/operate-a-city.sh            (the server of the quick start)
#   BASE=http://host:port bash docs/examples/operate-a-city.sh
# "Lakeside" is the invented city of docs/examples/lakeside-gtfs (a small GTFS feed: metro
# lines M1 and M2 meeting at "hub", bus line B7). tests/e2e/test_operate_a_city.py runs this
# script against a live server, so every command here works as written.
set -euo pipefail
BASE=${BASE:-http://127.0.0.1:5000}
FLASK=${FLASK:-.venv/bin/flask --app app}
CITY=${CITY:-lakeside}
FEED=${FEED:-docs/examples/lakeside-gtfs}
LAUNCH=$(TZ=Asia/Shanghai date -d yesterday +%F)    # the city went live yesterday, local time
NOW=$(date -u +%FT%TZ)

# 1. An admin token (the identity service issues these in production).
ADMIN=$($FLASK token --sub ops --role admin)

# 2. The city's network, from its operator's GTFS feed (a zip or a folder). Each import is a
#    new version; events keep the version they were measured on.
$FLASK import-gtfs --city "$CITY" --version 2026-12 --reason "launch" "$FEED"

# 3. The city's factor versions. A city's FIRST version of a mode may start in the past (here:
#    launch day, local midnight) as long as no event of that city and mode exists; every
#    later version must start in the future. Factors name their source and unit.
curl -sS --fail-with-body -X POST "$BASE/v1/admin/factor-versions" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"city": "'$CITY'", "mode": "metro", "version": "ls-1", "kind": "net",
       "effective_from": "'$LAUNCH'T00:00:00+08:00", "reason": "launch",
       "factors": [{"name": "net_g_per_pkm", "value": "78.4", "unit": "g CO2/person-km",
                    "source": "Wuhan, 78.4 g per metro km (2025 reporting), as an example",
                    "policy": false}]}'
echo
curl -sS --fail-with-body -X POST "$BASE/v1/admin/factor-versions" \
  -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
  -d '{"city": "'$CITY'", "mode": "bus", "version": "ls-1", "kind": "net",
       "effective_from": "'$LAUNCH'T00:00:00+08:00", "reason": "launch",
       "factors": [{"name": "net_g_per_pkm", "value": "26.9", "unit": "g CO2/person-km",
                    "source": "Shenzhen methodology (2021), battery-electric bus fleet",
                    "policy": false},
                   {"name": "default_trip_m", "value": "3000", "unit": "m",
                    "source": "operator policy: tap-on-only rides on lines without an average trip",
                    "policy": true}]}'
echo
curl -sS "$BASE/v1/admin/factor-versions?city=$CITY" -H "Authorization: Bearer $ADMIN"
echo

# 4. A rider's first trip, made yesterday morning: West End to the hub on M1.
RIDER=$($FLASK token --sub rider-1 --city "$CITY")
#    The rider first accepts the privacy notice (GET /v1/privacy-notice shows it): events
#    are refused without that consent (CONSENT_REQUIRED, README "Personal data").
curl -sS --fail-with-body -X POST "$BASE/v1/me/consents" \
  -H "Authorization: Bearer $RIDER" -H 'Content-Type: application/json' \
  -d '{"notice_version": "2026-12"}'
echo
curl -sS --fail-with-body -X POST "$BASE/v1/events" \
  -H "Authorization: Bearer $RIDER" -H 'Content-Type: application/json' \
  -d '{"event_id": "first-trip", "mode": "metro", "city": "'$CITY'",
       "entry_station_id": "m1-west", "exit_station_id": "hub",
       "started_at": "'$LAUNCH'T08:00:00+08:00", "ended_at": "'$LAUNCH'T08:12:00+08:00"}'
echo

# 5. A partner (the city's environment bureau) reads the reduction report. With fewer than
#    REPORT_MIN_PARTICIPANTS (10) riders a cell is suppressed; an admin token sees it all.
PARTNER=$($FLASK token --sub eco-bureau --role partner --city "$CITY" --ttl 86400)
curl -sS --fail-with-body "$BASE/v1/reports/reduction?from=$LAUNCH&to=$LAUNCH&granularity=day" \
  -H "Authorization: Bearer $PARTNER"
echo
curl -sS --fail-with-body "$BASE/v1/reports/reduction?city=$CITY&from=$LAUNCH&to=$LAUNCH" \
  -H "Authorization: Bearer $ADMIN"
echo
# 6. Every step above is in the audit log.
curl -sS --fail-with-body "$BASE/v1/admin/audit" -H "Authorization: Bearer $ADMIN" | head -c 400
echo
echo "onboarded $CITY at $NOW"

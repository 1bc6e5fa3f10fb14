#!/usr/bin/env bash
# Makes the database an upgrade test opens: a small SQLite database written by
# the `corral` binary given (a released one), through its own CLI and HTTP API,
# and the answers that binary gave about it, as JSON files beside it.
#
#   scripts/upgrade-fixture.sh BINARY OUT_DIR
#
# OUT_DIR gets:
#   corral.db                   the database, closed cleanly (no -wal file)
#   corral.db-checkpoints/      the checkpoint the server wrote when it stopped
#   site.json                   the site's credentials (its secret is stored hashed)
#   answers/manifest.json       [{"path": "/api/v1/…", "file": "NAME.json"}, …]
#   answers/*.json              what each path answered
#   release.txt                 `BINARY --version` and the binary's SHA-256
#
# OUT_DIR is tests/fixtures/upgrade/<commit the binary was built from>/, and
# tests/api/upgrade.rs lists it in RELEASES. That test copies OUT_DIR, starts this release on it and asks every
# path of the manifest again. Everything here is time-independent (events carry
# their dates, no relative windows), so the answers do not move with the clock.
# Only loopback is contacted: the webhook points at 127.0.0.1:9, where nothing
# answers, so its notification waits in the outbox.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 BINARY OUT_DIR" >&2
    exit 2
fi
bin=$(realpath "$1")
out=$2
rm -rf "$out"
mkdir -p "$out/answers"
out=$(realpath "$out")
unset CORRAL_CONFIG CORRAL_CHECKPOINT_DIR
# FIXTURE_POSTGRES=postgres://…/DB (an empty database) makes the fixture on
# PostgreSQL instead: the database is then kept as a plain SQL dump,
# corral.sql, in place of corral.db.
db=${FIXTURE_POSTGRES:-sqlite://$out/corral.db}
if [[ $db == postgres* ]]; then
    export CORRAL_CHECKPOINT_DIR=$out/corral.db-checkpoints
fi
export CORRAL_DATABASE_URL=$db

{ "$bin" --version; sha256sum "$bin" | cut -d' ' -f1; } >"$out/release.txt"
"$bin" site create Shop --json >"$out/site.json"
read -r site pk sk < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$out/site.json")
# A second key pair, and a third that is revoked.
"$bin" key create --site "$site" --json >/dev/null
revoked=$("$bin" key create --site "$site" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["publishable_key"])')
"$bin" key revoke "$revoked" >/dev/null

log=$out/serve.log
"$bin" serve --listen 127.0.0.1:0 --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 \
    --allow-private-webhook-targets --log-format json --log-level info >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
base=
for _ in $(seq 200); do
    base=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    address = entry.get("fields", {}).get("address") or entry.get("address")
    if address:
        print("http://" + address)
        break' "$log")
    [[ -n $base ]] && break
    sleep 0.1
done
[[ -n $base ]] || { cat "$log" >&2; exit 1; }

call() { # METHOD PATH [BODY]: the answer, failing on a non-2xx
    local sep='?'
    [[ $2 == *'?'* ]] && sep='&'
    local answer
    if ! answer=$(curl -sS --fail-with-body -u "$pk:$sk" -X "$1" -H 'content-type: application/json' \
        "$base/api/v1$2${sep}site_uuid=$site" ${3:+-d "$3"}); then
        echo "$1 $2: $answer" >&2
        return 1
    fi
    printf '%s\n' "$answer"
}
id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])'; }

# The audience: subscribers with tags and fields, events with their dates,
# purchases, an unsubscribe, a changed email.
call POST /batch/subscribers '{"subscribers": [
  {"email": "ada@example.com", "tags": "vip, newsletter", "first_name": "Ada", "plan": "pro", "company_size": 120},
  {"email": "grace@example.com", "tags": "newsletter", "first_name": "Grace", "plan": "free", "company_size": 8},
  {"email": "linus@example.com", "tags": "agency", "plan": "pro", "company_size": 60},
  {"email": "margaret@example.com", "first_name": "Margaret", "beta": true},
  {"email": "ken@example.com", "tags": "vip", "plan": "team"},
  {"email": "barbara@example.com", "tags": "newsletter, agency", "company_size": 51}]}' >/dev/null
call POST /batch/events '{"events": [
  {"type": "login", "email": "ada@example.com", "date": "2026-10-01T10:00:00Z"},
  {"type": "login", "email": "ada@example.com", "date": "2026-10-02T10:00:00Z"},
  {"type": "login", "email": "ada@example.com", "date": "2026-10-03T10:00:00Z"},
  {"type": "login", "email": "grace@example.com", "date": "2026-10-04T10:00:00Z"},
  {"type": "login", "email": "linus@example.com", "date": "2026-09-01T08:30:00Z", "details": {"device": "cli"}},
  {"type": "$purchase", "email": "ada@example.com", "date": "2026-10-05T12:00:00Z",
   "details": {"unique": {"key": "order-1"}, "value": {"currency": "USD", "amount": 30000}}},
  {"type": "$purchase", "email": "ken@example.com", "date": "2026-10-06T12:00:00Z",
   "details": {"unique": {"key": "order-2"}, "value": {"currency": "USD", "amount": 4500}}},
  {"type": "$purchase", "email": "ken@example.com", "date": "2026-10-07T12:00:00Z",
   "details": {"unique": {"key": "order-3"}, "value": {"currency": "USD", "amount": 1.10}}},
  {"type": "$tag", "email": "margaret@example.com", "date": "2026-10-08T09:00:00Z", "details": {"tag": "vip"}},
  {"type": "$unsubscribe", "email": "grace@example.com", "date": "2026-10-09T09:00:00Z"},
  {"type": "page_view", "email": "new@example.com", "date": "2026-10-10T09:00:00Z",
   "details": {"path": "/pricing", "ratio": 12345678901234567890}, "fields": {"source": "ad"}}]}' >/dev/null
call POST /fetch/commands '{"command": [
  {"command": "add_field", "email": "linus@example.com", "query": {"key": "city", "value": "Helsinki"}},
  {"command": "remove_tag", "email": "barbara@example.com", "query": "agency"},
  {"command": "change_email", "email": "ken@example.com", "query": "kenneth@example.com"},
  {"command": "unsubscribe", "email": "barbara@example.com"}]}' >/dev/null

segment() { call POST /fetch/segments "{\"segment\": $1}" | id_of; }
vip=$(segment '{"name": "VIP", "description": "Tagged vip", "visitor_event_query": {"tag": {"has": "vip"}}}')
pro=$(segment '{"name": "Pro plan", "visitor_event_query": {"field": {"key": "plan", "equals": "pro"}}}')
segment '{"name": "agency leads", "visitor_event_query": {"groups": [
  {"filters": [{"field": {"key": "company_size", "more_than": 50}}]},
  {"filters": [{"tag": {"has": "agency"}}]}]}}' >/dev/null
segment '{"name": "Frequent", "visitor_event_query": {"event": {"type": "login", "count": {"at_least": 2}}}}' >/dev/null
segment '{"name": "Spenders", "visitor_event_query": {"event": {"type": "$purchase",
  "sum": {"of": "value.amount", "more_than": 4000}}}}' >/dev/null
segment '{"name": "Example people", "visitor_event_query": {"all": [
  {"email": {"ends_with": "@example.com"}}, {"subscribed": true}]}}' >/dev/null
segment "{\"name\": \"VIP outside pro\", \"visitor_event_query\": {\"all\": [{\"segment\": {\"member_of\": \"$vip\"}}, {\"segment\": {\"not_member_of\": \"$pro\"}}]}}" >/dev/null
segment '{"name": "Imported from elsewhere", "visitor_event_query": {"foreign": {"any": [1, 2.50, "x"]}}}' >/dev/null
gone=$(segment '{"name": "Old campaign", "visitor_event_query": {"tag": {"has": "newsletter"}}}')
call DELETE "/fetch/segments/$gone" >/dev/null
call PATCH "/fetch/segments/$pro" '{"segment": {"description": "Paying for pro"}}' >/dev/null

# A webhook watching VIP, and a change it is told about (waiting: nothing
# listens at its address).
webhook=$(call POST /fetch/webhooks "{\"webhook\": {\"url\": \"http://127.0.0.1:9/hooks\", \"segment_ids\": [\"$vip\"]}}" | id_of)
sleep 2 # the baseline is taken; the next change is a notification
call POST /fetch/commands '{"command": {"command": "add_tag", "email": "linus@example.com", "query": "VIP"}}' >/dev/null
for _ in $(seq 100); do
    waiting=$(call GET "/fetch/webhooks/$webhook/deliveries" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))')
    [[ $waiting -ge 1 ]] && break
    sleep 0.1
done
[[ $waiting -ge 1 ]] || { echo "no notification was written" >&2; exit 1; }

# The answers.
manifest=()
record() { # NAME PATH
    call GET "$2" >"$out/answers/$1.json"
    manifest+=("{\"path\": \"/api/v1$2\", \"file\": \"$1.json\"}")
}
record segments /fetch/segments
record segments-discarded '/fetch/segments?state=discarded'
record site-stats /stats/site
record tags /fetch/tags
record fields /fetch/fields
record webhooks /fetch/webhooks
record "webhook-$webhook" "/fetch/webhooks/$webhook"
record "deliveries-$webhook" "/fetch/webhooks/$webhook/deliveries"
for id in $(call GET /fetch/segments | python3 -c '
import json, sys
for s in json.load(sys.stdin)["data"]:
    if "foreign" not in s["attributes"]["visitor_event_query"]:
        print(s["id"])'); do
    record "segment-$id" "/fetch/segments/$id"
    record "stats-$id" "/stats/segment?segment_id=$id"
    record "members-$id" "/fetch/segments/$id/members?limit=100"
done
for email in ada@example.com grace@example.com kenneth@example.com ken@example.com \
    barbara@example.com new@example.com linus@example.com; do
    name=${email%@*}
    record "subscriber-$name" "/fetch/subscribers?email=$email"
    if [[ $name != ken ]]; then
        record "subscriber-segments-$name" "/fetch/subscribers/segments?email=$email"
        record "subscriber-events-$name" "/fetch/subscribers/events?email=$email&limit=100"
    fi
done
(IFS=,; echo "[${manifest[*]}]") | python3 -m json.tool >"$out/answers/manifest.json"

# Stopped as an operator stops it: the checkpoint is written, the database
# closed.
kill -TERM "$server"
wait "$server" || true
trap - EXIT
rm -f "$log"
if [[ $db == postgres* ]]; then
    # Rows as INSERTs (no COPY blocks) and no psql commands, so that any
    # client can run it.
    pg_dump --inserts --no-owner --no-privileges "$db" | grep -v '^\\' >"$out/corral.sql"
fi
[[ ! -e $out/corral.db-wal ]] || { echo "the database was not closed cleanly" >&2; exit 1; }
ls "$out"/corral.db-checkpoints/*.ckpt >/dev/null
echo "fixture in $out ($(du -sh "$out" | cut -f1))"

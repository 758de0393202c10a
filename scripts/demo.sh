#!/usr/bin/env bash
# The operator story end to end, against the embedded sandbox (no AWS account needed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

work="$(mktemp -d)"
sandbox_pid=""
cells_pid=""
cleanup() {
  if [ -n "$sandbox_pid" ]; then kill -TERM "$sandbox_pid" 2>/dev/null || true; wait "$sandbox_pid" 2>/dev/null || true; fi
  if [ -n "$cells_pid" ]; then kill -TERM "$cells_pid" 2>/dev/null || true; wait "$cells_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=scripts/demo-lib.sh
. scripts/demo-lib.sh

step "Start the embedded AWS sandbox (moto) with a versioned config bucket"
show "redmica sandbox --ecs --fail-once globex --fail-image redmica:broken --env-file $work/sandbox.env &"
# The sandbox's own output is an export list; keep the log for when something fails.
# --ecs adds a cluster, a task definition and a service; globex's first migration task will
# exit 1, and a deployment of the image redmica:broken will fail and be rolled back.
redmica sandbox --ecs --fail-once globex --fail-image redmica:broken \
  --env-file "$work/sandbox.env" >"$work/sandbox.out" 2>"$work/sandbox.log" &
sandbox_pid=$!
for _ in $(seq 1 300); do
  [ -f "$work/sandbox.env" ] && break
  kill -0 "$sandbox_pid" 2>/dev/null || { cat "$work/sandbox.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$work/sandbox.env" ] || { echo "sandbox did not start" >&2; cat "$work/sandbox.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/sandbox.env"
cat "$work/sandbox.env" >&2
export REDMICA_DOMAIN=redmine.example.com REDMICA_DB_HOST=aurora.cluster.example.internal

run redmica config show --changed
show "redmica doctor   # settings, credentials, bucket, tenants, ECS: each a row with a hint"
redmica doctor || true

step "Check the example tenant files offline (what CI of a tenants repo runs)"
run redmica tenant validate examples/tenants

step "Add tenants: from files, from stdin, and from flags with a generated password"
run redmica tenant add acme -f examples/tenants/acme.yaml
show "redmica tenant add globex -f - < examples/tenants/globex.yaml"
redmica tenant add globex -f - < examples/tenants/globex.yaml
run redmica tenant add initech -f examples/tenants/initech.yaml
run redmica tenant add umbrella --db-name umbrella --db-user umbrella \
  --s3-bucket redmica-attachments --s3-folder umbrella --sub-domain umbrella \
  --limit-ip 198.51.100.0/24 --generate-password

step "Adding the same tenant twice is refused (exit 4), nothing overwritten"
show "redmica tenant add acme -f examples/tenants/acme.yaml"
set +e; redmica tenant add acme -f examples/tenants/acme.yaml; code=$?; set -e
echo "exit code: $code" >&2; [ "$code" -eq 4 ]

step "A bad file is rejected with every problem named (exit 2), nothing written"
show "redmica tenant add bad -f examples/bad-tenant.yaml"
set +e; redmica tenant add bad -f examples/bad-tenant.yaml; code=$?; set -e
echo "exit code: $code" >&2; [ "$code" -eq 2 ]

step "List and show (passwords are never printed)"
run redmica tenant list
run redmica tenant show acme
show "redmica tenant list --output json | python3 -c ..."
redmica tenant list --output json | python3 -c 'import json,sys; print([t["tenant"] for t in json.load(sys.stdin)])'

step "Update: edit the shown document and feed it back (******** keeps the password)"
show "redmica tenant show globex | sed 's/port: 5433/port: 5434/' | redmica tenant update globex -f -"
redmica tenant show globex 2>/dev/null | sed 's/port: 5433/port: 5434/' | redmica tenant update globex -f -

step "History of a tenant (S3 object versions)"
run redmica tenant history globex

step "GitOps: plan a sync from a directory (nothing changes without --apply)"
mkdir -p "$work/repo"
cp examples/tenants/*.yaml "$work/repo/"
sed -i 's/folder: acme/folder: acme-files/' "$work/repo/acme.yaml"
run redmica tenant sync "$work/repo"

step "Render the Apache virtual hosts the container serves (one per tenant)"
if command -v apache2 >/dev/null || [ -x /usr/sbin/apache2 ]; then
  run redmica render vhosts -o "$work/tenants.conf" --check
else
  echo "(Apache + Passenger are not installed here: rendering without the config test)" >&2
  run redmica render vhosts -o "$work/tenants.conf"
fi
ls -l "$work/tenants.conf" >&2
show "redmica render vhosts --redacted   # the same file, passwords masked, for review"
redmica render vhosts --redacted | sed -n '/# tenant acme/,/<\/VirtualHost>/p'
run redmica render redmine-config -o "$work/redmine-config" --mkdir
sed -n '/production:/,$p' "$work/redmine-config/database.yml" >&2

step "A poison document put into the bucket by hand: reported, and every other tenant is served"
show "aws s3 cp hooli.yaml s3://\$REDMICA_BUCKET/tenants/hooli.yaml   # password: 2024-13-45 (YAML reads a date)"
sed -e 's/acme/hooli/g' -e 's/password: .*/password: 2024-13-45/' examples/tenants/acme.yaml >"$work/hooli-poison.yaml"
python - "$work/hooli-poison.yaml" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.put_object(Bucket=os.environ["REDMICA_BUCKET"], Key="tenants/hooli.yaml", Body=open(sys.argv[1], "rb").read())
PY
show "redmica tenant list"
set +e; redmica tenant list; code=$?; set -e
echo "exit code: $code (a tenant is not ok)" >&2; [ "$code" -eq 1 ]
run redmica render vhosts -o "$work/tenants.conf"
grep -c '<VirtualHost' "$work/tenants.conf" | sed 's/^/virtual hosts rendered (catch-all included): /' >&2
show "redmica tenant show hooli   # as stored, password redacted, with its problems"
set +e; redmica tenant show hooli; code=$?; set -e
echo "exit code: $code" >&2; [ "$code" -eq 2 ]

step "Repair it with tenant update (conditional on the broken version)"
sed -e 's/acme/hooli/g' -e 's/password: .*/password: "hooli-demo-password-1"/' examples/tenants/acme.yaml >"$work/hooli.yaml"
run redmica tenant update hooli -f "$work/hooli.yaml"
run redmica tenant list
run redmica tenant claims check

step "Release day: migrate every tenant, one ECS task each (dry run first)"
run redmica migrate --all --dry-run
run redmica cost --tasks 100 --vcpu 0.25 --memory-gb 0.5 --minutes 4
show "redmica migrate --all"
set +e; redmica migrate --all; code=$?; set -e
echo "exit code: $code (globex's migration failed)" >&2; [ "$code" -eq 1 ]
run_id="$(redmica runs list --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')"
run redmica runs show "$run_id"

step "Retry only the failed tenant"
run redmica migrate --only-failed "$run_id"
run redmica runs list

step "Deploy a new image: a new revision, a rolling update, and we wait for OUR deployment"
export REDMICA_DEPLOY_TIMEOUT=120
run redmica status
run redmica deploy --image redmica:2026.11.26 --yes
run redmica status

step "A rollout that fails is reported as a failure and rolled back (exit 1), never as success"
show "redmica deploy --image redmica:broken --yes"
set +e; redmica deploy --image redmica:broken --yes; code=$?; set -e
echo "exit code: $code" >&2; [ "$code" -eq 1 ]
run redmica status --events 4

step "Least-privilege IAM, derived from what the code calls"
show "redmica iam-policy --for container"
redmica iam-policy --for container --account-id 123456789012

step "Remove a tenant (--yes for scripts); it stays restorable from its history"
run redmica tenant remove umbrella --yes

step "Cells: three ECS services, each a share of the tenants, routed by hostname (docs/cells.md)"
show "redmica sandbox --cells 3 --fail-image redmica:broken --env-file $work/cells.env &"
# A second sandbox: three cells (a service and a load balancer each) and a Route 53 zone.
redmica sandbox --cells 3 --fail-image redmica:broken \
  --env-file "$work/cells.env" >"$work/cells.out" 2>"$work/cells.log" &
cells_pid=$!
for _ in $(seq 1 300); do
  [ -f "$work/cells.env" ] && break
  kill -0 "$cells_pid" 2>/dev/null || { cat "$work/cells.log" >&2; exit 1; }
  sleep 0.1
done
[ -f "$work/cells.env" ] || { echo "cells sandbox did not start" >&2; exit 1; }
(
  # shellcheck disable=SC1091
  . "$work/cells.env"
  grep -E 'CELLS|HOSTED_ZONE|DOMAIN' "$work/cells.env" >&2
  export REDMICA_DEPLOY_TIMEOUT=120
  step "New tenants go to the cell with the most room; each host gets an alias record"
  for t in acme globex initech; do run redmica tenant add "$t" -f "examples/tenants/$t.yaml"; done
  run redmica cells list
  run redmica cells routes
  step "Move a tenant: serve it in the new cell, re-route, drain, stop serving it in the old"
  run redmica tenant move acme --to c --yes
  run redmica cells list
  step "Release in waves: canary cell main first, then the others two at a time"
  run redmica release --image redmica:2026.12.01 --canary-cell main --max-parallel-cells 2 --yes
  run redmica status --events 0
  step "A broken image stops at the canary cell; the other cells never see it (exit 1)"
  show "redmica deploy --image redmica:broken --canary-cell b --yes"
  set +e; redmica deploy --image redmica:broken --canary-cell b --yes; code=$?; set -e
  echo "exit code: $code" >&2; [ "$code" -eq 1 ]
  run redmica status --events 0
)

step "Done: the sandbox stops now and forgets everything"

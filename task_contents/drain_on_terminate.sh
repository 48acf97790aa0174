#!/bin/bash
# drain_on_terminate.sh - when the Auto Scaling group is about to terminate this container
# instance (a failed health check, an instance refresh, a scale-in), set it DRAINING so ECS
# stops its tasks the way a deployment does (the app's stopTimeout: Neo4j checkpoints)
# before EC2 shuts the instance down, which would give each container seconds.
#
# The group's termination lifecycle hook (components/ec2_capacity.py) holds the instance in
# Terminating:Wait for DRAIN_HOOK_SECONDS; the instance reads that state from the instance
# metadata service (EC2 Auto Scaling user guide, "Retrieve the target lifecycle state
# through instance metadata") and lets the hook time out with CONTINUE: completing it
# early would need the group's name, which the instance does not know.
# UpdateContainerInstancesState is in the instance role's AmazonEC2ContainerServiceforEC2Role.
#
# Runs as root from a systemd unit (only root reaches the metadata service,
# task_contents/imds_guard.py). components/ec2_capacity.py puts CLUSTER after the first line.
set -u

# Test hooks: poll interval and bound (seconds), metadata service and agent URLs.
: "${DRAIN_POLL:=5}" "${DRAIN_WAIT:=240}"
: "${DRAIN_IMDS:=http://169.254.169.254/latest}" "${DRAIN_AGENT:=http://localhost:51678/v1}"

log() { echo "ecs-tls-drain: $*" >&2; }

imds() {
    local t
    t=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' "$DRAIN_IMDS/api/token") &&
        curl -sf -m 5 -H "X-aws-ec2-metadata-token: $t" "$DRAIN_IMDS/meta-data/$1"
}

# The ECS agent's introspection API, read with python3: this instance's ARN, its tasks.
agent() { curl -sf -m 5 "$DRAIN_AGENT/$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"; }

# Waits one poll; fails once DRAIN_WAIT seconds are spent.
step() {
    [ "$waited" -lt "$DRAIN_WAIT" ] || return 1
    sleep "$DRAIN_POLL"
    waited=$((waited + (DRAIN_POLL > 0 ? DRAIN_POLL : 1)))
}

until [ "$(imds autoscaling/target-lifecycle-state)" = Terminated ]; do sleep "$DRAIN_POLL"; done
log "terminating: draining"
waited=0
until arn=$(agent metadata 'd["ContainerInstanceArn"]') && [ -n "$arn" ]; do
    step || { log "no container instance ARN from the agent"; exit 1; }
done
# arn:<partition>:ecs:<region>:...: the region is the fourth field.
if ! aws ecs update-container-instances-state --region "$(cut -d: -f4 <<<"$arn")" \
    --cluster "$CLUSTER" --container-instances "$arn" --status DRAINING >/dev/null; then
    log "UpdateContainerInstancesState $arn failed"
    exit 1
fi
log "$arn is DRAINING"
until [ "$(agent tasks 'sum(t.get("KnownStatus") != "STOPPED" for t in d.get("Tasks") or [])')" = 0 ]; do
    step || { log "tasks still running after ${waited}s"; exit 1; }
done
log "every task stopped; the instance terminates when the lifecycle hook times out"

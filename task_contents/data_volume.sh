#!/bin/bash
# data_volume.sh - attach the app's EBS data volume to this ECS container instance, give it
# a file system the first time only, mount it, and keep the ECS agent from starting until
# it is mounted.
#
# Runs from EC2 user data (cloud-init, as root) on the ECS-optimised Amazon Linux 2023 AMI.
# task_contents/data_volume.py renders it: it puts shell-quoted assignments of the parameters
# right after the first line, and checks them first.
#
# Parameters:
#   VOLUME_ID        the volume, e.g. vol-0123456789abcdef0 (same zone as the instance)
#   EXPECTED_REGION  the volume's region; must equal the instance's (from IMDS)
#   MOUNT_POINT      absolute host path, e.g. /mnt/ecs-tls-data
#   APP_DIR          absolute path strictly inside MOUNT_POINT, e.g. /mnt/ecs-tls-data/neo4j;
#                    the task bind-mounts it (host volume sourcePath)
#   OWNER            uid:gid of APP_DIR, e.g. 7474:7474 (the Neo4j image's user)
#   ATTACH_DEVICE    device name given to AttachVolume, e.g. /dev/xvdf
#   DATA_VOLUME_ATTACH_TIMEOUT  seconds to wait for the volume (default 600)
#
# Only the tests set these (production uses the defaults):
#   DATA_VOLUME_FSTAB (/etc/fstab), DATA_VOLUME_SYSTEMD_DIR (/etc/systemd/system),
#   DATA_VOLUME_BY_ID_DIR (/dev/disk/by-id), DATA_VOLUME_XEN_DEVICE (ATTACH_DEVICE),
#   DATA_VOLUME_DEVICE_TIMEOUT (120), DATA_VOLUME_RETRY_SLEEP (2),
#   DATA_VOLUME_RETRY_MAX_SLEEP (30). External commands (aws, curl, blkid, mkfs.ext4, mount,
#   mountpoint, findmnt, chattr, chown, systemctl, udevadm, sleep, dnf, resize2fs,
#   dumpe2fs, blockdev) are found on PATH, so tests put recording stubs first on PATH.
#
# On any failure: exit 1 with one line "data-volume: error: ..." on stderr (cloud-init logs
# it to /var/log/cloud-init-output.log and the console). The instance then never runs a
# task: a systemd drop-in written first makes ecs.service refuse to start while MOUNT_POINT
# is not a mount point, and the empty mount point is immutable, so nothing (Docker creating
# a missing bind-mount source included) can write the database to the root disk.
#
# Safe to run again (reboot, manual rerun): a volume already attached to this instance is
# not attached again, a volume with any signature is never formatted, the fstab line and
# the drop-in are rewritten, not appended.
#
# Growing the volume (app.dataVolumeGiB raised, `pulumi up`: EBS modifies the volume in
# place) leaves the ext4 file system at its old size. Each run grows it to the device
# with resize2fs, online, once it is mounted, and does nothing when they already match;
# so the next instance picks the new size up by itself. On the running instance, once
# `aws ec2 describe-volumes-modifications` shows the modification "optimizing" or
# "completed", rerun this script from a Session Manager shell:
#   sudo /usr/local/sbin/ecs-tls-data-volume
# (or grow it directly: sudo resize2fs "$(findmnt -n -o SOURCE /mnt/ecs-tls-data)").
#
# A zombie instance: if the volume cannot be attached within DATA_VOLUME_ATTACH_TIMEOUT
# (typically still held by an instance that will not let go), the ECS agent stays off but
# EC2 health checks pass forever. The script then marks this instance Unhealthy in its
# Auto Scaling group, which terminates it and launches another that tries again; the
# volume is never force-detached from its holder, which may still be writing.
set -euo pipefail
umask 022

: "${VOLUME_ID:?VOLUME_ID is not set}"
: "${EXPECTED_REGION:?EXPECTED_REGION is not set}"
: "${MOUNT_POINT:?MOUNT_POINT is not set}"
: "${APP_DIR:?APP_DIR is not set}"
: "${OWNER:?OWNER is not set}"
: "${ATTACH_DEVICE:=/dev/xvdf}"
: "${DATA_VOLUME_ATTACH_TIMEOUT:=600}"
FSTAB=${DATA_VOLUME_FSTAB:-/etc/fstab}
SYSTEMD_DIR=${DATA_VOLUME_SYSTEMD_DIR:-/etc/systemd/system}
BY_ID_DIR=${DATA_VOLUME_BY_ID_DIR:-/dev/disk/by-id}
XEN_DEVICE=${DATA_VOLUME_XEN_DEVICE:-$ATTACH_DEVICE}
DEVICE_TIMEOUT=${DATA_VOLUME_DEVICE_TIMEOUT:-120}
RETRY_SLEEP=${DATA_VOLUME_RETRY_SLEEP:-2}
RETRY_MAX_SLEEP=${DATA_VOLUME_RETRY_MAX_SLEEP:-30}
# ext4: e2fsprogs can build and inspect a populated image without mounting it (the tests
# prove "never reformat" that way) and resize2fs grows it online after a volume resize.
FS_TYPE=ext4
FS_LABEL=ecs-tls-data
MOUNT_OPTIONS=noatime
IMDS=http://169.254.169.254/latest
DROP_IN_NAME=50-ecs-tls-data-volume.conf
# The AWS CLI must never wait on a pager or hang on a dead endpoint.
export AWS_PAGER="" AWS_RETRY_MODE=standard

STEP="start"
DIED=""
TMP_DIR=""

log() { printf 'data-volume: %s\n' "$*" >&2; }

die() {
    DIED=1
    printf 'data-volume: error: %s\n' "$*" >&2
    exit 1
}

on_exit() {
    local status=$?
    if [ -n "$TMP_DIR" ]; then
        rm -rf "$TMP_DIR"
    fi
    # set -e stopped on a command that die() did not report: still leave one clear line.
    if [ "$status" -ne 0 ] && [ -z "$DIED" ]; then
        printf 'data-volume: error: step "%s" failed (exit %s)\n' "$STEP" "$status" >&2
    fi
}
trap on_exit EXIT

# Functions report through globals (never stdout), so die() never runs in a $(...)
# subshell, where it would only end the subshell.

validate() {
    [[ $VOLUME_ID =~ ^vol-[0-9a-f]{8,17}$ ]] || die "VOLUME_ID '$VOLUME_ID' is not a volume ID"
    [[ $EXPECTED_REGION =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]] ||
        die "EXPECTED_REGION '$EXPECTED_REGION' is not a region"
    local path
    for path in "$MOUNT_POINT" "$APP_DIR"; do
        # Plain absolute paths (no ".", "..", "//", spaces or quotes): safe unquoted in
        # fstab and in a systemd unit.
        [[ $path =~ ^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$ ]] || die "'$path' is not a plain absolute path"
    done
    [[ $APP_DIR == "$MOUNT_POINT"/* ]] || die "APP_DIR $APP_DIR is not inside $MOUNT_POINT"
    [[ $OWNER =~ ^[0-9]+:[0-9]+$ ]] || die "OWNER '$OWNER' is not uid:gid"
    [[ $ATTACH_DEVICE =~ ^/dev/(sd|xvd)[f-p]$ ]] || die "ATTACH_DEVICE '$ATTACH_DEVICE' is not /dev/sd[f-p] or /dev/xvd[f-p]"
    local n
    for n in "$DATA_VOLUME_ATTACH_TIMEOUT" "$DEVICE_TIMEOUT" "$RETRY_SLEEP" "$RETRY_MAX_SLEEP"; do
        [[ $n =~ ^[0-9]+$ ]] || die "timeout or delay '$n' is not a whole number of seconds"
    done
}

# Written before anything can fail. ecs.service (After=cloud-final.service) starts once user
# data ends, failed or not; with this drop-in it does not start unless the volume is mounted.
# RequiresMountsFor= also makes it wait for (and fail with) the fstab mount on later boots,
# when user data does not run again.
guard_ecs_agent() {
    local dir="$SYSTEMD_DIR/ecs.service.d"
    mkdir -p "$dir"
    printf '%s\n' \
        "# Written by data_volume.sh: no ECS task before the data volume is mounted." \
        "[Unit]" \
        "RequiresMountsFor=$MOUNT_POINT" \
        "AssertPathIsMountPoint=$MOUNT_POINT" >"$dir/$DROP_IN_NAME.tmp"
    mv "$dir/$DROP_IN_NAME.tmp" "$dir/$DROP_IN_NAME"
    systemctl daemon-reload || die "systemctl daemon-reload failed"
}

# The empty mount point is made immutable: while the volume is not mounted nobody (root
# included) can create anything in it, so a task started by mistake fails instead of
# writing the database to the root disk. Mounting over an immutable directory works, and
# the flag belongs to the root disk's directory, not to the mounted file system.
protect_mount_point() {
    mkdir -p "$MOUNT_POINT"
    if mountpoint -q "$MOUNT_POINT"; then
        return 0
    fi
    if [ -n "$(ls -A "$MOUNT_POINT")" ]; then
        log "warning: $MOUNT_POINT on the root disk is not empty; the volume will hide it (nothing is deleted)"
    fi
    chattr +i "$MOUNT_POINT" || die "cannot make the mount point $MOUNT_POINT immutable (chattr +i)"
}

ensure_command() {
    # $1 = command, $2 = package providing it.
    command -v "$1" >/dev/null 2>&1 && return 0
    log "$1 is not installed: installing $2"
    # Needs the Amazon Linux repositories (S3): a NAT gateway or an S3 gateway endpoint.
    dnf install -y -q "$2" >&2 || die "cannot install $2 (for $1): are the Amazon Linux repositories reachable?"
    command -v "$1" >/dev/null 2>&1 || die "$2 is installed but $1 is still missing"
}

ensure_tools() {
    # The ECS-optimised AL2023 AMI is built from the minimal AMI, which has no AWS CLI.
    ensure_command aws awscli-2
    ensure_command mkfs.ext4 e2fsprogs
    ensure_command chattr e2fsprogs
    ensure_command resize2fs e2fsprogs
    ensure_command dumpe2fs e2fsprogs
}

imds_token() {
    local attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if IMDS_TOKEN=$(curl -s --fail --max-time 2 -X PUT "$IMDS/api/token" \
            -H "X-aws-ec2-metadata-token-ttl-seconds: 600") && [ -n "$IMDS_TOKEN" ]; then
            return 0
        fi
        log "IMDSv2 token request failed (attempt $attempt), retrying"
        sleep 1
    done
    die "no IMDSv2 token from $IMDS after 10 attempts"
}

imds_get() {
    # $1 = meta-data path; sets REPLY.
    REPLY=$(curl -s --fail --max-time 2 -H "X-aws-ec2-metadata-token: $IMDS_TOKEN" "$IMDS/meta-data/$1") ||
        die "cannot read $1 from the instance metadata service"
    [ -n "$REPLY" ] || die "the instance metadata service returned an empty $1"
}

read_identity() {
    imds_token
    imds_get instance-id
    INSTANCE_ID=$REPLY
    imds_get placement/region
    REGION=$REPLY
    imds_get placement/availability-zone
    ZONE=$REPLY
    [ "$REGION" = "$EXPECTED_REGION" ] ||
        die "this instance runs in $REGION but the volume $VOLUME_ID is in $EXPECTED_REGION"
    log "instance $INSTANCE_ID in $ZONE"
}

aws_ec2() {
    # Bounded network calls; stderr goes to a file so a failure can be reported in one line.
    aws --region "$REGION" --cli-connect-timeout 10 --cli-read-timeout 30 ec2 "$@" 2>"$TMP_DIR/aws.err"
}

# Out of service is better than a healthy-looking instance that never runs a task. Not
# respecting the grace period: this script has already waited longer than any grace period.
# A failure here (e.g. the instance is not in a group) is logged; the caller still fails.
mark_unhealthy() {
    if aws --region "$REGION" --cli-connect-timeout 10 --cli-read-timeout 30 autoscaling \
        set-instance-health --instance-id "$INSTANCE_ID" --health-status Unhealthy \
        --no-should-respect-grace-period >/dev/null 2>"$TMP_DIR/aws.err"; then
        log "marked $INSTANCE_ID Unhealthy: its Auto Scaling group replaces it"
    else
        last_aws_error
        log "warning: cannot mark $INSTANCE_ID Unhealthy ($REPLY); terminate it by hand"
    fi
}

last_aws_error() {
    REPLY=$(awk 'NF { line = $0 } END { print line }' "$TMP_DIR/aws.err")
}

# Attach the volume to this instance, waiting while a previous instance still holds it
# (the Auto Scaling group launches the replacement while the old instance may still be
# shutting down). Never detaches it from anybody: the holder may still be writing.
attach_volume() {
    local started=$SECONDS waited=0 delay=$RETRY_SLEEP info zone state holder holder_state status
    while :; do
        if info=$(aws_ec2 describe-volumes --volume-ids "$VOLUME_ID" --output text \
            --query 'Volumes[0].[AvailabilityZone,State,Attachments[0].InstanceId,Attachments[0].State]'); then
            read -r zone state holder holder_state <<<"$info"
            [ "$zone" = "$ZONE" ] ||
                die "volume $VOLUME_ID is in $zone but this instance is in $ZONE: pin the Auto Scaling group to $zone"
            if [ "$holder" = "$INSTANCE_ID" ] && [ "$holder_state" = attached ]; then
                log "volume $VOLUME_ID is attached to this instance"
                return 0
            elif [ "$holder" = "$INSTANCE_ID" ]; then
                status="attachment to this instance is $holder_state"
            elif [ "$state" = available ] && [ "$holder" = None ]; then
                if aws_ec2 attach-volume --volume-id "$VOLUME_ID" --instance-id "$INSTANCE_ID" \
                    --device "$ATTACH_DEVICE" >/dev/null; then
                    log "attach of $VOLUME_ID requested as $ATTACH_DEVICE"
                    status="attach requested"
                    delay=$RETRY_SLEEP
                else
                    last_aws_error
                    status="attach-volume failed: $REPLY"
                fi
            elif [ "$holder" != None ]; then
                status="still attached to $holder ($holder_state)"
            else
                status="volume state is $state"
            fi
        else
            last_aws_error
            status="describe-volumes failed: $REPLY"
        fi
        # Bounded by wall time and, identically in production, by the time slept (tests
        # replace sleep with a stub that returns at once).
        if [ $((SECONDS - started)) -ge "$DATA_VOLUME_ATTACH_TIMEOUT" ] ||
            [ "$waited" -ge "$DATA_VOLUME_ATTACH_TIMEOUT" ]; then
            mark_unhealthy
            die "volume $VOLUME_ID is not attached to $INSTANCE_ID after ${DATA_VOLUME_ATTACH_TIMEOUT}s: $status"
        fi
        log "$status; next check in ${delay}s"
        sleep "$delay"
        waited=$((waited + delay))
        delay=$((delay * 2 > RETRY_MAX_SLEEP ? RETRY_MAX_SLEEP : delay * 2))
        [ "$delay" -gt 0 ] || delay=$RETRY_MAX_SLEEP
    done
}

# Nitro: EBS volumes are NVMe devices whose serial is the volume ID without its dash; udev
# links them as /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123... Xen: the device
# is ATTACH_DEVICE itself (a real xvd* node). A /dev/xvdf that links to an NVMe device is
# not trusted on its own: only the serial identifies the volume.
find_device() {
    local serial=${VOLUME_ID/-/} waited=0 link target
    local base="$BY_ID_DIR/nvme-Amazon_Elastic_Block_Store_$serial"
    while :; do
        if command -v udevadm >/dev/null 2>&1; then
            udevadm settle --timeout=5 >/dev/null 2>&1 || :
        fi
        for link in "$base" "${base}_1" "$base-ns-1"; do
            if [ -e "$link" ]; then
                DEVICE=$(readlink -f "$link")
                log "volume $VOLUME_ID is $DEVICE (NVMe serial $serial)"
                return 0
            fi
        done
        if [ -e "$XEN_DEVICE" ]; then
            target=$(readlink -f "$XEN_DEVICE")
            if [[ ${target##*/} == xvd* ]]; then
                DEVICE=$target
                log "volume $VOLUME_ID is $DEVICE (Xen)"
                return 0
            fi
        fi
        [ "$waited" -lt "$DEVICE_TIMEOUT" ] ||
            die "no block device for $VOLUME_ID after ${DEVICE_TIMEOUT}s (looked for $base and $XEN_DEVICE)"
        sleep 1
        waited=$((waited + 1))
    done
}

# Sets FS_FOUND_TYPE and FS_UUID; FS_FOUND_TYPE is empty for a device with no signature at all.
probe() {
    local out rc=0 key value pttype=""
    FS_FOUND_TYPE=""
    FS_UUID=""
    # Low-level probe (-p): reads the device itself, never blkid's cache. Exit 2 means no
    # signature of any kind; anything else but 0 is an error, never "blank".
    out=$(blkid -p -o export "$DEVICE") || rc=$?
    case "$rc" in
        0) ;;
        2) return 0 ;;
        *) die "blkid cannot probe $DEVICE (exit $rc): refusing to touch it" ;;
    esac
    while IFS='=' read -r key value; do
        case "$key" in
            TYPE) FS_FOUND_TYPE=$value ;;
            UUID) FS_UUID=$value ;;
            PTTYPE) pttype=$value ;;
        esac
    done <<<"$out"
    [ -n "$FS_FOUND_TYPE" ] ||
        die "$DEVICE holds a ${pttype:-non-file-system} signature and no file system: refusing to format it"
}

# Formats only a device without any signature: never a volume that holds data.
ensure_filesystem() {
    # A device we cannot read must not look blank.
    dd if="$DEVICE" of=/dev/null bs=4096 count=1 2>/dev/null || die "cannot read $DEVICE"
    probe
    if [ -z "$FS_FOUND_TYPE" ]; then
        log "$DEVICE is blank: creating an $FS_TYPE file system"
        # nodiscard: a new EBS volume is already unallocated, discarding it only takes time.
        # stdin from /dev/null: should mkfs ever find a signature after all, it asks, reads
        # no "y" and stops.
        mkfs.ext4 -q -L "$FS_LABEL" -E nodiscard "$DEVICE" </dev/null || die "mkfs.ext4 $DEVICE failed"
        probe
        [ "$FS_FOUND_TYPE" = "$FS_TYPE" ] || die "mkfs.ext4 left no $FS_TYPE file system on $DEVICE"
    else
        log "$DEVICE already holds a $FS_FOUND_TYPE file system ($FS_UUID): keeping it"
    fi
    case "$FS_FOUND_TYPE" in
        ext4 | xfs) ;;
        *) die "$DEVICE holds a $FS_FOUND_TYPE file system, not ext4 or xfs: refusing to use it" ;;
    esac
    [ -n "$FS_UUID" ] || die "$DEVICE has no file system UUID"
}

# One line for MOUNT_POINT, by UUID (NVMe names change between boots), nofail (a missing
# volume must not drop the host into emergency mode; ecs.service still waits for it).
write_fstab() {
    local line="UUID=$FS_UUID $MOUNT_POINT $FS_FOUND_TYPE defaults,$MOUNT_OPTIONS,nofail 0 2" tmp
    [ -e "$FSTAB" ] || : >"$FSTAB"
    tmp=$(mktemp "$FSTAB.XXXXXX")
    awk -v mp="$MOUNT_POINT" '/^[[:space:]]*#/ || $2 != mp' "$FSTAB" >"$tmp"
    printf '%s\n' "$line" >>"$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$FSTAB"
    # Regenerate the .mount unit from fstab, the one RequiresMountsFor= depends on.
    systemctl daemon-reload || die "systemctl daemon-reload failed"
}

check_mount_source() {
    local source
    source=$(findmnt -n -o SOURCE --mountpoint "$MOUNT_POINT") || die "findmnt cannot read $MOUNT_POINT"
    [ "$(readlink -f "$source")" = "$DEVICE" ] ||
        die "$MOUNT_POINT is mounted from $source, not from the data volume $VOLUME_ID ($DEVICE)"
}

# Mounts the device found by its volume ID (not UUID=: a volume restored from a snapshot of
# this one carries the same UUID); fstab names the UUID for later boots.
mount_volume() {
    if mountpoint -q "$MOUNT_POINT"; then
        log "$MOUNT_POINT is already mounted"
    else
        mount -t "$FS_FOUND_TYPE" -o "$MOUNT_OPTIONS" "$DEVICE" "$MOUNT_POINT" ||
            die "cannot mount $DEVICE on $MOUNT_POINT"
        mountpoint -q "$MOUNT_POINT" || die "$MOUNT_POINT is not a mount point after mounting $DEVICE"
    fi
    check_mount_source
}

# Sets REPLY to the file system's size in bytes and FS_BLOCK_SIZE.
ext4_bytes() {
    local out count
    out=$(dumpe2fs -h "$DEVICE" 2>/dev/null) || die "dumpe2fs cannot read $DEVICE"
    read -r count FS_BLOCK_SIZE <<<"$(awk -F': *' '$1 == "Block count" { c = $2 } $1 == "Block size" { s = $2 } END { print c, s }' <<<"$out")"
    [[ $count =~ ^[0-9]+$ && $FS_BLOCK_SIZE =~ ^[1-9][0-9]*$ ]] || die "no block count or size in the superblock of $DEVICE"
    REPLY=$((count * FS_BLOCK_SIZE))
}

# After a volume modification the device is bigger than its file system: grow it, online
# (ext4 grows while mounted); nothing to do when less than a block is unused. A regular
# file stands for the device in the tests.
grow_filesystem() {
    local device fs
    if [ "$FS_FOUND_TYPE" != ext4 ]; then
        log "grow $FS_FOUND_TYPE by hand after a resize: xfs_growfs $MOUNT_POINT"
        return 0
    fi
    if [ -b "$DEVICE" ]; then
        device=$(blockdev --getsize64 "$DEVICE") || die "blockdev cannot size $DEVICE"
    else
        device=$(stat -L -c %s "$DEVICE")
    fi
    ext4_bytes
    fs=$REPLY
    if [ $((device - fs)) -lt "$FS_BLOCK_SIZE" ]; then
        log "the file system fills $DEVICE"
        return 0
    fi
    log "$DEVICE has $device bytes, its file system $fs: growing it"
    resize2fs "$DEVICE" >&2 || die "resize2fs $DEVICE failed"
    ext4_bytes
    [ "$REPLY" -gt "$fs" ] || die "resize2fs left $DEVICE at $fs bytes"
    log "grew the file system of $DEVICE to $REPLY bytes"
}

# Created only now, inside the mounted file system: the app directory never exists on the
# root disk.
prepare_app_dir() {
    mountpoint -q "$MOUNT_POINT" || die "$MOUNT_POINT is not mounted: not creating $APP_DIR"
    mkdir -p "$APP_DIR"
    chown "$OWNER" "$APP_DIR" || die "cannot chown $APP_DIR to $OWNER"
    chmod 0750 "$APP_DIR"
}

main() {
    STEP="check parameters"
    validate
    TMP_DIR=$(mktemp -d)
    STEP="guard the ECS agent"
    guard_ecs_agent
    STEP="install tools"
    ensure_tools
    STEP="protect the mount point"
    protect_mount_point
    STEP="read instance identity"
    read_identity
    STEP="attach the volume"
    attach_volume
    STEP="find the block device"
    find_device
    STEP="check the file system"
    ensure_filesystem
    STEP="write fstab"
    write_fstab
    STEP="mount the volume"
    mount_volume
    STEP="grow the file system"
    grow_filesystem
    STEP="prepare the app directory"
    prepare_app_dir
    log "ready: $VOLUME_ID ($DEVICE, $FS_FOUND_TYPE $FS_UUID) on $MOUNT_POINT; $APP_DIR owned by $OWNER"
}

main "$@"

#!/bin/sh
# copy_certificates.sh - lay a certbot certificate out for an application's TLS scopes.
#
# Runs in the "copier" container of the nlb-certbot task (POSIX sh; works with busybox /
# alpine and dash) before the application starts. certbot runs in another task (the issuer,
# started when the app's task starts, and the scheduled renewal), which alone may write the
# ACME state. This script is what decides whether the app may start: it succeeds when the
# lineage holds an unexpired certificate (so an ACME outage at start-up does not keep the
# app down), waits up to WAIT_SECONDS for the issuer to write one when there is none yet
# (the first start), and then fails with one line naming the domain and the file.
#
# Environment:
#   DOMAIN      the certificate's domain, e.g. db.example.com (for the messages).
#   SOURCE_DIR  certbot's live directory of the lineage, e.g.
#               /etc/letsencrypt/live/db.example.com-production; must hold fullchain.pem
#               and privkey.pem (symlinks into ../../archive are fine).
#   TARGET_DIR  directory shared with the application, e.g. /ssl.
#   SCOPES      space-separated scope names, e.g. "bolt https"; each becomes
#               TARGET_DIR/<scope>/ with CERT_FILE, KEY_FILE and empty trusted/ and revoked/
#               subdirectories (the layout Neo4j 5 expects for an SSL policy base directory).
#   CERT_FILE   file name for the certificate chain (fullchain.pem), e.g. public.crt.
#   KEY_FILE    file name for the private key (privkey.pem), e.g. private.key.
#   OWNER       optional uid[:gid], e.g. 7474:7474; everything written is chown'ed to it.
#   WAIT_SECONDS  optional, default 0: how long to wait for a missing or expired
#               certificate to be replaced, checking every POLL_SECONDS (default 10).
#
# Modes: directories 0755, certificate 0644, key 0600 (readable by OWNER only).
#
# The expiry date is read from the first certificate of fullchain.pem (the leaf) without
# openssl, which busybox/alpine base images do not ship: base64 -d, od and awk walk the DER
# down to tbsCertificate.validity.notAfter (RFC 5280, section 4.1), a UTCTime (YYMMDDHHMMSSZ,
# years 50-99 are 19xx) or GeneralizedTime (YYYYMMDDHHMMSSZ), and compare it with `date -u`.
#
# The key must be an unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"), which is what certbot
# writes for both ECDSA and RSA keys. Anything else (e.g. a SEC1 "BEGIN EC PRIVATE KEY")
# is refused rather than converted: converting needs openssl, which busybox/alpine base
# images do not ship.
#
# All inputs are checked first and everything is assembled in a temporary directory inside
# TARGET_DIR (same file system, so the final renames are atomic). Only then is each scope
# directory swapped into place. On any failure the script exits non-zero and leaves
# TARGET_DIR as it was: no partial files in any scope directory.
set -eu

log() { printf 'copy-certificates: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

require() {
    eval "value=\${$1:-}"
    [ -n "$value" ] || die "environment variable $1 is not set"
}

# Prints notAfter of the first certificate in PEM file $1 as YYYYMMDDHHMMSS (UTC); fails (and
# prints nothing) if the file holds no certificate that parses that far.
not_after() {
    awk '/^-----BEGIN CERTIFICATE-----/ { inside = 1; next }
        /^-----END CERTIFICATE-----/ { exit }
        inside' "$1" | tr -d '\r' | base64 -d 2>/dev/null | od -An -v -tu1 | awk '
        function header(   first, count) {
            if (pos + 2 > n) exit 1
            tag = der[pos]; first = der[pos + 1]; pos += 2
            len = first
            if (first >= 128) {
                count = first - 128
                if (count < 1 || count > 3) exit 1
                for (len = 0; count > 0; count--) len = len * 256 + der[pos++]
            }
            if (pos + len > n) exit 1
        }
        function expect(wanted) { header(); if (tag != wanted) exit 1 }
        { for (i = 1; i <= NF; i++) der[n++] = $i + 0 }
        END {
            pos = 0                                     # a number: der[""] is not der[0]
            expect(48); expect(48)                      # Certificate, tbsCertificate
            if (der[pos] == 160) { header(); pos += len }   # [0] version
            expect(2); pos += len                       # serialNumber
            expect(48); pos += len                      # signature
            expect(48); pos += len                      # issuer
            expect(48)                                  # validity
            header(); pos += len                        # notBefore
            header()                                    # notAfter
            utc = tag == 23 && len == 13
            if (!(utc || (tag == 24 && len == 15)) || der[pos + len - 1] != 90) exit 1
            out = ""
            for (i = pos; i < pos + len - 1; i++) {
                if (der[i] < 48 || der[i] > 57) exit 1
                out = out sprintf("%c", der[i])
            }
            if (utc) out = (substr(out, 1, 2) + 0 >= 50 ? "19" : "20") out
            print out
        }'
}

plain_name() {
    # $1 = variable name, $2 = value: a single path component, no option-like leading dash.
    case "$2" in
        "" | . | .. | -* | */* | *[!A-Za-z0-9._-]*) die "$1 must be a plain name, got '$2'" ;;
    esac
}

for var in DOMAIN SOURCE_DIR TARGET_DIR SCOPES CERT_FILE KEY_FILE; do
    require "$var"
done
OWNER=${OWNER:-}

case "$DOMAIN" in
    -* | *[!a-z0-9.-]*) die "DOMAIN must be a lowercase DNS name, got '$DOMAIN'" ;;
esac
plain_name CERT_FILE "$CERT_FILE"
plain_name KEY_FILE "$KEY_FILE"
[ "$CERT_FILE" != "$KEY_FILE" ] || die "CERT_FILE and KEY_FILE must differ"
case "$TARGET_DIR" in
    /*) ;;
    *) die "TARGET_DIR must be an absolute path, got '$TARGET_DIR'" ;;
esac
case "$OWNER" in
    "") ;;
    *[!0-9:]* | :* | *: | *:*:*) die "OWNER must be uid[:gid] (numeric), got '$OWNER'" ;;
esac
seen=" "
for scope in $SCOPES; do
    plain_name "scope" "$scope"
    case "$scope" in .*) die "scope must not start with a dot, got '$scope'" ;; esac
    case "$seen" in *" $scope "*) die "scope '$scope' is listed twice in SCOPES" ;; esac
    seen="$seen$scope "
done
[ "$seen" != " " ] || die "SCOPES is empty"

WAIT_SECONDS=${WAIT_SECONDS:-0}
POLL_SECONDS=${POLL_SECONDS:-10}
case "$WAIT_SECONDS$POLL_SECONDS" in
    *[!0-9]*) die "WAIT_SECONDS and POLL_SECONDS must be whole numbers of seconds" ;;
esac
[ "$POLL_SECONDS" -gt 0 ] || die "POLL_SECONDS must be at least 1"

cert_src="$SOURCE_DIR/fullchain.pem"
key_src="$SOURCE_DIR/privkey.pem"

check_files() {
    for file in "$cert_src" "$key_src"; do
        [ -e "$file" ] || die "$file does not exist"
        [ -f "$file" ] || die "$file is not a regular file"
        [ -r "$file" ] || die "$file is not readable"
        [ -s "$file" ] || die "$file is empty"
    done
    grep -q -e '^-----BEGIN CERTIFICATE-----$' "$cert_src" ||
        die "$cert_src holds no PEM certificate"
    grep -q -e '^-----END CERTIFICATE-----$' "$cert_src" ||
        die "$cert_src holds a truncated PEM certificate"
    IFS= read -r key_header <"$key_src" || die "$key_src cannot be read"
    key_header=$(printf '%s' "$key_header" | tr -d '\r')
    [ "$key_header" = "-----BEGIN PRIVATE KEY-----" ] ||
        die "$key_src is not an unencrypted PKCS#8 PEM key (first line: '$key_header')"
    grep -q -e '^-----END PRIVATE KEY-----' "$key_src" || die "$key_src is a truncated PEM key"
}

# Sets `missing` to why there is nothing to serve yet (no certificate, or an expired one),
# or to "" when the lineage holds an unexpired certificate (its expiry in `expiry`).
# Anything else wrong with the files stops the script at once: waiting would not fix it.
look() {
    missing=""
    # certbot failed or has not run yet for this lineage (first start, a new ACME server,
    # an ACME outage, a wrong path): nothing the app could serve.
    if [ ! -e "$cert_src" ]; then
        missing="no certificate for $DOMAIN: $cert_src does not exist"
        return 0
    fi
    # certbot links the certificate before the key: a run in progress, not a fault.
    if [ ! -e "$key_src" ]; then
        missing="$key_src does not exist"
        return 0
    fi
    check_files
    expiry=$(not_after "$cert_src") || expiry=""
    [ -n "$expiry" ] || die "cannot read the expiry date of the certificate for $DOMAIN in $cert_src"
    expiry_text=$(printf '%s\n' "$expiry" |
        sed 's/^\(....\)\(..\)\(..\)\(..\)\(..\)\(..\)$/\1-\2-\3T\4:\5:\6Z/')
    now=$(date -u +%Y%m%d%H%M%S)
    [ "$expiry" -gt "$now" ] ||
        missing="the certificate for $DOMAIN in $cert_src expired on $expiry_text"
}

waited=0
look
while [ -n "$missing" ] && [ "$waited" -lt "$WAIT_SECONDS" ]; do
    log "waiting for the issuer task: $missing (${waited}s of ${WAIT_SECONDS}s)"
    sleep "$POLL_SECONDS"
    waited=$((waited + POLL_SECONDS))
    look
done
if [ -n "$missing" ]; then
    [ "$WAIT_SECONDS" -eq 0 ] || die "$missing, still after ${WAIT_SECONDS}s; see the issuer task's log"
    die "$missing"
fi
log "certificate for $DOMAIN valid until $expiry_text"

mkdir -p "$TARGET_DIR"
staging=$(mktemp -d "$TARGET_DIR/.copy-certificates.XXXXXX")
swapped=""
cleanup() {
    status=$?
    trap - EXIT HUP INT TERM
    if [ "$status" -ne 0 ]; then
        # Undo the scopes already swapped in, newest first, then drop the staging area.
        for scope in $swapped; do
            rm -rf "${TARGET_DIR:?}/${scope:?}"
            if [ -e "$staging/old/$scope" ]; then
                mv "$staging/old/$scope" "$TARGET_DIR/$scope" ||
                    log "could not restore $TARGET_DIR/$scope"
            fi
        done
    fi
    rm -rf "$staging"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

umask 077
mkdir "$staging/new" "$staging/old"
for scope in $SCOPES; do
    dir="$staging/new/$scope"
    mkdir -p "$dir/trusted" "$dir/revoked"
    cp "$cert_src" "$dir/$CERT_FILE"
    cp "$key_src" "$dir/$KEY_FILE"
    # Never install a copy that differs from its source (short write, concurrent change).
    cmp -s "$cert_src" "$dir/$CERT_FILE" || die "copy of $cert_src differs from its source"
    cmp -s "$key_src" "$dir/$KEY_FILE" || die "copy of $key_src differs from its source"
    chmod 0755 "$dir" "$dir/trusted" "$dir/revoked"
    chmod 0644 "$dir/$CERT_FILE"
    chmod 0600 "$dir/$KEY_FILE"
    if [ -n "$OWNER" ]; then
        chown -R "$OWNER" "$dir"
    fi
done

# Everything is staged; swap each scope directory in (rename within one file system).
for scope in $SCOPES; do
    if [ -e "$TARGET_DIR/$scope" ] || [ -L "$TARGET_DIR/$scope" ]; then
        mv "$TARGET_DIR/$scope" "$staging/old/$scope"
    fi
    swapped="$scope $swapped"
    mv "$staging/new/$scope" "$TARGET_DIR/$scope"
done
swapped=""

for scope in $SCOPES; do
    log "installed $TARGET_DIR/$scope/$CERT_FILE and $TARGET_DIR/$scope/$KEY_FILE"
done

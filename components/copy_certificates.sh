#!/bin/sh
# copy_certificates.sh - lay a certbot certificate out for an application's TLS scopes.
#
# Runs in the "copier" container of the nlb-certbot task (POSIX sh; works with busybox /
# alpine and dash) after certbot succeeded, and before the application starts.
#
# Environment:
#   SOURCE_DIR  certbot's live directory, e.g. /etc/letsencrypt/live/db.example.com; must
#               hold fullchain.pem and privkey.pem (symlinks into ../../archive are fine).
#   TARGET_DIR  directory shared with the application, e.g. /ssl.
#   SCOPES      space-separated scope names, e.g. "bolt https"; each becomes
#               TARGET_DIR/<scope>/ with CERT_FILE, KEY_FILE and empty trusted/ and revoked/
#               subdirectories (the layout Neo4j 5 expects for an SSL policy base directory).
#   CERT_FILE   file name for the certificate chain (fullchain.pem), e.g. public.crt.
#   KEY_FILE    file name for the private key (privkey.pem), e.g. private.key.
#   OWNER       optional uid[:gid], e.g. 7474:7474; everything written is chown'ed to it.
#
# Modes: directories 0755, certificate 0644, key 0600 (readable by OWNER only).
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

plain_name() {
    # $1 = variable name, $2 = value: a single path component, no option-like leading dash.
    case "$2" in
        "" | . | .. | -* | */* | *[!A-Za-z0-9._-]*) die "$1 must be a plain name, got '$2'" ;;
    esac
}

for var in SOURCE_DIR TARGET_DIR SCOPES CERT_FILE KEY_FILE; do
    require "$var"
done
OWNER=${OWNER:-}

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

cert_src="$SOURCE_DIR/fullchain.pem"
key_src="$SOURCE_DIR/privkey.pem"
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

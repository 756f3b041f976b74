# Shared helpers for conformance/run-* (sourced, not run).
#
# Every wait here is bounded: a mount that never appears, an unmount that
# hangs, an sshd that never listens all end in an error instead of a hang.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A loopback TCP port that was free a moment ago.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds (0) or
# SECONDS pass (1).
wait_until() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# sshd_start DIR: a private sshd on a free loopback port, with host and
# client keys generated in DIR (like crates/testkit). Sets SSHD_PORT,
# SSHD_PID, SSH_KEY. Stop it with sshd_stop.
sshd_start() {
    local d=$1 key
    mkdir -p "$d" /run/sshd
    for key in host_key client_key; do
        [ -f "$d/$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$d/$key"
    done
    cp "$d/client_key.pub" "$d/authorized_keys"
    SSHD_PORT=$(free_port)
    cat > "$d/sshd_config" <<CONF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $d/host_key
AuthorizedKeysFile $d/authorized_keys
PidFile $d/sshd.pid
StrictModes no
UsePAM no
PermitRootLogin yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
Subsystem sftp internal-sftp
LogLevel ERROR
MaxStartups 200
MaxSessions 200
CONF
    "$(command -v sshd || echo /usr/sbin/sshd)" -D -e -f "$d/sshd_config" </dev/null >/dev/null 2>"$d/sshd.log" &
    SSHD_PID=$!
    SSH_KEY=$d/client_key
    port_open() { kill -0 "$SSHD_PID" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null; }
    wait_until 10 port_open || die "sshd did not listen on port $SSHD_PORT: $(cat "$d/sshd.log")"
}

sshd_stop() {
    if [ -n "${SSHD_PID:-}" ]; then
        kill "$SSHD_PID" 2>/dev/null || true
        wait_until 5 eval '! kill -0 '"$SSHD_PID"' 2>/dev/null' || kill -9 "$SSHD_PID" 2>/dev/null || true
        SSHD_PID=
    fi
}

is_mounted() { mountpoint -q "$1"; }

# mount_wait PID MNT LOG: wait (at most 60 s) until MNT is a mount point,
# failing early if the mounting process PID exits first.
mount_wait() {
    local pid=$1 mnt=$2 logf=$3 deadline=$(( $(date +%s) + 60 ))
    until is_mounted "$mnt"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            # sshfs without -f daemonizes; its parent exits 0 once mounted.
            is_mounted "$mnt" && return 0
            die "mount of $mnt exited before mounting: $(tail -n 20 "$logf")"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || die "$mnt not mounted after 60 s: $(tail -n 20 "$logf")"
        sleep 0.1
    done
}

# unmount_wait MNT [PID] [YONDER]: unmount MNT (yonder unmount if YONDER is
# given, then fusermount3 -u, finally a lazy unmount), and wait (bounded)
# for the mounting process PID to exit, killing it if it does not.
unmount_wait() {
    local mnt=$1 pid=${2:-} bin=${3:-}
    if is_mounted "$mnt"; then
        if [ -n "$bin" ]; then timeout 30 "$bin" unmount "$mnt" >/dev/null 2>&1 || true; fi
        is_mounted "$mnt" && { timeout 30 fusermount3 -u "$mnt" 2>/dev/null || true; }
        wait_until 10 eval '! mountpoint -q "'"$mnt"'"' || {
            echo "warning: $mnt still mounted; lazy unmount" >&2
            timeout 10 fusermount3 -uz "$mnt" 2>/dev/null || timeout 10 umount -l "$mnt" 2>/dev/null || true
        }
    fi
    if [ -n "$pid" ]; then
        if ! wait_until 15 eval '! kill -0 '"$pid"' 2>/dev/null'; then
            echo "warning: mount process $pid still running after unmount; killing it" >&2
            kill "$pid" 2>/dev/null || true
            sleep 1
            kill -9 "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
}

# fs_mount MODE BIN BACKING MNT LOG: mount BACKING at MNT for the suites and
# wait until it is usable. MODE is yonder (BIN = the yonder binary, a local
# agent serving BACKING), yonder-sftp (BIN without an agent, through the
# SFTP server of a private sshd on loopback, which this starts), sshfs (through a private sshd on loopback, which
# this starts) or plain (no mount: the suites run in BACKING itself, on
# the local file system, for reference figures; MNT is unused). Mounts
# carry allow_other and default_permissions: the suites switch to other
# users, and permission checks are left to the kernel. Sets FS_DIR (where
# to run the suite). Undo with fs_unmount.
fs_mount() {
    FS_MODE=$1 FS_BIN=$2; local backing=$3 mnt=$4 logf=$5
    FS_MNT=$mnt MOUNT_PID=
    case "$FS_MODE" in
        plain)
            FS_DIR=$backing
            return 0
            ;;
        yonder)
            # YONDER_MOUNT_ARGS replaces the mount options below, if set.
            local opts help
            help=$(timeout 10 "$FS_BIN" mount --help 2>&1 || true)
            if [ -n "${YONDER_MOUNT_ARGS:-}" ]; then
                read -r -a opts <<< "$YONDER_MOUNT_ARGS"
            elif grep -q -- '--default-permissions' <<< "$help"; then
                opts=(--allow-other --default-permissions)
            else
                opts=(--allow-other -o default_permissions)
            fi
            # In this process (not handed to the manager): the suites
            # watch it and signal it.
            if grep -q -- '--foreground' <<< "$help"; then opts+=(--foreground); fi
            echo "$FS_BIN mount $backing $mnt ${opts[*]}" >"$logf"
            "$FS_BIN" mount "$backing" "$mnt" "${opts[@]}" </dev/null >>"$logf" 2>&1 &
            MOUNT_PID=$!
            ;;
        yonder-sftp)
            # yonder without an agent: the private sshd's SFTP server
            # (internal-sftp) serves BACKING (`--sftp`).
            local opts
            if [ -n "${YONDER_MOUNT_ARGS:-}" ]; then
                read -r -a opts <<< "$YONDER_MOUNT_ARGS"
            else
                opts=(--allow-other -o default_permissions)
            fi
            sshd_start "$FS_SSHD_DIR"
            local source="ssh://root@127.0.0.1:$SSHD_PORT$backing"
            local ssh="IdentityFile=$SSH_KEY,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR,BatchMode=yes"
            echo "$FS_BIN mount --sftp $source $mnt ${opts[*]} -o $ssh --foreground" >"$logf"
            "$FS_BIN" mount --sftp "$source" "$mnt" "${opts[@]}" -o "$ssh" --foreground </dev/null >>"$logf" 2>&1 &
            MOUNT_PID=$!
            ;;
        sshfs)
            sshd_start "$FS_SSHD_DIR"
            sshfs -f "root@127.0.0.1:$backing" "$mnt" \
                -o "${SSHFS_OPTIONS:-allow_other,default_permissions},port=$SSHD_PORT,IdentityFile=$SSH_KEY" \
                -o StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,LogLevel=ERROR \
                </dev/null >"$logf" 2>&1 &
            MOUNT_PID=$!
            ;;
        *) die "unknown mount mode $FS_MODE" ;;
    esac
    mount_wait "$MOUNT_PID" "$mnt" "$logf"
    FS_DIR=$mnt
}

fs_unmount() {
    case "${FS_MODE:-}" in
        yonder) unmount_wait "$FS_MNT" "$MOUNT_PID" "$FS_BIN" ;;
        yonder-sftp) unmount_wait "$FS_MNT" "$MOUNT_PID" "$FS_BIN"; sshd_stop ;;
        sshfs) unmount_wait "$FS_MNT" "$MOUNT_PID"; sshd_stop ;;
    esac
    FS_MODE=
}

# parse_mode ARGS...: the common command line of the run-* scripts:
#   YONDER_BIN | --sftp YONDER_BIN | --sshfs | --plain, then the remaining
# positional arguments in REST. Sets MODE and BIN.
parse_mode() {
    MODE= BIN= REST=()
    local sftp=
    while [ $# -gt 0 ]; do
        case "$1" in
            --sftp) sftp=1 ;;
            --sshfs) MODE=sshfs ;;
            --plain) MODE=plain ;;
            -h|--help) usage; exit 0 ;;
            -*) usage >&2; exit 2 ;;
            *) if [ -z "$MODE" ] && [ -z "$BIN" ]; then BIN=$1; MODE=yonder; else REST+=("$1"); fi ;;
        esac
        shift
    done
    [ -n "$MODE" ] || { usage >&2; exit 2; }
    if [ -n "$sftp" ]; then
        [ "$MODE" = yonder ] || { usage >&2; exit 2; }
        MODE=yonder-sftp
    fi
    if [ "$MODE" = yonder ] || [ "$MODE" = yonder-sftp ]; then
        [ -x "$BIN" ] || die "$BIN is not an executable"
        BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
    fi
}

#!/usr/bin/env bash
# Grade fodns with the DNS conformance tools operators use: Zonemaster, DNSViz,
# dig/ldns checks after RFC 8906 (ISC's EDNS compliance tests). See README.md.
#
#   sudo tests/conformance/run.sh [--install] [RESULTS_DIR]
#
# Everything (fodns, the tools, and the named that DNSViz starts for -N) runs in
# a fresh network namespace that has only the loopback interface, so nothing can
# send a packet to any other address. Needs root (for unshare --net and port 53).
# --install first installs the Debian packages the run needs (apt-get).
# Results go to RESULTS_DIR (default var/conformance/<timestamp>); SUMMARY.txt
# there lists every finding.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
ZONE=fo.example.net
ZONE_FILE=$REPO/zones/$ZONE.zone
FODNS=$REPO/.venv/bin/fodns
DEB_PACKAGES=(iproute2 util-linux zonemaster-cli dnsviz ldnsutils bind9-dnsutils bind9 bind9-utils)
OUTER_TIMEOUT=1500   # seconds for the whole run inside the namespace
TOOL_TIMEOUT=600     # seconds for any one tool

die() { echo "conformance: $*" >&2; exit 2; }

install_packages() {
    # bind9 is installed for its named binary only (dnsviz -N runs one on
    # loopback in the namespace). Keep the package from starting a system named.
    local guard=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        guard=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$guard"
        chmod +x "$guard"
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${DEB_PACKAGES[@]}"
    if [ -n "$guard" ]; then rm -f "$guard"; fi
}

# ---- outside: checks, then re-run this script inside a loopback-only namespace ----------

if [ "${1:-}" != "--inside" ]; then
    if [ "${1:-}" = "--install" ]; then
        shift
        [ "$(id -u)" = 0 ] || die "--install needs root"
        install_packages
    fi
    [ "$(id -u)" = 0 ] || die "run as root (unshare --net and port 53 need it)"
    [ -x "$FODNS" ] || die "$FODNS missing: run 'make test' or 'make run' once to build the venv"
    for tool in unshare ip dig drill ldns-read-zone ldns-compare-zones zonemaster-cli dnsviz \
        named named-checkconf named-checkzone; do
        command -v "$tool" >/dev/null || die "$tool missing: run with --install (or apt-get install ${DEB_PACKAGES[*]})"
    done
    RESULTS=${1:-$REPO/var/conformance/$(date -u +%Y%m%dT%H%M%SZ)}
    mkdir -p "$RESULTS"
    RESULTS=$(cd "$RESULTS" && pwd)
    echo "conformance: results in $RESULTS"
    status=0
    timeout --kill-after=10 "$OUTER_TIMEOUT" unshare --net --fork "$0" --inside "$RESULTS" \
        || status=$?
    if [ -f "$RESULTS/SUMMARY.txt" ]; then cat "$RESULTS/SUMMARY.txt"; fi
    exit "$status"
fi

# ---- inside the namespace ----------------------------------------------------------------

RESULTS=$2
ip link set lo up
# The guarantee the whole run rests on: no interface but lo, no route off this host.
if ip -o link show | grep -vq ': lo:'; then die "namespace has a non-loopback interface"; fi
if ip route show | grep -q . || ip -6 route show | grep -v '^\(local \)\?::1 ' | grep -q .; then
    # (an IPv6 route to ::1 on lo is all that may exist)
    die "namespace has routes besides loopback: $(ip route show; ip -6 route show)"
fi
{
    echo "# ip addr / routes inside the namespace"
    ip addr show
    ip route show
    ip -6 route show
} > "$RESULTS/netns.txt"

WORK=$(mktemp -d /tmp/fodns-conformance.XXXXXX)
FODNS_PID=""
stop_fodns() {
    if [ -n "$FODNS_PID" ] && kill -0 "$FODNS_PID" 2>/dev/null; then
        kill -TERM "$FODNS_PID"
        for _ in $(seq 50); do kill -0 "$FODNS_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$FODNS_PID" 2>/dev/null; then kill -KILL "$FODNS_PID"; fi
        wait "$FODNS_PID" 2>/dev/null || true
    fi
    FODNS_PID=""
}
NAMED_PID=""
cleanup() {
    stop_fodns
    if [ -n "$NAMED_PID" ]; then kill -TERM "$NAMED_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# write_config FILE ZONEFILE LISTEN...: the fodns config of the brief, with these listeners.
write_config() {
    local file=$1 zonefile=$2; shift 2
    local listen
    listen=$(printf '"%s", ' "$@")
    cat > "$file" <<EOF
[dns]
listen = [${listen%, }]
workers = 1
[api]
listen = "127.0.0.1:8053"
[store]
path = "$WORK/fodns.db"
[[zones]]
name = "$ZONE"
file = "$zonefile"
EOF
}

# start_fodns CONFIG LOG ADDRESS...: start fodns and wait until every address answers SOA.
start_fodns() {
    local config=$1 log=$2; shift 2
    "$FODNS" serve --config "$config" > "$log" 2>&1 &
    FODNS_PID=$!
    local address
    for address in "$@"; do
        for _ in $(seq 150); do
            if dig +short +time=1 +tries=1 "@$address" "$ZONE" SOA 2>/dev/null | grep -q .; then
                continue 2
            fi
            kill -0 "$FODNS_PID" 2>/dev/null || { cat "$log" >&2; die "fodns exited"; }
            sleep 0.2
        done
        cat "$log" >&2
        die "fodns did not answer on $address within 30 s"
    done
}

tool() {  # tool NAME CMD...: run with a time bound, note the exit status
    local name=$1; shift
    local rc=0
    timeout --kill-after=5 "$TOOL_TIMEOUT" "$@" || rc=$?
    echo "$name exit status: $rc" >> "$RESULTS/exit-status.txt"
}

NS_ARGS=(--ns "ns1.$ZONE/127.0.0.1" --ns "ns2.$ZONE/127.0.0.2")
AUTH_MAP="ns1.$ZONE=127.0.0.1,ns2.$ZONE=127.0.0.2"

# ---- phase A: the example zone as shipped, on 127.0.0.1 and 127.0.0.2 -------------------

A=$RESULTS/a-example-zone
mkdir -p "$A/dig"
write_config "$WORK/a.toml" "$ZONE_FILE" 127.0.0.1:53 127.0.0.2:53
cp "$WORK/a.toml" "$A/fodns.toml"
start_fodns "$WORK/a.toml" "$A/fodns.log" 127.0.0.1 127.0.0.2

# Zonemaster, undelegated test (the --ns list stands in for the parent's delegation).
tool zonemaster zonemaster-cli "$ZONE" "${NS_ARGS[@]}" --level INFO --show-testcase \
    --show-module --no-progress --count > "$A/zonemaster.txt" 2>&1
tool zonemaster-raw zonemaster-cli "$ZONE" "${NS_ARGS[@]}" --level DEBUG --raw --show-testcase \
    --no-progress > "$A/zonemaster-raw.txt" 2>&1
tool zonemaster-json zonemaster-cli "$ZONE" "${NS_ARGS[@]}" --level INFO --json --no-progress \
    > "$A/zonemaster.json" 2> "$A/zonemaster-json.err"

# DNSViz, authoritative analysis with explicit delegation (-N: dnsviz serves the
# parent side itself with a named on loopback) and the EDNS diagnostics (-E).
# docs.* is left out: its CNAME target is outside the zone and needs the Internet.
DNSVIZ_NAMES=("$ZONE" "www.$ZONE" "status.$ZONE" "mail.$ZONE" "_https._tcp.$ZONE" "apps.$ZONE"
    "web.apps.$ZONE" "foo.preview.$ZONE" "preview.$ZONE" "nonexistent.$ZONE")
tool dnsviz-probe dnsviz probe -A -E -x "$ZONE:$AUTH_MAP" -N "$ZONE:$AUTH_MAP" -p \
    -o "$A/dnsviz-probe.json" "${DNSVIZ_NAMES[@]}" 2> "$A/dnsviz-probe.err"
tool dnsviz-grok dnsviz grok -l info -o "$A/dnsviz-grok.json" < "$A/dnsviz-probe.json" \
    2> "$A/dnsviz-grok.err"
tool dnsviz-print dnsviz print -o "$A/dnsviz-print.txt" < "$A/dnsviz-probe.json" \
    2> "$A/dnsviz-print.err"

# RFC 8906 / ednscomp checks on both addresses.
tool ednscomp-a python3 "$HERE/ednscomp.py" --zone "$ZONE" --server 127.0.0.1 --server 127.0.0.2 \
    --out "$A/dig" > "$A/ednscomp.txt" 2>&1

# ldns: the zone file as ldns reads it, the data fodns serves for every owner and
# type in it (asked with drill), and the difference (ldns-compare-zones).
ldns-read-zone -c "$ZONE_FILE" > "$A/zone-canonical.txt" 2> "$A/ldns-read-zone.err" \
    || echo "ldns-read-zone failed" >> "$A/ldns-read-zone.err"
tool named-checkzone named-checkzone -i local -k fail -m fail -M fail -n fail -r warn \
    "$ZONE" "$ZONE_FILE" > "$A/named-checkzone.txt" 2>&1
{
    awk '$4 == "SOA"' "$A/zone-canonical.txt" | head -1
    awk '$4 != "SOA" {print $1, $4}' "$A/zone-canonical.txt" | sort -u |
    while read -r owner rtype; do
        timeout 10 drill -o rd @127.0.0.1 "$owner" "$rtype" 2>/dev/null |
            sed -n '/^;; ANSWER SECTION:/,/^$/p' |
            awk -v o="$owner" -v t="$rtype" '!/^;/ && tolower($1) == tolower(o) && $4 == t'
    done
} > "$A/zone-served.txt"
tool ldns-compare-zones ldns-compare-zones -a -s "$A/zone-canonical.txt" "$A/zone-served.txt" \
    > "$A/ldns-compare-zones.txt" 2>&1

stop_fodns

# ---- phase C: Zonemaster in its usual, delegated mode, under a stand-in DNS tree --------
# A named on 127.0.0.53 (recursion off) serves a root zone, example.net (the parent,
# delegating fo.example.net to ns1/ns2 with glue, as the zone file's comment says it
# should) and 127.in-addr.arpa (PTRs of the name server addresses). Zonemaster's
# --hints point at it. fodns serves the zone exactly as in phase A.

C=$RESULTS/c-delegated
mkdir -p "$C" "$WORK/named"
ROOT_IP=127.0.0.53
SOA_REST="a.root-servers.test. hostmaster.root-servers.test. 1 1800 900 604800 86400"
{
    echo "\$TTL 86400"
    echo ". IN SOA $SOA_REST"
    echo ". IN NS a.root-servers.test."
    echo "a.root-servers.test. IN A $ROOT_IP"
    echo "example.net. IN NS a.root-servers.test."
    echo "in-addr.arpa. IN NS a.root-servers.test."
} > "$WORK/named/root.zone"
{
    echo "\$TTL 86400"
    echo "@ IN SOA $SOA_REST"
    echo "@ IN NS a.root-servers.test."
    echo "$ZONE. IN NS ns1.$ZONE."
    echo "$ZONE. IN NS ns2.$ZONE."
    echo "ns1.$ZONE. IN A 127.0.0.1"
    echo "ns2.$ZONE. IN A 127.0.0.2"
} > "$WORK/named/example.net.zone"
{
    echo "\$TTL 86400"
    echo "@ IN SOA $SOA_REST"
    echo "@ IN NS a.root-servers.test."
    echo "1.0.0 IN PTR ns1.$ZONE."
    echo "2.0.0 IN PTR ns2.$ZONE."
} > "$WORK/named/127.in-addr.arpa.zone"
cat > "$WORK/named/named.conf" <<NAMEDCONF
options {
    directory "$WORK/named";
    pid-file "$WORK/named/named.pid";
    listen-on port 53 { $ROOT_IP; };
    listen-on-v6 { none; };
    recursion no;
    notify no;
    dnssec-validation no;
};
controls {};
zone "." { type primary; file "root.zone"; };
zone "example.net" { type primary; file "example.net.zone"; };
zone "127.in-addr.arpa" { type primary; file "127.in-addr.arpa.zone"; };
NAMEDCONF
printf '. 3600000 IN NS a.root-servers.test.\na.root-servers.test. 3600000 IN A %s\n' \
    "$ROOT_IP" > "$WORK/hints"
cp "$WORK/named/"*.zone "$WORK/named/named.conf" "$WORK/hints" "$C/"
# named listens only on addresses configured on an interface (fodns binds any 127/8).
ip addr add "$ROOT_IP/32" dev lo
if named-checkconf -z "$WORK/named/named.conf" > "$C/named-checkconf.txt" 2>&1; then
    named -g -c "$WORK/named/named.conf" > "$C/named.log" 2>&1 &
    NAMED_PID=$!
    for _ in $(seq 100); do
        if dig +short +time=1 +tries=1 "@$ROOT_IP" . SOA 2>/dev/null | grep -q .; then break; fi
        sleep 0.2
    done
    start_fodns "$WORK/a.toml" "$C/fodns.log" 127.0.0.1 127.0.0.2
    tool zonemaster-delegated zonemaster-cli "$ZONE" --hints "$WORK/hints" --level INFO \
        --show-testcase --show-module --no-progress --count > "$C/zonemaster.txt" 2>&1
    tool zonemaster-delegated-json zonemaster-cli "$ZONE" --hints "$WORK/hints" --level INFO \
        --json --no-progress > "$C/zonemaster.json" 2> "$C/zonemaster-json.err"
    stop_fodns
    kill -TERM "$NAMED_PID" 2>/dev/null || true
    wait "$NAMED_PID" 2>/dev/null || true
    NAMED_PID=""
else
    echo "named-checkconf failed: phase C skipped" >> "$RESULTS/exit-status.txt"
fi

# ---- phase B: a copy of the zone with names that exercise truncation, referrals --------
# and wildcards, served on 127.0.0.1, 127.0.0.2 and [::1] (IPv6 transport).

B=$RESULTS/b-extended-zone
mkdir -p "$B/dig"
{
    cat "$ZONE_FILE"
    echo "; --- added by tests/conformance/run.sh ---"
    echo "; big: 25 TXT of ~105 octets (about 2.8 kB: truncated at 512 and 1232 octets)"
    for i in $(seq -w 1 25); do
        printf 'big IN TXT "t%s-%s"\n' "$i" "$(printf 'x%.0s' $(seq 100))"
    done
    echo "; many: 40 A records (about 690 octets: truncated without EDNS, fits in 1232)"
    for i in $(seq 1 40); do echo "many IN A 198.51.100.$i"; done
    echo "; sub: a delegation with in-domain glue and an out-of-zone name server"
    echo "sub IN NS ns.sub.$ZONE."
    echo "sub IN NS ns.elsewhere.example."
    echo "ns.sub IN A 127.0.0.3"
} > "$WORK/extended.zone"
cp "$WORK/extended.zone" "$B/extended.zone"
write_config "$WORK/b.toml" "$WORK/extended.zone" 127.0.0.1:53 127.0.0.2:53 "[::1]:53"
cp "$WORK/b.toml" "$B/fodns.toml"
start_fodns "$WORK/b.toml" "$B/fodns.log" 127.0.0.1 127.0.0.2 ::1
tool ednscomp-b python3 "$HERE/ednscomp.py" --zone "$ZONE" --server 127.0.0.1 --server 127.0.0.2 \
    --server ::1 --extended --out "$B/dig" > "$B/ednscomp.txt" 2>&1
stop_fodns

# ---- summary ------------------------------------------------------------------------------

# Exit status of the run: 0 when no finding is about fodns, 1 when some are.
summary_status=0
python3 "$HERE/summarize.py" "$RESULTS" > "$RESULTS/SUMMARY.txt" 2>&1 || summary_status=$?
exit "$summary_status"

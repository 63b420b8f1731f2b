#!/bin/sh
# Creates the Redis Cluster of docker-compose.cluster.yml. Compose runs it at
# every `up`, once the nodes answer, and starts lockd once it has exited 0:
# it creates the cluster the first time, and later only waits for it to be
# whole again.
#
# CLUSTER_NODES: the nodes, host:port,host:port,... (lockd's
# REDIS_CLUSTER_ADDRS); REDISCLI_AUTH: their password, which redis-cli reads
# from there, so it is on no command line.
set -eu

# cluster_field HOST PORT FIELD prints a field of the node's CLUSTER INFO.
cluster_field() {
	redis-cli -h "$1" -p "$2" cluster info | tr -d '\r' | sed -n "s/^$3://p"
}

# all_ok succeeds when every node says cluster_state:ok.
all_ok() {
	for addr in "$@"; do
		[ "$(cluster_field "${addr%:*}" "${addr##*:}" cluster_state)" = ok ] || return 1
	done
}

# CLUSTER MEET takes IP addresses, not host names.
addrs=
for node in $(echo "$CLUSTER_NODES" | tr ',' ' '); do
	ip=$(getent hosts "${node%:*}" | awk '{ print $1; exit }')
	if [ -z "$ip" ]; then
		echo "redis-cluster-init: cannot resolve ${node%:*}" >&2
		exit 1
	fi
	addrs="$addrs $ip:${node##*:}"
done
# Unquoted: one positional parameter per node.
set -- $addrs
host=${1%:*} port=${1##*:}

if all_ok "$@"; then
	echo "redis-cluster-init: cluster_state:ok, nothing to do"
	exit 0
fi
if [ "$(cluster_field "$host" "$port" cluster_known_nodes)" -le 1 ]; then
	redis-cli --cluster create "$@" --cluster-replicas 1 --cluster-yes
else
	# Created before: the nodes keep the cluster in nodes.conf, on their
	# volumes, but a restart may have given them other addresses. Meeting
	# each one where it is now updates its address; gossip does the rest.
	echo "redis-cluster-init: the cluster exists; waiting for it to be whole again"
	rejoin=yes
fi

# meet has the first node meet every other where it is now. It is sent
# again every 5 s while the cluster is not whole: a node that came up
# after the first meeting, or whose handshake was lost, is met then.
meet() {
	for addr in "$@"; do
		if [ "$addr" != "$1" ]; then
			redis-cli -h "$host" -p "$port" cluster meet "${addr%:*}" "${addr##*:}" >/dev/null
		fi
	done
}
if [ "${rejoin:-}" = yes ]; then
	meet "$@"
fi

tries=0
until all_ok "$@"; do
	if [ "${rejoin:-}" = yes ] && [ $((tries % 5)) -eq 4 ]; then
		meet "$@"
	fi
	tries=$((tries + 1))
	if [ "$tries" -gt 60 ]; then
		echo "redis-cluster-init: cluster_state is not ok on every node after 60 s; to start afresh, remove the volumes (docker compose ... down -v)" >&2
		exit 1
	fi
	sleep 1
done
echo "redis-cluster-init: cluster_state:ok"

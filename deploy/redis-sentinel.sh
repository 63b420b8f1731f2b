#!/bin/sh
# Starts one sentinel of docker-compose.sentinel.yml. A sentinel rewrites its
# configuration file with what it learns (the current master, the replicas,
# the other sentinels, its own id), so each one writes its own, in the
# working directory (the container's /data), at its first start only: a
# restarted sentinel keeps what it knew.
#
# SENTINEL_MASTER_NAME: the name the sentinels know the master by (lockd's
# REDIS_MASTER_NAME); SENTINEL_MASTER: the master's host and port, as in
# "redis 6379"; REDISCLI_AUTH: the password of the data nodes and of the
# sentinels (without double quotes or backslashes).
set -eu

conf=sentinel.conf
if [ ! -f "$conf" ]; then
	# Three sentinels, and two must agree that the master is down. Host
	# names are resolved, as compose's services have no fixed addresses.
	cat >"$conf" <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel monitor $SENTINEL_MASTER_NAME $SENTINEL_MASTER 2
sentinel down-after-milliseconds $SENTINEL_MASTER_NAME 5000
sentinel failover-timeout $SENTINEL_MASTER_NAME 60000
sentinel auth-pass $SENTINEL_MASTER_NAME "$REDISCLI_AUTH"
requirepass "$REDISCLI_AUTH"
sentinel sentinel-pass "$REDISCLI_AUTH"
CONF
fi
exec redis-server "$conf" --sentinel

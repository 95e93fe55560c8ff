#!/bin/sh
# Start as primary on the first boot of ordinal 0; otherwise follow whatever primary the
# Sentinels currently name (after a failover that may be any ordinal), falling back to ordinal 0.
set -eu
self="${POD_NAME}.refplat-redis-headless"
sed "s/\${POD_NAME}/${POD_NAME}/" /etc/redis/redis.conf > /run/redis/redis.conf
primary=$(timeout 3 redis-cli -h refplat-sentinel -p 26379 \
  sentinel get-master-addr-by-name refplat 2>/dev/null | head -n 1 || true)
if [ -z "$primary" ]; then
  [ "${POD_NAME##*-}" = "0" ] && primary="$self" || primary="refplat-redis-0.refplat-redis-headless"
fi
if [ "$primary" = "$self" ]; then
  exec redis-server /run/redis/redis.conf
fi
exec redis-server /run/redis/redis.conf --replicaof "$primary" 6379

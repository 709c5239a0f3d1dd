# redis-server with redis-cli (strings, lists, hashes, a pipelined bulk
# load) and redis-benchmark -q (only which tests ran is compared).
set -eu
redis-server --port 6380 --bind 127.0.0.1 --daemonize yes --dir /tmp --save '' --appendonly no \
    --logfile /tmp/redis.log --pidfile /tmp/redis.pid
for i in $(seq 1 100); do [ "$(redis-cli -p 6380 ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
cli() { redis-cli -p 6380 "$@"; }
cli set greeting hello
cli get greeting
cli incrby counter 41; cli incr counter
cli rpush list a b c d e >/dev/null; cli lrange list 1 3
cli hset h f1 v1 f2 v2 >/dev/null; cli hgetall h | sort
for i in $(seq 1 3000); do printf 'SET key:%d %d\r\n' "$i" "$((i * i))"; done | cli --pipe | tail -1
cli dbsize
cli mget key:1 key:1500 key:3000
cli eval "local s = 0 for i = 1, 3000 do s = s + tonumber(redis.call('get', 'key:' .. i)) end return s" 0
redis-benchmark -p 6380 -q -n 2000 -c 10 -t set,get,incr,lpush,lpop 2>&1 | tr '\r' '\n' \
    | grep 'requests per second' | cut -d: -f1
cli shutdown nosave 2>/dev/null || true
for i in $(seq 1 100); do [ -e /tmp/redis.pid ] || break; sleep 0.1; done
echo "stopped: $([ -e /tmp/redis.pid ] && echo no || echo yes)"

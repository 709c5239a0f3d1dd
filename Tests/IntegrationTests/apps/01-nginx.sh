# nginx: a master and two worker processes serve 300 static requests over
# loopback to curl (keep-alive and parallel), then quit gracefully.
set -eu
mkdir -p /tmp/www /tmp/ngx
for i in $(seq 1 50); do echo "page $i $(printf '%*s' $((i * 40)) '' | tr ' ' x)" > /tmp/www/p$i.html; done
cat > /tmp/ngx/nginx.conf <<'CONF'
worker_processes 2;
error_log /tmp/ngx/error.log;
pid /tmp/ngx/nginx.pid;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path /tmp/ngx/body;
    proxy_temp_path /tmp/ngx/proxy;
    fastcgi_temp_path /tmp/ngx/fastcgi;
    uwsgi_temp_path /tmp/ngx/uwsgi;
    scgi_temp_path /tmp/ngx/scgi;
    server { listen 127.0.0.1:8080; root /tmp/www; }
}
CONF
nginx -c /tmp/ngx/nginx.conf
up=no
for i in $(seq 1 100); do
    if curl -sf -o /dev/null http://127.0.0.1:8080/p1.html; then up=yes; break; fi
    sleep 0.1
done
echo "server up: $up"
echo "workers: $(ps -o comm= --ppid "$(cat /tmp/ngx/nginx.pid)" | sort | uniq -c | sed 's/^ *//')"
for round in 1 2 3; do
    curl -s "http://127.0.0.1:8080/p[1-50].html" | sha256sum | cut -c1-16
done
curl -s -Z --parallel-max 8 "http://127.0.0.1:8080/p[1-50].html" -o "/tmp/out/#1.html" --create-dirs
cat $(for i in $(seq 1 50); do echo /tmp/out/$i.html; done) | sha256sum | cut -c1-16
for i in $(seq 1 100); do curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:8080/p$((i % 50 + 1)).html; done | sort | uniq -c | sed 's/^ *//'
curl -s -o /dev/null -w 'missing: %{http_code}\n' http://127.0.0.1:8080/nope.html
nginx -c /tmp/ngx/nginx.conf -s quit
for i in $(seq 1 100); do [ -e /tmp/ngx/nginx.pid ] || break; sleep 0.1; done
echo "stopped: $([ -e /tmp/ngx/nginx.pid ] && echo no || echo yes)"

#!/usr/bin/env bash
# nginx (Debian's) in front of several toolship replicas: the replica tests' load
# balancer, and a starting point for an operator's (docs/deploy.md, "Several replicas").
#
#   scripts/nginx.sh install              install nginx (apt) if missing; print its path
#   scripts/nginx.sh config PORT URL...   print a configuration that listens on
#                                         127.0.0.1:PORT and spreads requests over URLs
#
# The configuration runs in the foreground as any user (nginx -c FILE -p DIR -g
# 'daemon off;'); its temporary files and logs go under DIR.  Long polls (/wait) and log
# streams pass through unbuffered, for as long as toolship's longest wait (600 s).
set -euo pipefail

die() { printf 'nginx: ERROR: %s\n' "$*" >&2; exit 1; }

install_nginx() {
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        [ "$(id -u)" -eq 0 ] || die "nginx is missing; as root run:
    apt-get update && apt-get install -y --no-install-recommends nginx"
        command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian only"
        printf 'nginx: installing nginx\n' >&2
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx >&2
        # Debian starts a site of its own on port 80: the tests run nginx themselves.
        if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >&2 || true; fi
        if [ -x /etc/init.d/nginx ]; then /etc/init.d/nginx stop >&2 || true; fi
    fi
    command -v nginx 2>/dev/null || echo /usr/sbin/nginx
}

config() {
    local port="$1"; shift
    [ "$#" -gt 0 ] || die "config PORT URL...: name at least one replica's URL"
    cat <<CONF
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    upstream toolship {
CONF
    for url in "$@"; do
        printf '        server %s max_fails=1 fail_timeout=2s;\n' "${url#http://}"
    done
    cat <<CONF
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 0;
        location / {
            proxy_pass http://toolship;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 610s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
        }
    }
}
CONF
}

case "${1:-}" in
    install) install_nginx ;;
    config) shift; config "$@" ;;
    *) die "usage: $0 install | config PORT URL..." ;;
esac

# Sourced after loopback-ns.sh: `nginx_in_ns RUN SERVER_BLOCK` starts nginx in $LOOPBACK_NS with
# its pid, logs and temporary files in RUN (access log: RUN/access.log) and the given `server`
# block; `on_exit` should kill "$(cat RUN/nginx.pid)".
nginx_in_ns() {
    local run=$1 server=$2
    cat > "$run/nginx.conf" <<CONF
daemon on; worker_processes 1; pid $run/nginx.pid; error_log $run/error.log;
events { worker_connections 64; }
http {
    access_log $run/access.log;
    client_body_temp_path $run; proxy_temp_path $run; fastcgi_temp_path $run;
    uwsgi_temp_path $run; scgi_temp_path $run;
    $server
}
CONF
    ip netns exec "$LOOPBACK_NS" /usr/sbin/nginx -c "$run/nginx.conf"
}

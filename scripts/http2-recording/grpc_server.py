"""gRPC server for scripts/http2-recording/grpc.sh: generic handlers over raw bytes (no protoc).

Service shop.Catalog: GetItem (unary; an id starting with "missing" is NOT_FOUND, "boom" raises
INTERNAL, "slow" sleeps 50 ms), ListItems (server streaming: as many messages as the request's
decimal count, 0 to 40; "fail-after-N" sends N messages then aborts UNAVAILABLE). Service
shop.Admin: Reset (unary, always PERMISSION_DENIED). Every call is logged once, when it ends:
  time_ns peer /service/method status_code messages_sent
usage: grpc_server.py PORT LOGFILE
"""
import sys
import threading
import time
from concurrent import futures

import grpc

LOG = open(sys.argv[2], "w", buffering=1)
LOCK = threading.Lock()


def log(ctx, method, code, sent):
    with LOCK:
        LOG.write(f"{time.time_ns()} {ctx.peer()} {method} {code.name} {sent}\n")


def get_item(req, ctx):
    key = req.decode()
    if key.startswith("missing"):
        log(ctx, "/shop.Catalog/GetItem", grpc.StatusCode.NOT_FOUND, 0)
        ctx.abort(grpc.StatusCode.NOT_FOUND, f"no item {key}")
    if key.startswith("boom"):
        log(ctx, "/shop.Catalog/GetItem", grpc.StatusCode.INTERNAL, 0)
        ctx.abort(grpc.StatusCode.INTERNAL, "database on fire")
    if key.startswith("slow"):
        time.sleep(0.05)
    log(ctx, "/shop.Catalog/GetItem", grpc.StatusCode.OK, 1)
    return b"item:" + req + b":" + b"x" * 64


def list_items(req, ctx):
    text = req.decode()
    if text.startswith("fail-after-"):
        n = int(text.rsplit("-", 1)[1])
        for i in range(n):
            yield b"row-%d" % i
        log(ctx, "/shop.Catalog/ListItems", grpc.StatusCode.UNAVAILABLE, n)
        ctx.abort(grpc.StatusCode.UNAVAILABLE, "backend went away")
    n = max(0, min(40, int(text)))
    for i in range(n):
        yield b"row-%d-" % i + b"y" * 100
    log(ctx, "/shop.Catalog/ListItems", grpc.StatusCode.OK, n)


def reset(req, ctx):
    log(ctx, "/shop.Admin/Reset", grpc.StatusCode.PERMISSION_DENIED, 0)
    ctx.abort(grpc.StatusCode.PERMISSION_DENIED, "admins only")


def raw(f, streaming=False):
    kind = grpc.unary_stream_rpc_method_handler if streaming else grpc.unary_unary_rpc_method_handler
    return kind(f, request_deserializer=None, response_serializer=None)


server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((
    grpc.method_handlers_generic_handler(
        "shop.Catalog", {"GetItem": raw(get_item), "ListItems": raw(list_items, True)}),
    grpc.method_handlers_generic_handler("shop.Admin", {"Reset": raw(reset)}),
))
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
print("ready", flush=True)
server.wait_for_termination()

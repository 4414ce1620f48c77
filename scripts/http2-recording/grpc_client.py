"""gRPC client for scripts/http2-recording/grpc.sh: two channels (two connections), each with
many calls in flight (futures), unary and server-streaming, successes and failures, paced so that
the capture can be cut in the middle. usage: grpc_client.py PORT"""
import sys
import time

import grpc

PORT = sys.argv[1]
META = (("x-tenant", "acme-retail"), ("x-request-tag", "aa11bb22cc33dd44"))


def unary(ch):
    return ch.unary_unary("/shop.Catalog/GetItem", request_serializer=None,
                          response_deserializer=None)


def stream(ch):
    return ch.unary_stream("/shop.Catalog/ListItems", request_serializer=None,
                           response_deserializer=None)


def run(ch, rounds, tag):
    get, lst = unary(ch), stream(ch)
    reset = ch.unary_unary("/shop.Admin/Reset", request_serializer=None,
                           response_deserializer=None)
    for r in range(rounds):
        calls = []
        for i in range(12):
            key = f"{tag}-{r}-{i}"
            if i == 5:
                key = "missing-" + key
            elif i == 9:
                key = "boom-" + key
            elif i == 11 and r % 5 == 0:
                key = "slow-" + key
            calls.append(get.future(key.encode(), metadata=META + (("x-round", str(r)),)))
        if r % 10 == 3:
            calls.append(reset.future(b"all", metadata=META))
        for c in calls:
            try:
                c.result()
            except grpc.RpcError:
                pass
        streams = [lst(str((r * 7 + k) % 41).encode(), metadata=META) for k in range(3)]
        if r % 8 == 6:
            streams.append(lst(b"fail-after-3", metadata=META))
        for s in streams:
            try:
                for _ in s:
                    pass
            except grpc.RpcError:
                pass
        time.sleep(0.02)


a = grpc.insecure_channel(f"127.0.0.1:{PORT}")
b = grpc.insecure_channel(f"127.0.0.1:{PORT}")
import threading
t = threading.Thread(target=run, args=(b, 40, "b"))
t.start()
run(a, 60, "a")
t.join()
a.close()
b.close()

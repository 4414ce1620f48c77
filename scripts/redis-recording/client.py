"""redis-py session for scripts/redis-recording/record.sh: every value is fake and greppable."""
import threading
import time

import redis

HOST, PORT = "127.0.0.1", 6379
# redis-py 8 speaks RESP3 by default: every connection but one asks for RESP2 explicitly.


def plain(r):
    r.set("session:8f3a9c", "value-session-01", ex=300)
    r.get("session:8f3a9c")
    r.get("user:1042:name")  # a miss: nil
    for uid in (17, 18, 19):
        r.hset(f"user:{uid}", mapping={"name": f"name-{uid}", "email": f"u{uid}@example.test"})
        r.hgetall(f"user:{uid}")
    r.incr("counter:page:home")
    r.expire("counter:page:home", 60)
    r.lpush("queue:jobs", "job-a", "job-b")
    r.lrange("queue:jobs", 0, -1)
    r.delete("queue:jobs")
    r.exists("session:8f3a9c")
    r.mget("session:8f3a9c", "user:1042:name")


def errors(r):
    r.set("plainstring", "value-plain-02")
    for bad in (lambda: r.lpush("plainstring", "x"),          # -WRONGTYPE
                lambda: r.incr("plainstring"),                # -ERR not an integer
                lambda: r.execute_command("NOSUCHCMD", "a")):  # -ERR unknown command
        try:
            bad()
        except redis.ResponseError:
            pass


def pipeline(r):
    p = r.pipeline(transaction=False)
    for i in range(20):
        p.set(f"cache:item:{i}", f"value-item-{i:02}")
    for i in range(20):
        p.get(f"cache:item:{i}")
    p.execute()


def transaction(r):
    p = r.pipeline(transaction=True)
    p.incr("order:seq")
    p.hset("order:5001", "state", "paid")
    p.expire("order:5001", 600)
    p.execute()
    # A transaction that fails inside EXEC: the error is an element of the EXEC array.
    p = r.pipeline(transaction=True)
    p.set("txkey", "value-tx-03")
    p.lpush("txkey", "x")
    try:
        p.execute()
    except redis.ResponseError:
        pass


def pubsub():
    r = redis.Redis(host=HOST, port=PORT, protocol=2)
    ps = r.pubsub()
    ps.subscribe("events:orders")
    ps.get_message(timeout=1)
    pub = redis.Redis(host=HOST, port=PORT, protocol=2)
    for i in range(3):
        pub.publish("events:orders", f"payload-order-{i}")
    for _ in range(5):
        ps.get_message(timeout=0.5)
    ps.unsubscribe("events:orders")
    ps.get_message(timeout=0.5)
    ps.close()
    pub.close()


def resp3():
    r = redis.Redis(host=HOST, port=PORT, protocol=3)
    r.set("resp3:key", "value-resp3-04")
    r.get("resp3:key")
    r.hset("resp3:hash", mapping={"a": "1", "b": "2"})
    r.hgetall("resp3:hash")  # a RESP3 map
    r.smembers("resp3:hash:none")  # an empty RESP3 set
    r.execute_command("CLIENT", "TRACKING", "ON")
    r.get("resp3:key")
    other = redis.Redis(host=HOST, port=PORT, protocol=2)
    other.set("resp3:key", "value-resp3-05")  # invalidation push to r
    time.sleep(0.2)
    r.ping()  # the push arrives before this answer
    try:
        r.lpush("resp3:key", "x")
    except redis.ResponseError:
        pass
    r.close()
    other.close()


def main():
    r = redis.Redis(host=HOST, port=PORT, protocol=2)
    r.ping()
    plain(r)
    errors(r)
    pipeline(r)
    transaction(r)
    r.close()
    pubsub()
    resp3()
    # Two clients at once, each pipelining.
    threads = [threading.Thread(target=pipeline, args=(redis.Redis(host=HOST, port=PORT, protocol=2),))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()

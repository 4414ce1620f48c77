"""Client for `record.sh OUT_DIR findings`: 90 GETs from 3 threads, each on its own keep-alive
connection, every one with an X-Request-ID; each thread cycles through the three handlers of
findings_service.py (/orders/N, /dashboard/N, /user/N)."""
import http.client
import threading

PATHS = ("orders", "dashboard", "user")


def worker(w):
    c = http.client.HTTPConnection("127.0.0.1", 8000)
    for i in range(30):
        n = w * 30 + i
        c.request("GET", f"/{PATHS[n % 3]}/{n // 3 + 1}", headers={"X-Request-ID": f"req-{n:04d}"})
        c.getresponse().read()
    c.close()


threads = [threading.Thread(target=worker, args=(w,)) for w in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()

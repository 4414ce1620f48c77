"""Client for scripts/multitier-recording/record.sh: 120 GETs from 4 threads, each on its own
keep-alive connection; three of every four requests carry an X-Request-ID (the fourth only in
the URL's query, so that nesting alone must find its parent)."""
import http.client
import threading


def worker(w):
    c = http.client.HTTPConnection("127.0.0.1", 8000)
    for i in range(30):
        n = w * 30 + i
        headers = {"X-Request-ID": f"req-{n:04d}"} if n % 4 else {}
        c.request("GET", f"/user/{n % 25 + 1}", headers=headers)
        c.getresponse().read()
    c.close()


threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()

//! `tapspan live` capturing for real: a real nginx and a real client (curl, wrk) talk across a
//! veth pair joining two network namespaces this test creates (or over loopback when namespaces
//! are unavailable, which the test says); tapspan captures on the server's veth and its spans are
//! checked against nginx's access log. Needs root (CI runs as root) and nginx, curl, wrk,
//! tcpreplay, iproute2, and for the privilege tests setcap, setpriv and useradd, which `.ci/run`
//! installs; without them each test says why and skips — unless `TAPSPAN_REQUIRE_LIVE=1` is set
//! (`.ci/run` sets it), which turns every such skip, and a fall back from namespaces to
//! loopback, into a failure.
//!
//! `TAPSPAN_TEST_LOOPBACK=1` forces the loopback variant.
//!
//! Every test cleans up what it started (namespaces, nginx, tapspan) on success and on panic,
//! and stops by itself: each wait is bounded.
#![cfg(feature = "live")]

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The tests share two cores with nginx and the clients: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn tapspan_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tapspan")
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(program).is_file())
}

/// Why this machine cannot run the live tests, if it cannot.
fn cannot_run(needs: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("needs root to capture packets (CI runs as root)".into());
    }
    let missing: Vec<&str> = needs.iter().copied().filter(|p| !have(p)).collect();
    if !missing.is_empty() {
        return Some(format!(
            "{} not installed (.ci/run installs them)",
            missing.join(", ")
        ));
    }
    None
}

/// Whether every live test must run (`TAPSPAN_REQUIRE_LIVE=1`, set by `.ci/run`).
fn live_required() -> bool {
    std::env::var_os("TAPSPAN_REQUIRE_LIVE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A test cannot run here: say why — or fail, when live tests are required.
fn unavailable(why: &str) {
    assert!(
        !live_required(),
        "TAPSPAN_REQUIRE_LIVE is set, yet this test cannot run: {why}"
    );
    eprintln!("skipping: {why}");
}

macro_rules! skip_unless_ready {
    ($($prog:expr),*) => {
        if let Some(why) = cannot_run(&[$($prog),*]) {
            unavailable(&why);
            return;
        }
    };
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

/// Where the server and the client live: two namespaces joined by a veth pair, or loopback.
struct Net {
    /// (server namespace, client namespace), when namespaces are used.
    ns: Option<(String, String)>,
    /// Interface tapspan captures on (in the server namespace).
    iface: String,
    /// The client's end of the link (in the client namespace).
    client_iface: String,
    server_ip: String,
    port: u16,
}

impl Net {
    fn new() -> Net {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id() % 100_000, n);
        let port = 20_000 + ((std::process::id() as usize * 7 + n * 13) % 20_000) as u16;
        let (srv, cli) = (format!("tss{tag}"), format!("tsc{tag}"));
        let veth_s = format!("tsvs{tag}");
        let veth_c = format!("tsvc{tag}");
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &srv],
            vec!["netns", "add", &cli],
            vec![
                "link", "add", &veth_s, "netns", &srv, "type", "veth", "peer", "name", &veth_c,
                "netns", &cli,
            ],
            vec!["-n", &srv, "addr", "add", "10.213.0.1/24", "dev", &veth_s],
            vec!["-n", &cli, "addr", "add", "10.213.0.2/24", "dev", &veth_c],
            vec!["-n", &srv, "link", "set", &veth_s, "up"],
            vec!["-n", &cli, "link", "set", &veth_c, "up"],
            vec!["-n", &srv, "link", "set", "lo", "up"],
            vec!["-n", &cli, "link", "set", "lo", "up"],
        ];
        if std::env::var_os("TAPSPAN_TEST_LOOPBACK").is_some() {
            eprintln!("TAPSPAN_TEST_LOOPBACK is set: using loopback instead of namespaces");
            return Net {
                ns: None,
                iface: "lo".into(),
                client_iface: "lo".into(),
                server_ip: "127.0.0.1".into(),
                port,
            };
        }
        let net = Net {
            ns: Some((srv.clone(), cli.clone())),
            iface: veth_s.clone(),
            client_iface: veth_c.clone(),
            server_ip: "10.213.0.1".into(),
            port,
        };
        for step in &steps {
            let out = run(Command::new("ip").args(step));
            if !out.status.success() {
                let why = format!(
                    "network namespaces unavailable (ip {}: {})",
                    step.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                // Loopback is a weaker test (one host, no veth): not good enough when required.
                assert!(!live_required(), "TAPSPAN_REQUIRE_LIVE is set: {why}");
                eprintln!("{why}: using loopback instead");
                drop(net); // deletes what was made
                return Net {
                    ns: None,
                    iface: "lo".into(),
                    client_iface: "lo".into(),
                    server_ip: "127.0.0.1".into(),
                    port,
                };
            }
        }
        // The veth link needs a moment before it passes traffic.
        sleep(Duration::from_millis(300));
        net
    }

    fn in_server(&self, program: &str) -> Command {
        self.in_ns(self.ns.as_ref().map(|n| n.0.as_str()), program)
    }

    fn in_client(&self, program: &str) -> Command {
        self.in_ns(self.ns.as_ref().map(|n| n.1.as_str()), program)
    }

    /// `ip netns exec` execs the program itself, so the child's pid is the program's.
    fn in_ns(&self, ns: Option<&str>, program: &str) -> Command {
        match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.server_ip, self.port)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some((s, c)) = &self.ns {
            // Deleting a namespace deletes its end of the veth pair, and with it the other end.
            let _ = Command::new("ip").args(["netns", "del", s]).output();
            let _ = Command::new("ip").args(["netns", "del", c]).output();
        }
    }
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

/// Waits up to `limit` for the child to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        sleep(Duration::from_millis(20));
    }
    None
}

fn scratch_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tapspan-live-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("www")).unwrap();
    d
}

/// nginx in the server namespace, logging each request with its client port and request time.
fn start_nginx(net: &Net, dir: &Path) -> Proc {
    let d = dir.display();
    fs::write(dir.join("www/big.bin"), vec![b'x'; 300_000]).unwrap();
    let conf = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
user root;
error_log {d}/error.log;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  log_format t '$remote_port "$request" $status $request_time $body_bytes_sent';
  client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;
  uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
  server {{
    listen {ip}:{port};
    access_log {d}/access.log t;
    root {d}/www;
    location = /big.bin {{ }}
    location = /slow.bin {{ limit_rate 20k; alias {d}/www/big.bin; }}
    location /missing {{ return 404; }}
    location /fail {{ return 500 "no\n"; }}
    location / {{ return 200 "hello from $uri\n"; }}
  }}
}}
"#,
        ip = net.server_ip,
        port = net.port,
    );
    fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = net
        .in_server("nginx")
        .args(["-p", &d.to_string(), "-c"])
        .arg(dir.join("nginx.conf"))
        .args(["-e", &format!("{d}/error.log")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let p = Proc(child);
    // Ready when it answers (from the client side); nginx's own log is not part of the check.
    let start = Instant::now();
    loop {
        let ok = run(net.in_client("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "1",
            &net.url("/ready"),
        ]))
        .status
        .success();
        if ok {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "nginx did not come up: {}",
            fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        sleep(Duration::from_millis(100));
    }
    // The readiness probes are not part of what is checked.
    sleep(Duration::from_millis(100));
    let _ = fs::write(dir.join("access.log"), "");
    p
}

/// `tapspan live` in the server namespace, capturing the test's port; returns once it is
/// capturing.
fn start_tapspan(net: &Net, dir: &Path, extra: &[&str]) -> Proc {
    let filter = format!("tcp port {}", net.port);
    let mut args = vec!["--filter", filter.as_str()];
    args.extend_from_slice(extra);
    start_tapspan_with(net, dir, &args)
}

/// `tapspan live` in the server namespace with `args` (no filter unless they give one).
fn start_tapspan_with(net: &Net, dir: &Path, args: &[&str]) -> Proc {
    start_capturing(net.in_server(tapspan_bin()), net, dir, args)
}

/// `cmd`, which runs tapspan (perhaps through a wrapper), given `live --interface IFACE
/// --output DIR/live.jsonl` and `args`; returns once it is capturing.
fn start_capturing(mut cmd: Command, net: &Net, dir: &Path, args: &[&str]) -> Proc {
    let stderr = fs::File::create(dir.join("tapspan.err")).unwrap();
    let child = cmd
        .args(["live", "--interface", &net.iface])
        .arg("--output")
        .arg(dir.join("live.jsonl"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start tapspan live");
    let p = Proc(child);
    let start = Instant::now();
    loop {
        let err = fs::read_to_string(dir.join("tapspan.err")).unwrap_or_default();
        if err.contains("capturing on") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "tapspan did not start capturing: {err}"
        );
        sleep(Duration::from_millis(20));
    }
    p
}

/// SIGINT, then a bounded wait; returns the exit code and stderr.
fn stop_tapspan(mut p: Proc, dir: &Path) -> (Option<i32>, String) {
    signal(p.0.id(), "INT");
    let status = wait_exit(&mut p.0, Duration::from_secs(30));
    let err = fs::read_to_string(dir.join("tapspan.err")).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("tapspan did not stop after SIGINT: {err}"));
    (status.code(), err)
}

fn spans(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON span ({e}): {l}")))
        .collect()
}

/// One access-log line: `$remote_port "$request" $status $request_time $body_bytes_sent`.
#[derive(Debug)]
struct LogLine {
    port: u64,
    method: String,
    path: String,
    status: u64,
    request_time_ns: i64,
}

fn access_log(dir: &Path) -> Vec<LogLine> {
    fs::read_to_string(dir.join("access.log"))
        .unwrap()
        .lines()
        .map(|l| {
            let (port, rest) = l.split_once(" \"").unwrap();
            let (request, rest) = rest.split_once("\" ").unwrap();
            let mut req = request.split(' ');
            let mut f = rest.split(' ');
            let secs: f64 = f.nth(1).unwrap().parse().unwrap();
            let status_str = rest.split(' ').next().unwrap();
            LogLine {
                port: port.parse().unwrap(),
                method: req.next().unwrap().to_string(),
                path: req.next().unwrap().to_string(),
                status: status_str.parse().unwrap(),
                request_time_ns: (secs * 1e9).round() as i64,
            }
        })
        .collect()
}

fn server_spans(all: &[Value]) -> Vec<&Value> {
    all.iter().filter(|s| s["kind"] == "server").collect()
}

fn duration_ns(s: &Value) -> i64 {
    s["end_unix_nano"].as_i64().unwrap() - s["start_unix_nano"].as_i64().unwrap()
}

fn curl(net: &Net, args: &[&str]) {
    let out = run(net
        .in_client("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "5"])
        .args(args));
    assert!(out.status.success(), "curl {args:?} failed: {out:?}");
}

/// Varied traffic: keep-alive, 404, 500, a POST with a body, a 300 kB download.
fn make_requests(net: &Net) {
    curl(
        net,
        &[
            &net.url("/users/1"),
            &net.url("/users/2"),
            &net.url("/users/3"),
        ],
    );
    curl(net, &[&net.url("/missing/thing")]);
    curl(net, &[&net.url("/fail")]);
    curl(net, &["-d", "name=tapspan&x=1", &net.url("/submit")]);
    curl(net, &[&net.url("/big.bin")]);
    curl(
        net,
        &["-H", "X-Request-ID: live-test-1", &net.url("/traced")],
    );
}

#[test]
fn live_spans_match_the_server_access_log() {
    skip_unless_ready!("ip", "nginx", "curl");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    // One request before capturing: the first one after nginx (and the namespaces' neighbour
    // tables) start can wait in the socket for milliseconds, which nginx does not count. Its
    // log line is removed (nginx appends to the truncated file).
    curl(&net, &[&net.url("/warm-up")]);
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("access.log"))
        .and_then(|f| f.set_len(0))
        .unwrap();
    let analysis_json = dir.join("analysis.json");
    let tapspan = start_tapspan(
        &net,
        &dir,
        &[
            "--summary",
            "--analysis-json",
            analysis_json.to_str().unwrap(),
        ],
    );
    make_requests(&net);
    // Let the last packets reach tapspan before stopping it.
    sleep(Duration::from_millis(500));
    let (code, err) = stop_tapspan(tapspan, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("stopped after"), "no final summary: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // Root without --user keeps its privileges, and says so once.
    assert_eq!(err.matches("running as root").count(), 1, "{err}");

    let log = access_log(&dir);
    assert_eq!(log.len(), 8, "access log: {log:?}");
    let all = spans(&dir.join("live.jsonl"));
    let servers = server_spans(&all);
    assert_eq!(all.len(), 2 * servers.len());
    assert_eq!(
        servers.len(),
        log.len(),
        "one server span per access-log line\nlog: {log:#?}\nspans: {servers:#?}"
    );
    let mut by_key: HashMap<(u64, String, String), &Value> = HashMap::new();
    for s in &servers {
        let a = &s["attributes"];
        let key = (
            a["client.port"].as_u64().unwrap(),
            a["http.request.method"].as_str().unwrap().to_string(),
            a["url.path"].as_str().unwrap().to_string(),
        );
        assert!(by_key.insert(key, s).is_none(), "two spans for one request");
    }
    let mut within_2ms = 0;
    for line in &log {
        let key = (line.port, line.method.clone(), line.path.clone());
        let s = by_key
            .get(&key)
            .unwrap_or_else(|| panic!("no span for {line:?}\nspans: {servers:#?}"));
        let a = &s["attributes"];
        assert_eq!(
            a["http.response.status_code"].as_u64(),
            Some(line.status),
            "{line:?}"
        );
        assert_eq!(a["server.port"].as_u64(), Some(u64::from(net.port)));
        assert_eq!(a["server.address"].as_str(), Some(net.server_ip.as_str()));
        let d = duration_ns(s);
        // The wire sees the request before nginx reads it: a span is never shorter than nginx's
        // time (less 2 ms of its millisecond rounding), and on a busy machine the wait in the
        // socket can add a few milliseconds that nginx does not count. Most requests must agree
        // within 2 ms; every one within 50 ms.
        assert!(
            d >= line.request_time_ns - 2_000_000 && d <= line.request_time_ns + 50_000_000,
            "{line:?}: span lasted {d} ns, nginx says {} ns",
            line.request_time_ns
        );
        if (d - line.request_time_ns).abs() <= 2_000_000 {
            within_2ms += 1;
        }
        let expect_error = line.status >= 500;
        assert_eq!(s["status"] == "error", expect_error, "{s}");
        assert!(
            a.get("error.type").is_none(),
            "complete exchange marked incomplete: {s}"
        );
    }
    assert!(
        within_2ms + 1 >= log.len(),
        "only {within_2ms} of {} spans within 2 ms of nginx's $request_time",
        log.len()
    );
    let big = by_key
        .iter()
        .find(|(k, _)| k.2 == "/big.bin")
        .map(|(_, s)| *s)
        .unwrap();
    assert_eq!(
        big["attributes"]["http.response.body.size"].as_u64(),
        Some(300_000)
    );
    let post = by_key.iter().find(|(k, _)| k.2 == "/submit").unwrap().1;
    assert_eq!(
        post["attributes"]["http.request.body.size"].as_u64(),
        Some(16)
    );
    // The analysis written at exit counts every request nginx logged.
    let analysis: Value =
        serde_json::from_str(&fs::read_to_string(&analysis_json).unwrap()).unwrap();
    assert_eq!(analysis["calls"].as_u64(), Some(log.len() as u64));
    let _ = fs::remove_dir_all(&dir);
}

/// DESIGN.md "Causality": a span is written at most `--trace-window` + 1 s (capture time) after
/// its exchange ended, while tapspan keeps running: nothing waits for a buffer to fill or for
/// the capture to end. With a window of 1 s, the request's spans must be in the output file
/// within 2 s of curl's return (plus 0.5 s for the packets to reach tapspan and for this test's
/// polling), and tapspan still capturing.
#[test]
fn a_span_is_written_within_the_trace_window_and_a_second() {
    skip_unless_ready!("ip", "nginx", "curl");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    curl(&net, &[&net.url("/warm-up")]);
    let mut tapspan = start_tapspan(&net, &dir, &["--trace-window", "1"]);
    curl(&net, &[&net.url("/users/7")]);
    let answered = Instant::now();
    let bound = Duration::from_millis(2_500);
    let written = loop {
        let found = spans(&dir.join("live.jsonl"))
            .iter()
            .filter(|s| s["attributes"]["url.path"] == "/users/7")
            .count();
        if found == 2 {
            break answered.elapsed();
        }
        assert!(
            answered.elapsed() < bound,
            "the spans of /users/7 were not written within {bound:?} ({found} of 2)"
        );
        sleep(Duration::from_millis(50));
    };
    assert!(
        tapspan.0.try_wait().unwrap().is_none(),
        "tapspan still capturing"
    );
    eprintln!("spans written {written:?} after the response (window 1 s)");
    let (code, err) = stop_tapspan(tapspan, &dir);
    assert_eq!(code, Some(0), "{err}");
}

/// The final summary's count named `what` (e.g. "kernel drops", "shed").
fn summary_count(err: &str, what: &str) -> u64 {
    let line = err
        .lines()
        .find(|l| l.contains("stopped after"))
        .unwrap_or_else(|| panic!("no final summary: {err}"));
    let at = line
        .find(&format!("{what} "))
        .unwrap_or_else(|| panic!("no `{what}` in: {line}"));
    line[at + what.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("`{what}` is not a count in: {line}"))
}

/// Multi-tier traffic with nesting on every call, faster than 4 000 exchanges a second: the
/// causality lab's threads-c16 recording (2 720 exchanges in 1.24 s, no ids past the front)
/// replayed by tcpreplay at 3x onto the link tapspan captures. Nothing may be dropped by the
/// kernel or shed by tapspan, and every exchange's spans must be written within
/// `--trace-window` (1 s) + 1 s of the replay's end, while tapspan is still capturing.
#[test]
fn keeps_up_with_multi_tier_traffic_at_4000_exchanges_a_second() {
    skip_unless_ready!("ip", "tcpreplay");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/lab/threads-c16.pcap");
    let replayed = run(Command::new(tapspan_bin()).arg("replay").arg(&capture));
    assert!(replayed.status.success());
    let expected = String::from_utf8_lossy(&replayed.stdout).lines().count();
    assert_eq!(
        expected,
        2 * 2720,
        "the recording's spans, replayed from the file"
    );
    // tcpreplay itself falls short of the rate when the machine is busy (CI runs other jobs
    // beside this one): such a try proves nothing about tapspan, so it is made again.
    let mut rates = Vec::new();
    let (_net, dir, mut tapspan) = loop {
        let net = Net::new();
        let dir = scratch_dir();
        // Every packet replayed: no filter (the recording's ports are not the test's).
        let tapspan = start_tapspan_with(&net, &dir, &["--trace-window", "1"]);
        let replay_start = Instant::now();
        let out = run(net
            .in_client("tcpreplay")
            .args(["-q", "--multiplier", "3", "--intf1", &net.client_iface])
            .arg(&capture));
        let took = replay_start.elapsed();
        assert!(out.status.success(), "tcpreplay: {out:?}");
        let rate = 2720.0 / took.as_secs_f64();
        eprintln!("replayed 2720 exchanges in {took:?}: {rate:.0} exchanges/s");
        if rate >= 4000.0 {
            break (net, dir, tapspan);
        }
        rates.push(rate.round());
        assert!(
            rates.len() < 3,
            "tcpreplay never reached 4000 exchanges/s (machine too busy?): {rates:?}"
        );
        let _ = stop_tapspan(tapspan, &dir);
        drop(net);
        let _ = fs::remove_dir_all(&dir);
    };
    // Every span out within the window and a second (and a half, for this test's polling).
    let bound = Duration::from_millis(2_500);
    let ended = Instant::now();
    let mut written = spans(&dir.join("live.jsonl")).len();
    while written < expected && ended.elapsed() < bound {
        sleep(Duration::from_millis(100));
        written = spans(&dir.join("live.jsonl")).len();
    }
    assert!(tapspan.0.try_wait().unwrap().is_none(), "still capturing");
    assert_eq!(
        written, expected,
        "spans written within {bound:?} of the replay's end"
    );
    let (code, err) = stop_tapspan(tapspan, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary_count(&err, "kernel drops"), 0, "{err}");
    assert_eq!(summary_count(&err, "interface drops"), 0, "{err}");
    assert_eq!(summary_count(&err, "shed"), 0, "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn write_pcap_then_replay_gives_the_same_spans() {
    skip_unless_ready!("ip", "nginx", "curl");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    let pcap = dir.join("session.pcap");
    let tapspan = start_tapspan(&net, &dir, &["--write-pcap", pcap.to_str().unwrap()]);
    make_requests(&net);
    // An exchange left open when capture stops: its spans must match too (capture_ended).
    let mut open_conn = Proc(
        net.in_client("curl")
            .args(["-s", "-o", "/dev/null", "--max-time", "10"])
            .arg(net.url("/slow.bin"))
            .spawn()
            .unwrap(),
    );
    sleep(Duration::from_millis(800));
    let (code, err) = stop_tapspan(tapspan, &dir);
    let _ = open_conn.0.kill();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("packets saved to"), "{err}");
    // The raw packets hold every secret on the wire: readable by their owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&pcap).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "--write-pcap file mode");

    let replay = run(Command::new(tapspan_bin())
        .arg("replay")
        .arg(&pcap)
        .arg("--output")
        .arg(dir.join("replay.jsonl")));
    assert!(replay.status.success(), "{replay:?}");
    let sorted = |p: &Path| {
        let mut v: Vec<String> = fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let live = sorted(&dir.join("live.jsonl"));
    let replayed = sorted(&dir.join("replay.jsonl"));
    assert!(live.len() >= 16, "{} spans", live.len());
    assert!(
        live.iter().any(|l| l.contains("capture_ended")),
        "the open download should end as capture_ended"
    );
    if live != replayed {
        let only_live: Vec<_> = live.iter().filter(|l| !replayed.contains(l)).collect();
        let only_replay: Vec<_> = replayed.iter().filter(|l| !live.contains(l)).collect();
        panic!("live and replay differ:\nonly live: {only_live:#?}\nonly replay: {only_replay:#?}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn live_sampling_keeps_what_replay_keeps_and_counts_it() {
    skip_unless_ready!("ip", "nginx", "curl");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    let pcap = dir.join("session.pcap");
    let sampling = ["--sample", "0.5", "--keep-errors"];
    let mut args = vec![
        "--write-pcap",
        pcap.to_str().unwrap(),
        "--summary",
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(&sampling);
    let tapspan = start_tapspan(&net, &dir, &args);
    make_requests(&net);
    let urls: Vec<String> = (0..40).map(|i| net.url(&format!("/users/{i}"))).collect();
    curl(&net, &urls.iter().map(String::as_str).collect::<Vec<_>>());
    sleep(Duration::from_millis(500));
    let err = fs::read_to_string(dir.join("tapspan.err")).unwrap();
    let addr = err
        .lines()
        .find_map(|l| l.strip_prefix("tapspan: metrics at "))
        .expect("metrics address announced")
        .to_string();
    let scrape = run(net.in_server("curl").args(["-s", "--max-time", "5", &addr]));
    let text = String::from_utf8_lossy(&scrape.stdout);
    assert!(
        text.contains("tapspan_sampled_traces_total{decision=\"dropped\""),
        "{text}"
    );
    let (code, err) = stop_tapspan(tapspan, &dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("\nsampling: traces 48, kept "), "{err}");

    // The same flags on the saved packets keep the same spans.
    let mut replay = Command::new(tapspan_bin());
    replay
        .arg("replay")
        .arg(&pcap)
        .arg("--output")
        .arg(dir.join("replay.jsonl"))
        .args(sampling);
    let out = run(&mut replay);
    assert!(out.status.success(), "{out:?}");
    let sorted = |p: &Path| {
        let mut v: Vec<String> = fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let live = sorted(&dir.join("live.jsonl"));
    assert_eq!(live, sorted(&dir.join("replay.jsonl")));
    let kept = spans(&dir.join("live.jsonl"));
    let traces: HashSet<&str> = kept
        .iter()
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        kept.len(),
        2 * traces.len(),
        "each kept trace whole (one exchange each)"
    );
    eprintln!(
        "live --sample 0.5 --keep-errors: {} of 48 traces kept",
        traces.len()
    );
    assert!(
        (10..48).contains(&traces.len()),
        "{} of 48 traces kept",
        traces.len()
    );
    assert!(
        kept.iter().any(|s| s["attributes"]["url.path"] == "/fail"),
        "the error trace is kept"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn sigint_under_load_flushes_and_exits_0() {
    skip_unless_ready!("ip", "nginx", "curl", "wrk");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    let tapspan = start_tapspan(
        &net,
        &dir,
        &["--stats", "--summary", "--metrics-addr", "127.0.0.1:0"],
    );
    let mut wrk = Proc(
        net.in_client("wrk")
            .args(["-t1", "-c8", "-d6s"])
            .arg(net.url("/load"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wrk"),
    );
    sleep(Duration::from_millis(1500));
    // The metrics endpoint answers while under load.
    let err = fs::read_to_string(dir.join("tapspan.err")).unwrap();
    let addr = err
        .lines()
        .find_map(|l| l.strip_prefix("tapspan: metrics at "))
        .expect("metrics address announced")
        .to_string();
    let scrape = run(net.in_server("curl").args(["-s", "--max-time", "5", &addr]));
    let text = String::from_utf8_lossy(&scrape.stdout);
    assert!(text.contains("tapspan_packets_total "), "{text}");
    assert!(text.contains("tapspan_kernel_drops_total "), "{text}");
    sleep(Duration::from_millis(1000));

    let (code, err) = stop_tapspan(tapspan, &dir);
    let _ = wrk.0.kill();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("stopped after"), "no final summary: {err}");
    assert!(err.contains("tapspan: packets "), "no stats line: {err}");
    let all = spans(&dir.join("live.jsonl"));
    assert!(
        all.len() > 100,
        "only {} spans under load: {err}",
        all.len()
    );
    let text = fs::read_to_string(dir.join("live.jsonl")).unwrap();
    assert!(text.ends_with('\n'), "output not flushed whole");
    // Requests in flight at the stop are written as incomplete, never dropped silently.
    for s in &all {
        if s["attributes"].get("http.response.status_code").is_none() {
            assert_eq!(s["status"], "error", "{s}");
            assert!(s["attributes"]["error.type"].is_string(), "{s}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Runs a command expected to exit at once (within 10 s, or it is killed and the test fails);
/// returns its exit code and stderr.
fn run_briefly(cmd: &mut Command) -> (Option<i32>, String) {
    let mut p = Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}")),
    );
    let status = wait_exit(&mut p.0, Duration::from_secs(10));
    let mut err = String::new();
    if status.is_some() {
        p.0.stderr.take().unwrap().read_to_string(&mut err).ok();
    }
    let status = status.unwrap_or_else(|| panic!("{cmd:?} still running after 10 s"));
    (status.code(), err)
}

/// `/proc/PID/status` as field → value, its whitespace collapsed to single spaces.
fn proc_status(pid: u32) -> HashMap<String, String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"))
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            let v: Vec<&str> = v.split_whitespace().collect();
            (k.to_string(), v.join(" "))
        })
        .collect()
}

/// The capability sets that must be empty once the capture is open, as status shows them.
const CAP_SETS: [&str; 4] = ["CapInh", "CapPrm", "CapEff", "CapAmb"];
const NO_CAPS: &str = "0000000000000000";

/// A directory `nobody` (65534) may write to: outputs are opened after the switch.
fn scratch_dir_for_nobody() -> PathBuf {
    let dir = scratch_dir();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    dir
}

/// Every request of [`make_requests`], made after the drop, is a server span.
fn assert_captured_after_the_drop(dir: &Path, err: &str) {
    let log = access_log(dir);
    assert_eq!(log.len(), 8, "access log: {log:?}");
    let all = spans(&dir.join("live.jsonl"));
    let paths: Vec<&str> = server_spans(&all)
        .iter()
        .filter_map(|s| s["attributes"]["url.path"].as_str())
        .collect();
    for line in &log {
        assert!(
            paths.contains(&line.path.as_str()),
            "no span for {line:?} after the drop; spans for {paths:?}\n{err}"
        );
    }
    assert_eq!(paths.len(), log.len(), "{paths:?}");
}

/// `--user nobody`, as root: once capturing, real/effective/saved/filesystem uid and gid are
/// nobody's, the groups exactly nobody's (no 0), every capability set is empty (bounding and
/// ambient too), no_new_privs is set — and the capture goes on: every request made afterwards
/// becomes a span.
#[test]
fn user_switches_uid_gid_and_groups_and_drops_every_capability() {
    skip_unless_ready!("ip", "nginx", "curl", "id");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let expected_groups = {
        let out = run(Command::new("id").args(["-G", "nobody"]));
        assert!(out.status.success(), "id -G nobody: {out:?}");
        let mut g: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        g.sort();
        g
    };
    assert!(
        !expected_groups.iter().any(|g| g == "0"),
        "{expected_groups:?}"
    );
    let net = Net::new();
    let dir = scratch_dir_for_nobody();
    let _nginx = start_nginx(&net, &dir);
    let tapspan = start_tapspan(&net, &dir, &["--user", "nobody"]);
    let st = proc_status(tapspan.0.id());
    assert_eq!(
        st["Uid"], "65534 65534 65534 65534",
        "real, effective, saved, fs uid"
    );
    assert_eq!(
        st["Gid"], "65534 65534 65534 65534",
        "real, effective, saved, fs gid"
    );
    let mut groups: Vec<String> = st["Groups"].split(' ').map(String::from).collect();
    groups.sort();
    assert_eq!(groups, expected_groups, "supplementary groups are nobody's");
    for set in CAP_SETS.iter().chain(&["CapBnd"]) {
        assert_eq!(st[*set], NO_CAPS, "{set} after --user: {st:?}");
    }
    assert_eq!(st["NoNewPrivs"], "1");

    requests_after_the_drop_are_captured(&net, tapspan, &dir);
}

/// Requests made once privileges are gone still become spans, and tapspan did not run as root.
fn requests_after_the_drop_are_captured(net: &Net, tapspan: Proc, dir: &Path) {
    make_requests(net);
    sleep(Duration::from_millis(500));
    let (code, err) = stop_tapspan(tapspan, dir);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("running as root"), "{err}");
    assert_captured_after_the_drop(dir, &err);
    let _ = fs::remove_dir_all(dir);
}

/// What `setcap` grants for capturing without root (README): a copy of tapspan with
/// `cap_net_raw,cap_net_admin+ep`, started as nobody, opens the interface (the same binary
/// without them cannot), then holds no capability at all, with no_new_privs set, and still
/// captures every request. The bounding set is not checked: emptying it needs CAP_SETPCAP,
/// which such a binary does not have; no_new_privs makes it moot, as no exec can gain anything.
#[test]
fn file_capabilities_are_dropped_once_the_capture_opens() {
    skip_unless_ready!("ip", "nginx", "curl", "setcap", "setpriv");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir_for_nobody();
    let as_nobody = |bin: &Path| {
        let mut c = net.in_server("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin);
        c
    };
    let plain = dir.join("tapspan-plain");
    let capable = dir.join("tapspan-caps");
    for bin in [&plain, &capable] {
        fs::copy(tapspan_bin(), bin).unwrap();
        fs::set_permissions(bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let granted = run(Command::new("setcap")
        .arg("cap_net_raw,cap_net_admin+ep")
        .arg(&capable));
    if !granted.status.success() {
        unavailable(&format!(
            "setcap failed on {} (a file system without extended attributes?): {}",
            capable.display(),
            String::from_utf8_lossy(&granted.stderr).trim()
        ));
        return;
    }
    // Without the file capabilities, nobody cannot capture: the test below means something.
    let (code, err) = run_briefly(as_nobody(&plain).args(["live", "--interface", &net.iface]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot start capturing"), "{err}");

    let _nginx = start_nginx(&net, &dir);
    let filter = format!("tcp port {}", net.port);
    let tapspan = start_capturing(as_nobody(&capable), &net, &dir, &["--filter", &filter]);
    let st = proc_status(tapspan.0.id());
    assert_eq!(st["Uid"], "65534 65534 65534 65534");
    for set in CAP_SETS {
        assert_eq!(st[set], NO_CAPS, "{set} once capturing: {st:?}");
    }
    assert_eq!(st["NoNewPrivs"], "1");

    requests_after_the_drop_are_captured(&net, tapspan, &dir);
}

/// A system user made for one test (useradd, no home, no user group), deleted on drop.
struct TempUser(String);

impl TempUser {
    fn new(tag: &str, useradd: &[&str]) -> TempUser {
        let name = format!("tspn{tag}{}", std::process::id() % 100_000);
        let _ = Command::new("userdel").arg(&name).output(); // left by a killed run
        let out = run(Command::new("useradd")
            .args(["--system", "--no-create-home", "--no-user-group"])
            .args(["--shell", "/usr/sbin/nologin"])
            .args(useradd)
            .arg(&name));
        assert!(out.status.success(), "useradd {useradd:?} {name}: {out:?}");
        TempUser(name)
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).output();
    }
}

/// `--user` naming a user whose primary group is 0, or who is a member of group 0, is refused
/// with exit code 2 before the interface is opened.
#[test]
fn user_in_group_0_is_refused() {
    skip_unless_ready!("useradd", "userdel");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cases: [(&str, &[&str], &str); 2] = [
        ("g", &["--gid", "0"], "its primary group is 0"),
        (
            "m",
            &["--gid", "65534", "--groups", "0"],
            "member of group 0",
        ),
    ];
    for (tag, useradd, says) in cases {
        let user = TempUser::new(tag, useradd);
        let (code, err) = run_briefly(
            Command::new(tapspan_bin())
                .args(["live", "-i", "lo", "--output", "-", "--user", &user.0]),
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(&format!("--user {}: ", user.0)), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("capturing on"), "{err}");
    }
}

/// Per `http_route`, the `_count` of the server duration histogram in a scrape (issue 21).
fn server_counts_by_route(text: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_count{") else {
            continue;
        };
        let (labels, value) = rest.rsplit_once("} ").unwrap();
        let route = labels
            .split("http_route=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        *counts.entry(route.to_string()).or_default() += value.parse::<u64>().unwrap();
    }
    counts
}

/// A Prometheus scrape of `--metrics-addr` after traffic: the server histograms' counts per
/// route equal the server spans written for that route, and each histogram is well-formed.
#[test]
fn live_scrape_counts_per_route_equal_the_spans_written() {
    skip_unless_ready!("ip", "nginx", "curl");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    let tapspan = start_tapspan(&net, &dir, &["--metrics-addr", "127.0.0.1:0"]);
    make_requests(&net);
    let urls: Vec<String> = (0..30).map(|i| net.url(&format!("/users/{i}"))).collect();
    curl(&net, &urls.iter().map(String::as_str).collect::<Vec<_>>());
    let err = fs::read_to_string(dir.join("tapspan.err")).unwrap();
    let addr = err
        .lines()
        .find_map(|l| l.strip_prefix("tapspan: metrics at "))
        .expect("metrics address announced")
        .to_string();
    // Every exchange is measured once its trace leaves the causality stage: wait for all 38.
    let start = Instant::now();
    let text = loop {
        let scrape = run(net.in_server("curl").args(["-s", "--max-time", "5", &addr]));
        let text = String::from_utf8_lossy(&scrape.stdout).into_owned();
        let total: u64 = server_counts_by_route(&text).values().sum();
        if total >= 38 || start.elapsed() > Duration::from_secs(20) {
            break text;
        }
        sleep(Duration::from_millis(200));
    };
    let (code, err) = stop_tapspan(tapspan, &dir);
    assert_eq!(code, Some(0), "{err}");
    let written = spans(&dir.join("live.jsonl"));
    let mut by_route: HashMap<String, u64> = HashMap::new();
    for s in server_spans(&written) {
        let route = s["attributes"]["http.route"].as_str().unwrap_or_default();
        *by_route.entry(route.to_string()).or_default() += 1;
    }
    let scraped = server_counts_by_route(&text);
    assert_eq!(scraped, by_route, "scrape:\n{text}");
    assert_eq!(scraped.values().sum::<u64>(), 38, "{text}");
    assert_eq!(scraped.get("/users/{id}"), Some(&33), "{text}");
    // Cumulative buckets never decrease, and +Inf is the count.
    let mut last: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_bucket{") {
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            let series = labels.split(",le=").next().unwrap().to_string();
            let n: u64 = value.parse().unwrap();
            let prev = last.insert(series, n).unwrap_or(0);
            assert!(n >= prev, "{line}");
        }
    }
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_count{") {
            let (labels, value) = rest.rsplit_once("} ").unwrap();
            assert_eq!(last[labels], value.parse::<u64>().unwrap(), "{line}");
        }
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Issue 21: `--report-every` rewrites the report and the analysis JSON while the tap runs,
/// each file whole at every read, and they come to hold every exchange before it stops.
#[test]
fn live_report_is_rewritten_while_capturing() {
    skip_unless_ready!("ip", "nginx", "curl");
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let net = Net::new();
    let dir = scratch_dir();
    let _nginx = start_nginx(&net, &dir);
    let (html, json) = (dir.join("live.html"), dir.join("live.json"));
    let tapspan = start_tapspan(
        &net,
        &dir,
        &[
            "--report",
            html.to_str().unwrap(),
            "--analysis-json",
            json.to_str().unwrap(),
            "--report-every",
            "1s",
            "--trace-window",
            "1",
        ],
    );
    make_requests(&net);
    let urls: Vec<String> = (0..30).map(|i| net.url(&format!("/users/{i}"))).collect();
    curl(&net, &urls.iter().map(String::as_str).collect::<Vec<_>>());
    // Read while it runs: every read is a whole JSON document (a file half written would not
    // parse), and the count only grows until all 38 requests are in.
    let start = Instant::now();
    let mut last = 0;
    let mut reads = 0;
    while last < 38 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the periodic analysis stayed at {last} requests after {reads} reads"
        );
        if let Ok(text) = fs::read_to_string(&json) {
            let analysis: Value = serde_json::from_str(&text).expect("a whole analysis");
            let requests = analysis["requests"].as_u64().unwrap();
            assert!(requests >= last, "{requests} after {last}");
            last = requests;
            reads += 1;
        }
        sleep(Duration::from_millis(100));
    }
    let html_while_running = fs::read_to_string(&html).unwrap();
    assert!(html_while_running.trim_end().ends_with("</html>"));
    let (code, err) = stop_tapspan(tapspan, &dir);
    assert_eq!(code, Some(0), "{err}");
    let at_exit: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(at_exit["requests"], 38);
    let _ = fs::remove_dir_all(&dir);
}

//! Body sizes against what the servers logged, for the recordings where sizes are the point:
//! HTTP/0.9 answers (a bare body that ends with the connection, pcaps/http09.md) and bodies a
//! snap length cut (pcaps/nginx-snaplen.md). The references are the servers' own logs (nginx's
//! `$body_bytes_sent`, http.server's request lines) and the probe's table of bytes received;
//! never an earlier output of tapspan.

mod common;

use tapspan::protocols::http1::{HttpExchange, Version};

fn exchanges_of(name: &str) -> Vec<HttpExchange> {
    let (exchanges, outcome) = common::replay(&[common::repo_path(&format!("pcaps/{name}.pcap"))]);
    assert!(outcome.damaged.is_empty());
    exchanges
}

fn reference(file: &str) -> String {
    std::fs::read_to_string(common::repo_path(&format!("fixtures/reference/{file}"))).unwrap()
}

/// One nginx access-log line of these recordings: `addr:port [fields…] "request" status
/// body_bytes_sent …`, `extra` fields between the address and the request.
#[derive(Debug)]
struct NginxLine {
    port: u16,
    method: String,
    target: String,
    /// The version the request line stated, if any.
    version: Option<String>,
    status: u16,
    body_bytes_sent: u64,
}

fn nginx_log(file: &str) -> Vec<NginxLine> {
    reference(file)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (before, rest) = l.split_once('"').unwrap();
            let (request, after) = rest.split_once('"').unwrap();
            let addr: std::net::SocketAddr =
                before.split_whitespace().next().unwrap().parse().unwrap();
            let words: Vec<&str> = request.split_whitespace().collect();
            let after: Vec<&str> = after.split_whitespace().collect();
            NginxLine {
                port: addr.port(),
                method: words[0].to_string(),
                target: words[1].to_string(),
                version: words.get(2).map(|v| v.to_string()),
                status: after[0].parse().unwrap(),
                body_bytes_sent: after[1].parse().unwrap(),
            }
        })
        .collect()
}

fn attrs(ex: &HttpExchange) -> String {
    format!("{ex:#?}")
}

#[test]
fn http09_answers_are_exchanges_sized_as_nginx_sent_them() {
    let exchanges = exchanges_of("http09");
    let nginx: Vec<&HttpExchange> = exchanges
        .iter()
        .filter(|e| e.server.port() == 18091)
        .collect();
    let log = nginx_log("http09.nginx.access.log");
    assert_eq!(log.len(), 6);
    assert_eq!(nginx.len(), log.len(), "one exchange per logged request");
    let mut http09 = 0;
    for line in &log {
        let ex = nginx
            .iter()
            .find(|e| e.client.port() == line.port)
            .unwrap_or_else(|| panic!("no exchange for {line:?}"));
        let req = ex.request.as_ref().unwrap();
        let resp = ex.response.as_ref().unwrap();
        assert_eq!(
            (req.method.as_str(), req.target.as_str()),
            (line.method.as_str(), line.target.as_str())
        );
        assert_eq!(
            resp.body_size,
            line.body_bytes_sent,
            "{line:?}\n{}",
            attrs(ex)
        );
        assert_eq!(ex.error, None, "{line:?}");
        if line.version.is_none() {
            // No status line on the wire: nginx's logged status is its own business.
            http09 += 1;
            assert_eq!(req.version, Some(Version::Http09));
            assert_eq!((resp.version, resp.status), (Version::Http09, None));
        } else {
            assert_eq!(resp.status, Some(line.status));
            assert_eq!(req.version, Some(Version::Http1(0)));
        }
    }
    assert_eq!(http09, 5);
}

#[test]
fn http09_answers_of_python_match_its_log_and_the_bytes_received() {
    let exchanges = exchanges_of("http09");
    let mut python: Vec<&HttpExchange> = exchanges
        .iter()
        .filter(|e| e.server.port() == 18092)
        .collect();
    python.sort_by_key(|e| e.start());
    // http.server's request lines, in order (it logs no port): `"GET /a" 200 -`.
    let logged: Vec<(String, String, bool)> = reference("http09.python.access.log")
        .lines()
        .filter_map(|l| {
            let (_, rest) = l.split_once('"')?;
            let (request, _) = rest.split_once('"')?;
            let w: Vec<&str> = request.split_whitespace().collect();
            Some((w[0].to_string(), w[1].to_string(), w.len() == 2))
        })
        .collect();
    // The probe's table: `| python | `sent` | `begins` | bytes |`, in the same order.
    let received: Vec<u64> = reference("http09.answers.md")
        .lines()
        .filter(|l| l.starts_with("| python |"))
        .map(|l| l.split('|').nth(4).unwrap().trim().parse().unwrap())
        .collect();
    assert_eq!(logged.len(), 6);
    assert_eq!(python.len(), logged.len());
    for ((ex, (method, target, simple)), got) in python.iter().zip(&logged).zip(&received) {
        let req = ex.request.as_ref().unwrap();
        let resp = ex.response.as_ref().unwrap();
        assert_eq!((&req.method, &req.target), (method, target));
        assert_eq!(ex.error, None, "{}", attrs(ex));
        if *simple {
            // A bare body: all the client received.
            assert_eq!(resp.version, Version::Http09);
            assert_eq!(resp.body_size, *got, "{method} {target}");
        } else {
            assert_eq!(resp.status, Some(200));
            assert!(
                resp.body_size < *got,
                "head and body received, body counted"
            );
        }
    }
}

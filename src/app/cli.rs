//! Command line: `tapspan replay FILE...` and, with the cargo feature `live`, `tapspan live` (see
//! `commands::live`); the flags shared by both (outputs, memory caps, causality) are defined here.

use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Args, Parser, Subcommand};

use tapspan::limits::MemoryLimits;
use tapspan::redact::HeaderPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "tapspan",
    version,
    about = "Passive tracer: turns captured HTTP, Redis and PostgreSQL traffic into tracing spans",
    long_about = "tapspan rebuilds TCP streams from packet captures, decodes HTTP/1.x, Redis and \
PostgreSQL (and TLS handshakes), pairs each request with its response and writes a client and a \
server span per exchange, with no change to the traced services.\n\nExit codes: 0 ok; 1 runtime failure; 2 bad usage or unreadable/damaged \
input (spans decoded before the damage are still written)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// One value per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay pcap/pcapng files and write spans.
    ///
    /// Several files are captures of the same time window from different points (client host,
    /// server host, mirror port); they are merged by timestamp and an exchange seen twice becomes
    /// one pair of spans.
    Replay(ReplayArgs),

    /// Analyse captures (or span JSON lines): an HTML report with a service map, endpoint
    /// latencies, waterfalls and performance findings, and/or the analysis as JSON.
    Report(ReportArgs),

    /// Compare two analyses (`--analysis-json` files): endpoints that got slower or fail more,
    /// findings that appeared or went away.
    Diff(DiffArgs),

    /// Capture from a network interface (libpcap) and write spans until SIGINT/SIGTERM.
    ///
    /// Same outputs as replay. Needs root, or the capabilities cap_net_raw,cap_net_admin.
    #[cfg(feature = "live")]
    Live(crate::app::commands::live::LiveArgs),

    /// Capture from a network interface: not in this build (see `tapspan live --help`).
    #[cfg(not(feature = "live"))]
    #[command(disable_help_flag = true)]
    Live(NoLiveArgs),
}

/// `tapspan live` in a build without the `live` feature: whatever follows, say how to get it.
#[cfg(not(feature = "live"))]
#[derive(Debug, Args)]
pub struct NoLiveArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub ignored: Vec<String>,
}

/// What `tapspan live` says in a build without it.
#[cfg(not(feature = "live"))]
pub const NO_LIVE: &str = "this build of tapspan has no live capture. It needs libpcap: \
install it (Debian: apt-get install libpcap-dev), then build with the `live` feature, e.g. \
`cargo install --path . --features live` (a plain `cargo build --release` replaces a live build \
at target/release/tapspan with one without it)";

/// What `replay` and `report` read, and how they show their progress.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Capture files: pcap or pcapng, gzip- or zstd-compressed or not; `-` reads standard input
    /// (`tcpdump -w - | tapspan replay -`). `report` also takes span JSON lines written by
    /// `replay` (one file or several).
    #[arg(value_name = "FILE", required_unless_present = "read")]
    pub files: Vec<PathBuf>,

    /// A capture file, as tcpdump and tshark take it (repeatable; same as FILE).
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,

    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl InputArgs {
    /// Every input: `-r FILE`s, then FILEs. Standard input (`-`) can be read once, so it may
    /// only be the one input.
    pub fn files(&self) -> Result<Vec<PathBuf>, String> {
        let all: Vec<PathBuf> = self.read.iter().chain(&self.files).cloned().collect();
        if all.len() > 1 && all.iter().any(|f| f.as_os_str() == "-") {
            return Err("standard input (`-`) can only be read alone, not with other files".into());
        }
        Ok(all)
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub causality: CausalityArgs,
}

/// Where spans go and what is kept of them (shared by every command that makes spans).
#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Where to write spans as JSON lines; `-` is stdout. Default: stdout, unless an exporter
    /// (--otlp, --zipkin) is given.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<String>,

    /// Print a latency table per (service, method, route), capture counters and performance
    /// findings to stderr.
    #[arg(long)]
    pub summary: bool,

    /// Write an HTML report (service map, endpoint table, waterfalls, findings) to PATH: one
    /// self-contained file for any browser (`--html` is the same flag).
    #[arg(long, alias = "html", value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Write the report's analysis as JSON to PATH (stable fields, for diffing two captures).
    #[arg(long, value_name = "PATH")]
    pub analysis_json: Option<PathBuf>,

    /// Also record this request/response header as a span attribute (repeatable).
    #[arg(long = "capture-header", value_name = "NAME")]
    pub capture_headers: Vec<String>,

    #[command(flatten)]
    pub redact: RedactArgs,

    /// Send spans over OTLP to this collector URL, e.g. http://localhost:4317 (gRPC) or
    /// http://localhost:4318/v1/traces (HTTP/protobuf) (repeatable).
    #[arg(long = "otlp", value_name = "URL", value_parser = tapspan::export::check_url)]
    pub otlp: Vec<String>,

    /// OTLP protocol; default: `http` for port 4318 or a path ending in /v1/traces, else `grpc`.
    #[arg(long, value_name = "PROTOCOL", value_parser = ["grpc", "http"])]
    pub otlp_protocol: Option<String>,

    /// Extra header (metadata for gRPC) on every OTLP request, e.g. an API key for a hosted
    /// backend (repeatable).
    #[arg(long = "otlp-header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub otlp_headers: Vec<(String, String)>,

    /// Compress OTLP requests.
    #[arg(long, value_name = "ALGO", default_value = "none", value_parser = ["none", "gzip"])]
    pub otlp_compression: String,

    /// Send spans as Zipkin v2 JSON to this URL, e.g. http://localhost:9411/api/v2/spans
    /// (repeatable).
    #[arg(long = "zipkin", value_name = "URL", value_parser = tapspan::export::check_url)]
    pub zipkin: Vec<String>,

    /// At exit, how long exporters may take to deliver what is queued; the rest is dropped and
    /// reported.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub export_deadline: f64,

    /// Spans each exporter holds in memory while the backend is slow or down.
    #[arg(long, value_name = "SPANS", default_value_t = 8192)]
    pub export_queue: usize,

    /// At the end, write RED metrics (request duration histograms per service, method, route
    /// and status, from every span, before sampling) to PATH as Prometheus text.
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// Which traces the span outputs get (JSON lines and exporters; the summary, report and
/// analysis always see every exchange). README "Sampling".
#[derive(Debug, Args, Clone, Default)]
pub struct SamplingArgs {
    /// Keep this share of traces (0 to 1), whole: decided from each trace id's random bits as
    /// OpenTelemetry's consistent probability sampling does, so every tap and every run keeps the
    /// same traces; kept spans carry the threshold in their tracestate (`ot=th:…`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub sample: Option<f64>,

    /// TOML rules by service, method and route glob, each with a reservoir (traces per second)
    /// and a rate; the first that matches a trace's root request wins, `[default]` takes the
    /// rest (README "Sampling").
    #[arg(long, value_name = "FILE")]
    pub sampling_rules: Option<PathBuf>,

    /// Also keep every trace with an error span (a 5xx, a 4xx seen by its client, an exchange
    /// cut short).
    #[arg(long)]
    pub keep_errors: bool,

    /// Also keep every trace whose root took longer than this (e.g. 500ms, 2s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ns)]
    pub keep_slower_than: Option<u64>,
}

impl SamplingArgs {
    /// The sampler these flags describe (None: every trace is kept), traces waiting at most
    /// `wait_ns` for more pieces, within `limits`. A rules file that cannot be read, or a
    /// `[default]` rule with `--sample`, is an error.
    pub fn sampler(
        &self,
        wait_ns: u64,
        limits: &MemoryLimits,
    ) -> anyhow::Result<Option<tapspan::sampling::Sampler>> {
        use tapspan::sampling::{rules::Rules, Sampler, SamplingConfig};
        let rules = match &self.sampling_rules {
            Some(path) => Rules::load(path)?,
            None => Rules::default(),
        };
        if let (Some(_), Some(_), Some(path)) = (self.sample, &rules.default, &self.sampling_rules)
        {
            anyhow::bail!(
                "--sample and the [default] rule of {} both say how much to keep of what no rule \
matches: give one",
                path.display()
            );
        }
        let any = self.sample.is_some()
            || self.sampling_rules.is_some()
            || self.keep_errors
            || self.keep_slower_than.is_some();
        if !any {
            return Ok(None);
        }
        let mut config = SamplingConfig {
            keep_errors: self.keep_errors,
            keep_slower_than_ns: self.keep_slower_than,
            wait_ns,
            ..SamplingConfig::new(self.sample, rules)
        };
        limits.apply_to_sampling(&mut config);
        Ok(Some(Sampler::new(config)))
    }
}

/// A share between 0 and 1.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a rate between 0 and 1 (e.g. 0.1)")),
    }
}

pub(crate) fn parse_duration_ns(s: &str) -> Result<u64, String> {
    tapspan::sampling::rules::parse_duration(s).map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
}

/// What is redacted besides what always is (shared by every command that reads captures).
#[derive(Debug, Args, Clone, Default)]
pub struct RedactArgs {
    /// Never write this header's value, even if captured (repeatable). Always redacted:
    /// Authorization, Cookie, Set-Cookie, Proxy-Authorization, and headers whose names look like
    /// a credential's (README "Privacy").
    #[arg(long = "redact-header", value_name = "NAME")]
    pub redact_headers: Vec<String>,

    /// Never write this query parameter's value (repeatable). Always redacted: parameters whose
    /// names look like a credential's (token, secret, key, auth, session, password, code, sig, …;
    /// README "Privacy"), and credential-shaped values such as JWTs. Redaction cannot be turned
    /// off.
    #[arg(long = "redact-query", value_name = "NAME")]
    pub redact_queries: Vec<String>,
}

impl RedactArgs {
    /// The policy these flags describe, capturing `captured` headers besides the default ones.
    pub fn policy(&self, captured: &[String]) -> HeaderPolicy {
        HeaderPolicy::default()
            .with_captured(captured)
            .with_redacted(&self.redact_headers)
            .with_redacted_params(&self.redact_queries)
    }
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub input: InputArgs,

    /// Where to write the HTML report (`--html` is the same flag).
    #[arg(long = "report", alias = "html", value_name = "PATH")]
    pub html: Option<PathBuf>,

    /// Write the analysis as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub analysis_json: Option<PathBuf>,

    /// Also print the latency table, counters and findings to stderr.
    #[arg(long)]
    pub summary: bool,

    #[command(flatten)]
    pub redact: RedactArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    #[command(flatten)]
    pub causality: CausalityArgs,
}

impl OutputArgs {
    /// Which headers are kept and which are redacted.
    pub fn header_policy(&self) -> HeaderPolicy {
        self.redact.policy(&self.capture_headers)
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The analysis before (e.g. of a capture before a deploy).
    #[arg(value_name = "BEFORE.json")]
    pub before: PathBuf,

    /// The analysis after.
    #[arg(value_name = "AFTER.json")]
    pub after: PathBuf,

    /// Growth of an endpoint's p50 or p99, in percent, that counts as a regression.
    #[arg(long, value_name = "PERCENT", default_value_t = 20.0)]
    pub threshold: f64,

    /// Exit with status 3 when there is a regression (a slower or more failing endpoint, or a
    /// new finding).
    #[arg(long)]
    pub fail_on_regression: bool,
}

/// `KEY=VALUE` for a request header: KEY an HTTP token, VALUE without control characters.
fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    let k = k.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if k.is_empty() || !k.chars().all(token) {
        return Err(format!("{k:?} is not a valid header name"));
    }
    if v.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("the value of {k} has control characters"));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// A size in bytes, with an optional unit: `65536`, `64KiB`, `64k`, `1MiB`, `1.5MB`, `2G`.
/// KiB, MiB, GiB and bare k, m, g are powers of 1024; kB, MB, GB powers of 1000.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let (value, unit) = tapspan::units::number_and_unit(s)
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 65536, 64KiB, 1MiB)"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (B, KiB, MiB, GiB, kB, MB, GB)"
            ))
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes >= usize::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes.round() as usize)
}

/// The caps' defaults, made once: each is a whole [`MemoryLimits::default`] (every stage's
/// default configuration, the header policy's secret names among them), and the command line
/// asks for one per option.
static DEFAULT_LIMITS: LazyLock<MemoryLimits> = LazyLock::new(MemoryLimits::default);

/// Memory caps: every buffer is bounded, and what overflows is counted.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Connections tracked at once; the least recently active are evicted beyond it.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_connections)]
    pub max_connections: usize,

    /// Out-of-order bytes held per connection direction while waiting for a hole to fill.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_held_bytes_per_direction, value_parser = parse_size)]
    pub max_held_bytes: usize,

    /// Out-of-order bytes held across all connections.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_held_bytes_total, value_parser = parse_size)]
    pub max_held_bytes_total: usize,

    /// Bytes of one HTTP head; a longer head keeps its start line and ends in error.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_head_bytes, value_parser = parse_size)]
    pub max_head_bytes: usize,

    /// Bytes of HTTP heads split over segments, waiting for their end, across all connections;
    /// a head that would cross it is dropped (its start line kept if it arrived).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_head_bytes_total)]
    pub max_head_bytes_total: usize,

    /// Requests (HTTP requests, Redis commands, PostgreSQL queries) awaiting a response on one
    /// connection; beyond it the oldest is given up.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_pending_requests)]
    pub max_pending_requests: usize,

    /// HTTP/2 streams open on one connection; beyond it the oldest is given up.
    #[arg(long = "max-http2-streams", value_name = "N", default_value_t = DEFAULT_LIMITS.max_http2_streams)]
    pub max_http2_streams: usize,

    /// Decoded bytes of one HTTP/2 header list; the fields past it are not kept.
    #[arg(long = "max-http2-header-list-bytes", value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_http2_header_list_bytes)]
    pub max_http2_header_list_bytes: usize,

    /// Bytes of each direction's HTTP/2 header table (HPACK); a peer announcing more is held
    /// to it.
    #[arg(long = "max-http2-table-bytes", value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_http2_table_bytes)]
    pub max_http2_table_bytes: usize,

    /// Exchanges held while their traces may still change; beyond it the oldest are decided early.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_pending_exchanges)]
    pub max_pending_exchanges: usize,

    /// Bytes of IP fragments held for reassembly across all datagrams.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_LIMITS.max_fragment_bytes, value_parser = parse_size)]
    pub max_fragment_bytes: usize,

    /// IP datagrams reassembled at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_fragment_datagrams)]
    pub max_fragment_datagrams: usize,

    /// Exchanges analysed at most for the report; later ones are counted, not analysed
    /// (default: every one).
    #[arg(long, value_name = "N")]
    pub max_analysed_calls: Option<usize>,

    /// Exchanges the analysis holds while their traces may still get spans; beyond it,
    /// traces that went quiet are folded into the aggregates and their calls dropped.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_analysis_held_calls)]
    pub max_analysis_held_calls: usize,

    /// Close a connection after this many seconds (capture time) without a packet.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub idle_timeout: u64,

    /// DNS queries over UDP awaiting a response, all clients together; beyond it the oldest is
    /// given up (over TCP, `--max-pending-requests` holds per connection).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_pending_dns_queries)]
    pub max_pending_dns_queries: usize,

    /// A DNS query unanswered this long (capture time; e.g. 500ms, 2s) ends with
    /// `error.type=timeout`.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration_ns)]
    pub dns_timeout: u64,

    /// Spans sampling holds while traces with ids from the wire wait for the rest of their
    /// pieces (rules or tail sampling only); beyond it the oldest traces are decided early.
    #[arg(long, value_name = "SPANS", default_value_t = DEFAULT_LIMITS.max_sampling_spans)]
    pub max_sampling_spans: usize,

    /// RED metric series (`--metrics-file`, `--metrics-addr`); beyond it a new series' samples
    /// go to one overflow series (`otel_metric_overflow="true"`).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LIMITS.max_metric_series)]
    pub max_metric_series: usize,
}

impl LimitArgs {
    pub fn memory_limits(&self) -> MemoryLimits {
        MemoryLimits {
            max_connections: self.max_connections,
            max_held_bytes_per_direction: self.max_held_bytes,
            max_held_bytes_total: self.max_held_bytes_total,
            max_head_bytes: self.max_head_bytes,
            max_head_bytes_total: self.max_head_bytes_total,
            max_pending_requests: self.max_pending_requests,
            max_http2_streams: self.max_http2_streams,
            max_http2_header_list_bytes: self.max_http2_header_list_bytes,
            max_http2_table_bytes: self.max_http2_table_bytes,
            max_pending_exchanges: self.max_pending_exchanges,
            max_fragment_bytes: self.max_fragment_bytes,
            max_fragment_datagrams: self.max_fragment_datagrams,
            max_analysed_calls: self.max_analysed_calls,
            max_analysis_held_calls: self.max_analysis_held_calls,
            max_sampling_spans: self.max_sampling_spans,
            max_pending_dns_queries: self.max_pending_dns_queries,
            max_metric_series: self.max_metric_series,
        }
    }

    /// The pipeline configuration these flags (and a header policy) describe.
    pub fn pipeline_config(&self, headers: HeaderPolicy) -> tapspan::pipeline::PipelineConfig {
        let mut config = tapspan::pipeline::PipelineConfig::default();
        self.memory_limits().apply_to_pipeline(&mut config);
        config.reassembly.idle_timeout_ns = self.idle_timeout.saturating_mul(1_000_000_000);
        config.protocols.dns.timeout_ns = self.dns_timeout;
        config.protocols.http.headers = headers;
        config
    }
}

/// How exchanges are named and joined into traces.
#[derive(Debug, Args, Clone)]
pub struct CausalityArgs {
    /// TOML file naming services by `ip:port`, `ip`, CIDR or `:port` (see README).
    #[arg(long, value_name = "FILE")]
    pub services: Option<PathBuf>,

    /// Route templates (`/stock/{sku}`, one per line, or an OpenAPI JSON document): a path that
    /// matches one gets it as its `http.route`, before any inferred route.
    #[arg(long, value_name = "FILE")]
    pub routes: Option<PathBuf>,

    /// Distinct values a path position may take (per service, method and route prefix) before
    /// it is a parameter, `{param}`, in routes.
    #[arg(long, value_name = "N", default_value_t = tapspan::route::RouteConfig::default().values_per_position)]
    pub route_values: usize,

    /// Routes per service; paths past it share the route `/{rest}`.
    #[arg(long, value_name = "N", default_value_t = tapspan::route::RouteConfig::default().max_per_service)]
    pub max_routes: usize,

    /// Seconds (capture time) after an exchange ends before its parent is decided; a parent
    /// that outlasts its child by more than this is not found.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub trace_window: f64,
    /// How hard send/receive nesting searches for calls without propagated ids: `adaptive`
    /// (a narrow search where payload values link calls to requests, a wider one where they do
    /// not) or `wide` (several times slower; a point or two better where nothing but timing
    /// tells calls apart, see docs/causality.md).
    #[arg(long, value_name = "HOW", default_value = "adaptive", value_parser = ["adaptive", "wide"])]
    pub nesting_search: String,
}

impl CausalityArgs {
    pub fn config(
        &self,
        limits: &MemoryLimits,
    ) -> anyhow::Result<tapspan::causality::CausalityConfig> {
        let services = match &self.services {
            Some(path) => tapspan::causality::ServiceMap::load(path)?,
            None => tapspan::causality::ServiceMap::default(),
        };
        let mut config = tapspan::causality::CausalityConfig {
            window_ns: (self.trace_window.max(0.0) * 1e9) as u64,
            search: match self.nesting_search.as_str() {
                "wide" => tapspan::causality::fit::Search::Wide,
                _ => tapspan::causality::fit::Search::Adaptive,
            },
            services,
            routes: tapspan::route::RouteConfig {
                values_per_position: self.route_values.max(1),
                max_per_service: self.max_routes.max(1),
                templates: match &self.routes {
                    Some(path) => tapspan::route::Templates::load(path)?,
                    None => tapspan::route::Templates::default(),
                },
                ..Default::default()
            },
            ..Default::default()
        };
        limits.apply_to_causality(&mut config);
        Ok(config)
    }
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1.5 MB"), Ok(1_500_000));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("KiB").is_err());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn replay_limits(args: &[&str]) -> LimitArgs {
        let argv = ["tapspan", "replay", "x.pcap"].iter().chain(args);
        match Cli::try_parse_from(argv).expect("flags parse").command {
            Command::Replay(r) => r.limits,
            _ => unreachable!("replay was given"),
        }
    }

    #[test]
    fn dns_flags_reach_the_pipeline() {
        let limits = replay_limits(&["--max-pending-dns-queries", "3", "--dns-timeout", "250ms"]);
        let config = limits.pipeline_config(HeaderPolicy::default());
        assert_eq!(config.protocols.dns.max_pending, 3);
        assert_eq!(config.protocols.dns.timeout_ns, 250_000_000);
        // Per DNS-over-TCP connection: the pending-requests cap, as for Redis and PostgreSQL.
        let limits = replay_limits(&["--max-pending-requests", "7", "--dns-timeout", "2"]);
        let config = limits.pipeline_config(HeaderPolicy::default());
        assert_eq!(config.protocols.dns.max_pending_per_connection, 7);
        assert_eq!(config.protocols.redis.max_pending, 7);
        assert_eq!(config.protocols.dns.timeout_ns, 2_000_000_000);
        // The defaults are DnsConfig's own.
        let config = replay_limits(&[]).pipeline_config(HeaderPolicy::default());
        assert_eq!(
            config.protocols.dns,
            tapspan::protocols::dns::DnsConfig {
                max_pending_per_connection: 128,
                ..Default::default()
            }
        );
        let argv = ["tapspan", "replay", "x.pcap", "--dns-timeout", "soon"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}

//! What the HTTP/2 decoder emits: one [`H2Exchange`] per stream.
//!
//! Plain owned data, protocol-shaped, meant to be mapped to the pipeline's exchange (and so to
//! spans) when the decoder is wired: the four instants, sizes, status or the reason for none,
//! and the gRPC fields. Parts the capture could not know are `None` (a header whose table
//! entry came before the capture), never guessed; `unknown_headers` says which.
//! Values are as sent: redaction is the pipeline's job when it maps them (`src/redact/`).

/// Why a stream has no complete response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// RST_STREAM with this error code (RFC 9113 §7), from the client or the server.
    Reset { code: u32, by_client: bool },
    /// GOAWAY's last stream id was below this stream's: the server did not process it.
    GoAway { code: u32 },
    /// Bytes of the connection were lost while the stream was open.
    Gap,
    /// The connection ended (or the capture did) before the response did.
    NoResponse,
    /// The stream was given up at the per-connection stream cap.
    StreamOverflow,
    /// The response's header block could not be read (over the cap, or cut by bad framing).
    HeaderBlock,
}

impl StreamError {
    /// A short `error.type`: `reset:CANCEL`, `goaway:NO_ERROR`, `gap`.
    pub fn kind(&self) -> String {
        match self {
            StreamError::Reset { code, .. } => format!("reset:{}", error_code_name(*code)),
            StreamError::GoAway { code } => format!("goaway:{}", error_code_name(*code)),
            StreamError::Gap => "gap".into(),
            StreamError::NoResponse => "no_response".into(),
            StreamError::StreamOverflow => "stream_overflow".into(),
            StreamError::HeaderBlock => "header_block".into(),
        }
    }
}

/// RFC 9113 §7 error code names.
pub fn error_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

/// The gRPC side of an exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcInfo {
    /// From `:path` (`/package.Service/Method`); `None` when the path is unknown.
    pub service: Option<String>,
    pub method: Option<String>,
    /// `grpc-status` from the trailers, or from a trailers-only response.
    pub status: Option<u32>,
    /// Length-prefixed messages seen each way (a lower bound unless `messages_exact`).
    pub request_messages: u32,
    pub response_messages: u32,
    pub messages_exact: bool,
    /// When the first response message began (capture ns): for a streaming call, how long the
    /// client waited for its first answer.
    pub first_response_message_at: Option<u64>,
}

/// One HTTP/2 stream: a request and its response (or why there is none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct H2Exchange {
    pub stream_id: u32,
    /// TCP sequence number of the first byte of the frame that opened the stream (its request
    /// HEADERS when seen; for an `Upgrade: h2c` request, the request's first byte): what the
    /// exchange's identity derives from (DESIGN.md "Identity"). Fed without sequence numbers
    /// ([`super::Http2Conn::push`]), the offset in its direction's bytes instead.
    pub anchor_seq: u32,
    /// Pseudo-headers (RFC 9113 §8.3); `None` when not seen or unknown.
    pub method: Option<String>,
    pub path: Option<String>,
    pub authority: Option<String>,
    pub scheme: Option<String>,
    /// The final (non-1xx) `:status`.
    pub status: Option<u16>,
    /// Capture times (ns): request's first and last frame, response's first and last.
    pub request_start: Option<u64>,
    pub request_end: Option<u64>,
    pub response_start: Option<u64>,
    pub response_end: Option<u64>,
    /// DATA payload octets each way, padding excluded.
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// Request headers whose value (or whole field, written `?`) the capture could not know,
    /// by name where the name is known: `:path`, `user-agent`, `?`.
    pub unknown_headers: Vec<String>,
    /// The same for the response's header blocks (head and trailers).
    pub unknown_response_headers: Vec<String>,
    /// Headers the pipeline's policy captures (`Http2Conn::with_headers`), redacted by it,
    /// lower-case names; `:authority` is kept as `host`, as HTTP/1.1 sends it.
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
    /// The request's HEADERS were not seen (the stream began before the capture or a loss).
    pub request_unseen: bool,
    /// A PUSH_PROMISE made this stream (its request is the promise).
    pub pushed: bool,
    pub grpc: Option<GrpcInfo>,
    /// Request headers causality reads (see [`PROPAGATION_HEADERS`]), as sent, in order.
    pub propagation: Vec<(String, String)>,
    pub error: Option<StreamError>,
}

/// Request headers kept for causality (DESIGN.md "Causality": propagated metadata).
pub const PROPAGATION_HEADERS: &[&str] = &[
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "uber-trace-id",
    "x-amzn-trace-id",
    "x-request-id",
    "grpc-trace-bin",
];
/// Propagation values kept per exchange, at most, and their length.
pub const MAX_PROPAGATION: usize = 8;
pub const MAX_PROPAGATION_VALUE: usize = 512;

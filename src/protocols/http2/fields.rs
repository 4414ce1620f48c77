//! From decoded header blocks to an exchange's fields (RFC 9113 §8.3 pseudo-headers, gRPC's
//! content type and status, propagation headers), and what could not be known.

use super::exchange::{
    GrpcInfo, H2Exchange, MAX_PROPAGATION, MAX_PROPAGATION_VALUE, PROPAGATION_HEADERS,
};
use super::grpc;
use super::hpack::Block;
use crate::redact::HeaderPolicy;

/// Names listed in `unknown_headers` per exchange, at most.
const MAX_UNKNOWN_LISTED: usize = 16;

pub fn add_body(x: &mut H2Exchange, i: usize, n: u64) {
    let total = if i == 0 {
        &mut x.request_body_bytes
    } else {
        &mut x.response_body_bytes
    };
    *total = total.saturating_add(n);
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Lists the block's unknown parts in `list` (bounded).
pub fn note_unknown(list: &mut Vec<String>, block: &Block) {
    for f in &block.fields {
        if list.len() >= MAX_UNKNOWN_LISTED {
            return;
        }
        match (&f.name, &f.value) {
            (None, _) => list.push("?".into()),
            (Some(n), None) => list.push(text(n)),
            _ => {}
        }
    }
}

/// The block's fields `policy` captures, redacted by it, into `into` (bounded by the policy's
/// list of names and the block's own cap). `:authority` counts as `host`.
fn capture(into: &mut Vec<(String, String)>, block: &Block, policy: Option<&HeaderPolicy>) {
    let Some(policy) = policy else {
        return;
    };
    for f in &block.fields {
        let (Some(n), Some(v)) = (&f.name, &f.value) else {
            continue;
        };
        let name = match n.as_slice() {
            b":authority" => "host",
            n if n.starts_with(b":") => continue,
            n => match std::str::from_utf8(n) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        if let Some(kept) = policy.capture(name, v) {
            into.push(kept);
        }
    }
}

pub fn request_fields(x: &mut H2Exchange, block: &Block, policy: Option<&HeaderPolicy>) {
    capture(&mut x.request_headers, block, policy);
    for f in &block.fields {
        let (Some(n), Some(v)) = (&f.name, &f.value) else {
            continue;
        };
        if x.propagation.len() < MAX_PROPAGATION
            && v.len() <= MAX_PROPAGATION_VALUE
            && PROPAGATION_HEADERS
                .iter()
                .any(|p| p.as_bytes() == n.as_slice())
        {
            x.propagation.push((text(n), text(v)));
        }
    }
    let get = |n: &str| block.get(n).map(text);
    x.method = get(":method");
    x.path = get(":path");
    x.authority = get(":authority");
    x.scheme = get(":scheme");
    if block.get("content-type").is_some_and(grpc::is_grpc) {
        let rpc = x.path.as_deref().and_then(grpc::rpc);
        x.grpc = Some(GrpcInfo {
            service: rpc.map(|r| r.0.to_string()),
            method: rpc.map(|r| r.1.to_string()),
            ..GrpcInfo::default()
        });
    }
    note_unknown(&mut x.unknown_headers, block);
}

/// A response's first header block: false for a 1xx (informational, §8.1), after which the
/// final head is still to come.
pub fn response_head(x: &mut H2Exchange, block: &Block, policy: Option<&HeaderPolicy>) -> bool {
    let status = block
        .get(":status")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u16>().ok());
    if status.is_some_and(|s| (100..200).contains(&s)) {
        return false;
    }
    x.status = status;
    capture(&mut x.response_headers, block, policy);
    if block.get("content-type").is_some_and(grpc::is_grpc) && x.grpc.is_none() {
        let rpc = x.path.as_deref().and_then(grpc::rpc);
        x.grpc = Some(GrpcInfo {
            service: rpc.map(|r| r.0.to_string()),
            method: rpc.map(|r| r.1.to_string()),
            ..GrpcInfo::default()
        });
    }
    // A trailers-only response carries grpc-status in its only block.
    response_trailers(x, block);
    true
}

pub fn response_trailers(x: &mut H2Exchange, block: &Block) {
    if let Some(code) = block.get("grpc-status").and_then(grpc::status) {
        x.grpc.get_or_insert_with(GrpcInfo::default).status = Some(code);
    }
    note_unknown(&mut x.unknown_response_headers, block);
}

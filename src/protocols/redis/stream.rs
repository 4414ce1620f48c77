//! Redis on the protocol seam: claims connections whose client speaks RESP first, and turns
//! each [`RedisExchange`] into an [`Exchange`] (see [`crate::protocols::conns`]).

use super::{RedisConn, RedisExchange, MAX_PENDING};
use crate::protocols::conns::{cut_reason, ConnDecoder, Converted, PerConnection, StreamCounts};
use crate::protocols::{Call, Instants, PayloadTokens, Protocol, ProtocolStats};
use crate::reassembly::{Direction, Role};

/// Redis in the registry (see [`crate::protocols::REGISTRY`]).
pub const PROTOCOL: Protocol = Protocol {
    name: "redis",
    server_ports: &[6379],
    sniff,
    stream: |config| {
        Box::new(PerConnection::<RedisConn>::new(
            config.redis.clone(),
            claims,
        ))
    },
};

/// A command array is the client's; replies are too like other protocols' bytes to tell.
fn sniff(first: &[u8]) -> Option<Role> {
    RedisConn::sniff(first).then_some(Role::Client)
}

fn claims(dir: Direction, first: &[u8]) -> bool {
    dir == Direction::ClientToServer && RedisConn::sniff(first)
}

#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// Commands awaiting a reply on one connection; beyond it the oldest is given up.
    pub max_pending: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            max_pending: MAX_PENDING,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisCounters {
    pub connections: u64,
    pub exchanges: u64,
    pub incomplete_exchanges: u64,
    pub pushes: u64,
    pub unmatched_replies: u64,
    pub protocol_errors: u64,
}

crate::counters::describe_counters!("redis", RedisCounters {
    connections: "Connections claimed by the Redis decoder.",
    exchanges: "Commands paired with their reply (or cut short).",
    incomplete_exchanges [Metric]: "Commands without a reply (gap, close, pending cap).",
    pushes: "Pub/sub messages and RESP3 pushes (not replies).",
    unmatched_replies: "Replies with no command to pair (dropped).",
    protocol_errors: "Values that were not valid RESP.",
});

impl ConnDecoder for RedisConn {
    type Config = RedisConfig;
    type Record = RedisExchange;
    type Stats = RedisCounters;

    fn open(config: &RedisConfig, from_start: bool) -> Self {
        RedisConn::new(from_start).with_max_pending(config.max_pending)
    }

    fn data(&mut self, dir: Direction, ts: u64, bytes: &[u8], out: &mut Vec<RedisExchange>) {
        self.push(dir, ts, bytes, out);
    }

    fn data_at(
        &mut self,
        dir: Direction,
        (ts, offset): (u64, u64),
        bytes: &[u8],
        out: &mut Vec<RedisExchange>,
    ) {
        self.push_at(dir, ts, offset, bytes, out);
    }

    fn gap(&mut self, dir: Direction, _ts: u64, out: &mut Vec<RedisExchange>) {
        RedisConn::gap(self, dir, out);
    }

    fn finish(&mut self, _ts: u64, out: &mut Vec<RedisExchange>) {
        RedisConn::finish(self, out);
    }

    fn convert(mut x: RedisExchange) -> Converted {
        let error = match (&x.error, x.replied) {
            (Some(why), false) => Some(cut_reason(why)),
            _ => None,
        };
        Converted {
            t: Instants::of_ns(x.start, x.request_end, x.response_start, x.end),
            request_offset: Some(x.request_offset),
            error,
            tokens: PayloadTokens {
                request: std::mem::take(&mut x.tokens),
                ..PayloadTokens::default()
            },
            call: Call::Redis(x),
        }
    }

    fn tally(&self, into: &mut RedisCounters) {
        into.pushes += self.stats.pushes;
        into.unmatched_replies += self.stats.unmatched_replies;
        into.protocol_errors += self.stats.protocol_errors;
    }

    fn publish(totals: &RedisCounters, counts: &StreamCounts, into: &mut ProtocolStats) {
        into.redis = RedisCounters {
            connections: counts.connections,
            exchanges: counts.exchanges,
            incomplete_exchanges: counts.incomplete_exchanges,
            ..totals.clone()
        };
    }
}

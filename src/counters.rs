//! Counter sets, each described once: a stats struct lists its counters in one
//! [`describe_counters!`] block (name, help text, tags), and every reader walks that
//! description — `--summary` fills its layout by name, live runs add workers' sets together,
//! Prometheus serves the counters tagged [`Tag::Metric`].
//!
//! Contract: a description destructures its struct in full, so a new field does not compile
//! until it is described; `--summary` places every counter not tagged [`Tag::Internal`] exactly
//! once (checked by its tests). Descriptions allocate, so they are read a few times a second at
//! most, never per packet.

/// One counter of a set, as read now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The field's name, unique in its set.
    pub name: &'static str,
    pub help: &'static str,
    pub value: u64,
    pub tags: &'static [Tag],
}

/// Where a counter is shown besides the set's own description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// Not on `--summary`: a work counter (for cost tests) or a figure no reader shows.
    Internal,
    /// Served to Prometheus as `tapspan_<set>_<name>_total`.
    Metric,
}

impl Counter {
    pub fn has(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }
}

/// A stats struct whose counters are described once ([`describe_counters!`]).
pub trait Counters {
    /// The set's name: the prefix of its keys in layouts (`tcp.gaps`) and of its metrics.
    const SET: &'static str;
    /// Every counter, in the order of the description.
    fn counters(&self) -> Vec<Counter>;
    /// Adds `other`'s counters to these (peaks add up too: each worker's are separate memory).
    fn add(&mut self, other: &Self);
}

/// Implements [`Counters`] for a struct of `u64` fields, listed in full:
/// `describe_counters!("tcp", ReassemblyStats { gaps [Metric]: "Holes…", … })`.
macro_rules! describe_counters {
    ($set:literal, $ty:ident { $($field:ident $([$($tag:ident),+])? : $help:literal,)+ }) => {
        impl $crate::counters::Counters for $ty {
            const SET: &'static str = $set;
            fn counters(&self) -> Vec<$crate::counters::Counter> {
                let $ty { $($field),+ } = self;
                vec![$($crate::counters::Counter {
                    name: stringify!($field),
                    help: $help,
                    value: *$field,
                    tags: &[$($($crate::counters::Tag::$tag),+)?],
                }),+]
            }
            fn add(&mut self, other: &Self) {
                let $ty { $($field),+ } = other;
                $(self.$field += *$field;)+
            }
        }
    };
}
pub(crate) use describe_counters;

/// A set's counters keyed `set.name`, for [`fill`].
pub fn keyed<C: Counters>(set: &C) -> impl Iterator<Item = (String, Counter)> {
    set.counters()
        .into_iter()
        .map(|c| (format!("{}.{}", C::SET, c.name), c))
}

/// `layout` with each `{key}` replaced by the value of the counter so keyed in `counters`.
/// A key that names no counter is a bug in a layout (a static string its tests render), so it
/// panics.
pub fn fill(layout: &str, counters: &[(String, Counter)]) -> String {
    let mut out = String::with_capacity(layout.len() + 8 * counters.len());
    let mut rest = layout;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or_else(|| panic!("unclosed key in layout {layout:?}"));
        let key = &rest[open + 1..close];
        let value = counters
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("no counter {key} for layout {layout:?}"))
            .1
            .value;
        out.push_str(&value.to_string());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The keys `layout` names, in order.
pub fn keys(layout: &str) -> Vec<&str> {
    layout
        .split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(k, _)| k))
        .collect()
}

/// Asserts that `layout` names every counter of `counters` not tagged [`Tag::Internal`] exactly
/// once, and no internal one (for layouts' tests).
pub fn assert_layout_complete(layout: &str, counters: &[(String, Counter)]) {
    let keys = keys(layout);
    for (key, c) in counters {
        let n = keys.iter().filter(|k| *k == key).count();
        let want = usize::from(!c.has(Tag::Internal));
        assert_eq!(n, want, "{key} is named {n} times in {layout:?}");
    }
}

// Sets whose structs live where a description cannot go: the capture crate's, and causality's
// (its insides are another change's).
use crate::causality::CausalityStats;
use tapspan_capture::DecodeStats;

describe_counters!("decode", DecodeStats {
    frames: "Frames given to the decoder.",
    bytes: "Captured bytes of those frames.",
    tcp_segments: "Segments returned (including those rebuilt from fragments).",
    udp_datagrams: "UDP datagrams decoded (tunnels aside).",
    non_tcp: "Frames carrying something other than TCP or UDP.",
    unsupported_link: "Frames of a link type tapspan does not decode.",
    malformed: "Frames whose headers are cut short or contradict themselves.",
    tunnels_unwrapped: "Tunnel layers unwrapped.",
    fragments: "IP fragments seen.",
    datagrams_reassembled: "Datagrams rebuilt from fragments.",
    defrag_evicted: "Datagrams dropped from reassembly to respect a cap.",
    defrag_timed_out: "Datagrams dropped because their fragments stopped arriving.",
    defrag_overlaps: "Fragments overlapping data already held.",
    truncated: "TCP segments and UDP datagrams whose payload a snap length cut short.",
    defrag_pending: "Datagrams whose fragments are held (at the end: never completed).",
    defrag_ranges_visited [Internal]: "Received ranges looked at while placing fragments.",
});

describe_counters!(
    "causality",
    CausalityStats {
        exchanges: "Exchanges given to causality.",
        traces: "Traces made.",
        linked_by_id: "Exchanges linked to a parent by a propagated id.",
        linked_by_nesting: "Exchanges linked to a parent by send/receive nesting.",
        roots: "Exchanges without a parent.",
        forced_decisions: "Exchanges decided early at the memory cap.",
        peak_pending: "Most exchanges held at once.",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Two {
        a: u64,
        b: u64,
    }
    describe_counters!("two", Two {
        a [Metric]: "The first.",
        b [Internal]: "The second.",
    });

    #[test]
    fn a_description_walks_adds_and_fills() {
        let mut t = Two { a: 1, b: 2 };
        t.add(&Two { a: 10, b: 20 });
        let c = t.counters();
        assert_eq!(
            (c[0].name, c[0].value, c[0].has(Tag::Metric)),
            ("a", 11, true)
        );
        assert_eq!(
            (c[1].name, c[1].value, c[1].has(Tag::Internal)),
            ("b", 22, true)
        );
        let keyed: Vec<_> = keyed(&t).collect();
        assert_eq!(fill("a {two.a}, b {two.b}.", &keyed), "a 11, b 22.");
        assert_eq!(keys("x {two.a} y {two.b}"), ["two.a", "two.b"]);
        assert_layout_complete("only {two.a}", &keyed);
    }

    #[test]
    #[should_panic(expected = "two.a is named 0 times")]
    fn a_layout_missing_a_counter_fails_its_test() {
        assert_layout_complete("nothing", &keyed(&Two::default()).collect::<Vec<_>>());
    }
}

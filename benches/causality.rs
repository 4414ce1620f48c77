//! The causality stage alone: exchanges in (decoded once, before timing), spans out, with the
//! default configuration on one thread. Throughput is in exchanges per second, on one core.
//!
//! `cargo bench --bench causality` (add `-- --quick` for a rough figure in seconds). The
//! captures: the causality lab at 16 clients in each concurrency model (pcaps/lab), and
//! pcaps/workers-c16.pcap (no payload tokens to help).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tapspan::causality::{CausalityBuilder, CausalityConfig};
use tapspan::pipeline::PipelineConfig;
use tapspan::protocols::Exchange;
use tapspan::run::replay::replay_files;

fn exchanges_of(capture: &str) -> Vec<Exchange> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join(capture);
    let mut out = Vec::new();
    replay_files(
        &[path],
        PipelineConfig::default(),
        &mut |_, _| {},
        &mut |ex| out.push(ex),
    )
    .unwrap_or_else(|e| panic!("{capture}: {e}"));
    out
}

fn causality(c: &mut Criterion) {
    let mut group = c.benchmark_group("causality");
    group.sample_size(10);
    for capture in [
        "pcaps/lab/threads-c16.pcap",
        "pcaps/lab/workers-c16.pcap",
        "pcaps/lab/eventloop-c16.pcap",
        "pcaps/workers-c16.pcap",
    ] {
        let exchanges = exchanges_of(capture);
        group.throughput(Throughput::Elements(exchanges.len() as u64));
        group.bench_function(capture, |b| {
            b.iter_batched(
                || exchanges.clone(),
                |exchanges| {
                    let mut builder = CausalityBuilder::new(CausalityConfig {
                        threads: 1,
                        ..CausalityConfig::default()
                    });
                    let mut spans = 0usize;
                    for ex in exchanges {
                        builder.push(ex, &mut |_| spans += 1);
                    }
                    builder.finish(&mut |_| spans += 1);
                    spans
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, causality);
criterion_main!(benches);

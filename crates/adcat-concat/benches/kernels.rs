//! Hot kernels of the concat engine (issue 4): reindexing a sparse block onto the joined
//! gene order, widening stored indices, casting values, and the string work of the plan
//! (index union, reindexer construction).
//!
//! `cargo bench -p adcat-concat` (criterion; reports throughput in entries or names).

#![allow(clippy::unwrap_used)]

use adcat_concat::index::{merge_indices, Join, Reindexer};
use adcat_concat::matrix::{Block, OutPlan};
use adcat_store::{ArrayData, DType};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const ROWS: usize = 2_000;
const GENES: usize = 20_000;
const PER_ROW: usize = 1_000; // 5 % density, as the benchmark data

fn genes(offset: usize, rng: &mut SmallRng) -> Vec<String> {
    let mut g: Vec<String> = (offset..offset + GENES).map(|i| format!("gene{i:06}")).collect();
    g.shuffle(rng);
    g
}

fn block(rng: &mut SmallRng) -> Block {
    let mut indptr = vec![0i64];
    let mut indices = Vec::with_capacity(ROWS * PER_ROW);
    for _ in 0..ROWS {
        let mut cols: Vec<i32> = (0..PER_ROW).map(|_| rng.random_range(0..GENES as i32)).collect();
        cols.sort_unstable();
        cols.dedup();
        indices.extend(cols);
        indptr.push(indices.len() as i64);
    }
    let data: Vec<f32> = (0..indices.len()).map(|i| (i % 7) as f32).collect();
    Block::SparseNative { indptr, indices: ArrayData::from_vec(indices), data: ArrayData::from_vec(data) }
}

fn kernels(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(1);
    let a = genes(0, &mut rng);
    let b = genes(1_750, &mut rng);
    let union = merge_indices(&[&a, &b], Join::Outer);
    let re = Reindexer::new(&a, &union);
    let blk = block(&mut rng);
    let nnz = match &blk {
        Block::SparseNative { indices, .. } => indices.len() as u64,
        _ => 0,
    };
    let plan = OutPlan { sparse: true, dtype: DType::F32, fill: 0.0 };

    let mut g = c.benchmark_group("sparse block");
    g.throughput(Throughput::Elements(nnz));
    g.bench_function("reindex onto a shuffled union (outer join)", |bn| {
        bn.iter(|| plan.prepare(black_box(blk.clone()), Some(&re), union.len() as u64).unwrap())
    });
    g.bench_function("identity (indices kept as stored)", |bn| {
        bn.iter(|| plan.prepare(black_box(blk.clone()), None, GENES as u64).unwrap())
    });
    g.bench_function("widen indices to i64", |bn| bn.iter(|| black_box(blk.clone()).into_plain()));
    let wide = OutPlan { sparse: true, dtype: DType::F64, fill: 0.0 };
    g.bench_function("cast values f32 -> f64", |bn| {
        bn.iter(|| wide.prepare(black_box(blk.clone()), None, GENES as u64).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("string index");
    g.throughput(Throughput::Elements(2 * GENES as u64));
    g.bench_function("outer union of two shuffled gene lists", |bn| bn.iter(|| merge_indices(&[black_box(&a), black_box(&b)], Join::Outer)));
    g.bench_function("reindexer construction", |bn| bn.iter(|| Reindexer::new(black_box(&a), black_box(&union))));
    g.finish();
}

criterion_group!(benches, kernels);
criterion_main!(benches);

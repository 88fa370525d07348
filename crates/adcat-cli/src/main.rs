//! `adcat`: concatenate and convert AnnData stores (.h5ad, .zarr) out of core.

// Blocks of tens of MiB are allocated and freed for every element; mimalloc keeps freed
// pages for reuse where glibc returns them to the kernel and faults them back in.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(adcat_cli::run_main(std::env::args_os()));
}
